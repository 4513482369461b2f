"""Import eo-learn EOPatch folders into time stacks.

An EOPatch (eo-learn >= 1.0 on-disk layout) is a folder with ``bbox.geojson``,
``timestamps.json`` and one ``.npy`` (or ``.npy.gz``) per feature in ``data/``, ``mask/``
(temporal: ``(time, height, width, channels)``) and ``data_timeless/``, ``mask_timeless/``
(``(height, width, channels)``). Arrays are memory-mapped and copied window by window, so a
patch larger than memory imports fine (``.npy.gz`` files must be decompressed whole). Pickles
(``.pkl``, the pre-1.0 layout) are never read: unpickling can execute code.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import iter_blocks
from .progress import Progress, ensure_progress
from .sentinel2 import L1C_BANDS
from .timestack import Grid, StackInfo, StackWriter, bounded_gdal_cache, parse_datetime

TEMPORAL_KINDS = ("data", "mask")
TIMELESS_KINDS = ("data_timeless", "mask_timeless")
#: Nodata of imported uint8 masks (mask values are small non-negative integers); wider integer
#: masks use their type's maximum.
MASK_NODATA = 255
#: The eo-learn mask telling where a frame has data; other features are nodata where it is 0.
IS_DATA = "IS_DATA"


@dataclass(frozen=True)
class Feature:
    """One feature of an EOPatch: ``kind`` is its folder (``data``, ``mask_timeless``, ...)."""

    kind: str
    name: str
    path: Path

    @property
    def temporal(self) -> bool:
        return self.kind in TEMPORAL_KINDS

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    def load(self) -> np.ndarray:
        """The array, memory-mapped when the file is a plain ``.npy``; pickled objects are refused."""
        try:
            if self.path.name.endswith(".gz"):
                with gzip.open(self.path, "rb") as handle:
                    array = np.load(handle, allow_pickle=False)
            else:
                array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"cannot read the array {self.label} ({self.path.name}): {error}") from error
        expected = 4 if self.temporal else 3
        if array.ndim != expected:
            raise ValueError(
                f"{self.label} has shape {array.shape}; eo-learn {self.kind} features have {expected} "
                "dimensions ((time,) height, width, channels)"
            )
        return array


@dataclass(frozen=True)
class EOPatch:
    """What an EOPatch folder holds; arrays are only opened by :func:`import_eopatch`."""

    folder: Path
    crs_wkt: str
    bounds: tuple[float, float, float, float]
    timestamps: tuple
    features: dict[str, Feature]

    def feature(self, name: str, kinds: Sequence[str]) -> Feature:
        """Find a feature by ``name`` or ``kind/name`` among ``kinds``."""
        kind, _, bare = name.strip().rpartition("/")
        matches = [
            f for f in self.features.values() if f.name == bare and f.kind in kinds and kind in ("", f.kind)
        ]
        if len(matches) == 1:
            return matches[0]
        available = ", ".join(f.label for f in self.features.values() if f.kind in kinds) or "none"
        if not matches:
            raise ValueError(f"the EOPatch has no {' or '.join(kinds)} feature '{name}'; available: {available}")
        raise ValueError(f"'{name}' is ambiguous; write one of {', '.join(m.label for m in matches)}")

    def grid(self, height: int, width: int) -> Grid:
        """The patch's grid for arrays of ``height`` x ``width``: the bbox split into pixels, as
        eo-learn does when it exports GeoTIFFs."""
        from rasterio.transform import from_bounds

        left, bottom, right, top = self.bounds
        return Grid(width=width, height=height, crs_wkt=self.crs_wkt,
                    transform=tuple(from_bounds(left, bottom, right, top, width, height))[:6])


def read_eopatch(folder: str | Path) -> EOPatch:
    """Read an EOPatch's bbox, timestamps and list of features (no arrays are loaded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"the EOPatch folder '{folder}' does not exist or is not a folder")
    pickles = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.pkl"))
    bbox_path = folder / "bbox.geojson"
    if not bbox_path.is_file():
        if pickles:
            raise ValueError(
                f"'{folder}' is an EOPatch in eo-learn's old pickle layout ({', '.join(pickles[:4])}). "
                "EO LULC never reads pickles because loading them can run code hidden in the file. "
                "Load it with eo-learn and save it again with eo-learn 1.0 or newer (bbox.geojson, "
                "timestamps.json, .npy arrays), then import that."
            )
        raise ValueError(f"'{folder}' has no bbox.geojson, so it is not an eo-learn EOPatch (1.0 or newer)")
    crs_wkt, bounds = _read_bbox(bbox_path)
    timestamps = _read_timestamps(folder / "timestamps.json")
    features: dict[str, Feature] = {}
    for kind in TEMPORAL_KINDS + TIMELESS_KINDS:
        for path in sorted((folder / kind).glob("*.npy*")):
            if path.name.endswith((".npy", ".npy.gz")):
                name = path.name.split(".npy")[0]
                features[f"{kind}/{name}"] = Feature(kind, name, path)
    if not features:
        hint = f" (only pickles: {', '.join(pickles[:4])}; EO LULC never reads pickles)" if pickles else ""
        raise ValueError(f"the EOPatch '{folder}' holds no .npy arrays in data/, mask/ or *_timeless/{hint}")
    return EOPatch(folder=folder, crs_wkt=crs_wkt, bounds=bounds, timestamps=timestamps, features=features)


