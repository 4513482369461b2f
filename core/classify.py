"""Applying a trained model to feature stacks, block by block."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import iter_blocks, read_ahead
from .featureset import FeatureSet, compare_to_model
from .model import LulcModel, predict_probabilities
from .progress import Progress, ensure_progress
from .style import write_sidecar_qml
from .timestack import StackInfo, StackWriter, bounded_gdal_cache

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


@bounded_gdal_cache()
def classify(
    feature_paths: Sequence[str],
    model: LulcModel,
    output: str | Path,
    output_confidence: str | Path | None = None,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
    threads: int | None = None,
) -> ClassifyResult:
    """Write the class raster (model class ids, with a sidecar ``.qml`` of the model's legend) and
    optionally the confidence raster (probability of the chosen class, 0-100)."""
    progress = ensure_progress(progress)
    class_ids = np.asarray(model.class_ids)
    dtype, nodata = class_raster_type(model.class_ids)
    counts = np.zeros(class_ids.size, np.int64)
    ensemble = model.ensemble(threads)
    with FeatureSet(feature_paths) as features:
        compare_to_model(features, model.metadata["inputs"], model.feature_names)
        grid = features.grid
        class_info = StackInfo(grid=grid, dates=(None,), bands=("class",), dtype=dtype, nodata=nodata,
                               tags={"EOLULC_CLASSES": ",".join(str(c) for c in model.class_ids)})
        confidence_info = StackInfo(grid=grid, dates=(None,), bands=("confidence",), dtype="uint8",
                                    nodata=CONFIDENCE_NODATA)
        # rows twice (the next block is read while this one is predicted), scores and probabilities
        bytes_per_pixel = 2 * features.bytes_per_pixel() + class_ids.size * 24
        any_data = False
        with atomic_outputs([output, output_confidence]) as (class_path, confidence_path):
            writers = [StackWriter(str(class_path), class_info)]
            if confidence_path is not None:
                writers.append(StackWriter(str(confidence_path), confidence_info))
            try:
                blocks = iter_blocks(grid.height, grid.width, bytes_per_pixel, budget_bytes, progress=progress)
                # closing: the read thread must be done before the stacks are closed
                with closing(read_ahead(blocks, lambda b: features.read_rows(b.window))) as blocks_read:
                    for block, rows in blocks_read:
                        valid = ~np.all(np.isnan(rows), axis=1)
                        labels = np.full(rows.shape[0], nodata, dtype)
                        confidence = np.full(rows.shape[0], CONFIDENCE_NODATA, np.uint8)
                        if valid.any():
                            any_data = True
                            probabilities = predict_probabilities(ensemble, rows[valid])
                            best = np.argmax(probabilities, axis=1)
                            labels[valid] = class_ids[best]
                            chosen = probabilities[np.arange(best.size), best]
                            confidence[valid] = np.round(100 * chosen).astype(np.uint8)
                            counts += np.bincount(best, minlength=class_ids.size)
                        shape = (1, block.height, block.width, 1)
                        writers[0].write(labels.reshape(shape), block.window)
                        if len(writers) > 1:
                            writers[1].write(confidence.reshape(shape), block.window)
                if not any_data:
                    raise ValueError("the features hold only nodata: nothing to classify")
            finally:
                for writer in writers:
                    writer.close()
    write_sidecar_qml(output, model.legend.restricted(model.class_ids), nodata=nodata)
    return ClassifyResult(class_pixels={int(c): int(n) for c, n in zip(class_ids, counts)}, nodata=nodata, dtype=dtype)
