"""Classification features from a band stack: chosen bands, normalized-difference indices and,
optionally, their temporal statistics, block by block.

Bands are converted to reflectance with the stack's scale/offset (so digital-number and
reflectance stacks give the same features) and indices are computed from reflectance, since an
offset would change ``(a - b) / (a + b)``. Everything undefined (nodata input, ``a + b == 0``)
is NaN, never ``inf``, so a classifier sees one kind of missing value.

Per-date features keep the input's dates (an undated single raster gives an undated
one-date stack). With statistics the output is instead one undated date whose bands are
``<feature>_<statistic>`` (``NDVI_mean``, ``B04_p90``): fewer, date-independent features, so a
model trained on one year applies to another with other acquisition dates.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import WriteBehind, iter_blocks, read_ahead
from .compiled import kernels
from .progress import Progress, ensure_progress
from .sentinel2 import (
    Radiometry,
    find_bands,
    is_reflectance_band,
    normalise_band_name,
    radiometry_from_scale,
    refuse_ambiguous_band,
    stack_radiometry,
)
from .timestack import StackInfo, StackWriter, bounded_gdal_cache, open_stack

#: The bands of eo-learn's LULC example.
DEFAULT_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
#: Preset normalized differences ``(a - b) / (a + b)``: name -> (a, b).
PRESET_INDICES: dict[str, tuple[str, str]] = {
    "NDVI": ("B08", "B04"),
    "NDWI": ("B03", "B08"),
    "NDBI": ("B11", "B08"),
}
#: Temporal statistics, in output order; ``pNN`` is the NN-th percentile (linear interpolation).
STATISTICS = ("mean", "std", "min", "max", "p10", "p25", "p50", "p75", "p90")
#: Dataset tag holding what the features are (JSON), for training and classification.
TAG_FEATURES = "EOLULC_FEATURES"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Index:
    """A normalized difference ``(a - b) / (a + b)`` of two named bands."""

    name: str
    a: str
    b: str

    @property
    def definition(self) -> str:
        return f"({self.a} - {self.b}) / ({self.a} + {self.b})"


@dataclass(frozen=True)
class FeatureSpec:
    """What to compute: bands kept as they are (reflectance), indices, statistics over time."""

    bands: tuple[str, ...] = DEFAULT_BANDS
    indices: tuple[Index, ...] = field(default_factory=lambda: preset_indices(PRESET_INDICES))
    statistics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.bands and not self.indices:
            raise ValueError("no features chosen: name at least one band or choose an index")
        unknown = [s for s in self.statistics if s not in STATISTICS]
        if unknown:
            raise ValueError(f"unknown statistic(s) {', '.join(unknown)}; use {', '.join(STATISTICS)}")
        names = [normalise_band_name(n) for n in [*self.bands, *(i.name for i in self.indices)]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"feature name(s) {', '.join(twice)} given twice; every band and index needs its own name")


def preset_indices(names: Sequence[str]) -> tuple[Index, ...]:
    """Preset indices by name (case-insensitive)."""
    out = []
    for name in names:
        key = name.strip().upper()
        if key not in PRESET_INDICES:
            raise ValueError(f"unknown index '{name}'; presets are {', '.join(PRESET_INDICES)}")
        out.append(Index(key, *PRESET_INDICES[key]))
    return tuple(out)


def parse_band_list(text: str) -> tuple[str, ...]:
    """``"B02, B03 B04"`` -> names; commas, semicolons or spaces separate them; ``*`` means all."""
    return tuple(part for part in re.split(r"[,;\s]+", text or "") if part)


def parse_custom_indices(text: str) -> tuple[Index, ...]:
    """``"NDRE=B8A,B05; MNDWI=B03,B11"`` -> indices; entries are separated by ``;`` or new lines."""
    out = []
    for entry in re.split(r"[;\n]+", text or ""):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, bands = entry.partition("=")
        parts = [p for p in re.split(r"[,\s]+", bands) if p]
        name = name.strip()
        if not sep or len(parts) != 2 or not _NAME.match(name):
            raise ValueError(
                f"'{entry}' is not a normalized difference like NDRE=B8A,B05 (NAME=BAND_A,BAND_B for "
                f"(A - B) / (A + B); the name starts with a letter, without spaces)"
            )
        if _same_band(parts[0], parts[1]):
            raise ValueError(f"'{entry}' uses band {parts[0]} twice; an index needs two different bands")
        out.append(Index(name, parts[0], parts[1]))
    return tuple(out)


def _same_band(a: str, b: str) -> bool:
    """Names equal as :func:`~.sentinel2.normalise_band_name` matches them (``B5`` == ``B05``)."""
    return normalise_band_name(a) == normalise_band_name(b)


def resolve_bands(available: Sequence[str], wanted: Sequence[str], what: str = "") -> list[int]:
    """Indices of ``wanted`` in ``available`` (by :func:`~.sentinel2.normalise_band_name`:
    ``b4`` == ``B04`` == ``B4, central wavelength 665 nm``; ``*`` = all).

    The error lists every missing band and the bands the stack has.
    """
    if list(wanted) == ["*"]:
        return list(range(len(available)))
    for name in wanted:  # an ambiguous name is no missing band: said as what it is
        refuse_ambiguous_band(available, name)
    missing = []
    found = []
    for name in wanted:
        try:
            found.extend(find_bands(available, [name]))
        except ValueError:
            missing.append(name)
    if missing:
        purpose = f" needed for {what}" if what else ""
        raise ValueError(
            f"the stack lacks the band(s) {', '.join(missing)}{purpose}; it has {', '.join(available)}"
        )
    return found


def has_feature_bands(info: StackInfo, spec: FeatureSpec) -> bool:
    """Whether the stack has every band the feature set reads."""
    try:
        resolve_bands(info.bands, spec.bands)
        for index in spec.indices:
            resolve_bands(info.bands, [index.a, index.b])
    except ValueError:
        return False
    return True


def is_prepared_feature_stack(info: StackInfo, spec: FeatureSpec) -> bool:
    """A stack used as its own features rather than one whose features are computed: it lacks
    bands of the feature set and holds no Sentinel-2 band at all (an EOPatch's NDVI). A band
    stack that lacks one band (an L2A stack without B11) is not: the features then name it."""
    return not has_feature_bands(info, spec) and not any(is_reflectance_band(name) for name in info.bands)


@dataclass(frozen=True)
class Plan:
    """A :class:`FeatureSpec` resolved against one stack."""

    read: tuple[int, ...]          # stack band indices to read
    kept: tuple[int, ...]          # positions in ``read`` of the kept bands
    pairs: tuple[tuple[int, int], ...]  # positions in ``read`` of each index's a and b
    names: tuple[str, ...]         # per-date feature names
    radiometry: tuple[Radiometry, ...]  # per read band

    @property
    def n_features(self) -> int:
        return len(self.names)


def plan_features(info: StackInfo, spec: FeatureSpec, reader=None) -> Plan:
    """Resolve band names; a ``ValueError`` names what is missing. With the stack's ``reader``,
    Sentinel-2 bands without scale metadata are judged as the cloud mask judges them (digital
    numbers, the baseline 04.00 offset: :func:`~.sentinel2.stack_radiometry`), so features are
    reflectance whoever wrote the stack; without it only the metadata counts."""
    bands = resolve_bands(info.bands, spec.bands)
    pairs_stack = [tuple(resolve_bands(info.bands, [i.a, i.b], f"{i.name}")) for i in spec.indices]
    read: list[int] = []
    for index in bands + [b for pair in pairs_stack for b in pair]:
        if index not in read:
            read.append(index)
    names = tuple(info.bands[i] for i in bands) + tuple(i.name for i in spec.indices)
    keys = [normalise_band_name(n) for n in names]
    twice = sorted({n for n, key in zip(names, keys) if keys.count(key) > 1})
    if twice:
        raise ValueError(f"feature name(s) {', '.join(twice)} appear twice; every band and index needs its own name")
    radiometry = []
    for i in read:
        try:
            radiometry.append(radiometry_from_scale(info.scales[i], info.offsets[i]))
        except ValueError as error:
            raise ValueError(f"band {info.bands[i]}: {error}") from None
    unscaled = all((info.scales[i], info.offsets[i]) == (1.0, 0.0) for i in read)
    if reader is not None and read and unscaled and all(is_reflectance_band(info.bands[i]) for i in read):
        try:
            cirrus = find_bands(info.bands, ["B10"])[0]
        except ValueError:  # L2A or a band subset: the offset then needs scale metadata
            cirrus = None
        radiometry = [stack_radiometry(reader, read, cirrus)] * len(read)
    return Plan(
        read=tuple(read),
        kept=tuple(read.index(i) for i in bands),
        pairs=tuple((read.index(a), read.index(b)) for a, b in pairs_stack),
        names=names,
        radiometry=tuple(radiometry),
    )


def reflectance(raw: np.ndarray, plan: Plan, nodata: float | None) -> np.ndarray:
    """Raw ``(t, h, w, k)`` values of the read bands -> float32 reflectance, NaN where no data.

    Works on (and returns a view of) band planes ``(t, k, h, w)``, the order rasterio reads: a
    band's values are then contiguous, while band-last slices would drag every band through the cache.
    """
    planes = raw.transpose(0, 3, 1, 2)
    out = np.empty(planes.shape, np.float32)
    check_nodata = nodata is not None and not math.isnan(nodata)
    for j, radiometry in enumerate(plan.radiometry):
        values = planes[:, j]
        band = out[:, j]
        radiometry.apply(values, out=band)
        if values.dtype.kind == "f":
            np.copyto(band, np.nan, where=~np.isfinite(band))
        if check_nodata:
            np.copyto(band, np.nan, where=values == nodata)
    return out.transpose(0, 2, 3, 1)


def normalized_difference(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(a - b) / (a + b)`` of float32 bands in float32 (into ``out`` if given), as eo-learn's
    ``NormalizedDifferenceIndexTask`` computes it, so the values are its own; NaN where the result
    is not finite (its ``undefined_value``). ``out`` must not be ``a`` or ``b``."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    result = np.subtract(a, b, out=out)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(result, a + b, out=result)
    result[~np.isfinite(result)] = np.nan
    return result


def per_date_features(raw: np.ndarray, plan: Plan, nodata: float | None) -> np.ndarray:
    """Features ``(t, h, w, F)`` float32 of one block's raw read bands (a view of ``(t, F, h, w)``
    planes, which the stack writer takes without a copy). Digital numbers take one compiled
    pass where numba is installed (the same values)."""
    t, h, w, _ = raw.shape
    out = np.empty((t, plan.n_features, h, w), np.float32)
    compiled = kernels()
    if compiled is not None and raw.dtype.kind in "ui":
        has_nodata = nodata is not None and not math.isnan(nodata)
        compiled.digital_number_features(  # contiguous planes: one compiled version per integer type
            np.ascontiguousarray(raw.transpose(0, 3, 1, 2)), np.array([r.shift for r in plan.radiometry], np.float32),
            np.array([r.divisor for r in plan.radiometry], np.float32), float(nodata) if has_nodata else 0.0,
            has_nodata, np.array(plan.kept, np.intp), np.array(plan.pairs, np.intp).reshape(-1, 2), out)
        return out.transpose(0, 2, 3, 1)
    values = reflectance(raw, plan, nodata).transpose(0, 3, 1, 2)
    for f, j in enumerate(plan.kept):
        out[:, f] = values[:, j]
    for f, (a, b) in enumerate(plan.pairs, start=len(plan.kept)):
        normalized_difference(values[:, a], values[:, b], out=out[:, f])
    return out.transpose(0, 2, 3, 1)


def temporal_statistics(features: np.ndarray, statistics: Sequence[str]) -> np.ndarray:
    """Statistics over time (axis 0) ignoring NaN: ``(t, h, w, F)`` -> ``(1, h, w, F * S)``,
    feature-major (``B04_mean, B04_std, ..., NDVI_mean, ...``). All-NaN pixels give NaN; the
    standard deviation is the population one (numpy's ``ddof=0``); percentiles interpolate
    linearly (numpy's default)."""
    values = features.astype(np.float64)
    _, h, w, n_features = values.shape
    out = np.empty((1, h, w, n_features, len(statistics)), np.float32)
    ordered = np.sort(values, axis=0)  # NaN last
    count = np.isfinite(values).sum(axis=0)
    empty = count == 0
    last = np.maximum(count - 1, 0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for s, name in enumerate(statistics):
            if name == "mean":
                result = np.nanmean(values, axis=0)
            elif name == "std":
                result = np.nanstd(values, axis=0)
            elif name == "min":
                result = np.take_along_axis(ordered, np.zeros_like(last)[None], 0)[0]
            elif name == "max":
                result = np.take_along_axis(ordered, last[None], 0)[0]
            else:
                position = float(name[1:]) / 100.0 * last
                low = np.floor(position).astype(np.int64)
                high = np.minimum(low + 1, last)
                weight = position - low
                below = np.take_along_axis(ordered, low[None], 0)[0]
                above = np.take_along_axis(ordered, high[None], 0)[0]
                result = below + (above - below) * weight
            result = np.where(empty, np.nan, result)
            out[0, ..., s] = result
    return out.reshape(1, h, w, n_features * len(statistics))


def statistic_names(names: Sequence[str], statistics: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{n}_{s}" for n in names for s in statistics)


@dataclass
class FeaturesResult:
    names: tuple[str, ...]
    n_dates: int


def features_info(info: StackInfo, plan: Plan, spec: FeatureSpec) -> StackInfo:
    """What the feature stack of a stack ``info`` holds (float32, NaN nodata, how it was made)."""
    if spec.statistics:
        names = statistic_names(plan.names, spec.statistics)
        dates: tuple = (None,)
    else:
        names, dates = plan.names, info.dates
    description = {
        "bands": [info.bands[plan.read[j]] for j in plan.kept],
        "indices": {i.name: {"a": i.a, "b": i.b, "formula": i.definition} for i in spec.indices},
        "statistics": list(spec.statistics),
        "statistics_over_dates": [d.isoformat() if d else "" for d in info.dates] if spec.statistics else [],
    }
    return StackInfo(grid=info.grid, dates=dates, bands=names, dtype="float32", nodata=float("nan"),
                     tags={TAG_FEATURES: json.dumps(description)})


def pick_pixels(block: np.ndarray, pixels: np.ndarray | None) -> np.ndarray:
    """A ``(t, h, w, b)`` block, or the ``(t, pixels, 1, b)`` block of some of its pixels (flat
    indices, row by row; only those are copied)."""
    if pixels is None:
        return block
    rows, cols = np.divmod(np.asarray(pixels), block.shape[2])
    return block[:, rows, cols, :][:, :, None, :]


class FeatureReader:
    """Reads the per-date features of a band stack as if they were a stack on disk: the same
    ``info`` and ``read`` as :class:`~.timestack.StackReader` (and the same values as reading
    :func:`compute_features`' output), computed from the bands when read. Steps that only need
    the features on some dates (interpolation after the scene filter) then skip writing and
    re-reading a feature stack of every date."""

    def __init__(self, path: str | Path, spec: FeatureSpec) -> None:
        if spec.statistics:
            raise ValueError("features computed on the fly are per date; temporal statistics need compute_features")
        self._reader = open_stack(str(path))
        try:
            self.plan = plan_features(self._reader.info, spec)
        except Exception:
            self._reader.close()
            raise
        self.info = features_info(self._reader.info, self.plan, spec)
        self._spec = spec
        self._judged = False  # radiometry judged on the stack's values at the first read (not for info)
        #: working bytes per pixel and date besides the features: raw bands, reflectance, index temporaries
        self.extra_bytes_per_date = len(self.plan.read) * (np.dtype(self._reader.info.dtype).itemsize + 4) + 40

    def read(self, window=None, dates=None, bands=None, pixels: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`~.timestack.StackReader.read`; ``pixels`` (flat indices into the window, row by
        row) computes the features of those pixels only, as a ``(t, pixels, 1, F)`` block."""
        if not self._judged:
            self.plan = plan_features(self._reader.info, self._spec, self._reader)
            self._judged = True
        raw = pick_pixels(self._reader.read(window, dates=dates, bands=self.plan.read), pixels)
        features = per_date_features(raw, self.plan, self._reader.info.nodata)
        return features if bands is None else features[..., list(bands)]

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> FeatureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@bounded_gdal_cache()
def compute_features(
    input_path: str | Path,
    output_path: str | Path,
    spec: FeatureSpec,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
) -> FeaturesResult:
    """Write the feature stack of ``input_path`` to ``output_path`` (float32, NaN nodata); all or nothing."""
    progress = ensure_progress(progress)
    with open_stack(str(input_path)) as reader:
        info = reader.info
        plan = plan_features(info, spec, reader)
        out_info = features_info(info, plan, spec)
        names, dates = out_info.bands, out_info.dates
        progress.log(f"Values: {'; '.join(sorted({r.reason for r in plan.radiometry}))}.")
        progress.log(f"Features: {', '.join(names)} ({len(dates)} date(s)).")
        if spec.statistics and info.n_dates == 1:
            progress.log("Warning: the input has a single date, so the statistics are that date's values.")
        itemsize = np.dtype(info.dtype).itemsize
        # raw + float32 reflectance of the read bands, float32 features and float64 index temporaries
        bytes_per_pixel = info.n_dates * (len(plan.read) * (itemsize + 4) + plan.n_features * 4 + 40)
        if spec.statistics:
            # float64 copy and its sort, counts, statistics out
            bytes_per_pixel += info.n_dates * plan.n_features * 16 + plan.n_features * (24 + 4 * len(spec.statistics))
        grid = info.grid
        # the next block is read and the last one written while this one is computed
        bytes_per_pixel += info.n_dates * len(plan.read) * itemsize + len(dates) * len(names) * 4
        blocks = iter_blocks(grid.height, grid.width, bytes_per_pixel, budget_bytes, progress=progress)
        with atomic_outputs([output_path]) as (temp,), StackWriter(str(temp), out_info) as writer:
            with closing(read_ahead(blocks, lambda b: reader.read(b.window, bands=plan.read))) as blocks_read, \
                    WriteBehind() as behind:
                for block, raw in blocks_read:
                    features = per_date_features(raw, plan, info.nodata)
                    del raw
                    if spec.statistics:
                        features = temporal_statistics(features, spec.statistics)
                    behind.submit(writer.write, features, block.window)
                    del features
    return FeaturesResult(names=names, n_dates=len(dates))