def _read_bbox(path: Path) -> tuple[str, tuple[float, float, float, float]]:
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        geojson = json.loads(path.read_text(encoding="utf-8"))
        coords = np.asarray(_all_coordinates(geojson["coordinates"]), dtype=float)
        crs_name = geojson.get("crs", {}).get("properties", {}).get("name", "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"cannot read the bbox in '{path}': {error}") from error
    match = re.search(r"EPSG:+(\d+)", crs_name or "", flags=re.IGNORECASE)
    try:
        # eo-learn writes WGS84 bboxes without a crs member (GeoJSON's default)
        crs = CRS.from_epsg(int(match.group(1))) if match else CRS.from_user_input(crs_name or "EPSG:4326")
    except CRSError as error:
        raise ValueError(f"the bbox in '{path}' has an unknown CRS '{crs_name}': {error}") from error
    if coords.size < 4:
        raise ValueError(f"the bbox in '{path}' has no coordinates")
    xs, ys = coords[:, 0], coords[:, 1]
    if xs.max() <= xs.min() or ys.max() <= ys.min():
        raise ValueError(f"the bbox in '{path}' is empty")
    return crs.to_wkt(), (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def _all_coordinates(value) -> list:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (int, float)):
        return [value[:2]]
    return [point for item in value for point in _all_coordinates(item)]


def _read_timestamps(path: Path) -> tuple:
    if not path.is_file():
        return ()
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        return tuple(parse_datetime(str(v)) for v in values)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"cannot read the dates in '{path}': {error}") from error


#: The six L1C bands of eo-learn's LULC example (``SentinelHubInputTask(bands=[...],
#: bands_feature=(FeatureType.DATA, "BANDS"))``), the ``data/BANDS`` of Sinergise's shared
#: Slovenia 2017 patches, in that order.
EOLEARN_EXAMPLE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")


def channel_names(feature: Feature, channels: int) -> list[str]:
    """Band names of a feature: its name for one channel, the L1C names for 13, the example's six
    for a six-channel ``BANDS`` (so the features and indices find them), else numbered."""
    if channels == 1:
        return [feature.name]
    if channels == len(L1C_BANDS) and feature.kind == "data":
        return list(L1C_BANDS)
    if channels == len(EOLEARN_EXAMPLE_BANDS) and feature.kind == "data" and feature.name.upper() == "BANDS":
        return list(EOLEARN_EXAMPLE_BANDS)
    return [f"{feature.name}_{i + 1}" for i in range(channels)]


def default_data_features(patch: EOPatch) -> list[str]:
    """The temporal data features imported when none are named: the observations, without the
    cloud probabilities eo-learn and Sentinel Hub store beside them (``CLP``, ``CLP_S2C``...),
    which a classifier must not take as features. All of them if that leaves nothing."""
    names = [f.name for f in patch.features.values() if f.kind == "data"]
    observations = [name for name in names if not name.upper().startswith("CLP")]
    return observations or names


