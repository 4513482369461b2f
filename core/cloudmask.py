"""Cloud probabilities and masks with the s2cloudless model, block by block.

The model (a LightGBM booster shipped in the s2cloudless package) gives a cloud probability per
pixel from 10 L1C bands; the mask is s2cloudless's post-processing: the probability averaged
over a disk of ``average_over`` pixels, thresholded, then dilated by a disk of
``dilation_size`` pixels. Each block's mask is made with a ring of pixels wide enough for those
disks, so the result does not depend on the block size.

With ``processing_resolution`` coarser than the stack (e.g. 40 m on a 10 m stack) the bands are
averaged onto a grid ``factor`` times coarser, the model runs there (``factor**2`` fewer
pixels), and the probabilities come back to the stack's grid by bilinear interpolation, as
Sentinel Hub's cloud service does at 160 m; the mask is then made at full resolution. The
coarse cells of the whole raster are then made a group of dates at a time (every tile decoded
once, the model run on a group's cells at once); at 10 m, or when the raster's coarse grid does
not fit the budget, blocks are read with a halo and modelled one by one. Both give the same
values bit for bit.
"""

from __future__ import annotations

import importlib.util
import json
import math
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .atomic import atomic_outputs
from .blocks import Block, WriteBehind, default_budget_bytes, iter_blocks, read_ahead
from .coarsegrid import cell_means, cells_around, upsample, valid_pixels_and_cells
from .limits import MAX_CLOUD_RADIUS, check_range
from .progress import Progress, ensure_progress
from .sentinel2 import (
    S2CLOUDLESS_BANDS,
    Radiometry,
    find_bands,
    radiometry_for,
    radiometry_from_scale,
    stack_radiometry,
)
from .timestack import Grid, StackInfo, StackReader, StackWriter, bounded_gdal_cache, open_stack
from .treepredict import TreeEnsemble, sigmoid

MODEL_FILE = "pixel_s2_cloud_detector_lightGBM_v0.1.txt"
#: Side of the blocks aimed at (groups of dates are sized to fit it in the budget).
BLOCK_SIDE = 512
MASK_NODATA = 255
TAG_VALID_FRACTION = "EOLULC_VALID_FRACTION"
TAG_CLOUD_FRACTION = "EOLULC_CLOUD_FRACTION"
TAG_SETTINGS = "EOLULC_CLOUDMASK_SETTINGS"
#: Default processing resolution in metres, as Sentinel Hub's cloud service; see the README's
#: cloud-mask figures for why (1000 x 1000 x 68 in about 33 s; 40 m takes 112 s).
DEFAULT_PROCESSING_RESOLUTION = 160.0
#: Groups of dates a coarse-grid run aims at: the model of one group runs while the next is
#: read, and the model's batches are a group's cells (LightGBM's predict costs ~40 % more per
#: row on 4,000 rows than on 64,000).
DATE_GROUPS = 4



def model_path() -> Path:
    """The model file shipped with s2cloudless, found without importing the package (its
    ``__init__`` pulls in sentinelhub, which is slow and not needed here)."""
    spec = importlib.util.find_spec("s2cloudless")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the Python package s2cloudless is not installed; it holds the cloud model")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE
    if not path.is_file():
        raise ValueError(f"the s2cloudless model file is missing: {path}")
    return path


def disk(radius: int) -> np.ndarray:
    """s2cloudless's disk structuring element (``cv2.circle`` filled, as skimage's disk)."""
    import cv2

    return cv2.circle(np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8), (radius, radius), radius, 1, -1)


def check_radius(name: str, radius: int, grid: Grid) -> None:
    """Refuse a disk wider than the raster: it would only blur every pixel into one value."""
    side = max(grid.width, grid.height)
    if radius >= side:
        raise ValueError(f"{name} = {radius} px is a disk wider than the raster ({grid.width} x {grid.height} px); "
                         f"use a radius below {side}")


@dataclass
class CloudMaskResult:
    radiometry: Radiometry
    factor: int
    valid_fraction: list[float] = field(default_factory=list)
    cloud_fraction: list[float] = field(default_factory=list)


