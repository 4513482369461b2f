"""Benchmark of the time stack's on-disk layout: interleave x tile size x compression.

Generates a synthetic Sentinel-2-like stack (68 dates x 13 bands, uint16 DN with 0 as nodata and/or
float32 reflectance = DN / 10000 with NaN as nodata, like the plugin's float stacks), writes it
with :class:`~eolulc.core.timestack.StackWriter` once per candidate layout (the module's layout
constants and creation options are patched for the write) and measures:

* write seconds and file size;
* the whole-time-series read, block by block as core steps do it (windows from
  :func:`~eolulc.core.blocks.iter_blocks`, 256 MB budget, ``T * B * itemsize * 2`` bytes a pixel,
  every GeoTIFF band of each window), min and median of ``--repeats`` runs;
* one date (``B`` bands) of the whole raster, as a viewer reads it, min and median;
* a floor: summing the same array in memory with numpy.

A layout is ``interleave/tile/codec[:level][/pN]``: ``band/256/zstd`` is ZSTD at GDAL's default
level with the standard predictor (2, horizontal differencing, for integers; 3, floating point, for
floats), ``band/256/zstd:1/p2`` ZSTD level 1 with predictor 2 whatever the type. The layout
``core/timestack.py`` writes now is always measured too (the recommendation is relative to it).

Reads run with a small GDAL block cache (``GDAL_CACHEMAX=64`` MB) so that caching does not hide
the layout; every read opens the file afresh. The OS page cache is not dropped: the file was just
written, so the read figures are decoding costs, not disk speed. Writes run with the GDAL cache
the steps use (``timestack.GDAL_CACHE_MB``) and, like the plugin, no GDAL worker threads. Every
time is also taken as CPU time of this process, which other processes competing for the cores
inflate much less than wall-clock time.

Prints one table per data type sorted by whole-series read time, writes everything to
``bench/out/stack_layout.json`` (after each layout, so a stopped run keeps its figures) and ends
with a recommendation derived from the figures (from CPU times when the machine was busy).

Usage, from the repository root (the default set of layouts runs in about 5 minutes on 2 cores)::

    .venv/bin/python bench/stack_layout.py                       # default layouts, uint16 + float32
    .venv/bin/python bench/stack_layout.py --layouts full        # 23 layouts (~35 minutes)
    .venv/bin/python bench/stack_layout.py --dtype uint16 --layouts band/256/zstd,pixel/128/none
    .venv/bin/python bench/stack_layout.py --dtype float32 --block-align 128   # blocks aligned to 128 px
    .venv/bin/python bench/stack_layout.py --report bench/out/stack_layout.json  # print a saved run again
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, Sequence

import numpy as np
from _common import REPO, import_package, temp_dir

DEFAULT_OUT = REPO / "bench" / "out" / "stack_layout.json"

N_DATES = 68
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Native resolution (m) of each band: 20 m and 60 m bands are resampled to 10 m, i.e. blocky.
S2_RESOLUTION = (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20)
#: Typical surface reflectance x 10000 per band of a few end-members.
SOIL = (1200, 1300, 1500, 1800, 2000, 2100, 2200, 2300, 2400, 800, 30, 3000, 2600)
VEGETATION = (300, 350, 600, 350, 900, 2500, 3200, 3500, 3600, 1200, 20, 1800, 900)
WATER = (600, 500, 450, 300, 250, 200, 180, 150, 140, 60, 10, 50, 30)
URBAN = (1400, 1500, 1600, 1700, 1800, 1900, 2000, 2100, 2200, 900, 40, 2400, 2200)
#: Relative amplitude of the static fine-scale texture of the ground (real scenes are not smooth).
TEXTURE = 0.04
CLOUD = (7000, 7200, 7300, 7500, 7600, 7700, 7800, 7800, 7900, 4000, 1500, 5000, 3500)

INTERLEAVES = ("band", "pixel")
TILES = (128, 256, 512)
COMPRESSIONS = ("zstd", "deflate", "lzw", "none")
#: Creation option of each codec's level.
LEVEL_OPTIONS = {"zstd": "zstd_level", "deflate": "zlevel"}
#: Default set, sized to run in about 5 minutes on 2 idle cores at 500 x 500: the current layout
#: (added to any set), its codec with 128 px tiles and with pixel interleave, GDAL's default ZSTD
#: level and DEFLATE with the standard predictors, and no compression. ``--layouts full`` measures
#: the whole grid: there LZW files were ~1.6x larger than ZSTD/DEFLATE ones and read slower, 512 px
#: tiles read 3-4x slower than 256 px ones (and, written by blocks smaller than a tile, grew to
#: 1.4x the raw size in float32), pixel interleave took 10-100x longer for one date.
DEFAULT_LAYOUTS = (
    "band/128/zstd:1/p2",
    "band/128/zstd",
    "band/128/deflate",
    "band/256/none",
    "pixel/256/zstd:1/p2",
)

BLOCK_BUDGET_MB = 256
READ_CACHE_MB = 64
#: Recommendation filters: a layout is "reasonable" if its file is at most this much larger than
#: the smallest one and its single-date read at most this many times slower than the fastest.
SIZE_SLACK = 1.5
DATE_SLACK = 10.0
#: Keep the current layout when it is within this fraction of the fastest reasonable one.
KEEP_MARGIN = 0.10


@dataclass(frozen=True)
class Layout:
    """One candidate layout. ``level`` ``None`` is GDAL's default level of the codec; ``predictor``
    ``None`` is 2 (horizontal differencing) for integers and 3 (floating point) for floats."""

    interleave: str
    tile: int
    compression: str
    level: int | None = None
    predictor: int | None = None

    @property
    def key(self) -> str:
        """``interleave/tile/codec[:level][/pN]``, e.g. ``band/256/zstd:1/p2``."""
        codec = self.compression if self.level is None else f"{self.compression}:{self.level}"
        key = f"{self.interleave}/{self.tile}/{codec}"
        return key if self.predictor is None else f"{key}/p{self.predictor}"

    @classmethod
    def parse(cls, text: str) -> Layout:
        parts = text.strip().lower().split("/")
        try:
            if len(parts) not in (3, 4) or (len(parts) == 4 and not parts[3].startswith("p")):
                raise ValueError
            codec, _, level = parts[2].partition(":")
            layout = cls(
                parts[0],
                int(parts[1]),
                codec,
                int(level) if level else None,
                int(parts[3][1:]) if len(parts) == 4 else None,
            )
        except ValueError:
            raise ValueError(f"'{text}' is not interleave/tile/codec[:level][/pN], like band/256/zstd:1/p2") from None
        if (
            layout.interleave not in INTERLEAVES
            or layout.tile % 16
            or layout.compression not in COMPRESSIONS
            or (layout.level is not None and layout.compression not in LEVEL_OPTIONS)
            or layout.predictor not in (None, 1, 2, 3)
        ):
            raise ValueError(
                f"'{text}': interleave band|pixel, tile a multiple of 16, codec {'|'.join(COMPRESSIONS)} "
                f"(a level only for {'|'.join(LEVEL_OPTIONS)}), predictor p1|p2|p3"
            )
        return layout

    def predictor_for(self, dtype: str) -> int:
        if self.compression == "none":
            return 1
        if self.predictor is not None:
            return self.predictor
        kind = np.dtype(dtype)
        return 3 if kind.kind == "f" else 2 if kind.itemsize > 1 else 1

    def options(self, dtype: str) -> dict[str, Any]:
        """GeoTIFF creation options (rasterio keywords) of this layout for ``dtype``."""
        options: dict[str, Any] = {
            "driver": "GTiff",
            "tiled": True,
            "blockxsize": self.tile,
            "blockysize": self.tile,
            "compress": self.compression,
            "interleave": self.interleave,
            "BIGTIFF": "IF_SAFER",
        }
        if self.predictor_for(dtype) > 1:
            options["predictor"] = self.predictor_for(dtype)
        if self.level is not None:
            options[LEVEL_OPTIONS[self.compression]] = self.level
        return options

    def written_as(self, dtype: str, side: int) -> str:
        """What :func:`read_back_layout` should find in the file (tiles no larger than ``side``)."""
        return f"{self.interleave}/{min(self.tile, side)}/{self.compression}/p{self.predictor_for(dtype)}"


def current_layout(timestack: ModuleType) -> Layout:
    """The layout ``timestack`` writes now, from its own creation options."""
    options = {k.lower(): v for k, v in timestack.creation_options("float32").items()}
    compression = str(options.get("compress", "none")).lower()
    level = options.get(LEVEL_OPTIONS.get(compression, ""))
    layout = Layout(str(options.get("interleave", "band")).lower(), int(options["blockxsize"]), compression)
    level = None if level is None else int(level)
    predictor = int(options.get("predictor", 1))
    return replace(layout, level=level, predictor=None if predictor == layout.predictor_for("float32") else predictor)


@dataclass
class Result:
    """Figures of one layout for one data type."""

    dtype: str
    layout: str
    interleave: str
    tile: int
    compression: str
    level: int | None
    predictor: int
    expected: str  # interleave/tile/compression/predictor the file should have
    actual: str  # the same, read back from the written file
    write_s: float
    write_cpu_s: float
    size_mb: float
    ratio: float  # file size / raw array size
    open_s: float
    series_min_s: float
    series_median_s: float
    series_cpu_min_s: float
    series_runs_s: list[float]
    date_min_s: float
    date_median_s: float
    date_cpu_min_s: float
    date_runs_s: list[float]
    verified: bool
    load: float  # 1-minute load average after the measurement (other processes compete above 1)


def _core_modules() -> tuple[ModuleType, ModuleType]:
    """Import ``eolulc.core.timestack`` and ``eolulc.core.blocks`` from this checkout, whatever its
    folder is called, through a temporary ``eolulc`` symlink."""
    import_package()
    from eolulc.core import blocks, timestack

    return timestack, blocks


# --- synthetic data -------------------------------------------------------------------------------


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix of linear interpolation from ``n_in`` nodes onto ``n_out`` pixels."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    low = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - low
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    matrix[np.arange(n_out), low] = 1.0 - frac
    matrix[np.arange(n_out), low + 1] = frac
    return matrix


def smooth_field(rng: np.random.Generator, height: int, width: int, cells: Sequence[int] = (3, 9, 27)) -> np.ndarray:
    """Smooth random field, roughly zero mean and unit spread: octaves of bilinear-upsampled noise."""
    field = np.zeros((height, width), dtype=np.float32)
    for octave, n in enumerate(cells):
        grid = rng.standard_normal((n + 1, n + 1)).astype(np.float32)
        field += (_interp_matrix(height, n + 1) @ grid @ _interp_matrix(width, n + 1).T) * 0.5**octave
    return field / max(float(field.std()), 1e-6)


def _parcels(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Rectangular field parcels (20-70 px a side) numbered row-major."""

    def cuts(n: int) -> np.ndarray:
        edges = np.cumsum(rng.integers(20, 70, size=n // 20 + 2))
        return np.searchsorted(edges, np.arange(n), side="right")

    rows, cols = cuts(height), cuts(width)
    return rows[:, None] * (cols.max() + 1) + cols[None, :]


def synthetic_dates(rng: np.random.Generator, n_dates: int) -> list[datetime]:
    """``n_dates`` acquisition times on a 5-day revisit grid, some passes missing."""
    slots = int(n_dates * 1.3)
    chosen = np.sort(rng.choice(slots, size=n_dates, replace=False))
    start = datetime(2017, 1, 3, 10, 0, 21)
    return [start + timedelta(days=5 * int(i)) for i in chosen]


def synthetic_stack(size: int, dates: Sequence[datetime], seed: int) -> np.ndarray:
    """Sentinel-2-like DN stack ``(T, B, size, size)`` uint16 (0 = nodata).

    Parcels of crops, grass, forest and bare soil, water and urban areas, each with its own
    phenology; smooth brightness texture, sensor noise, 20/60 m bands resampled blocky to 10 m,
    clouds on about a third of the dates and a no-data swath edge on every fourth date.
    """
    rng = np.random.default_rng(seed)
    h = w = size
    n_bands = len(S2_BANDS)
    # classes: 0 water, 1 urban, 2 forest, 3 spring crop, 4 summer crop, 5 grass, 6 bare soil
    parcel = _parcels(rng, h, w)
    parcel_class = rng.choice([2, 3, 4, 5, 6], size=int(parcel.max()) + 1, p=[0.2, 0.25, 0.25, 0.2, 0.1])
    classes = parcel_class[parcel]
    classes[smooth_field(rng, h, w, (2, 6)) < -1.4] = 0
    classes[smooth_field(rng, h, w, (3, 9)) > 1.5] = 1
    background = np.asarray([WATER, URBAN, SOIL, SOIL, SOIL, SOIL, SOIL], dtype=np.float32)
    base = background[classes].transpose(2, 0, 1).copy()  # (B, H, W)
    parcel_gain = rng.normal(1.0, 0.08, size=int(parcel.max()) + 1).astype(np.float32)
    texture = rng.standard_normal((h + 1, w + 1), dtype=np.float32)
    texture = (texture[1:, 1:] + texture[:-1, 1:] + texture[1:, :-1] + texture[:-1, :-1]) / 2  # 2-px grain
    brightness = parcel_gain[parcel] * (1.0 + 0.05 * smooth_field(rng, h, w, (8, 32, 96)) + TEXTURE * texture)
    vegetation = np.asarray(VEGETATION, dtype=np.float32)[:, None, None]
    cloud = np.asarray(CLOUD, dtype=np.float32)[:, None, None]
    noise = np.asarray([25 if r == 10 else 40 if r == 20 else 60 for r in S2_RESOLUTION], dtype=np.float32)
    noise[S2_BANDS.index("B10")] = 5  # cirrus band: dark and quiet
    cols = np.arange(w)[None, :]
    rows = np.arange(h)[:, None]
    swath_edge = (cols + 0.35 * rows) > 0.75 * w

    stack = np.empty((len(dates), n_bands, h, w), dtype=np.uint16)
    for t, date in enumerate(dates):
        doy = date.timetuple().tm_yday
        season = math.exp(-(((doy - 190) / 60.0) ** 2))
        green = np.asarray(
            [
                0.0,
                0.05,
                0.45 + 0.4 * season,
                math.exp(-(((doy - 130) / 30.0) ** 2)) * 0.9,
                math.exp(-(((doy - 215) / 35.0) ** 2)) * 0.9,
                0.25 + 0.45 * season,
                0.03,
            ],
            dtype=np.float32,
        )[classes]
        green = np.clip(green + 0.05 * rng.standard_normal((h, w), dtype=np.float32), 0.0, 1.0)
        refl = (base * (1.0 - green) + vegetation * green) * brightness
        refl[1:4] += rng.normal(0, 80)  # haze of the day, mostly in the visible bands
        if rng.random() < 0.35:
            cover = smooth_field(rng, h, w, (2, 6, 18, 54))
            alpha = np.clip((cover - rng.uniform(-0.5, 1.5)) / 0.6, 0.0, 1.0)
            refl = refl * (1.0 - alpha) + cloud * (alpha * (1.0 + 0.1 * cover))
        refl += noise[:, None, None] * rng.standard_normal((n_bands, h, w), dtype=np.float32)
        for b, resolution in enumerate(S2_RESOLUTION):
            factor = resolution // 10
            if factor > 1:
                coarse = refl[b, ::factor, ::factor]
                refl[b] = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)[:h, :w]
        np.clip(refl, 1.0, 10000.0, out=refl)
        if t % 4 == 1:
            refl[:, swath_edge] = 0.0
        stack[t] = np.rint(refl)
    return stack


# --- writing and reading --------------------------------------------------------------------------


@contextmanager
def patched_layout(timestack: ModuleType, layout: Layout) -> Iterator[None]:
    """Make :class:`StackWriter` write ``layout``: the module's layout constants and
    ``creation_options`` are replaced while the context lasts."""
    names = ("TILE_SIZE", "INTERLEAVE", "COMPRESSION", "creation_options")
    saved = {name: getattr(timestack, name) for name in names}

    def creation_options(dtype: str, compression: str | None = None) -> dict[str, Any]:
        if compression is not None and compression.lower() != layout.compression:  # StackWriter's fallback
            return replace(layout, compression=compression.lower(), level=None).options(dtype)
        return layout.options(dtype)

    timestack.TILE_SIZE, timestack.INTERLEAVE = layout.tile, layout.interleave
    timestack.COMPRESSION, timestack.creation_options = layout.compression, creation_options
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(timestack, name, value)


def stack_info(timestack: ModuleType, size: int, dates: Sequence[datetime], dtype: str) -> Any:
    grid = timestack.Grid(
        width=size,
        height=size,
        crs_wkt='PROJCS["WGS 84 / UTM zone 32N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
        '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
        'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",9],PARAMETER["scale_factor",0.9996],'
        'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32632"]]',
        transform=(10.0, 0.0, 600000.0, 0.0, -10.0, 5100000.0),
    )
    # DN: 0 = nodata, reflectance = DN * 1e-4; float stacks (as the plugin writes them): NaN = nodata
    scales = (1e-4,) * len(S2_BANDS) if dtype == "uint16" else ()
    nodata = 0.0 if dtype == "uint16" else float("nan")
    return timestack.StackInfo(grid=grid, dates=tuple(dates), bands=S2_BANDS, dtype=dtype, nodata=nodata, scales=scales)


class Stopwatch:
    """Wall-clock and CPU seconds of this process since it was made (CPU time is less sensitive to
    other processes competing for the cores)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def same_values(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))


def block_windows(blocks: ModuleType, data: np.ndarray, align: int) -> list[tuple[int, int, int, int]]:
    """Windows of ``data`` ``(T, B, H, W)`` as core steps cut them: ``iter_blocks`` with the block
    budget and ``T * B * itemsize * 2`` bytes a pixel (the raw block and one working copy)."""
    t, b, height, width = data.shape
    bytes_per_pixel = t * b * data.dtype.itemsize * 2
    return [
        block.window
        for block in blocks.iter_blocks(height, width, bytes_per_pixel, BLOCK_BUDGET_MB * 2**20, align=align)
    ]


def write_stack(
    timestack: ModuleType, path: str, info: Any, data: np.ndarray, windows: Sequence[tuple[int, int, int, int]]
) -> tuple[float, float]:
    """Write ``data`` ``(T, B, H, W)`` window by window with ``StackWriter``; wall and CPU seconds."""
    watch = Stopwatch()
    with timestack.StackWriter(path, info) as writer:
        for window in windows:
            row, col, h, w = window
            writer.write(data[:, :, row : row + h, col : col + w].transpose(0, 2, 3, 1), window)
    return watch.lap()


def read_back_layout(path: str) -> str:
    import rasterio

    with rasterio.open(path) as ds:
        structure = {k.upper(): v for k, v in ds.tags(ns="IMAGE_STRUCTURE").items()}
        compression = str(ds.profile.get("compress") or "none").lower()
        interleave = str(ds.profile.get("interleave", structure.get("INTERLEAVE", "?"))).lower()
        return f"{interleave}/{ds.block_shapes[0][1]}/{compression}/p{structure.get('PREDICTOR', '1')}"


def time_series_read(
    timestack: ModuleType, path: str, data: np.ndarray, windows: Sequence[tuple[int, int, int, int]]
) -> tuple[float, tuple[float, float], bool]:
    """Open the stack and read every band of every window: seconds to open, (wall, CPU) seconds to
    read, and whether the last window matches ``data``."""
    watch = Stopwatch()
    reader = timestack.open_stack(path)
    open_s = watch.lap()[0]
    watch = Stopwatch()
    with reader:
        for window in windows:
            values = reader.read(window)
    seconds = watch.lap()
    row, col, h, w = windows[-1]
    return open_s, seconds, same_values(values, data[:, :, row : row + h, col : col + w].transpose(0, 2, 3, 1))


def date_read(
    timestack: ModuleType, path: str, data: np.ndarray, date_index: int
) -> tuple[tuple[float, float], bool]:
    """Read the ``B`` bands of one date over the whole raster: (wall, CPU) seconds, open excluded,
    and whether they match ``data``."""
    with timestack.open_stack(path) as reader:
        watch = Stopwatch()
        values = reader.read(dates=[date_index])
        seconds = watch.lap()
    return seconds, same_values(values[0], data[date_index].transpose(1, 2, 0))


def numpy_floor(data: np.ndarray, date_index: int, repeats: int) -> dict[str, float]:
    """Min/median seconds to sum the whole array and one date's bands in memory."""
    series, single = [], []
    for _ in range(repeats):
        watch = Stopwatch()
        data.sum()
        series.append(watch.lap()[0])
        watch = Stopwatch()
        data[date_index].sum()
        single.append(watch.lap()[0])
    return {
        "series_min_s": min(series),
        "series_median_s": statistics.median(series),
        "date_min_s": min(single),
        "date_median_s": statistics.median(single),
    }


def measure(
    timestack: ModuleType,
    layout: Layout,
    info: Any,
    data: np.ndarray,
    windows: Sequence[tuple[int, int, int, int]],
    workdir: Path,
    repeats: int,
    keep: bool,
    write_cache_mb: int | None,
) -> Result:
    """Write ``data`` in ``layout`` (GDAL cache ``write_cache_mb``, GDAL's default if ``None``) and
    time the reads."""
    import rasterio

    name = layout.key.replace("/", "_").replace(":", "-")
    path = str(workdir / f"stack_{info.dtype}_{name}.tif")
    env = {} if write_cache_mb is None else {"GDAL_CACHEMAX": write_cache_mb}
    with rasterio.Env(**env), patched_layout(timestack, layout):
        write_s, write_cpu_s = write_stack(timestack, path, info, data, windows)
    size_mb = os.path.getsize(path) / 1e6
    actual = read_back_layout(path)
    date_index = info.n_dates // 2
    opens: list[float] = []
    series: list[tuple[float, float]] = []
    dates: list[tuple[float, float]] = []
    verified = True
    with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_MB):
        for _ in range(repeats):
            open_s, seconds, ok = time_series_read(timestack, path, data, windows)
            opens.append(open_s)
            series.append(seconds)
            verified &= ok
        for _ in range(repeats):
            seconds, ok = date_read(timestack, path, data, date_index)
            dates.append(seconds)
            verified &= ok
    series_wall = [wall for wall, _ in series]
    dates_wall = [wall for wall, _ in dates]
    if not keep:
        os.remove(path)
    return Result(
        dtype=info.dtype,
        layout=layout.key,
        interleave=layout.interleave,
        tile=layout.tile,
        compression=layout.compression,
        level=layout.level,
        predictor=layout.predictor_for(info.dtype),
        expected=layout.written_as(info.dtype, max(16, 16 * math.ceil(max(info.grid.width, info.grid.height) / 16))),
        actual=actual,
        write_s=write_s,
        write_cpu_s=write_cpu_s,
        size_mb=size_mb,
        ratio=size_mb / (data.nbytes / 1e6),
        open_s=min(opens),
        series_min_s=min(series_wall),
        series_median_s=statistics.median(series_wall),
        series_cpu_min_s=min(cpu for _, cpu in series),
        series_runs_s=series_wall,
        date_min_s=min(dates_wall),
        date_median_s=statistics.median(dates_wall),
        date_cpu_min_s=min(cpu for _, cpu in dates),
        date_runs_s=dates_wall,
        verified=verified,
        load=os.getloadavg()[0],
    )


