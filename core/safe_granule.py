"""One date of a Sentinel-2 import: each granule's band windows read once onto the output grid
(copied, resampled or reprojected) and the granules of the day mosaicked (:mod:`core.safe_import`
drives it, date by date and block by block).

A band's source window under the grid is decoded once per date (OpenJPEG decodes only its
code-blocks, :mod:`core.jpeg2000`; GDAL, the fallback, whole tiles) and every block slices it;
bands on the target grid are copied; 20 m bands (and SCL) are resampled by GDAL's resampling on
read over the decoded array, which gives the warper's values; the warper is kept where the two
differ (60 m bilinear, edges with no data, other CRSs).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .gdalerrors import open_raster, reading
from .jpeg2000 import decode_window
from .safe import Granule, Product
from .safe_masks import DefectMasks
from .timestack import Grid


def parse_crs(text: str):
    """A rasterio CRS of ``text``; ``ValueError`` naming it when it is none."""
    from rasterio.crs import CRS

    try:
        return CRS.from_user_input(text)
    except Exception as error:  # noqa: BLE001 - rasterio raises CRSError
        raise ValueError(f"'{text}' is not a coordinate reference system: {error}") from None


def granule_bounds(granule: Granule, crs) -> tuple[float, float, float, float]:
    """The granule's footprint in ``crs``."""
    from rasterio.warp import transform_bounds

    source = parse_crs(granule.crs)
    return granule.bounds if source == crs else tuple(transform_bounds(source, crs, *granule.bounds, densify_pts=21))


def intersection(a, b):
    """The common box of two ``(xmin, ymin, xmax, ymax)`` boxes, None when they share no area."""
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[2] > box[0] and box[3] > box[1] else None


def window_bounds(grid: Grid, window: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """The box of ``(row, col, height, width)`` on ``grid``."""
    row, col, height, width = window
    a, _, c, _, e, f = grid.transform
    x0, y0 = c + a * col, f + e * row
    return x0, y0 + e * height, x0 + a * width, y0


class GranuleReader:
    """Windows of one granule's bands on the output grid (open datasets kept for the date).
    ``count_read(pixels, defective)`` is told what each decoded source window held."""

    def __init__(self, product: Product, granule: Granule, grid: Grid, bands: Sequence[str],
                 shifts: dict[str, int], count_read: Callable[[int, int], None], cache_bytes: int = 0) -> None:
        self.product, self.granule, self.grid, self.count_read = product, granule, grid, count_read
        self.shifts = shifts
        #: band -> (first row, columns, rows) of source pixels decoded once and sliced by each block
        self._strips: dict[str, tuple[int, slice, np.ndarray]] = {}
        self.cache_bytes = cache_bytes
        self.src_crs = parse_crs(granule.crs)
        self.dst_crs = parse_crs(grid.crs_wkt)
        self.same_crs = self.src_crs == self.dst_crs
        self.bounds = granule_bounds(granule, self.dst_crs)
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
        return intersection(self.bounds, window_bounds(self.grid, window)) is not None

    def read(self, band: str, window: tuple[int, int, int, int], nearest: bool = False) -> np.ndarray:
        """``(height, width)`` uint16 of ``band`` on ``window`` of the grid; 0 where no data."""
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.warp import reproject, transform_bounds
        from rasterio.windows import Window, from_bounds

        ds = self._ds[band]
        row, col, height, width = window
        out = np.zeros((height, width), np.uint16)
        box = window_bounds(self.grid, window)
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
        if self.same_crs and copy_aligned(data, src_transform, out, dst_transform):
            pass
        elif not (self.same_crs and resample_on_read(data, src_transform, out, dst_transform, method)):
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
        """Source rows ``r0:r1``, columns ``c0:c1`` of ``band``. The grid's source window is
        decoded once per date, or, when it does not fit ``cache_bytes``, in strips as wide as the
        window that end on tile boundaries (GDAL decodes whole tiles), and blocks slice them
        instead of decoding the same code-blocks again."""
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
            data = read_window_of(self.granule.bands[band], ds, read_window)
        self.count_read(data.size, self.defects.apply(band, data, ds.window_transform(read_window)))
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


def read_window_of(path: str, ds, window) -> np.ndarray:
    """Band 1 of ``ds`` (opened from ``path``) on ``window``: OpenJPEG decodes only the window's
    code-blocks where it can (:mod:`core.jpeg2000`), GDAL whole tiles otherwise."""
    decoded = decode_window(path, window.row_off, window.col_off, window.height, window.width, [0]) \
        if path.lower().endswith(".jp2") else None
    if decoded is None:
        return ds.read(1, window=window)
    return decoded[0].astype(ds.dtypes[0])


def copy_aligned(data: np.ndarray, src_transform, out: np.ndarray, dst_transform) -> bool:
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


def resample_on_read(data: np.ndarray, src_transform, out: np.ndarray, dst_transform, method) -> bool:
    """Resample ``data`` into ``out`` with GDAL's resampling on read, ~6x faster than the warper,
    where it gives the warper's values: no nodata in ``data`` (the warper treats its edges its
    own way), ``out`` inside it, and average, nearest or bilinear from 20 m to 10 m (from 60 m
    they differ by 1 DN in rounding). False (nothing written) otherwise. ``data`` is read in
    place through a MEM dataset (no copy, no GeoTIFF in memory); rasterio's resampling codes are
    GDAL's."""
    from osgeo import gdal_array
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds

    if method == Resampling.bilinear and not math.isclose(src_transform.a, 2 * dst_transform.a):
        return False
    a, _, c, _, e, f = tuple(dst_transform)[:6]
    height, width = out.shape
    window = from_bounds(c, f + e * height, c + a * width, f, transform=src_transform)
    if (window.col_off < 0 or window.row_off < 0 or window.col_off + window.width > data.shape[1] + 1e-6
            or window.row_off + window.height > data.shape[0] + 1e-6 or not data.all()):
        return False
    dataset = gdal_array.OpenArray(data)
    if dataset is None:
        raise RuntimeError("GDAL could not wrap a decoded band as a MEM dataset")
    gdal_array.BandReadAsArray(dataset.GetRasterBand(1), window.col_off, window.row_off, window.width,
                               window.height, buf_obj=out, resample_alg=int(method))
    return True


def mosaic(readers: Sequence[GranuleReader], band: str, window, nearest: bool = False) -> np.ndarray:
    """``band`` on ``window`` from the day's granules: the first reader with data wins each pixel."""
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