@bounded_gdal_cache()
def import_eopatch(
    folder: str | Path | EOPatch,
    data_features: Sequence[str] = (),
    output_data: str | Path | None = None,
    mask_feature: str | None = None,
    output_mask: str | Path | None = None,
    timeless_feature: str | None = None,
    output_timeless: str | Path | None = None,
    apply_is_data: bool = True,
    budget_bytes: int | None = None,
    progress: Progress | None = None,
) -> dict[str, StackInfo]:
    """Write an EOPatch's features as EO LULC rasters; returns the written stacks' info by output.

    - ``data_features`` (when empty :func:`default_data_features`: all temporal ``data/`` features
      but cloud probabilities) become one stack with their
      channels as bands, float features with NaN as nodata;
    - ``mask_feature`` becomes a mask stack (nodata :data:`MASK_NODATA`);
    - ``timeless_feature`` becomes a single-date raster.
    Where ``mask/IS_DATA`` is 0 the temporal outputs hold nodata (``apply_is_data``).
    All outputs are written, or none.
    """
    progress = ensure_progress(progress)
    patch = folder if isinstance(folder, EOPatch) else read_eopatch(folder)
    jobs: list[tuple[str, Path, list[Feature]]] = []
    if output_data is not None:
        names = list(data_features) or default_data_features(patch)
        if not names:
            raise ValueError("the EOPatch has no temporal data features (data/*.npy)")
        left_out = [] if data_features else sorted(
            {f.name for f in patch.features.values() if f.kind == "data"} - set(names))
        if left_out:
            progress.log(f"Left out of the data stack: {', '.join(left_out)} (cloud probabilities, not "
                         "observations); name them in the data features to import them")
        jobs.append(("data", Path(output_data), [patch.feature(n, ("data",)) for n in names]))
    if output_mask is not None:
        if not mask_feature:
            raise ValueError("name the mask feature to import (for example CLM)")
        jobs.append(("mask", Path(output_mask), [patch.feature(mask_feature, ("mask",))]))
    if output_timeless is not None:
        if not timeless_feature:
            raise ValueError("name the timeless feature to import (for example LULC)")
        jobs.append(("timeless", Path(output_timeless), [patch.feature(timeless_feature, TIMELESS_KINDS)]))
    if not jobs:
        raise ValueError("choose at least one output")

    arrays = {f.label: f.load() for _, _, features in jobs for f in features}
    is_data_feature = patch.features.get(f"mask/{IS_DATA}") if apply_is_data else None
    is_data = is_data_feature.load() if is_data_feature is not None else None
    _check_shapes(patch, arrays, is_data)

    results: dict[str, StackInfo] = {}
    with atomic_outputs([path for _, path, _ in jobs]) as temps:
        for number, ((role, final, features), temp) in enumerate(zip(jobs, temps)):
            step = progress.scaled(number / len(jobs), (number + 1) / len(jobs))
            info = _stack_info(patch, role, features, arrays)
            mask_for_role = is_data if role != "timeless" else None
            _copy(info, features, arrays, mask_for_role, temp, budget_bytes, step)
            progress.log(f"{', '.join(f.label for f in features)} -> {final.name}: "
                         f"{info.n_dates} date(s) x {info.n_bands} band(s)")
            results[str(final)] = info
    return results


def _check_shapes(patch: EOPatch, arrays: dict[str, np.ndarray], is_data: np.ndarray | None) -> None:
    sizes = {label: a.shape[-3:-1] for label, a in arrays.items()}
    if is_data is not None:
        sizes[f"mask/{IS_DATA}"] = is_data.shape[-3:-1]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{label} {h}x{w}" for label, (h, w) in sizes.items())
        raise ValueError(f"the features have different sizes (height x width): {listing}")
    for label, array in list(arrays.items()) + ([(f"mask/{IS_DATA}", is_data)] if is_data is not None else []):
        if array.ndim == 4 and array.shape[0] != len(patch.timestamps):
            raise ValueError(
                f"{label} has {array.shape[0]} frames but timestamps.json lists {len(patch.timestamps)} dates"
            )


def _stack_info(patch: EOPatch, role: str, features: list[Feature], arrays: dict[str, np.ndarray]) -> StackInfo:
    first = arrays[features[0].label]
    grid = patch.grid(height=first.shape[-3], width=first.shape[-2])
    bands = [name for f in features for name in channel_names(f, arrays[f.label].shape[-1])]
    dtype = np.result_type(*[arrays[f.label].dtype for f in features])
    if role == "timeless":
        dates: tuple = (None,)
        nodata = None
    else:
        if not patch.timestamps:
            raise ValueError("the EOPatch has temporal features but no timestamps.json")
        dates = patch.timestamps
        if role == "mask":
            dtype = np.dtype("uint8") if dtype.kind == "b" or dtype == np.uint8 else dtype
            if dtype == np.uint8:
                nodata = MASK_NODATA
            else:
                nodata = float(np.iinfo(dtype).max) if dtype.kind in "ui" else float("nan")
        else:
            if dtype.kind != "f":
                dtype = np.result_type(dtype, np.float32)
            nodata = float("nan")
    return StackInfo(
        grid=grid,
        dates=tuple(dates),
        bands=tuple(bands),
        dtype=np.dtype(dtype).name,
        nodata=nodata,
        tags={"EOLULC_SOURCE": f"EOPatch {patch.folder.name}: {', '.join(f.label for f in features)}"},
    )


def _copy(
    info: StackInfo,
    features: list[Feature],
    arrays: dict[str, np.ndarray],
    is_data: np.ndarray | None,
    path: Path,
    budget_bytes: int | None,
    progress: Progress,
) -> None:
    itemsize = np.dtype(info.dtype).itemsize
    bytes_per_pixel = info.count * (itemsize * 2 + 1)
    with StackWriter(str(path), info) as writer:
        for block in iter_blocks(info.grid.height, info.grid.width, bytes_per_pixel, budget_bytes, progress=progress):
            rows, cols = slice(block.row, block.row + block.height), slice(block.col, block.col + block.width)
            parts = []
            for feature in features:
                array = arrays[feature.label]
                part = array[:, rows, cols, :] if array.ndim == 4 else array[None, rows, cols, :]
                parts.append(np.asarray(part).astype(info.dtype, copy=False))
            data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
            if is_data is not None and info.nodata is not None:
                invalid = np.asarray(is_data[:, rows, cols, :]) == 0
                if invalid.any():
                    data = np.where(invalid, np.asarray(info.nodata, dtype=info.dtype), data)
            writer.write(data, block.window)
