"""A coarse grid over a raster: cell sums and means of valid pixels, bilinear upsampling back.

The cloud mask runs the s2cloudless model on cells ``factor`` x ``factor`` pixels wide (the
cells' mean reflectance) and brings the probabilities back to the pixels by bilinear
interpolation. Kept apart from :mod:`.cloudmask` because it is plain resampling, independent of
the model: cells are aligned to the raster's origin and the upsampling works in the raster's
global coordinates, so any block (read with or without a halo) gives the same values bit for
bit. Digital numbers are summed by one compiled pass (:mod:`.kernels`) where numba is installed,
by numpy otherwise, with the same results.
"""

from __future__ import annotations

import math

import numpy as np

from .blocks import Block
from .compiled import kernels
from .timestack import Grid


def cells_around(window: Block, factor: int, n_cells: tuple[int, int]) -> tuple[slice, slice]:
    """The coarse cells (rows, columns) that the bilinear upsampling of ``window``'s read window
    needs: a pixel's two neighbouring cells may lie one cell beyond the window on either side."""
    def axis(start: int, length: int, cells: int) -> slice:
        return slice(max(0, start // factor - 1), min(cells, (start + length - 1) // factor + 2))
    return axis(window.read_row, window.read_height, n_cells[0]), axis(window.read_col, window.read_width, n_cells[1])


def valid_pixels_and_cells(raw: np.ndarray, nodata: float | None,
                            factor: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Pixels ``(time, h, w)`` where every cloud band has a value and, with ``factor`` > 1, the
    sums ``(t, b, cells_h, cells_w)`` and counts ``(t, cells_h, cells_w)`` of the valid pixels of
    each ``factor`` x ``factor`` cell (cells aligned to the block's origin, which is aligned to
    the raster's). Digital numbers take one compiled pass where numba is installed."""
    compiled = kernels()
    if factor > 1 and compiled is not None and raw.dtype.kind in "ui":
        t, h, w, b = raw.shape
        # a nodata the integers cannot hold marks no pixel, as numpy's comparison does
        limits = np.iinfo(raw.dtype)
        has_nodata = (nodata is not None and not math.isnan(nodata) and float(nodata).is_integer()
                      and limits.min <= nodata <= limits.max)
        stored = raw.dtype.type(nodata if has_nodata else 0)
        valid = np.empty((t, h, w), bool)
        ch, cw = math.ceil(h / factor), math.ceil(w / factor)
        sums, counts = np.zeros((t, b, ch, cw), np.int64), np.zeros((t, ch, cw), np.int64)
        compiled.valid_cell_sums(np.ascontiguousarray(raw.transpose(0, 3, 1, 2)), factor, stored, has_nodata,
                                 valid, sums, counts)
        return valid, (sums.astype(np.float64), counts)
    valid = valid_pixels(raw, nodata)
    return valid, (cell_sums(raw, valid, factor) if factor > 1 else None)


def valid_pixels(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """Pixels ``(time, h, w)`` where every cloud band has a value."""
    planes = raw.transpose(0, 3, 1, 2)  # rasterio's band planes: contiguous per band
    if raw.dtype.kind == "u" and nodata == 0:  # digital numbers: valid where the smallest band is not 0
        return np.minimum.reduce(planes, axis=1) != 0
    valid = np.ones((raw.shape[0],) + raw.shape[1:3], bool)
    for b in range(planes.shape[1]):
        if raw.dtype.kind == "f":
            valid &= np.isfinite(planes[:, b])
        if nodata is not None and not math.isnan(nodata):
            valid &= planes[:, b] != nodata
    return valid


def cell_sums(raw: np.ndarray, valid: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """The sums and counts of :func:`valid_pixels_and_cells` with numpy."""
    t, h, w, b = raw.shape
    planes = raw.transpose(0, 3, 1, 2)
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    integer = raw.dtype.kind in "ui"
    padded = np.zeros((t, ch * factor, cw * factor), raw.dtype)
    sums = np.empty((t, b, ch, cw), np.float64)
    # integers add up exactly in any order: rows first (adding whole rows is vectorised; ``factor``
    # rows of 16-bit values fit 32 bits), then the 16x fewer columns; floats as always (columns first)
    row_sum = np.int64 if raw.dtype.itemsize > 2 else np.uint32 if raw.dtype.kind == "u" else np.int32
    for band in range(b):
        np.copyto(padded[:, :h, :w], planes[:, band], where=valid)
        if integer:
            by_rows = padded.reshape(t, ch, factor, cw * factor).sum(axis=2, dtype=row_sum)
            sums[:, band] = by_rows.reshape(t, ch, cw, factor).sum(axis=3, dtype=np.int64)
        else:
            partial = padded.reshape(t, ch * factor, cw, factor).sum(axis=3, dtype=np.float64)
            sums[:, band] = partial.reshape(t, ch, factor, cw).sum(axis=2)
    weight = np.zeros((t, ch * factor, cw * factor), np.int32)
    weight[:, :h, :w] = valid
    counts = weight.reshape(t, ch, factor, cw * factor).sum(axis=2).reshape(t, ch, cw, factor).sum(axis=3)
    return sums, counts


def cell_means(sums: np.ndarray, counts: np.ndarray, radiometry) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance ``(t, cells_h, cells_w, b)`` as the mean of the valid pixels of each cell.

    The radiometry is linear, so it is applied to the cells' mean raw values: the 10 m work is
    the cell sums of the raw values.
    """
    coarse_valid = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    t, b, ch, cw = sums.shape
    reflectance = np.zeros((t, ch, cw, b), np.float32)
    shifted = (means + radiometry.shift) / radiometry.divisor
    reflectance[:] = np.where(coarse_valid[:, None], shifted, 0.0).transpose(0, 2, 3, 1)
    return reflectance, coarse_valid


def upsample(coarse: np.ndarray, factor: int, block: Block, grid: Grid, first_cells: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of coarse cell values (``coarse`` holds the cells from
    ``first_cells``, row and column) back to the pixels of the block's read window, in the
    raster's global coordinates (so any block gives the same values); missing cells are skipped.

    Separable: rows first on the coarse columns (small), then columns at full resolution, for
    both the weighted values and the weights of the present cells (their ratio is the value).
    """
    rows = axis_weights(block.read_row, block.read_height, factor, grid.height, first_cells[0], coarse.shape[1])
    cols = axis_weights(block.read_col, block.read_width, factor, grid.width, first_cells[1], coarse.shape[2])
    (r0, r1, wr), (c0, c1, wc) = rows, cols
    present = np.isfinite(coarse).astype(np.float32)
    values = np.nan_to_num(coarse, nan=0.0).astype(np.float32)
    wr1 = wr.astype(np.float32)[None, :, None]
    wr0 = np.float32(1.0) - wr1
    wc1 = wc.astype(np.float32)
    wc0 = np.float32(1.0) - wc1
    by_rows = values[:, r0] * wr0 + values[:, r1] * wr1
    present_rows = present[:, r0] * wr0 + present[:, r1] * wr1
    compiled = kernels()
    if compiled is not None:  # the same float32 operations in one pass
        total = np.empty(by_rows.shape[:2] + (c0.size,), np.float32)
        compiled.bilinear_columns(by_rows, present_rows, c0, c1, wc0, wc1, total)
        return total
    total = by_rows[:, :, c0] * wc0
    total += by_rows[:, :, c1] * wc1
    weight = present_rows[:, :, c0] * wc0
    weight += present_rows[:, :, c1] * wc1
    with np.errstate(invalid="ignore", divide="ignore"):
        total /= weight
    total[weight <= 0] = np.nan
    return total


def axis_weights(start: int, length: int, factor: int, size: int, first_cell: int, cells: int):
    """For pixels ``start .. start+length`` of a raster axis of ``size`` pixels: the two
    neighbouring coarse cells (indices into the ``cells`` held, from ``first_cell``) and the
    weight of the second."""
    global_cells = math.ceil(size / factor)
    centre = (np.arange(start, start + length) + 0.5) / factor - 0.5
    low = np.floor(centre)
    weight = centre - low
    low = low.astype(int)
    high = np.clip(low + 1, 0, global_cells - 1)
    low = np.clip(low, 0, global_cells - 1)
    # the caller holds the owned pixels' neighbours; pixels near a halo's edge (blocks read with
    # a halo) fall back to the nearest cell held
    local_low = np.clip(low - first_cell, 0, cells - 1)
    local_high = np.clip(high - first_cell, 0, cells - 1)
    return local_low, local_high, weight
