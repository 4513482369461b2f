"""The time-stack format that every EO LULC step reads and writes.

A time stack is one tiled, compressed (Big)GeoTIFF holding ``T`` dates x ``B`` bands as
``T * B`` raster bands, date-major: GeoTIFF band ``t * B + b + 1`` is band ``b`` of date ``t``.
Each band's description is ``"<ISO date-time> <band name>"`` (``2017-03-14T10:00:21 B04``) and
carries ``DATE``/``BAND`` band tags; the dataset tags ``EOLULC_DATES`` and ``EOLULC_BANDS``
(JSON lists) hold the same so the whole structure is read in one call. Nodata is stored as
GDAL nodata; digital numbers keep GDAL's per-band scale/offset (``reflectance = DN * scale + offset``).
A single-date raster is a stack with ``T = 1``; a mask is a stack with one band per date.

In memory a block of a stack is a numpy array laid out like eo-learn's temporal features:
``(time, height, width, bands)``. Windows are ``(row, col, height, width)`` tuples.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Iterator, Sequence

import numpy as np

from .filedates import date_from_name, parse_datetime, structure_from_descriptions, vrt_band_sources
from .gdalerrors import open_raster, reading
from .sentinel2 import band_token, normalise_band_name, refuse_ambiguous_band

FORMAT_VERSION = "1"
TAG_VERSION = "EOLULC_STACK_VERSION"
TAG_DATES = "EOLULC_DATES"
TAG_BANDS = "EOLULC_BANDS"

#: On-disk layout, chosen by measurement (bench/stack_layout.py, figures in the README): 128 px
#: tiles, one band per tile, ZSTD level 1 with horizontal differencing. 128 px because blocks of
#: a float32 68 x 13 stack do not fit a 256 px tile in the budget: half-written 256 px tiles made
#: the file 47 % larger and whole-series reads 1.7x slower; for uint16 the two are within noise.
TILE_SIZE = 128
INTERLEAVE = "band"
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
FALLBACK_COMPRESSION = "deflate"
#: GDAL's block cache while a step runs (GDAL's default is 5 % of RAM, which would make peak
#: memory grow with the raster instead of the block budget).
GDAL_CACHE_MB = 64

Window = tuple[int, int, int, int]


def format_datetime(value: datetime) -> str:
    """ISO form used in descriptions and tags: ``YYYY-MM-DDTHH:MM:SS`` (UTC, no zone suffix)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def band_description(date: datetime | None, band: str) -> str:
    return band if date is None else f"{format_datetime(date)} {band}"


