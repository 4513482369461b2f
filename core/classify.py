"""Applying a trained model to feature stacks, block by block."""

from __future__ import annotations

from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import iter_blocks, read_ahead
from .featureset import FeatureSet, compare_to_model
from .model import LulcModel, predict_probabilities
from .probstack import encode, probability_stack_info
from .progress import Progress, ensure_progress
from .ramps import write_ramp_qml
from .style import write_sidecar_qml
from .timestack import Grid, StackInfo, StackWriter, Window, bounded_gdal_cache

CONFIDENCE_NODATA = 255


@dataclass
class ClassifyResult:
    class_pixels: dict[int, int]
    nodata: int
    dtype: str


def class_raster_type(class_ids: Sequence[int]) -> tuple[str, int]:
    """Byte when the ids allow, with 0 as nodata (eo-learn's "no data" class) unless 0 is a class
    of the model, then 255."""
    top = max(class_ids)
    if top <= 254:
        return "uint8", 255 if 0 in class_ids else 0
    if top <= 65534:
        return "uint16", 65535 if 0 in class_ids else 0
    raise ValueError(f"class id {top} is too large for a class raster")


class MapWriter:
    """Predicts feature rows block by block into the class raster (model class ids, with a
    sidecar ``.qml`` of the model's legend), optionally the confidence raster (probability of
    the chosen class, 0-100) and the class probabilities (:mod:`.probstack`, for smoothing,
    uncertainty and suggested samples): what :func:`classify` does with stacks on disk, and the pipeline
    with interpolated blocks that are never written. A context manager: all outputs or none.
    Features holding only nodata are an error unless ``allow_empty`` (a batch tile without data:
    an all-nodata map keeps its place in the mosaic)."""

    def __init__(self, model: LulcModel, grid: Grid, output: str | Path, output_confidence: str | Path | None = None,
                 threads: int | None = None, allow_empty: bool = False,
                 output_probabilities: str | Path | None = None, probabilities_float: bool = False) -> None:
        self.model, self.grid = model, grid
        self.output, self.output_confidence = output, output_confidence
        # the class probabilities (one band per class, see core.probstack), as predicted
        self.output_probabilities = output_probabilities
        self.probability_info = probability_stack_info(grid, model.class_ids, model.legend, probabilities_float)
        self.class_ids = np.asarray(model.class_ids)
        self.dtype, self.nodata = class_raster_type(model.class_ids)
        self.counts = np.zeros(self.class_ids.size, np.int64)
        self.ensemble = model.ensemble(threads)
        self.any_data = False
        self.allow_empty = allow_empty
        self._exit = ExitStack()
        self._writers: list[StackWriter] = []
        self._confidence: StackWriter | None = None
        self._probabilities: StackWriter | None = None

    def bytes_per_pixel(self) -> int:
        """Working memory of a pixel's prediction: raw scores, probabilities and the outputs."""
        return self.class_ids.size * (24 + (8 if self.output_probabilities else 0)) + 8

    def __enter__(self) -> MapWriter:
        class_info = StackInfo(grid=self.grid, dates=(None,), bands=("class",), dtype=self.dtype, nodata=self.nodata,
                               tags={"EOLULC_CLASSES": ",".join(str(c) for c in self.model.class_ids)})
        confidence_info = StackInfo(grid=self.grid, dates=(None,), bands=("confidence",), dtype="uint8",
                                    nodata=CONFIDENCE_NODATA)
        with ExitStack() as stack:
            class_path, confidence_path, probabilities_path = stack.enter_context(
                atomic_outputs([self.output, self.output_confidence, self.output_probabilities]))
            self._writers.append(stack.enter_context(closing(StackWriter(str(class_path), class_info))))
            if confidence_path is not None:
                self._confidence = stack.enter_context(closing(StackWriter(str(confidence_path), confidence_info)))
            if probabilities_path is not None:
                self._probabilities = stack.enter_context(closing(StackWriter(str(probabilities_path),
                                                                              self.probability_info)))
            self._exit = stack.pop_all()
        return self

    def write(self, window: Window, rows: np.ndarray) -> None:
        """Predict the ``(pixels, features)`` rows of ``window`` (row by row; all-NaN rows are nodata)."""
        valid = ~np.all(np.isnan(rows), axis=1)
        labels = np.full(rows.shape[0], self.nodata, self.dtype)
        confidence = np.full(rows.shape[0], CONFIDENCE_NODATA, np.uint8)
        stack = np.full((rows.shape[0], self.class_ids.size), np.nan, np.float32) if self._probabilities else None
        if valid.any():
            self.any_data = True
            probabilities = predict_probabilities(self.ensemble, rows if valid.all() else rows[valid])
            best = np.argmax(probabilities, axis=1)
            labels[valid] = self.class_ids[best]
            chosen = probabilities[np.arange(best.size), best]
            confidence[valid] = np.round(100 * chosen).astype(np.uint8)
            self.counts += np.bincount(best, minlength=self.class_ids.size)
            if stack is not None:
                stack[valid] = probabilities
        shape = (1, window[2], window[3], 1)
        self._writers[0].write(labels.reshape(shape), window)
        if self._confidence is not None:
            self._confidence.write(confidence.reshape(shape), window)
        if stack is not None:
            self._probabilities.write(encode(stack.reshape(window[2], window[3], -1), self.probability_info), window)

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        if exc_type is None and not self.any_data and not self.allow_empty:
            error = ValueError("the features hold only nodata: nothing to classify")
            self._exit.__exit__(ValueError, error, None)  # the outputs are discarded
            raise error
        self._exit.__exit__(exc_type, exc, traceback)
        if exc_type is None:
            write_sidecar_qml(self.output, self.model.legend.restricted(self.model.class_ids), nodata=self.nodata)
            if self.output_probabilities:
                top = 1.0 if self.probability_info.dtype == "float32" else 100.0
                write_ramp_qml(self.output_probabilities, 0.0, top)

    @property
    def result(self) -> ClassifyResult:
        return ClassifyResult(class_pixels={int(c): int(n) for c, n in zip(self.class_ids, self.counts)},
                              nodata=self.nodata, dtype=self.dtype)


@bounded_gdal_cache()
def classify(
    feature_paths: Sequence[str],
    model: LulcModel,
    output: str | Path,
    output_confidence: str | Path | None = None,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
    threads: int | None = None,
    allow_empty: bool = False,
    output_probabilities: str | Path | None = None,
    probabilities_float: bool = False,
) -> ClassifyResult:
    """Write the class raster and optionally the confidence raster and the class probabilities
    (byte percent, or float32 with ``probabilities_float``) of the stacks (see :class:`MapWriter`)."""
    progress = ensure_progress(progress)
    with FeatureSet(feature_paths) as features:
        compare_to_model(features, model.metadata["inputs"], model.feature_names)
        grid = features.grid
        with MapWriter(model, grid, output, output_confidence, threads, allow_empty, output_probabilities,
                       probabilities_float) as mapper:
            # rows twice (the next block is read while this one is predicted) and their prediction
            bytes_per_pixel = 2 * features.bytes_per_pixel() + mapper.bytes_per_pixel()
            blocks = iter_blocks(grid.height, grid.width, bytes_per_pixel, budget_bytes, progress=progress)
            # closing: the read thread must be done before the stacks are closed
            with closing(read_ahead(blocks, lambda b: features.read_rows(b.window))) as blocks_read:
                for block, rows in blocks_read:
                    mapper.write(block.window, rows)
    return mapper.result