# --- report ---------------------------------------------------------------------------------------


def format_table(results: Sequence[Result], floor: dict[str, float], raw_mb: float) -> str:
    """Readable table of one data type, sorted by whole-series read time."""
    header = (
        f"{'#':>2}  {'interleave/tile/compress':<24} {'size MB':>7} {'ratio':>5} {'write s':>7} {'cpu':>6}  "
        f"{'series min':>10} {'median':>7} {'cpu':>6} {'MB/s':>5}  {'date min':>8} {'median':>7} {'cpu':>6}"
    )
    lines = [header, "-" * len(header)]
    for rank, r in enumerate(sorted(results, key=lambda r: r.series_min_s), 1):
        flag = "" if r.actual == r.expected else f"  ! wrote {r.actual}"
        flag += "" if r.verified else "  ! data mismatch"
        lines.append(
            f"{rank:>2}  {r.layout:<24} {r.size_mb:>7.1f} {r.ratio:>5.2f} {r.write_s:>7.2f} {r.write_cpu_s:>6.2f}  "
            f"{r.series_min_s:>10.3f} {r.series_median_s:>7.3f} {r.series_cpu_min_s:>6.3f} "
            f"{raw_mb / r.series_min_s:>5.0f}  {r.date_min_s:>8.3f} {r.date_median_s:>7.3f} {r.date_cpu_min_s:>6.3f}"
            + flag
        )
    lines.append(
        f"{'':>2}  {'numpy sum in memory':<24} {raw_mb:>7.1f} {1:>5.2f} {'':>7} {'':>6}  "
        f"{floor['series_min_s']:>10.3f} {floor['series_median_s']:>7.3f} {'':>6} "
        f"{raw_mb / floor['series_min_s']:>5.0f}  {floor['date_min_s']:>8.3f} {floor['date_median_s']:>7.3f}"
    )
    return "\n".join(lines)