class CloudDetector:
    """s2cloudless cloud detection over a time stack.

    Settings (s2cloudless's meaning): ``threshold`` on the averaged probability, ``average_over``
    and ``dilation_size`` disk radii in pixels of the stack (0 turns a step off),
    ``processing_resolution`` in metres (``None`` or the stack's own = native),
    ``value_scale`` one of :data:`~.sentinel2.VALUE_SCALES`.
    """

    def __init__(
        self,
        threshold: float = 0.4,
        average_over: int = 4,
        dilation_size: int = 2,
        processing_resolution: float | None = DEFAULT_PROCESSING_RESOLUTION,
        value_scale: str = "auto",
        threads: int | None = None,
        budget_bytes: int | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"the threshold {threshold} must be between 0 and 1")
        check_range("average_over", average_over, 0, MAX_CLOUD_RADIUS, "a radius in pixels (s2cloudless: 22 at 10 m)")
        check_range("dilation_size", dilation_size, 0, MAX_CLOUD_RADIUS, "a radius in pixels (s2cloudless: 11 at 10 m)")
        self.threshold = float(threshold)
        self.average_over = int(average_over)
        self.dilation_size = int(dilation_size)
        self.processing_resolution = processing_resolution
        self.forced_radiometry = radiometry_for(value_scale)
        self.value_scale = value_scale
        self.threads = threads
        self.budget_bytes = budget_bytes
        self._model: TreeEnsemble | None = None

    # -- model -----------------------------------------------------------------------------
    @property
    def model(self) -> TreeEnsemble:
        if self._model is None:
            self._model = TreeEnsemble.from_file(str(model_path()), self.threads)
        return self._model

    def probabilities(self, reflectance: np.ndarray) -> np.ndarray:
        """Cloud probability of ``(n, 10)`` float32 reflectance rows, equal to s2cloudless's
        (same model, evaluated cache-friendly by :mod:`.treepredict`)."""
        return sigmoid(self.model.raw_scores(reflectance)).astype(np.float32)

    # -- post-processing -------------------------------------------------------------------
    def mask_from_probabilities(self, probability: np.ndarray) -> np.ndarray:
        """s2cloudless's mask of ``(time, h, w)`` probabilities (NaN counts as clear)."""
        import cv2

        filled = np.nan_to_num(probability, nan=0.0).astype(np.float32, copy=False)
        masks = np.empty(filled.shape, np.uint8)
        conv = disk(self.average_over).astype(np.float64) if self.average_over else None
        if conv is not None:
            conv /= conv.sum()
        dilation = disk(self.dilation_size) if self.dilation_size else None
        for t, frame in enumerate(filled):
            if conv is not None:
                frame = cv2.filter2D(frame, -1, conv, borderType=cv2.BORDER_REFLECT)
            mask = (frame > self.threshold).astype(np.uint8)
            if dilation is not None:
                mask = cv2.dilate(mask, dilation)
            masks[t] = mask
        return masks

    # -- the step --------------------------------------------------------------------------
    def factor_for(self, info: StackInfo) -> int:
        """How many stack pixels make one processing pixel along each axis."""
        native = min(info.grid.resolution)
        if not self.processing_resolution or self.processing_resolution <= native * 1.0001:
            return 1
        return max(1, int(round(self.processing_resolution / native)))

    def radiometry(self, reader, band_indices: list[int], progress: Progress) -> Radiometry:
        info = reader.info
        if self.forced_radiometry is not None:
            return self.forced_radiometry
        scales = {(info.scales[i], info.offsets[i]) for i in band_indices}
        if len(scales) > 1:
            raise ValueError("the cloud bands have different scale/offset metadata; set the value scale by hand")
        scale, offset = scales.pop()
        if (scale, offset) != (1.0, 0.0):
            return radiometry_from_scale(scale, offset)
        return stack_radiometry(reader, band_indices, band_indices[S2CLOUDLESS_BANDS.index("B10")])

    @bounded_gdal_cache()
    def run(
        self,
        input_path: str,
        output_probability: str | Path | None = None,
        output_mask: str | Path | None = None,
        progress: Progress | None = None,
    ) -> CloudMaskResult:
        """Write the probability and/or mask stacks of ``input_path``; all outputs or none."""
        progress = ensure_progress(progress)
        if output_probability is None and output_mask is None:
            raise ValueError("choose at least one output (probabilities or mask)")
        with open_stack(str(input_path)) as reader:
            info = reader.info
            if not info.is_dated:
                raise ValueError(
                    f"'{input_path}' is not a time stack: its bands carry no acquisition dates. "
                    "Build one with 'Build time stack from per-date rasters' or 'Import eo-learn EOPatch'"
                )
            check_radius("average_over", self.average_over, info.grid)
            check_radius("dilation_size", self.dilation_size, info.grid)
            band_indices = find_bands(info.bands, S2CLOUDLESS_BANDS,
                                      "all 13 L1C bands or the 10 the s2cloudless model uses")
            radiometry = self.radiometry(reader, band_indices, progress)
            progress.log(f"Values: {radiometry.reason}.")
            factor = self.factor_for(info)
            if factor > 1:
                res = min(info.grid.resolution)
                progress.log(f"Running the model on a {factor}x coarser grid ({factor * res:g} m).")
            result = CloudMaskResult(radiometry=radiometry, factor=factor)
            self._process(reader, band_indices, factor, result, output_probability, output_mask, progress)
        return result

    def halo(self, factor: int) -> int:
        """Pixels a window needs around it so its mask equals the whole stack's: the averaging and
        dilation disks, two coarse cells for the bilinear upsampling, in whole coarse cells."""
        halo = self.average_over + self.dilation_size + (2 * factor if factor > 1 else 0)
        return factor * math.ceil(halo / factor)

    def _process(self, reader, band_indices, factor, result, output_probability, output_mask, progress) -> None:
        info = reader.info
        grid = info.grid
        n_dates = info.n_dates
        settings = json.dumps({
            "threshold": self.threshold, "average_over": self.average_over, "dilation_size": self.dilation_size,
            "processing_resolution_m": factor * min(grid.resolution), "radiometry": result.radiometry.reason,
        })
        probability_info = StackInfo(grid=grid, dates=info.dates, bands=("CLP",), dtype="float32",
                                     nodata=float("nan"), tags={TAG_SETTINGS: settings})
        mask_info = StackInfo(grid=grid, dates=info.dates, bands=("CLM",), dtype="uint8",
                              nodata=MASK_NODATA, tags={TAG_SETTINGS: settings})
        valid_counts = np.zeros(n_dates, np.int64)
        cloud_counts = np.zeros(n_dates, np.int64)
        groups = self.date_groups(info, len(band_indices), factor)
        with atomic_outputs([output_probability, output_mask]) as (prob_path, mask_path):
            writers = []
            try:
                prob_writer = StackWriter(str(prob_path), probability_info) if prob_path else None
                writers.append(prob_writer)
                mask_writer = StackWriter(str(mask_path), mask_info) if mask_path else None
                writers.append(mask_writer)

                def finish(block: Block, dates: list[int], valid: np.ndarray, probability: np.ndarray,
                           first_cells: tuple[int, int]) -> None:
                    """Upsampling, mask, counts and writing of a block's owned pixels (``valid``),
                    from the probabilities of its read window (with ``factor`` > 1 coarse cells
                    from ``first_cells``); runs in the background while the model works on the
                    next part (these steps are single-threaded, the model is not)."""
                    if factor > 1:
                        probability = upsample(probability, factor, block, grid, first_cells)
                    rows, cols = block.inner
                    mask = self.mask_from_probabilities(probability)[:, rows, cols]
                    valid_counts[dates] += np.count_nonzero(valid & (mask == 0), axis=(1, 2))
                    cloud_counts[dates] += np.count_nonzero(valid & (mask == 1), axis=(1, 2))
                    if prob_writer is not None:
                        inner = np.where(valid, probability[:, rows, cols], np.float32(np.nan))
                        prob_writer.write(inner[..., None], block.window, dates=dates)
                    if mask_writer is not None:
                        mask_writer.write(np.where(valid, mask, np.uint8(MASK_NODATA))[..., None], block.window,
                                          dates=dates)

                if groups is None:
                    self._by_blocks(reader, band_indices, factor, result.radiometry, finish, progress)
                else:
                    self._by_date_groups(reader, band_indices, factor, result.radiometry, groups, finish, progress)
                pixels = grid.width * grid.height
                result.valid_fraction = [float(c) / pixels for c in valid_counts]
                result.cloud_fraction = [float(c) / pixels for c in cloud_counts]
                if mask_writer is not None:
                    mask_writer.set_tags({
                        TAG_VALID_FRACTION: json.dumps([round(v, 6) for v in result.valid_fraction]),
                        TAG_CLOUD_FRACTION: json.dumps([round(v, 6) for v in result.cloud_fraction]),
                    })
            finally:
                for writer in writers:
                    if writer is not None:
                        writer.close()

    def date_groups(self, info: StackInfo, n_bands: int, factor: int) -> DateGroups | None:
        """How :meth:`_by_date_groups` walks the stack within the budget, or None where it cannot
        (no coarser grid, or one date of the whole coarse grid does not fit the budget)."""
        if factor <= 1:
            return None
        height, width, n_dates = info.grid.height, info.grid.width, info.n_dates
        cells = math.ceil(height / factor) * math.ceil(width / factor)
        # per date, whole raster, twice (a group is filled while the last one is modelled): the
        # cells' reflectance and its copy for the model, raw scores, probabilities, flags; the
        # valid pixels' bits
        state = 2 * (cells * (2 * n_bands * 4 + 8 + 4 + 2) + height * math.ceil(width / 8))
        # per pixel and date of a block: raw values twice (the next block is read meanwhile),
        # validity, the finishing of a block (upsampling, mask, output copies)
        per_pixel = n_bands * np.dtype(info.dtype).itemsize * 2 + 1 + 40
        budget = self.budget_bytes or default_budget_bytes()
        smallest_block = min(height * width, (4 * factor) ** 2)  # 4 x 4 cells
        fitting = budget // (state + per_pixel * smallest_block)
        if fitting < 1:
            return None
        size = int(min(fitting, math.ceil(n_dates / DATE_GROUPS)))
        groups = _date_chunks(n_dates, size)
        # the first group is read before any model runs, the last one is finished after all
        # reading: halved, so less of the run has one stage alone
        ends = [_halves(groups[0])] + ([groups[1:-1], _halves(groups[-1])] if len(groups) > 1 else [])
        return DateGroups(dates=[g for part in ends for g in part], block_bytes_per_pixel=size * per_pixel,
                          block_budget=budget - size * state)

    def _by_blocks(self, reader: StackReader, band_indices: list[int], factor: int, radiometry: Radiometry,
                   finish: Finish, progress: Progress) -> None:
        """Blocks read with a halo wide enough for the upsampling and the mask's disks, the model
        on each block's own pixels or cells: for native processing, or a coarse grid too large
        for the budget."""
        info = reader.info
        grid = info.grid
        n_dates = info.n_dates
        halo = self.halo(factor)
        # per date: raw bands (twice: the next part is read meanwhile), float32 reflectance (10 m
        # processing) or cell sums, probabilities, upsampling weights, masks and the output copies;
        # the last part's upsampling and mask (in the background) overlap the model on this one
        per_date = len(band_indices) * (2 * np.dtype(info.dtype).itemsize + 8) + 90
        # dates are independent: a block holds a group of dates, so blocks stay wide (the halo is
        # read again for every block; narrow blocks of all 68 dates read the data several times)
        budget = self.budget_bytes or default_budget_bytes()
        side = BLOCK_SIDE + 2 * halo
        group = int(max(1, min(n_dates, budget // (per_date * side * side))))
        date_groups = _date_chunks(n_dates, group)
        blocks = iter_blocks(grid.height, grid.width, per_date * group, self.budget_bytes, halo=halo,
                             progress=progress, multiple_of=factor)
        parts = ((block, dates) for block in blocks for dates in date_groups)

        def read(part: tuple[Block, list[int]]) -> np.ndarray:
            block, dates = part
            return reader.read(block.read_window, dates=dates, bands=band_indices)

        # the next part is read and the last one finished while this one is computed
        with closing(read_ahead(parts, read)) as parts_read, WriteBehind() as behind:
            for (block, dates), raw in parts_read:
                progress.check()
                valid, cells = valid_pixels_and_cells(raw, info.nodata, factor)
                probability = self._block_probability(raw, valid, cells, radiometry, factor)
                del raw
                rows, cols = block.inner
                behind.submit(finish, block, dates, valid[:, rows, cols], probability,
                              (block.read_row // factor, block.read_col // factor))
                del valid, probability

    def _by_date_groups(self, reader: StackReader, band_indices: list[int], factor: int, radiometry: Radiometry,
                        groups: DateGroups, finish: Finish, progress: Progress) -> None:
        """The coarse grid of the whole raster, a group of dates at a time: blocks are read
        without a halo (each tile is decoded once) and reduced to their cells' means; the model
        runs once per group on all its cells (big batches are cheaper per row); then each block
        is finished from the group's probabilities, with a ring of pixels around it for the
        mask's disks. The next group is read while the last one is modelled and finished."""
        info = reader.info
        grid = info.grid
        n_cells = math.ceil(grid.height / factor), math.ceil(grid.width / factor)
        ring = self.average_over + self.dilation_size

        def parts() -> Iterator[tuple[Block, list[int]]]:
            done = 0
            for dates in groups.dates:
                share = progress.scaled(done / info.n_dates, (done + len(dates)) / info.n_dates)
                done += len(dates)
                for block in iter_blocks(grid.height, grid.width, groups.block_bytes_per_pixel, groups.block_budget,
                                         progress=share, multiple_of=factor):
                    yield block, dates

        def read(part: tuple[Block, list[int]]) -> np.ndarray:
            block, dates = part
            return reader.read(block.window, dates=dates, bands=band_indices)

        def finish_group(dates: list[int], cells: np.ndarray, present: np.ndarray,
                         blocks: list[tuple[Block, np.ndarray]]) -> None:
            probability = self._probabilities_where(cells, present)
            for block, bits in blocks:
                progress.check()
                window = block.grown(ring, grid.height, grid.width)
                rows, cols = cells_around(window, factor, n_cells)
                valid = np.unpackbits(bits, axis=-1, count=block.width).view(bool)
                finish(window, dates, valid, probability[:, rows, cols], (rows.start, cols.start))

        model_path()  # a missing model is reported now, not after the first group
        with closing(read_ahead(parts(), read)) as parts_read, WriteBehind() as behind:
            behind.submit(lambda: self.model)  # loaded while the first group is read
            cells = present = None
            blocks: list[tuple[Block, np.ndarray]] = []
            for (block, dates), raw in parts_read:
                progress.check()
                if cells is None:
                    cells = np.zeros((len(dates),) + n_cells + (len(band_indices),), np.float32)
                    present = np.zeros((len(dates),) + n_cells, bool)
                valid, sums_counts = valid_pixels_and_cells(raw, info.nodata, factor)
                del raw
                means, block_present = cell_means(*sums_counts, radiometry)
                rows = slice(block.row // factor, block.row // factor + means.shape[1])
                cols = slice(block.col // factor, block.col // factor + means.shape[2])
                cells[:, rows, cols] = means
                present[:, rows, cols] = block_present
                blocks.append((block, np.packbits(valid, axis=-1)))
                del valid, means, block_present
                if block.index == block.count - 1:
                    behind.submit(finish_group, dates, cells, present, blocks)
                    cells = present = None
                    blocks = []

    def _block_probability(self, raw, valid, cells, radiometry, factor) -> np.ndarray:
        """Probabilities of a block read with its halo (NaN where invalid), on the processing grid:
        ``(time, h, w)`` pixels, or with ``factor`` > 1 the coarse cells whose valid pixels' sums
        and counts are ``cells`` (upsampled afterwards, in the background)."""
        if factor == 1:
            return self._probabilities_where(radiometry.apply(raw), valid)
        return self._probabilities_where(*cell_means(*cells, radiometry))

    def _probabilities_where(self, reflectance: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Probabilities of the ``(..., 10)`` ``reflectance`` ``where`` true, NaN elsewhere."""
        probability = np.full(where.shape, np.nan, np.float32)
        probability[where] = self.probabilities(reflectance[where])
        return probability


#: Finishing a block: ``(block, dates, owned pixels' validity, probabilities of its read window,
#: first coarse cells of those probabilities)``.
Finish = Callable[[Block, list[int], np.ndarray, np.ndarray, tuple[int, int]], None]


@dataclass(frozen=True)
class DateGroups:
    """The groups of date indices, and the bytes per pixel and budget of a group's blocks."""

    dates: list[list[int]]
    block_bytes_per_pixel: int
    block_budget: int


def _date_chunks(n_dates: int, size: int) -> list[list[int]]:
    return [list(range(start, min(n_dates, start + size))) for start in range(0, n_dates, size)]


def _halves(dates: list[int]) -> list[list[int]]:
    half = len(dates) // 2
    return [dates[:half], dates[half:]] if half else [dates]
