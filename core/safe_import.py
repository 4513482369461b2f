"""Sentinel-2 products (``.SAFE`` folders or zips, L1C or L2A) -> one time stack, and for L2A a
cloud-mask stack and an SCL stack from the scene classification.

Only the target window of each band is read (GDAL decodes only the JPEG 2000 tiles it touches;
``ImportResult.source_pixels`` counts what was asked for), straight from the zip (``/vsizip/``).
Bands on the target grid are copied; 20 m and 60 m bands are resampled onto it (bilinear, average
when the target is coarser, nearest for SCL); products in another UTM zone are reprojected.
Products of one day (neighbouring tiles, two orbits) become one date: the first product (by
sensing time, then name) with data wins each pixel.

Digital numbers stay ``uint16`` with the products' own scale and offset as GDAL scale/offset, so
every later step sees true reflectance. Products before and after processing baseline 04.00
(offset -1000 since 2022-01-25) are brought onto one offset per band, the most negative one, by
adding the difference to the older products' numbers: ``reflectance = (DN + offset) / Q`` holds
for every date. DN 0 (``NODATA``), ``SATURATED``, the pixels the product's quality masks call no data
or saturated (:mod:`core.safe_masks`) and, for L2A, SCL classes 0 and 1 become nodata.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import default_budget_bytes, iter_blocks
from .cloudmask import MASK_NODATA, TAG_CLOUD_FRACTION, TAG_VALID_FRACTION, disk
from .gdalerrors import open_raster, reading
from .limits import MAX_GRID_SIDE
from .progress import Progress, ensure_progress
from .safe import Granule, Product, read_product
from .safe_masks import DefectMasks
from .sentinel2 import find_bands
from .timestack import Grid, StackInfo, StackWriter, bounded_gdal_cache, format_datetime

DEFAULT_CLOUD_CLASSES = (3, 8, 9, 10)
#: SCL 0 = no data, 1 = saturated or defective: nodata in every output.
SCL_INVALID = (0, 1)
SCL_NODATA = 0
TAG_LEVEL = "EOLULC_S2_LEVEL"
TAG_PRODUCTS = "EOLULC_S2_PRODUCTS"
TAG_SCL_SETTINGS = "EOLULC_SCL_MASK_SETTINGS"
#: A ready cloud mask carried as a band (Sentinel Hub's CLM for L1C), stored shifted by one so
#: that 0 stays "no data" like every other band: 0 no data, 1 clear, 2 cloud.
CLM_BAND = "CLM"
CLM_CLEAR, CLM_CLOUD = 1, 2


@dataclass
class ImportResult:
    info: StackInfo
    products: list[list[str]]
    skipped: list[str] = field(default_factory=list)
    #: Source pixels asked of GDAL (sum of the windows read, all bands): the proof that only the
    #: extent's window is read.
    source_pixels: int = 0
    #: Source pixels the products' quality masks made nodata (no data, saturated; all bands).
    defective_pixels: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_read(self, pixels: int, defective: int = 0) -> None:
        """Add to :attr:`source_pixels` and :attr:`defective_pixels` (bands are read in parallel
        threads)."""
        with self._lock:
            self.source_pixels += pixels
            self.defective_pixels += defective


def scan_products(paths: Sequence[str | Path], progress: Progress | None = None) -> list[Product]:
    """Read every product's metadata, sorted by sensing time then name; one level only."""
    progress = ensure_progress(progress)
    unique = list(dict.fromkeys(str(Path(p).resolve()) for p in paths if p))
    if not unique:
        raise ValueError("no products given: choose a folder of .SAFE folders or zips, or a list of products")
    products = []
    for i, path in enumerate(unique):
        progress.check()
        products.append(read_product(path))
        progress.report((i + 1) / len(unique))
    levels = {level: sum(p.level == level for p in products) for level in ("L1C", "L2A")}
    if all(levels.values()):
        raise ValueError(f"the products mix processing levels: {levels['L1C']} L1C and {levels['L2A']} L2A; "
                         "import one level at a time (put them in separate folders)")
    quantifications = {p.quantification for p in products}
    if len(quantifications) > 1:
        raise ValueError(f"the products have different quantification values {sorted(quantifications)}; "
                         "import them separately")
    products.sort(key=lambda p: (p.sensing_time, p.name))
    for product in products:
        progress.log(f"{format_datetime(product.sensing_time)}  {product.name}  ({product.level}, baseline "
                     f"{product.baseline}, tiles {', '.join(g.tile for g in product.granules)})")
    return products