def series_time(result: Result, metric: str) -> float:
    return result.series_cpu_min_s if metric == "cpu" else result.series_min_s


def date_time(result: Result, metric: str) -> float:
    return result.date_cpu_min_s if metric == "cpu" else result.date_min_s


def write_time(result: Result, metric: str) -> float:
    return result.write_cpu_s if metric == "cpu" else result.write_s


def reasonable(results: Sequence[Result], metric: str = "wall") -> list[Result]:
    """Layouts whose size and single-date read are within the slack of the best of their dtype."""
    smallest = min(r.size_mb for r in results)
    fastest_date = min(date_time(r, metric) for r in results)
    return [
        r
        for r in results
        if r.verified and r.size_mb <= SIZE_SLACK * smallest and date_time(r, metric) <= DATE_SLACK * fastest_date
    ]


def recommend(
    by_dtype: dict[str, list[Result]], current: str, metric: str = "wall", blocks: dict[str, str] | None = None
) -> dict[str, Any]:
    """Pick the layout with the fastest whole-series read among the reasonable ones of every dtype.

    ``metric`` is ``"wall"`` (min wall-clock time) or ``"cpu"`` (min CPU time, for a busy machine).
    With several dtypes the score is the geometric mean of each dtype's time over its best one.
    """
    ok_by_dtype = {dtype: {r.layout: r for r in reasonable(results, metric)} for dtype, results in by_dtype.items()}
    common = set.intersection(*(set(ok) for ok in ok_by_dtype.values()))
    if not common:
        text = "No layout is reasonable (size and single-date read) for every data type measured."
        return {"layout": None, "metric": metric, "text": text}

    def score(key: str) -> float:
        ratios = []
        for ok in ok_by_dtype.values():
            best = min(series_time(r, metric) for r in ok.values())
            ratios.append(series_time(ok[key], metric) / best)
        return math.exp(sum(math.log(x) for x in ratios) / len(ratios))

    ranked = sorted(common, key=score)
    best = ranked[0]
    keep_current = current in common and score(current) <= score(best) * (1 + KEEP_MARGIN)
    choice = current if keep_current else best
    runner_up = next((k for k in ranked if k != choice), None)
    clock = "CPU" if metric == "cpu" else "wall-clock"

    if choice == current:
        text = f"Keep the current layout {current}"
    elif current in {r.layout for results in by_dtype.values() for r in results}:
        text = f"Switch from {current} to {choice}"
    else:
        text = f"Use {choice}"
    text += (
        f": among the layouts whose file is at most {SIZE_SLACK:.2f}x the smallest and whose single-date read is "
        f"at most {DATE_SLACK:.0f}x the fastest, it has the fastest whole-series block read ({clock} time"
    )
    if keep_current and best != current:
        text += f", within {KEEP_MARGIN:.0%} of {best}, too close to be worth a format change"
    text += f"; runner-up {runner_up})." if runner_up else ")."
    for dtype, results in by_dtype.items():
        chosen = ok_by_dtype[dtype][choice]
        fastest = min(results, key=lambda r: series_time(r, metric))
        smallest = min(results, key=lambda r: r.size_mb)
        if fastest.layout == choice:
            versus = "the fastest measured"
        else:
            versus = (
                f"{series_time(chosen, metric) / series_time(fastest, metric):.1f}x the fastest, {fastest.layout}"
                f" at {fastest.size_mb / chosen.size_mb:.1f}x the size"
            )
        text += (
            f" {dtype}: {series_time(chosen, metric):.2f} s for the whole series ({versus}),"
            f" {date_time(chosen, metric):.3f} s for one date, {chosen.size_mb:.0f} MB"
            f" ({chosen.size_mb / smallest.size_mb:.2f}x the smallest, {smallest.layout}),"
            f" written in {write_time(chosen, metric):.1f} s"
        )
        others = [r for r in results if r.layout != choice]
        pixel = [r for r in others if r.interleave == "pixel"]
        if pixel:
            text += f"; pixel interleave needs {min(date_time(r, metric) for r in pixel):.2f} s or more for one date"
        codec = (chosen.interleave, chosen.compression, chosen.level, chosen.predictor)
        bigger_tiles = [
            r
            for r in others
            if (r.interleave, r.compression, r.level, r.predictor) == codec
            and r.tile > chosen.tile
            and r.layout != current
        ]
        if bigger_tiles:
            slowest = max(bigger_tiles, key=lambda r: series_time(r, metric))
            if series_time(slowest, metric) > 1.5 * series_time(chosen, metric):
                text += f"; larger tiles read slower ({slowest.layout}: {series_time(slowest, metric):.2f} s)"
        quicker = [r for r in ok_by_dtype[dtype].values() if write_time(r, metric) * 1.5 < write_time(chosen, metric)]
        if quicker:
            writer = min(quicker, key=lambda r: write_time(r, metric))
            text += (
                f"; {writer.layout} writes faster ({write_time(writer, metric):.1f} s) but reads the series in"
                f" {series_time(writer, metric):.2f} s"
            )
        now = next((r for r in others if r.layout == current), None)
        if now is not None:
            text += (
                f"; the current {current}: {series_time(now, metric):.2f} s for the series,"
                f" {date_time(now, metric):.3f} s for one date, {now.size_mb:.0f} MB, written in"
                f" {write_time(now, metric):.1f} s"
            )
            smaller = [
                r
                for r in results
                if (r.interleave, r.compression, r.level, r.predictor)
                == (now.interleave, now.compression, now.level, now.predictor)
                and r.size_mb * 1.2 < now.size_mb
            ]
            if smaller:
                other = min(smaller, key=lambda r: r.size_mb)
                text += (
                    f" ({now.size_mb / other.size_mb - 1:.0%} larger than {other.layout}"
                    + (f"; written in {blocks[dtype]}, so its tiles are written in parts)" if blocks else ")")
                )
        text += "."
    return {
        "layout": choice,
        "metric": metric,
        "fastest_reasonable": best,
        "ranked": ranked,
        "keep_current": keep_current,
        "text": text,
    }