@dataclass(frozen=True)
class Grid:
    """Where a raster lies: size in pixels, CRS as WKT, and the affine transform (rasterio order)."""

    width: int
    height: int
    crs_wkt: str | None
    transform: tuple[float, float, float, float, float, float]

    @property
    def resolution(self) -> tuple[float, float]:
        a, b, _, d, e, _ = self.transform
        return float(np.hypot(a, d)), float(np.hypot(b, e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` for north-up grids."""
        a, _, c, _, e, f = self.transform
        xs = (c, c + a * self.width)
        ys = (f, f + e * self.height)
        return min(xs), min(ys), max(xs), max(ys)

    def same_as(self, other: Grid, tolerance: float = 1e-6) -> bool:
        """Same size, same transform (within ``tolerance`` of a pixel) and same CRS."""
        if (self.width, self.height) != (other.width, other.height):
            return False
        pixel = max(min(self.resolution), 1e-12)
        if any(abs(x - y) > tolerance * pixel for x, y in zip(self.transform, other.transform)):
            return False
        return _same_crs(self.crs_wkt, other.crs_wkt)


def _same_crs(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if not a or not b:
        return False
    from rasterio.crs import CRS

    return CRS.from_user_input(a) == CRS.from_user_input(b)


@dataclass(frozen=True)
class StackInfo:
    """Everything about a stack except its pixels."""

    grid: Grid
    dates: tuple[datetime | None, ...]
    bands: tuple[str, ...]
    dtype: str
    nodata: float | None = None
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    #: GeoTIFF bands ordered band by band (all dates of the first band first), as some tools write
    #: them; EO LULC writes date by date.
    band_major: bool = False

    def __post_init__(self) -> None:
        if not self.dates or not self.bands:
            raise ValueError("a time stack needs at least one date and one band")
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"band names must be unique, got {list(self.bands)}")
        n = len(self.bands)
        object.__setattr__(self, "scales", tuple(self.scales) or (1.0,) * n)
        object.__setattr__(self, "offsets", tuple(self.offsets) or (0.0,) * n)
        if len(self.scales) != n or len(self.offsets) != n:
            raise ValueError("scales and offsets need one value per band")

    @property
    def n_dates(self) -> int:
        return len(self.dates)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def count(self) -> int:
        """Number of GeoTIFF bands: dates x bands."""
        return self.n_dates * self.n_bands

    @property
    def is_dated(self) -> bool:
        return all(d is not None for d in self.dates)

    @property
    def has_scaling(self) -> bool:
        return any(s != 1.0 for s in self.scales) or any(o != 0.0 for o in self.offsets)

    def band_index(self, name: str) -> int:
        """Index of band ``name``, matched by :func:`~.sentinel2.normalise_band_name`."""
        refuse_ambiguous_band(self.bands, name)
        keys = [normalise_band_name(b) for b in self.bands]
        try:
            return keys.index(normalise_band_name(name))
        except ValueError:
            raise ValueError(f"the stack has no band '{name}'; its bands are {', '.join(self.bands)}") from None

    def layer(self, date_index: int, band_index: int) -> int:
        """1-based GeoTIFF band number of one date's band."""
        if self.band_major:
            return band_index * self.n_dates + date_index + 1
        return date_index * self.n_bands + band_index + 1

    def descriptions(self) -> list[str]:
        return [band_description(d, b) for d in self.dates for b in self.bands]

    def evolve(self, **changes: Any) -> StackInfo:
        """A copy with some fields changed (for an output derived from an input)."""
        return replace(self, **changes)


def read_info(path: str) -> StackInfo:
    """Read a stack's structure; any GDAL raster is accepted (plain rasters become ``T = 1``)."""
    with open_stack(path) as reader:
        return reader.info


def _open_dataset(path: str):
    return open_raster(path)


def _info_from_dataset(ds) -> StackInfo:
    grid = Grid(
        width=ds.width,
        height=ds.height,
        crs_wkt=ds.crs.to_wkt() if ds.crs else None,
        transform=tuple(ds.transform)[:6],
    )
    tags = ds.tags()
    nodata = ds.nodatavals[0] if ds.nodatavals else None
    dtype = ds.dtypes[0]
    if len(set(ds.dtypes)) != 1:
        raise ValueError(f"'{ds.name}' mixes data types {sorted(set(ds.dtypes))}; a time stack has one")
    if TAG_DATES in tags and TAG_BANDS in tags:
        try:
            dates = tuple(parse_datetime(d) if d else None for d in json.loads(tags[TAG_DATES]))
            bands = tuple(str(b) for b in json.loads(tags[TAG_BANDS]))
        except (ValueError, TypeError) as error:
            raise ValueError(f"'{ds.name}' has unreadable EO LULC stack metadata: {error}") from error
        if len(dates) * len(bands) != ds.count:
            raise ValueError(
                f"'{ds.name}' says it holds {len(dates)} dates x {len(bands)} bands but has {ds.count} bands"
            )
        band_major = False
    else:
        dates, bands, band_major = structure_from_descriptions(_descriptions(ds), ds.count)
    n = len(bands)
    first_layers = [b * len(dates) if band_major else b for b in range(n)]  # each band's first date
    scales = tuple(float(ds.scales[i]) for i in first_layers)
    offsets = tuple(float(ds.offsets[i]) for i in first_layers)
    extra = {k: v for k, v in tags.items() if k not in (TAG_DATES, TAG_BANDS, TAG_VERSION)}
    return StackInfo(
        grid=grid,
        dates=dates,
        bands=bands,
        dtype=dtype,
        nodata=None if nodata is None else float(nodata),
        scales=scales,
        offsets=offsets,
        tags=extra,
        band_major=band_major,
    )


def _descriptions(ds) -> tuple[str | None, ...]:
    """The bands' descriptions; for a VRT without any (QGIS's *Build Virtual Raster* with each
    file in its own band) whose files all name a Sentinel-2 band, ``<date> <band>`` from the
    files' names (or the bands alone when a name has no date); whose files' names make a time
    stack (``NDVI_20230101``...), those names."""
    if ds.driver != "VRT" or any(ds.descriptions):
        return ds.descriptions
    files = vrt_band_sources(ds.name, ds.count)
    if not files:
        return ds.descriptions
    bands = [band_token(name) for name in files]
    if not all(bands):  # files named by date alone (NDVI_20230101.tif...): a time stack if they parse as one
        return files if structure_from_descriptions(files, ds.count)[0][0] is not None else ds.descriptions
    dates = [date_from_name(name) for name in files]
    if not all(dates):
        return tuple(bands)
    return tuple(f"{format_datetime(d)} {b}" for d, b in zip(dates, bands))  # type: ignore[arg-type]


class StackReader:
    """Reads windows of a stack as ``(time, height, width, bands)`` arrays."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self._ds = _open_dataset(self.path)
        try:
            self.info = _info_from_dataset(self._ds)
        except Exception:
            self._ds.close()
            raise

    def read(
        self,
        window: Window | None = None,
        dates: Sequence[int] | None = None,
        bands: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Raw values (no scaling) of a window, optionally only some date and band indices."""
        from rasterio.windows import Window as RioWindow

        info = self.info
        t_idx = list(range(info.n_dates)) if dates is None else list(dates)
        b_idx = list(range(info.n_bands)) if bands is None else list(bands)
        layers = [info.layer(t, b) for t in t_idx for b in b_idx]
        rio_window = None
        h, w = info.grid.height, info.grid.width
        if window is not None:
            row, col, h, w = window
            rio_window = RioWindow(col, row, w, h)
        with reading(self.path, window_text(window, info.grid), self._layer_name):
            data = self._ds.read(layers, window=rio_window)
        return data.reshape(len(t_idx), len(b_idx), h, w).transpose(0, 2, 3, 1)

    def _layer_name(self, layer: int) -> str:
        """1-based GeoTIFF band -> "date 2016-01-05, band B04" (GDAL's messages count bands)."""
        info = self.info
        if info.band_major:
            band_index, date_index = divmod(layer - 1, info.n_dates)
        else:
            date_index, band_index = divmod(layer - 1, info.n_bands)
        if not 0 <= date_index < info.n_dates:
            return f"band {layer}"
        date = info.dates[date_index]
        when = f"date {format_datetime(date)}, " if date is not None else ""
        return f"{when}band {info.bands[band_index]}"

    def close(self) -> None:
        self._ds.close()

    def __enter__(self) -> StackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def window_text(window: Window | None, grid: Grid | None) -> str:
    """A window as a user reads it: rows and columns, 0-based, end excluded (the grid's whole
    extent for no window)."""
    if window is None:
        return "the whole raster" if grid is None else f"rows 0-{grid.height}, columns 0-{grid.width}"
    row, col, h, w = window
    return f"rows {row}-{row + h}, columns {col}-{col + w}"


def open_stack(path: str) -> StackReader:
    return StackReader(path)


def creation_options(dtype: str, compression: str = COMPRESSION) -> dict[str, Any]:
    """GeoTIFF creation options of the stack layout (tiles, compression, predictor, BigTIFF)."""
    predictor = 2 if np.dtype(dtype).itemsize > 1 else 1
    options = {
        "driver": "GTiff",
        "tiled": True,
        "blockxsize": TILE_SIZE,
        "blockysize": TILE_SIZE,
        "compress": compression,
        "predictor": predictor,
        "interleave": INTERLEAVE,
        "BIGTIFF": "IF_SAFER",
    }
    if compression == COMPRESSION:
        options["zstd_level"] = COMPRESSION_LEVEL
    return options


@contextlib.contextmanager
def bounded_gdal_cache(megabytes: int = GDAL_CACHE_MB) -> Iterator[None]:
    """Run with GDAL's block cache capped (restored afterwards); also usable as a decorator.
    Steps write whole tiles, so a small cache costs nothing and keeps memory within budget."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=megabytes * 1024 * 1024):
        yield


class StackWriter:
    """Writes a stack window by window. Use :func:`~.atomic.atomic_outputs` for the path so that
    a failure or cancel leaves nothing behind."""

    def __init__(self, path: str, info: StackInfo) -> None:
        import rasterio
        from rasterio.crs import CRS

        self.path = str(path)
        self.info = info = info.evolve(band_major=False)  # always written date by date
        grid = info.grid
        # small rasters: tiles no larger than needed (GeoTIFF tiles are multiples of 16)
        side = min(TILE_SIZE, max(16, 16 * int(np.ceil(max(grid.width, grid.height) / 16))))
        create = dict(
            width=grid.width,
            height=grid.height,
            count=info.count,
            dtype=info.dtype,
            crs=CRS.from_wkt(grid.crs_wkt) if grid.crs_wkt else None,
            transform=rasterio.Affine(*grid.transform),
            nodata=info.nodata,
        )
        try:
            profile = {**creation_options(info.dtype), "blockxsize": side, "blockysize": side}
            self._ds = rasterio.open(self.path, "w", **create, **profile)
        except rasterio.errors.RasterioIOError:
            # a GDAL built without ZSTD: same layout, DEFLATE
            profile = {**creation_options(info.dtype, FALLBACK_COMPRESSION), "blockxsize": side, "blockysize": side}
            self._ds = rasterio.open(self.path, "w", **create, **profile)
        try:
            self._write_metadata()
        except Exception:
            self._ds.close()
            raise

    def _write_metadata(self) -> None:
        info, ds = self.info, self._ds
        dates = [format_datetime(d) if d is not None else "" for d in info.dates]
        tags = {k: str(v) for k, v in info.tags.items()}
        tags.update({
            TAG_VERSION: FORMAT_VERSION,
            TAG_DATES: json.dumps(dates),
            TAG_BANDS: json.dumps(list(info.bands)),
        })
        ds.update_tags(**tags)
        for t, date in enumerate(info.dates):
            for b, band in enumerate(info.bands):
                layer = info.layer(t, b)
                ds.set_band_description(layer, band_description(date, band))
                ds.update_tags(layer, DATE=dates[t], BAND=band)
        if info.has_scaling:
            ds.scales = info.scales * info.n_dates
            ds.offsets = info.offsets * info.n_dates

    def write(self, data: np.ndarray, window: Window | None = None, dates: Sequence[int] | None = None) -> None:
        """Write a ``(time, height, width, bands)`` block at ``window`` (the whole raster if ``None``),
        for all dates or only the date indices ``dates``."""
        from rasterio.windows import Window as RioWindow

        info = self.info
        t, h, w, b = data.shape
        t_idx = list(range(info.n_dates)) if dates is None else list(dates)
        if (t, b) != (len(t_idx), info.n_bands):
            raise ValueError(f"block has {t} dates x {b} bands, the stack writes {len(t_idx)} x {info.n_bands}")
        rio_window = None if window is None else RioWindow(window[1], window[0], window[3], window[2])
        layers = np.ascontiguousarray(data.transpose(0, 3, 1, 2).reshape(t * b, h, w), dtype=info.dtype)
        if dates is None:
            self._ds.write(layers, window=rio_window)
        else:
            indexes = [info.layer(d, band) for d in t_idx for band in range(info.n_bands)]
            self._ds.write(layers, indexes=indexes, window=rio_window)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Add dataset tags known only after the pixels are written (e.g. per-date statistics)."""
        self._ds.update_tags(**{k: str(v) for k, v in tags.items()})

    def close(self) -> None:
        self._ds.close()

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