def group_by_day(products: Sequence[Product]) -> list[list[Product]]:
    """Products of one calendar day (UTC) together, in sensing order."""
    days: dict = {}
    for product in products:
        days.setdefault(product.sensing_time.date(), []).append(product)
    return [days[d] for d in sorted(days)]


def _crs(text: str):
    from rasterio.crs import CRS

    try:
        return CRS.from_user_input(text)
    except Exception as error:  # noqa: BLE001 - rasterio raises CRSError
        raise ValueError(f"'{text}' is not a coordinate reference system: {error}") from None


def _granule_bounds(granule: Granule, crs) -> tuple[float, float, float, float]:
    from rasterio.warp import transform_bounds

    source = _crs(granule.crs)
    return granule.bounds if source == crs else tuple(transform_bounds(source, crs, *granule.bounds, densify_pts=21))


def _intersection(a, b):
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[2] > box[0] and box[3] > box[1] else None


def target_grid(days: Sequence[Sequence[Product]], resolution: float, crs: str | None = None,
                bounds: tuple[float, float, float, float] | None = None) -> Grid:
    """The output grid: ``bounds`` in ``crs`` (a projected CRS; else the first product's), or the
    footprint all dates share (each date the union of its tiles), snapped outward to multiples of
    ``resolution`` so that it lines up with the Sentinel-2 tiles' pixels."""
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    if not resolution > 0:
        raise ValueError(f"the resolution must be positive, got {resolution}")
    first = _crs(days[0][0].granules[0].crs)
    dst = _crs(crs) if crs else first
    if not dst.is_projected:
        if bounds is not None:
            bounds = tuple(transform_bounds(dst, first, *bounds, densify_pts=21))
        dst = first
    if bounds is None:
        common = None
        for day in days:
            boxes = [_granule_bounds(g, dst) for p in day for g in p.granules]
            union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                     max(b[3] for b in boxes))
            common = union if common is None else _intersection(common, union)
            if common is None:
                raise ValueError("the products' footprints have no area in common; give an extent")
        bounds = common
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"the extent {bounds} is empty")
    xmin, ymin = math.floor(xmin / resolution + 1e-9) * resolution, math.floor(ymin / resolution + 1e-9) * resolution
    xmax, ymax = math.ceil(xmax / resolution - 1e-9) * resolution, math.ceil(ymax / resolution - 1e-9) * resolution
    width, height = round((xmax - xmin) / resolution), round((ymax - ymin) / resolution)
    if max(width, height) > MAX_GRID_SIDE:
        raise ValueError(f"a resolution of {resolution:g} makes the output {width} x {height} px, more than "
                         f"{MAX_GRID_SIDE} px a side; choose a larger resolution or a smaller extent")
    return Grid(width=width, height=height, crs_wkt=dst.to_wkt(),
                transform=tuple(from_origin(xmin, ymax, resolution, resolution))[:6])


def meeting_grid(product: Product, grid: Grid) -> list[Granule]:
    """The product's granules whose footprint meets ``grid`` (one for the compact layout; those
    of the extent among the many of the 2016 multi-granule layout)."""
    crs = _crs(grid.crs_wkt)
    return [g for g in product.granules if _intersection(_granule_bounds(g, crs), grid.bounds)]


def days_in_grid(products: Sequence[Product], grid: Grid) -> tuple[list[list[Product]], list[str]]:
    """The products of each day whose tiles meet ``grid`` (days without any left out), and the
    names of those that do not; ``ValueError`` when none does."""
    kept, skipped = [], []
    for day in group_by_day(products):
        inside = [p for p in day if meeting_grid(p, grid)]
        skipped += [p.name for p in day if p not in inside]
        if inside:
            kept.append(inside)
    if not kept:
        raise ValueError("no product's footprint meets the extent; choose an extent inside the products' tiles")
    return kept, skipped


