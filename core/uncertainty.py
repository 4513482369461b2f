"""How unsure the classifier is at each pixel, from its class probabilities (as sits's
``sits_uncertainty``): where the map deserves a second look and where new labels help most.

Every measure runs from 0 (certain: one class has all the probability) to 1 (no idea), so the
three share one colour ramp and "higher = label here first":

- ``entropy``: Shannon entropy of the probabilities divided by its largest value, ``log(classes)``;
- ``margin``: 1 - (best - second best probability): two classes in a close race;
- ``least``: least confidence, 1 - the best probability.

Probabilities are divided by their sum first, so a smoothed stack (whose classes need not sum
to 1) is measured as a distribution too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_outputs
from .blocks import iter_blocks
from .probstack import BYTE_NODATA, describe_probabilities
from .progress import Progress, ensure_progress
from .ramps import HEAT, write_ramp_qml
from .timestack import StackInfo, StackWriter, bounded_gdal_cache, open_stack

MEASURES = ("entropy", "margin", "least")
MEASURE_LABELS = {"entropy": "entropy (normalised)", "margin": "margin: 1 - (best - second best)",
                  "least": "least confidence: 1 - best"}


def uncertainty(probabilities: np.ndarray, measure: str = "entropy") -> np.ndarray:
    """``(..., classes)`` probabilities (NaN = nodata) -> uncertainty in 0..1 (float32, NaN where
    there is no data)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown uncertainty measure {measure!r}; choose one of {', '.join(MEASURES)}")
    n = probabilities.shape[-1]
    if n < 2:
        raise ValueError("uncertainty needs the probabilities of two or more classes")
    p = np.clip(probabilities.astype(np.float64), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / p.sum(axis=-1, keepdims=True)
        if measure == "entropy":
            terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
            value = -terms.sum(axis=-1) / np.log(n)
        elif measure == "margin":
            top2 = -np.partition(-np.nan_to_num(p, nan=0.0), 1, axis=-1)[..., :2]
            value = 1.0 - (top2[..., 0] - top2[..., 1])
        else:
            value = 1.0 - np.nanmax(np.where(np.isnan(p), -np.inf, p), axis=-1)
    value = np.clip(value, 0.0, 1.0)
    value[np.isnan(p).any(axis=-1)] = np.nan
    return value.astype(np.float32)


@bounded_gdal_cache()
def uncertainty_map(probabilities_path: str | Path, output: str | Path, measure: str = "entropy",
                    progress: Progress | None = None, budget_bytes: int | None = None) -> dict:
    """Write the uncertainty of a probability stack: percent in bytes (0-100, nodata 255) for a
    byte stack, float32 0-1 (nodata NaN) for a float stack; styled with a continuous ramp.
    Returns the mean and the share of pixels above 0.5."""
    progress = ensure_progress(progress)
    stack = describe_probabilities(probabilities_path)
    uncertainty(np.full((1, len(stack.class_ids)), 1.0 / len(stack.class_ids)), measure)  # checks the measure
    grid = stack.info.grid
    as_float = stack.as_float
    info = StackInfo(grid=grid, dates=(None,), bands=(f"uncertainty ({measure})",),
                     dtype="float32" if as_float else "uint8", nodata=float("nan") if as_float else BYTE_NODATA,
                     tags={"EOLULC_UNCERTAINTY": measure})
    total = high = 0
    sum_value = 0.0
    bytes_per_pixel = len(stack.class_ids) * 24 + 16
    with atomic_outputs([output]) as (path,), open_stack(str(probabilities_path)) as reader, \
            StackWriter(str(path), info) as writer:
        for block in iter_blocks(grid.height, grid.width, bytes_per_pixel, budget_bytes, progress=progress):
            value = uncertainty(stack.read(reader, block.window), measure)
            valid = ~np.isnan(value)
            total += int(valid.sum())
            high += int((value[valid] > 0.5).sum())
            sum_value += float(value[valid].sum(dtype=np.float64))
            if as_float:
                out = value
            else:
                out = np.where(valid, np.round(100 * np.nan_to_num(value)), BYTE_NODATA).astype(np.uint8)
            writer.write(out[None, ..., None], block.window)
    write_ramp_qml(output, 0.0, 1.0 if as_float else 100.0, HEAT)
    return {"measure": measure, "pixels": total, "mean": sum_value / total if total else None,
            "share_above_half": high / total if total else None}
