"""Generate eo-learn's expected outputs for ``tests/core/test_interpolate.py``.

Runs only in a separate environment with eo-learn 1.5 (the plugin never depends on it)::

    /usr/bin/python3 -m venv /tmp/eolearn-venv
    /tmp/eolearn-venv/bin/pip install "eo-learn==1.5.*" "numpy<2" scipy scikit-learn numba
    /tmp/eolearn-venv/bin/python tools/make_eolearn_fixtures.py [path/to/TestEOPatch]

Writes ``tests/fixtures/interpolate_*.npz``: for each case the settings (JSON), the dates
eo-learn kept after the scene filter, the output dates and the interpolated array as float32
``(time, height, width, bands)`` with NaN where eo-learn has no value. The real-data cases run
the eo-learn LULC example's chain on ``TestEOPatch`` NDVI: VALID = IS_DATA & ~CLM, optionally
``SimpleFilterTask(VALID, ValidDataFractionPredicate(0.8))``, then
``LinearInterpolationTask(NDVI, mask_feature=VALID, resample_range=...)``. The synthetic case
stores its inputs too (duplicates in one hour, cloudy and single-observation pixels).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from eolearn.core import EOPatch, FeatureType
from eolearn.features import SimpleFilterTask
from eolearn.features.extra.interpolation import LinearInterpolationTask
from sentinelhub import CRS, BBox

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
DEFAULT_PATCH = REPO / "tests" / "data" / "TestEOPatch"

VALID = (FeatureType.MASK, "VALID")

#: name -> (min valid fraction or None, resample_range)
REAL_CASES = {
    "nofilter_2016_16d": (None, ("2016-01-01", "2016-12-31", 16)),
    "filter08_2016_16d": (0.8, ("2016-01-01", "2016-12-31", 16)),
    "nofilter_2015_2017_30d": (None, ("2015-09-01", "2017-06-01", 30)),
    "filter08_list": (0.8, ["2015-08-01", "2016-02-29T12:00:00", "2016-06-10", "2016-06-10T10:06:00", "2017-12-01"]),
}


class ValidDataFractionPredicate:
    """The eo-learn LULC example's predicate: keep a frame when its valid fraction is above ``threshold``."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, array: np.ndarray) -> bool:
        coverage = np.sum(array.astype(np.uint8)) / np.prod(array.shape)
        return bool(coverage > self.threshold)


def _interpolate(patch: EOPatch, feature: tuple, threshold: float | None, resample_range) -> EOPatch:
    if threshold is not None:
        patch = SimpleFilterTask(VALID, ValidDataFractionPredicate(threshold))(patch)
    task = LinearInterpolationTask(feature, mask_feature=VALID, resample_range=resample_range)
    return task(patch)


def _save(name: str, settings: dict, kept: list[datetime], result: EOPatch, feature: tuple, **extra) -> None:
    path = FIXTURES / f"interpolate_{name}.npz"
    np.savez_compressed(
        path,
        settings=json.dumps(settings),
        kept_dates=np.array([d.isoformat() for d in kept]),
        dates=np.array([d.isoformat() for d in result.timestamps]),
        expected=np.asarray(result[feature], dtype=np.float32),
        **extra,
    )
    print(f"{path.relative_to(REPO)}: {result[feature].shape} {path.stat().st_size / 1024:.0f} KiB")


def real_cases(folder: Path) -> None:
    ndvi = (FeatureType.DATA, "NDVI")
    source = EOPatch.load(str(folder), features=[ndvi, (FeatureType.MASK, "CLM"), (FeatureType.MASK, "IS_DATA")])
    for name, (threshold, resample_range) in REAL_CASES.items():
        patch = EOPatch(bbox=source.bbox, timestamps=list(source.timestamps))
        patch[ndvi] = source[ndvi].copy()
        patch[VALID] = source.mask["IS_DATA"].astype(bool) & ~source.mask["CLM"].astype(bool)
        kept = patch if threshold is None else SimpleFilterTask(VALID, ValidDataFractionPredicate(threshold))(patch)
        result = _interpolate(patch, ndvi, threshold, resample_range)
        settings = {"threshold": threshold, "resample_range": list(resample_range)}
        _save(name, settings, list(kept.timestamps), result, ndvi)


def synthetic_case() -> None:
    """Small stack exercising the corner cases, with its inputs stored."""
    rng = np.random.default_rng(4)
    base = datetime(2020, 1, 1, 10, 20, 0)
    offsets = [0, 10, 10, 25, 40, 40, 55, 70, 90, 100, 130, 160]  # days; 10 and 40 appear twice
    dates = [base + timedelta(days=d) for d in offsets]
    dates[2] += timedelta(minutes=35)  # same hour as dates[1] after rounding
    dates[5] += timedelta(minutes=20)
    dates[7] += timedelta(minutes=30)  # x.5 hours: Python's round-half-even decides
    t, h, w, b = len(dates), 6, 5, 2
    data = rng.uniform(-1, 1, size=(t, h, w, b)).astype(np.float32)
    valid = rng.uniform(size=(t, h, w, 1)) > 0.35
    valid[:, 0, 0] = False  # always cloudy
    valid[:, 0, 1] = False
    valid[6, 0, 1] = True  # a single valid observation
    valid[:, 0, 2] = False
    valid[[1, 2], 0, 2] = True  # two observations in the same hour only
    valid[:, 5, 4] = True  # always clear
    data[3, 2, 2, 1] = np.nan  # nodata in one band only
    feature = (FeatureType.DATA, "X")
    bbox = BBox((0, 0, w * 10, h * 10), crs=CRS(32633))
    grids = {
        "grid16": ("2020-01-05", "2020-06-30", 16),
        "grid7": ("2019-12-20", "2020-03-15", 7),
    }
    for grid_name, resample_range in grids.items():
        for threshold in (None, 0.6):
            patch = EOPatch(bbox=bbox, timestamps=list(dates))
            patch[feature] = data.copy()
            patch[VALID] = valid.copy()
            kept = patch if threshold is None else SimpleFilterTask(VALID, ValidDataFractionPredicate(threshold))(patch)
            result = _interpolate(patch, feature, threshold, resample_range)
            settings = {"threshold": threshold, "resample_range": list(resample_range)}
            label = f"synthetic_{grid_name}_{'nofilter' if threshold is None else 'filter06'}"
            _save(label, settings, list(kept.timestamps), result, feature,
                  input_dates=np.array([d.isoformat() for d in dates]), input_data=data,
                  input_valid=valid.astype(np.uint8))


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_PATCH
    FIXTURES.mkdir(parents=True, exist_ok=True)
    real_cases(folder)
    synthetic_case()


if __name__ == "__main__":
    main()