def parse_layouts(text: str) -> list[Layout]:
    """``default``, ``full`` or a comma-separated list of layout keys."""
    if text == "default":
        return [Layout.parse(key) for key in DEFAULT_LAYOUTS]
    if text == "full":
        # pixel interleave with 512 px tiles is left out: one tile of 884 bands is the whole raster
        return [
            Layout(i, t, c) for i in INTERLEAVES for t in TILES for c in COMPRESSIONS if not (i == "pixel" and t > 256)
        ]
    try:
        return [Layout.parse(item) for item in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500, help="raster side in pixels (default 500)")
    parser.add_argument("--dtype", choices=("both", "uint16", "float32"), default="both")
    parser.add_argument(
        "--layouts",
        default="default",
        help="'default', 'full' (the interleave x tile x codec grid, plus the current codec at every band tile "
        "size) or keys interleave/tile/codec[:level][/pN] like band/256/zstd:1/p2,pixel/128/none "
        "(the current layout is added unless --no-current)",
    )
    parser.add_argument(
        "--no-current", action="store_true", help="do not add the layout core/timestack.py writes now to the set"
    )
    parser.add_argument(
        "--write-cache-mb",
        type=int,
        default=None,
        help="GDAL cache while writing (default: timestack.GDAL_CACHE_MB, as steps run; 0: GDAL's default)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="reads per measurement (default 3)")
    parser.add_argument(
        "--block-align",
        type=int,
        default=None,
        help="align argument of iter_blocks (default: core.blocks.ALIGN), to try blocks aligned to smaller tiles",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the stacks (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the written stacks")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file (default bench/out/stack_layout.json)")
    parser.add_argument("--report", type=Path, default=None, help="print the figures of a saved JSON and stop")
    args = parser.parse_args(argv)
    try:
        parse_layouts(args.layouts)
    except argparse.ArgumentTypeError as error:
        parser.error(f"argument --layouts: {error}")
    if args.report is not None:
        print(report(json.loads(args.report.read_text(encoding="utf-8")))[0])
        return 0
    if args.size < 16 or args.repeats < 1 or (args.block_align is not None and args.block_align < 1):
        parser.error("--size must be at least 16, --repeats and --block-align at least 1")

    import rasterio

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the temporary files on kill too
    timestack, blocks = _core_modules()
    current = current_layout(timestack)
    align = blocks.ALIGN if args.block_align is None else args.block_align
    workdir = temp_dir("stack_layout_", parent=args.workdir, remove=not args.keep)
    dtypes = ["uint16", "float32"] if args.dtype == "both" else [args.dtype]
    layouts = parse_layouts(args.layouts)
    extra = [] if args.no_current else [current]
    if args.layouts == "full" and current.interleave == "band":
        extra += [replace(current, tile=tile) for tile in TILES]
    for layout in reversed(extra):
        if layout.key not in {known.key for known in layouts}:
            layouts.insert(0, layout)
    # steps cap GDAL's cache while they run (timestack.GDAL_CACHE_MB)
    write_cache_mb = getattr(timestack, "GDAL_CACHE_MB", None) if args.write_cache_mb is None else args.write_cache_mb
    write_cache_mb = write_cache_mb or None  # 0: GDAL's default
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    rng = np.random.default_rng(args.seed)
    dates = synthetic_dates(rng, N_DATES)
    dn = synthetic_stack(args.size, dates, args.seed)
    log(f"generated {args.size} x {args.size} px, {len(dates)} dates x {len(S2_BANDS)} bands "
        f"({(dn == 0).mean():.1%} nodata)")

    payload: dict[str, Any] = {
        "settings": {
            "size": args.size,
            "dates": len(dates),
            "bands": list(S2_BANDS),
            "dtypes": dtypes,
            "layouts": [layout.key for layout in layouts],
            "repeats": args.repeats,
            "seed": args.seed,
            "block_budget_mb": BLOCK_BUDGET_MB,
            "block_align": align,
            "read_gdal_cachemax_mb": READ_CACHE_MB,
            "write_gdal_cachemax_mb": write_cache_mb if write_cache_mb is not None else "GDAL default",
            "current_layout": current.key,
            "current_options_float32": {k: str(v) for k, v in current.options("float32").items()},
            "size_slack": SIZE_SLACK,
            "date_slack": DATE_SLACK,
            "keep_margin": KEEP_MARGIN,
        },
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "date": datetime.now().isoformat(timespec="seconds"),
        },
        "complete": False,
        "per_dtype": {},
        "results": {},
    }

    def save() -> None:
        payload["environment"]["runtime_s"] = round(time.perf_counter() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    for dtype in dtypes:
        data = dn if dtype == "uint16" else np.where(dn == 0, np.float32("nan"), dn.astype(np.float32) / 10000)
        info = stack_info(timestack, args.size, dates, dtype)
        windows = block_windows(blocks, data, align)
        payload["per_dtype"][dtype] = {
            "raw_mb": data.nbytes / 1e6,
            "shape": f"{info.n_dates} dates x {info.n_bands} bands x {args.size} x {args.size} px",
            "blocks": f"{len(windows)} blocks of up to {windows[0][2]} x {windows[0][3]} px",
            "numpy_floor": numpy_floor(data, info.n_dates // 2, args.repeats),
        }
        results = payload["results"][dtype] = []
        for layout in layouts:
            result = measure(
                timestack, layout, info, data, windows, workdir, args.repeats, args.keep, write_cache_mb
            )
            results.append(asdict(result))
            save()  # a long run that is stopped keeps what it measured
            log(f"{dtype} {layout.key}: write {result.write_s:.1f} s, {result.size_mb:.0f} MB, "
                f"series {result.series_min_s:.2f} s, date {result.date_min_s:.3f} s")
        del data

    text, recommendation = report(payload)
    payload.update(complete=True, recommendation=recommendation, text=text)
    save()
    print()
    print(text)
    log(f"wrote {args.out}")
    return 0


def report(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Tables, notes and recommendation of a (saved) benchmark run."""
    settings = payload["settings"]
    by_dtype = {dtype: [Result(**r) for r in rs] for dtype, rs in payload["results"].items() if rs}
    cpus = payload["environment"].get("cpus") or 1
    peak_load = max(r.load for results in by_dtype.values() for r in results)
    busy = peak_load > cpus + 0.5  # this benchmark itself counts for 1
    block_shapes = {dtype: about["blocks"] for dtype, about in payload["per_dtype"].items()}
    recommendation = recommend(by_dtype, settings["current_layout"], "cpu" if busy else "wall", block_shapes)
    lines = [
        f"Time-stack layout benchmark: block reads with a {settings['block_budget_mb']} MB budget, "
        f"GDAL_CACHEMAX={settings['read_gdal_cachemax_mb']} MB, min/median of {settings['repeats']} reads, "
        f"times in seconds ('date' = the {len(settings['bands'])} bands of one date, whole raster; "
        "'cpu' = CPU time of the fastest run)."
    ]
    for dtype, results in by_dtype.items():
        about = payload["per_dtype"][dtype]
        lines += [
            "",
            f"{dtype}: {about['shape']} = {about['raw_mb']:.0f} MB raw, read and written in {about['blocks']}",
            format_table(results, about["numpy_floor"], about["raw_mb"]),
        ]
    if busy:
        lines += [
            "",
            f"Note: the load average reached {peak_load:.1f} on {cpus} CPUs: other processes competed for the "
            "cores, so wall times are inflated and noisy; the recommendation uses the CPU-time columns.",
        ]
    lines += ["", "Recommendation: " + recommendation["text"]]
    return "\n".join(lines), recommendation


if __name__ == "__main__":
    sys.exit(main())