def _band_names(products: Sequence[Product], bands: Sequence[str] | None) -> tuple[str, ...]:
    available = products[0].bands
    if not bands:
        return available
    indices = find_bands(available, list(bands), f"{products[0].level} products")
    return tuple(available[i] for i in sorted(set(indices)))


class _GranuleReader:
    """Windows of one granule's bands on the output grid (open datasets kept for the date)."""

    def __init__(self, product: Product, granule: Granule, grid: Grid, bands: Sequence[str],
                 shifts: dict[str, int], stats: ImportResult, cache_bytes: int = 0) -> None:
        self.product, self.granule, self.grid, self.stats = product, granule, grid, stats
        self.shifts = shifts
        #: band -> (first row, columns, rows) of source pixels decoded once and sliced by each block
        self._strips: dict[str, tuple[int, slice, np.ndarray]] = {}
        self.cache_bytes = cache_bytes
        self.src_crs = _crs(granule.crs)
        self.dst_crs = _crs(grid.crs_wkt)
        self.same_crs = self.src_crs == self.dst_crs
        self.bounds = _granule_bounds(granule, self.dst_crs)
        self._ds = {}
        self.defects = DefectMasks(granule.quality, bands, product.name)
        try:
            for band in bands:
                with reading(granule.bands[band], f"band {band} of {product.name}"):
                    self._ds[band] = open_raster(granule.bands[band])
        except Exception:
            self.close()
            raise

    def covers(self, window: tuple[int, int, int, int]) -> bool:
        return _intersection(self.bounds, _window_bounds(self.grid, window)) is not None

    def read(self, band: str, window: tuple[int, int, int, int], nearest: bool = False) -> np.ndarray:
        """``(height, width)`` uint16 of ``band`` on ``window`` of the grid; 0 where no data."""
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.warp import reproject, transform_bounds
        from rasterio.windows import Window, from_bounds

        ds = self._ds[band]
        row, col, height, width = window
        out = np.zeros((height, width), np.uint16)
        box = _window_bounds(self.grid, window)
        if not self.same_crs:
            box = transform_bounds(self.dst_crs, self.src_crs, *box, densify_pts=21)
        src = from_bounds(*box, transform=ds.transform)
        pad = 2
        c0, r0 = max(0, math.floor(src.col_off) - pad), max(0, math.floor(src.row_off) - pad)
        c1 = min(ds.width, math.ceil(src.col_off + src.width) + pad)
        r1 = min(ds.height, math.ceil(src.row_off + src.height) + pad)
        if c1 <= c0 or r1 <= r0:
            return out
        read_window = Window(c0, r0, c1 - c0, r1 - r0)
        data = self._source(band, ds, r0, r1, c0, c1)
        dst_transform = rasterio.Affine(*self.grid.transform) * rasterio.Affine.translation(col, row)
        src_res, dst_res = abs(ds.transform.a), abs(self.grid.transform[0])
        if nearest or (self.same_crs and math.isclose(src_res, dst_res)):
            method = Resampling.nearest
        else:
            method = Resampling.bilinear if src_res > dst_res else Resampling.average
        src_transform = ds.window_transform(read_window)
        if self.same_crs and _copy_aligned(data, src_transform, out, dst_transform):
            pass
        elif not (self.same_crs and _resample_on_read(data, src_transform, out, dst_transform, method)):
            reproject(data, out, src_transform=src_transform, src_crs=self.src_crs, src_nodata=self.product.nodata,
                      dst_transform=dst_transform, dst_crs=self.dst_crs, dst_nodata=0, resampling=method)
        if band == "SCL":
            return out
        if self.product.saturated is not None:
            out[out == self.product.saturated] = 0
        shift = self.shifts.get(band, 0)
        if shift:
            valid = out != 0
            out[valid] = np.minimum(out[valid].astype(np.uint32) + shift, 65535).astype(np.uint16)
        return out

    def _source(self, band: str, ds, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Source rows ``r0:r1``, columns ``c0:c1`` of ``band``. JPEG 2000 decodes whole tiles, so
        the grid's source window is decoded once per date, or, when it does not fit ``cache_bytes``,
        in strips as wide as the window that end on tile boundaries, and blocks slice them instead
        of decoding the same tiles again."""
        from rasterio.windows import Window

        strip = self._strips.get(band)
        if strip is not None:
            top, cols, data = strip
            if top <= r0 and r1 <= top + data.shape[0] and cols.start <= c0 and c1 <= cols.stop:
                return data[r0 - top:r1 - top, c0 - cols.start:c1 - cols.start]
        self._strips.pop(band, None)
        rows, cols = self._window(ds)
        # another CRS: a block's window may reach a little beyond the grid's
        rows = slice(min(r0, rows.start), max(r1, rows.stop))
        cols = slice(min(c0, cols.start), max(c1, cols.stop))
        fit = self.cache_bytes // (2 * (cols.stop - cols.start))
        if fit >= rows.stop - rows.start:
            top, bottom = rows.start, rows.stop
        else:
            tile = max(1, ds.block_shapes[0][0])
            top, bottom = r0, min(rows.stop, max(r1, r0 + fit))
            end = bottom - bottom % tile
            bottom = end if end >= r1 else bottom  # the next strip starts on a tile boundary
        with reading(self.granule.bands[band], f"band {band} of {self.product.name}"):
            read_window = Window(cols.start, top, cols.stop - cols.start, bottom - top)
            data = ds.read(1, window=read_window)
        self.stats.count_read(data.size, self.defects.apply(band, data, ds.window_transform(read_window)))
        self._strips[band] = (top, cols, data)
        return data[r0 - top:r1 - top, c0 - cols.start:c1 - cols.start]

    def _window(self, ds) -> tuple[slice, slice]:
        """Source rows and columns under the whole grid (with the reading pad), clipped to the band."""
        from rasterio.warp import transform_bounds
        from rasterio.windows import from_bounds

        box = self.grid.bounds
        if not self.same_crs:
            box = transform_bounds(self.dst_crs, self.src_crs, *box, densify_pts=21)
        src = from_bounds(*box, transform=ds.transform)
        c0, r0 = max(0, math.floor(src.col_off) - 2), max(0, math.floor(src.row_off) - 2)
        c1 = max(c0 + 1, min(ds.width, math.ceil(src.col_off + src.width) + 2))
        r1 = max(r0 + 1, min(ds.height, math.ceil(src.row_off + src.height) + 2))
        return slice(r0, r1), slice(c0, c1)

    def close(self) -> None:
        self._strips = {}
        for ds in self._ds.values():
            ds.close()
        self._ds = {}


def _copy_aligned(data: np.ndarray, src_transform, out: np.ndarray, dst_transform) -> bool:
    """Copy ``data`` into ``out`` when both grids have the same pixels, only shifted by whole
    pixels (10 m bands on a 10 m grid in their CRS): what nearest resampling gives, without the
    warper's cost. False (nothing copied) otherwise."""
    a, b, c, d, e, f = tuple(src_transform)[:6]
    a2, b2, c2, d2, e2, f2 = tuple(dst_transform)[:6]
    if b or d or b2 or d2 or not (math.isclose(a, a2) and math.isclose(e, e2)):
        return False
    dc, dr = (c2 - c) / a, (f2 - f) / e
    col, row = round(dc), round(dr)
    if abs(dc - col) > 1e-6 or abs(dr - row) > 1e-6:
        return False
    r0, c0 = max(0, -row), max(0, -col)
    r1, c1 = min(out.shape[0], data.shape[0] - row), min(out.shape[1], data.shape[1] - col)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = data[r0 + row:r1 + row, c0 + col:c1 + col]
    return True


def _resample_on_read(data: np.ndarray, src_transform, out: np.ndarray, dst_transform, method) -> bool:
    """Resample ``data`` into ``out`` with GDAL's resampling on read, ~6x faster than the warper,
    where it gives the warper's values: no nodata in ``data`` (the warper treats its edges its
    own way), ``out`` inside it, and average, nearest or bilinear from 20 m to 10 m (from 60 m
    they differ by 1 DN in rounding). False (nothing written) otherwise."""
    from rasterio.enums import Resampling
    from rasterio.io import MemoryFile
    from rasterio.windows import from_bounds

    if method == Resampling.bilinear and not math.isclose(src_transform.a, 2 * dst_transform.a):
        return False
    a, _, c, _, e, f = tuple(dst_transform)[:6]
    height, width = out.shape
    window = from_bounds(c, f + e * height, c + a * width, f, transform=src_transform)
    if (window.col_off < 0 or window.row_off < 0 or window.col_off + window.width > data.shape[1] + 1e-6
            or window.row_off + window.height > data.shape[0] + 1e-6 or not data.all()):
        return False
    with MemoryFile() as memfile:
        with memfile.open(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype,
                          transform=src_transform) as dataset:
            dataset.write(data, 1)
        with memfile.open() as dataset:
            out[:] = dataset.read(1, window=window, out_shape=out.shape, resampling=method)
    return True


def _window_bounds(grid: Grid, window: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    row, col, height, width = window
    a, _, c, _, e, f = grid.transform
    x0, y0 = c + a * col, f + e * row
    return x0, y0 + e * height, x0 + a * width, y0


def import_safe(
    products: Sequence[Product],
    output: str | Path,
    grid: Grid,
    bands: Sequence[str] | None = None,
    output_mask: str | Path | None = None,
    output_scl: str | Path | None = None,
    cloud_classes: Sequence[int] = DEFAULT_CLOUD_CLASSES,
    dilation: int = 0,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
) -> ImportResult:
    """Write the time stack (and for L2A the mask and SCL stacks) of ``products`` on ``grid``.
    Products whose granules all carry a :data:`CLM_BAND` (Sentinel Hub's L1C cloud mask) give the
    cloud mask from it instead of from SCL."""
    progress = ensure_progress(progress)
    level = products[0].level
    has_clm = level != "L2A" and all(CLM_BAND in g.bands for p in products for g in p.granules)
    if output_scl and level != "L2A":
        raise ValueError("the SCL output needs L2A products (L1C has no scene classification)")
    if output_mask and level != "L2A" and not has_clm:
        raise ValueError("the cloud mask and SCL outputs need L2A products (L1C has no scene classification); "
                         "use the s2cloudless cloud mask for L1C")
    if dilation < 0:
        raise ValueError(f"the mask dilation must be 0 or more pixels, got {dilation}")
    names = _band_names(products, bands)
    q = products[0].quantification
    common = {b: min(p.offsets.get(b, 0.0) for p in products) for b in names}
    kept, skipped = days_in_grid(products, grid)
    for name in skipped:
        progress.log(f"{name}: outside the extent, left out")
    info = StackInfo(grid=grid, dates=tuple(day[0].sensing_time for day in kept), bands=names, dtype="uint16",
                     nodata=0, scales=(1.0 / q,) * len(names), offsets=tuple(common[b] / q for b in names),
                     tags={TAG_LEVEL: level, TAG_PRODUCTS: json.dumps([[p.name for p in d] for d in kept])})
    result = ImportResult(info=info, products=[[p.name for p in d] for d in kept], skipped=skipped)
    settings = json.dumps({"source": "Sentinel Hub CLM", "dilation": int(dilation)} if has_clm else
                          {"source": "SCL", "cloud_classes": sorted(int(c) for c in cloud_classes),
                           "dilation": int(dilation)})
    mask_info = StackInfo(grid=grid, dates=info.dates, bands=("CLM",), dtype="uint8", nodata=MASK_NODATA,
                          tags={TAG_SCL_SETTINGS: settings})
    scl_info = StackInfo(grid=grid, dates=info.dates, bands=("SCL",), dtype="uint8", nodata=SCL_NODATA)
    mask_band = "SCL" if level == "L2A" else CLM_BAND if has_clm and output_mask else None
    counts = np.zeros((2, len(kept)), np.int64)
    budget = default_budget_bytes() if budget_bytes is None else max(1, int(budget_bytes))
    structure = disk(dilation) if dilation else None
    from rasterio.errors import NotGeoreferencedWarning

    workers = max(1, min(len(names), os.cpu_count() or 1, 4))
    # rasterio's reproject of arrays hides a spurious NotGeoreferencedWarning with catch_warnings,
    # which threads race on: hidden here around the pool, whose threads all end inside
    with warnings.catch_warnings(), bounded_gdal_cache():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        _import_days(kept, grid, names, mask_band, common, budget, dilation, structure, cloud_classes, counts,
                     workers, (output, output_mask, output_scl), (info, mask_info, scl_info), result, progress)
    return result


def _import_days(kept, grid, names, mask_band, common, budget, dilation, structure, cloud_classes, counts, workers,
                 outputs, infos, result, progress) -> None:
    info, mask_info, scl_info = infos
    with ThreadPoolExecutor(workers, thread_name_prefix="eolulc-safe") as pool, \
            atomic_outputs(list(outputs)) as (data_path, mask_path, scl_path):
        writers = [StackWriter(str(data_path), info)]
        try:
            mask_writer = StackWriter(str(mask_path), mask_info) if mask_path else None
            writers.append(mask_writer)
            scl_writer = StackWriter(str(scl_path), scl_info) if scl_path else None
            writers.append(scl_writer)
            for t, day in enumerate(kept):
                readers = []
                read_bands = names + ((mask_band,) if mask_band else ())
                # only the granules meeting the grid (a 2016 multi-granule product holds up to ~20)
                granules = [(p, g) for p in day for g in meeting_grid(p, grid)]
                # half the budget for the decoded source strips of every granule's bands, half for blocks
                cache_bytes = budget // (2 * len(granules) * len(read_bands))
                try:
                    for product, granule in granules:
                        shifts = {b: int(round(product.offsets.get(b, 0.0) - common[b])) for b in names}
                        readers.append(_GranuleReader(product, granule, grid, read_bands, shifts, result,
                                                      cache_bytes))
                    step = progress.scaled(t / len(kept), (t + 1) / len(kept))
                    bytes_per_pixel = (len(names) + 4) * 2 * 2
                    for block in iter_blocks(grid.height, grid.width, bytes_per_pixel, budget // 2,
                                             halo=dilation, progress=step):
                        _write_block(block, t, readers, names, mask_band, writers, cloud_classes, structure, pool,
                                     counts)
                finally:
                    for reader in readers:
                        reader.close()
            pixels = grid.width * grid.height
            if mask_writer is not None:
                mask_writer.set_tags({TAG_VALID_FRACTION: json.dumps([round(float(c) / pixels, 6) for c in counts[0]]),
                                      TAG_CLOUD_FRACTION: json.dumps([round(float(c) / pixels, 6) for c in counts[1]])})
        finally:
            for writer in writers:
                if writer is not None:
                    writer.close()


def _mosaic(readers, band: str, window, nearest: bool = False) -> np.ndarray:
    """The first reader with data wins each pixel."""
    out = None
    for reader in readers:
        if not reader.covers(window):
            continue
        values = reader.read(band, window, nearest)
        if out is None:
            out = values
        else:
            empty = out == 0
            out[empty] = values[empty]
        if out.all():
            break
    return out if out is not None else np.zeros(window[2:], np.uint16)


def _write_block(block, t: int, readers, names, mask_band: str | None, writers, cloud_classes, structure, pool,
                 counts: np.ndarray) -> None:
    data_writer, mask_writer, scl_writer = writers
    # bands in parallel: each has its own dataset in every reader, and GDAL decodes and warps
    # without the GIL
    data = np.stack(list(pool.map(lambda band: _mosaic(readers, band, block.window), names)), axis=-1)
    if mask_band is None:
        data_writer.write(data[None], block.window, dates=[t])
        return
    grown = _mosaic(readers, mask_band, block.read_window, nearest=True).astype(np.uint8)
    rows, cols = block.inner
    inner = grown[rows, cols]
    invalid = np.isin(inner, SCL_INVALID) if mask_band == "SCL" else inner == 0
    data[invalid] = 0
    data_writer.write(data[None], block.window, dates=[t])
    if scl_writer is not None:
        scl_writer.write(inner[None, ..., None], block.window, dates=[t])
    if mask_writer is not None:
        cloud = (np.isin(grown, list(cloud_classes)) if mask_band == "SCL" else grown == CLM_CLOUD).astype(np.uint8)
        if structure is not None:
            import cv2

            cloud = cv2.dilate(cloud, structure)
        cloud = cloud[rows, cols]
        mask = np.where(invalid, np.uint8(MASK_NODATA), cloud)
        counts[0, t] += np.count_nonzero(mask == 0)
        counts[1, t] += np.count_nonzero(mask == 1)
        mask_writer.write(mask[None, ..., None], block.window, dates=[t])

