"""Bayesian spatial smoothing of class probabilities, the method of the R package sits
(``sits_smooth``; Camara et al., Remote Sensing 16(23), 4572, 2024), written anew with numpy.

A per-pixel classifier gives salt-and-pepper maps: a pixel's neighbours are most likely the same
class, but the classifier never sees them. For each class separately the probability becomes a
log-odds ``x = log(p / (sum(p) - p))``; the prior of a pixel's log-odds is a normal distribution
whose mean ``m`` and variance ``s`` are those of the highest ``NEIGHBOURHOOD_FRACTION`` of the
log-odds in its ``WINDOW_SIZE`` x ``WINDOW_SIZE`` window (the pixel included; nodata left out);
the classifier's value is a normal likelihood of variance ``SMOOTHNESS``; the posterior mean

    ``x' = w * x + (1 - w) * m``,  ``w = s / (s + smoothness)``

keeps confident, homogeneous pixels and pulls outliers towards their neighbourhood, while class
borders (where ``s`` is large) stay sharp. A window whose values barely vary (``s`` < 1e-4)
gives ``m``. Outside the raster the window is mirrored (as sits does). The smoothed probability
of a class is the inverse log-odds of ``x'`` (the classes' values then need not sum to 1: each
is its own estimate, as in sits); the class map takes the largest.

Differences from sits, on purpose: nodata pixels stay nodata (sits fills them with ``m``); a
window with a single value left has ``s`` = 0 (sits gives NaN); probabilities are clipped to
[1e-6, 1 - 1e-6] (sits replaces only exact 0 and 1).

The raster is smoothed block by block with a halo of ``WINDOW_SIZE // 2`` pixels, so memory is
bounded and the result does not depend on the block size. An optional minimum mapping unit then
merges regions of the class map smaller than N pixels into their largest neighbour (GDAL's
sieve filter).
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import iter_blocks
from .classify import CONFIDENCE_NODATA, class_raster_type
from .compiled import kernels
from .limits import check_range
from .probstack import describe_probabilities, encode, probability_stack_info
from .progress import Progress, ensure_progress
from .style import write_sidecar_qml
from .timestack import StackInfo, StackWriter, bounded_gdal_cache, open_stack

#: sits's defaults (``sits_smooth``), but a 5 px window rather than sits' 9: on 10 m pixels of the
#: real TestEOPatch, over 11 spatial splits, 5 px gained 0.5 points of overall accuracy and 9 px
#: none, losing 0.3 of weighted F1 (bench/train_quality.py)
DEFAULT_WINDOW = 5
DEFAULT_FRACTION = 0.5
DEFAULT_SMOOTHNESS = 20.0
MAX_WINDOW = 33
MAX_SMOOTHNESS = 1e6
MAX_MAPPING_UNIT = 1_000_000
#: Probabilities are clipped to [EPS, 1 - EPS] before the log-odds.
EPS = 1e-6
#: A prior variance below this is "no variation": the posterior is the prior mean (as in sits).
MIN_VARIANCE = 1e-4


@dataclass
class SmoothSettings:
    window_size: int = DEFAULT_WINDOW
    neighbourhood_fraction: float = DEFAULT_FRACTION
    #: the likelihood's variance: one value for every class, or one per class (the stack's order)
    smoothness: float | Sequence[float] = DEFAULT_SMOOTHNESS
    #: regions of the class map smaller than this many pixels are merged into a neighbour (0: none)
    min_mapping_unit: int = 0
    #: regions connect through corners too (8 neighbours) rather than edges only (4)
    eight_connected: bool = False

    def validate(self, n_classes: int | None = None) -> None:
        check_range("the window size", self.window_size, 3, MAX_WINDOW, "an odd number of pixels, 5 by default")
        if self.window_size % 2 == 0:
            raise ValueError(f"the window size must be odd (the pixel in its centre), not {self.window_size}")
        if not 0.0 < self.neighbourhood_fraction <= 1.0:
            raise ValueError(f"the neighbourhood fraction must be above 0 and at most 1, not "
                             f"{self.neighbourhood_fraction} (0.5 as in sits)")
        values = self.smoothness_values(n_classes) if n_classes else np.atleast_1d(self.smoothness)
        if not np.all((values > 0) & (values <= MAX_SMOOTHNESS)):
            raise ValueError(f"smoothness values must be above 0 and at most {MAX_SMOOTHNESS:g} (20 as in sits)")
        check_range("the minimum mapping unit", self.min_mapping_unit, 0, MAX_MAPPING_UNIT, "pixels; 0 = none")

    def smoothness_values(self, n_classes: int) -> np.ndarray:
        values = np.atleast_1d(np.asarray(self.smoothness, np.float64))
        if values.size == 1:
            return np.full(n_classes, values[0])
        if values.size != n_classes:
            raise ValueError(f"{values.size} smoothness values for {n_classes} classes: give one value, or one per "
                             "class in the probability stack's band order")
        return values

    def describe(self) -> dict:
        smoothness = np.atleast_1d(self.smoothness).tolist()
        return {"method": "Bayesian (sits)", "window_size": self.window_size,
                "neighbourhood_fraction": self.neighbourhood_fraction,
                "smoothness": smoothness[0] if len(smoothness) == 1 else smoothness,
                "min_mapping_unit": self.min_mapping_unit}


def parse_smoothness(text: str) -> float | list[float]:
    """``"20"`` or ``"10, 20, 40"`` (one per class) -> the smoothness setting."""
    parts = [p.strip() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"'{text}' is not a smoothness: write one number like 20, or one per class like "
                         "10, 20, 40") from None
    if not values:
        return DEFAULT_SMOOTHNESS
    return values[0] if len(values) == 1 else values


def log_odds(probabilities: np.ndarray) -> np.ndarray:
    """``(..., classes)`` probabilities -> log-odds of each class against the others (float64)."""
    p = np.clip(probabilities.astype(np.float64), EPS, 1.0 - EPS)
    return np.log(p / (p.sum(axis=-1, keepdims=True) - p))


def smooth_logits(padded: np.ndarray, window: int, fraction: float, smoothness: np.ndarray) -> np.ndarray:
    """The Bayesian posterior mean of the log-odds of a ``(h + 2 r, w + 2 r, classes)`` array
    holding ``r = window // 2`` pixels of neighbours (or mirror) around the ``(h, w)`` result;
    NaN is nodata. One class at a time keeps the window copies at ``window**2`` values a pixel."""
    from numpy.lib.stride_tricks import sliding_window_view

    r = window // 2
    h, w = padded.shape[0] - 2 * r, padded.shape[1] - 2 * r
    out = np.full((h, w, padded.shape[2]), np.nan)
    compiled = kernels()
    if compiled is not None:  # a selection per pixel, in threads over bands of rows (no GIL)
        planes = np.ascontiguousarray(padded.transpose(2, 0, 1), np.float64)
        weights = np.ascontiguousarray(smoothness, np.float64)
        bands = max(1, min(os.cpu_count() or 1, h // 16))
        edges = np.linspace(0, h, bands + 1).astype(int)

        def run(i: int) -> None:
            compiled.smooth_window_logits(planes, window, float(fraction), weights, MIN_VARIANCE, out,
                                          int(edges[i]), int(edges[i + 1]))

        if bands == 1:
            run(0)
        else:
            with ThreadPoolExecutor(bands, thread_name_prefix="eolulc-smooth") as pool:
                list(pool.map(run, range(bands)))
        return out
    n = window * window
    for c in range(padded.shape[2]):
        band = padded[..., c]
        values = sliding_window_view(band, (window, window)).reshape(h * w, n)
        centre = band[r:r + h, r:r + w].ravel()
        missing = np.isnan(values)
        if not missing.any():
            k = int(np.ceil(fraction * n))
            top = np.partition(values, n - k, axis=1)[:, n - k:]
            mean = top.mean(axis=1)
            variance = top.var(axis=1, ddof=1) if k > 1 else np.zeros(h * w)
        else:  # a varying number of values: sorted, the highest k of each pixel's valid ones
            counts = n - missing.sum(axis=1)
            k = np.ceil(fraction * counts).astype(np.int64)
            ranked = -np.sort(np.where(missing, np.inf, -values), axis=1)  # descending, nodata last
            taken = np.arange(n)[None, :] < k[:, None]
            kept = np.where(taken, ranked, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = kept.sum(axis=1) / k
                squares = np.where(taken, (ranked - mean[:, None]) ** 2, 0.0).sum(axis=1)
                variance = np.where(k > 1, squares / np.maximum(k - 1, 1), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = variance / (variance + smoothness[c])
            posterior = np.where(variance < MIN_VARIANCE, mean, weight * centre + (1.0 - weight) * mean)
        posterior[np.isnan(centre)] = np.nan
        out[..., c] = posterior.reshape(h, w)
    return out


def smooth_array(probabilities: np.ndarray, settings: SmoothSettings | None = None) -> np.ndarray:
    """Smoothed ``(h, w, classes)`` probabilities of a whole array in memory (NaN = nodata), for
    scripts and experiments; :func:`smooth_stack` does the same block by block on files."""
    settings = settings or SmoothSettings()
    settings.validate(probabilities.shape[-1])
    r = settings.window_size // 2
    padded = np.pad(log_odds(probabilities), ((r, r), (r, r), (0, 0)), mode="symmetric")
    return _probabilities(smooth_logits(padded, settings.window_size, settings.neighbourhood_fraction,
                                        settings.smoothness_values(probabilities.shape[-1])))


def _probabilities(logits: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


@dataclass
class SmoothResult:
    class_pixels: dict[int, int]
    #: pixels whose class the smoothing (and the minimum mapping unit) changed
    changed_pixels: int
    nodata: int
    dtype: str
    settings: dict = field(default_factory=dict)


@bounded_gdal_cache()
def smooth_stack(
    probabilities_path: str | Path,
    output: str | Path,
    output_probabilities: str | Path | None = None,
    output_confidence: str | Path | None = None,
    settings: SmoothSettings | None = None,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
) -> SmoothResult:
    """Smooth a probability stack (OUTPUT_PROBABILITIES of classification) into the class map
    ``output`` (class ids of the stack, styled with its legend) and optionally the smoothed
    probabilities (same type as the input) and the confidence (largest smoothed probability,
    0-100). All outputs or none."""
    settings = settings or SmoothSettings()
    progress = ensure_progress(progress)
    stack = describe_probabilities(probabilities_path)
    ids = np.asarray(stack.class_ids)
    settings.validate(ids.size)
    smoothness = settings.smoothness_values(ids.size)
    window, r = settings.window_size, settings.window_size // 2
    grid = stack.info.grid
    dtype, nodata = class_raster_type(stack.class_ids)
    class_info = StackInfo(grid=grid, dates=(None,), bands=("class",), dtype=dtype, nodata=nodata,
                           tags={"EOLULC_CLASSES": ",".join(str(c) for c in stack.class_ids),
                                 "EOLULC_SMOOTHING": str(settings.describe())})
    confidence_info = StackInfo(grid=grid, dates=(None,), bands=("confidence",), dtype="uint8",
                                nodata=CONFIDENCE_NODATA)
    out_info = probability_stack_info(grid, stack.class_ids, stack.legend, stack.as_float)
    # input, log-odds and posterior per class, and one class's window copies (with the sort's)
    bytes_per_pixel = ids.size * (4 + 8 + 8 + 8) + 3 * 8 * window * window + 16
    changed = 0
    sieve = settings.min_mapping_unit > 1
    with ExitStack() as stack_exit:
        paths = stack_exit.enter_context(atomic_outputs([output, output_probabilities, output_confidence]))
        class_path, probs_path, confidence_path = paths
        raw_path = class_path
        if sieve:  # the smoothed map is sieved into the output
            folder = stack_exit.enter_context(tempfile.TemporaryDirectory(dir=Path(class_path).parent,
                                                                          prefix=".eolulc-sieve-"))
            raw_path = Path(folder) / "smoothed.tif"
        with ExitStack() as writers:
            reader = writers.enter_context(open_stack(str(probabilities_path)))
            classes = writers.enter_context(closing(StackWriter(str(raw_path), class_info)))
            probs = writers.enter_context(closing(StackWriter(str(probs_path), out_info))) if probs_path else None
            confidence = (writers.enter_context(closing(StackWriter(str(confidence_path), confidence_info)))
                          if confidence_path else None)
            blocks = iter_blocks(grid.height, grid.width, bytes_per_pixel, budget_bytes, halo=r,
                                 progress=progress.scaled(0.0, 0.9 if sieve else 1.0))
            for block in blocks:
                values = stack.read(reader, block.read_window)
                padded = _pad_to_raster_edges(log_odds(values), block, r)
                smoothed = _probabilities(smooth_logits(padded, window, settings.neighbourhood_fraction, smoothness))
                missing = np.isnan(smoothed).any(axis=-1)
                best = np.argmax(np.nan_to_num(smoothed, nan=-1.0), axis=-1)
                labels = np.where(missing, nodata, ids[best]).astype(dtype)
                before = values[block.inner]
                before_best = np.argmax(np.nan_to_num(before, nan=-1.0), axis=-1)
                changed += int(((before_best != best) & ~missing).sum())
                shape = (1, block.height, block.width, 1)
                classes.write(labels.reshape(shape), block.window)
                if probs is not None:
                    probs.write(encode(smoothed, out_info), block.window)
                if confidence is not None:
                    top = np.where(missing, CONFIDENCE_NODATA, np.round(100 * np.nan_to_num(smoothed).max(axis=-1)))
                    confidence.write(top.astype(np.uint8).reshape(shape), block.window)
        if sieve:
            changed += sieve_classes(raw_path, class_path, class_info, settings.min_mapping_unit,
                                     settings.eight_connected)
        counts = count_classes(class_path, stack.class_ids, budget_bytes)
        progress.report(1.0)
    write_sidecar_qml(output, stack.legend, nodata=nodata)
    if output_probabilities:
        from .ramps import write_ramp_qml

        write_ramp_qml(output_probabilities, 0.0, 1.0 if stack.as_float else 100.0)
    if output_confidence:
        from .ramps import write_ramp_qml

        write_ramp_qml(output_confidence, 0.0, 100.0)
    return SmoothResult(class_pixels=counts, changed_pixels=changed, nodata=nodata, dtype=dtype,
                        settings=settings.describe())


def _pad_to_raster_edges(values: np.ndarray, block, r: int) -> np.ndarray:
    """The block's values read with their halo, mirrored where the halo falls outside the raster
    (where the read window was clipped), so the owned window has ``r`` pixels on every side."""
    top = r - (block.row - block.read_row)
    left = r - (block.col - block.read_col)
    bottom = r - (block.read_row + block.read_height - block.row - block.height)
    right = r - (block.read_col + block.read_width - block.col - block.width)
    if top or left or bottom or right:
        values = np.pad(values, ((top, bottom), (left, right), (0, 0)), mode="symmetric")
    return values


def sieve_classes(source: str | Path, output: str | Path, info: StackInfo, threshold: int,
                  eight_connected: bool = False) -> int:
    """Regions of the class raster ``source`` smaller than ``threshold`` pixels merged into their
    largest neighbour (GDAL's sieve filter, line by line), written to ``output`` with ``info``;
    nodata stays nodata. Returns how many pixels changed class."""
    from osgeo import gdal

    with StackWriter(str(output), info):
        pass  # the layout and metadata; GDAL fills the pixels
    src = gdal.Open(str(source))
    dst = gdal.Open(str(output), gdal.GA_Update)
    try:
        band = src.GetRasterBand(1)
        result = gdal.SieveFilter(band, band.GetMaskBand(), dst.GetRasterBand(1), int(threshold),
                                  8 if eight_connected else 4)
        if result != 0:
            raise ValueError(f"GDAL's sieve filter failed: {gdal.GetLastErrorMsg()}")
        dst.FlushCache()
    finally:
        dst = None
        src = None
    changed = 0
    with open_stack(str(source)) as before, open_stack(str(output)) as after:
        for block in iter_blocks(info.grid.height, info.grid.width, 8, None):
            changed += int((before.read(block.window) != after.read(block.window)).sum())
    return changed


def count_classes(path: str | Path, class_ids: Sequence[int], budget_bytes: int | None = None) -> dict[int, int]:
    """Pixels of each class in a class raster."""
    counts = {int(c): 0 for c in class_ids}
    with open_stack(str(path)) as reader:
        grid = reader.info.grid
        for block in iter_blocks(grid.height, grid.width, 8, budget_bytes):
            found, n = np.unique(reader.read(block.window), return_counts=True)
            for value, number in zip(found, n):
                if int(value) in counts:
                    counts[int(value)] += int(number)
    return counts
