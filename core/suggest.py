"""Where to label next (active learning, as sits's ``sits_uncertainty_sampling``), and the labelled
points coming back into training.

Labels are expensive; the pixels the classifier is least sure of teach it most. The suggestions
are the most uncertain pixels of a probability stack, spread out (no two closer than a minimum
distance: neighbours would teach the same thing twice) and stratified by predicted class (each
predicted class gets an equal share of the points, so rare classes get labels too; shares a class
cannot fill go to the others). The raster is read block by block and only the most uncertain
pixel of each predicted class per cell of ``min_distance`` pixels is kept as a candidate, so
memory stays bounded; a greedy pass over the candidates, most uncertain first, then applies the
distance and the shares. Ties are broken by a hash of the pixel's position and the seed, so the
result does not depend on the block size.

The user labels the points (an integer class id in their ``label`` field; empty = not labelled)
and gives them to training with the reference: each labelled point trains the pixel it falls in,
not eroded, not sampled, always kept, except near the held-out test part (a training pixel next
to a test pixel would share its spectrum and inflate the test accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .blocks import iter_blocks
from .limits import check_range
from .probstack import describe_probabilities
from .progress import Progress, ensure_progress
from .timestack import Grid, bounded_gdal_cache, open_stack
from .uncertainty import uncertainty

MAX_POINTS = 100_000
MAX_DISTANCE = 10_000
#: Field names of a suggestion layer.
FIELDS = ("class_id", "class_name", "probability", "uncertainty", "label")
LABEL_FIELD = "label"


@dataclass(frozen=True)
class Suggestion:
    row: int
    col: int
    x: float
    y: float
    class_id: int
    class_name: str
    probability: float
    uncertainty: float


def _tiebreak(flat: np.ndarray, seed: int) -> np.ndarray:
    """A pseudo-random number per pixel from its position and the seed (splitmix64's mixer)."""
    z = (flat.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _best_per_key(keys: np.ndarray, unc: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Indices of the most uncertain entry of each key (ties by ``ties``)."""
    order = np.lexsort((ties, -unc, keys))
    sorted_keys = keys[order]
    first = np.ones(order.size, bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return order[first]


@bounded_gdal_cache()
def suggest_samples(probabilities_path: str | Path, n: int = 100, min_distance: float = 10.0,
                    measure: str = "entropy", min_uncertainty: float = 0.0, seed: int = 0,
                    progress: Progress | None = None, budget_bytes: int | None = None) -> list[Suggestion]:
    """Up to ``n`` suggestions (fewer when the stack has fewer pixels that are uncertain enough
    and far enough apart); ``min_distance`` in pixels."""
    check_range("the number of points", n, 1, MAX_POINTS)
    check_range("the minimum distance", min_distance, 0, MAX_DISTANCE, "in pixels")
    if not 0.0 <= min_uncertainty <= 1.0:
        raise ValueError(f"the minimum uncertainty must be from 0 to 1, not {min_uncertainty}")
    progress = ensure_progress(progress)
    stack = describe_probabilities(probabilities_path)
    ids = np.asarray(stack.class_ids)
    grid = stack.info.grid
    cell = max(1, int(np.ceil(min_distance)))
    cells_across = -(-grid.width // cell)
    kept: list[tuple[np.ndarray, ...]] = []
    with open_stack(str(probabilities_path)) as reader:
        for block in iter_blocks(grid.height, grid.width, ids.size * 24 + 48, budget_bytes, progress=progress):
            values = stack.read(reader, block.window)
            unc = uncertainty(values, measure).ravel()
            filled = np.nan_to_num(values, nan=-1.0).reshape(-1, ids.size)
            best = np.argmax(filled, axis=1)
            rows, cols = np.divmod(np.arange(unc.size), block.width)
            rows, cols = rows + block.row, cols + block.col
            valid = ~np.isnan(unc) & (unc >= min_uncertainty)
            if not valid.any():
                continue
            rows, cols, best, unc = rows[valid], cols[valid], best[valid], unc[valid]
            probability = filled[valid, best]
            flat = rows.astype(np.int64) * grid.width + cols
            ties = _tiebreak(flat, seed)
            keys = ((rows // cell) * cells_across + cols // cell) * ids.size + best
            chosen = _best_per_key(keys, unc, ties)
            kept.append(tuple(a[chosen] for a in (keys, unc, ties, rows, cols, best, probability)))
    if not kept:
        return []
    keys, unc, ties, rows, cols, best, probability = (np.concatenate(parts) for parts in zip(*kept))
    chosen = _best_per_key(keys, unc, ties)  # cells straddling blocks
    keys, unc, ties, rows, cols, best, probability = (a[chosen] for a in (keys, unc, ties, rows, cols, best,
                                                                           probability))
    order = np.lexsort((ties, -unc))
    picked = _greedy(rows[order], cols[order], best[order], n, min_distance, ids.size)
    a, b, c, d, e, f = grid.transform
    suggestions = []
    for i in order[picked]:
        x = a * (cols[i] + 0.5) + b * (rows[i] + 0.5) + c
        y = d * (cols[i] + 0.5) + e * (rows[i] + 0.5) + f
        class_id = int(ids[best[i]])
        suggestions.append(Suggestion(int(rows[i]), int(cols[i]), float(x), float(y), class_id,
                                      stack.legend.name(class_id), round(float(probability[i]), 4),
                                      round(float(unc[i]), 4)))
    return suggestions


def _greedy(rows: np.ndarray, cols: np.ndarray, classes: np.ndarray, n: int, min_distance: float,
            n_classes: int) -> list[int]:
    """Indices (into the given order, most uncertain first) of the accepted candidates: equal
    shares per class in a first pass, the remaining places to any class in a second."""
    present, available = np.unique(classes, return_counts=True)
    shares = dict.fromkeys(present.tolist(), 0)
    left = n
    pending = sorted(present.tolist(), key=lambda c: available[present == c][0])
    while pending and left > 0:  # equal shares; a class with fewer candidates leaves the rest to others
        share = left // len(pending) or 1
        c = pending.pop(0)
        shares[c] = min(share, int(available[present == c][0]), left)
        left -= shares[c]
    grid: dict[tuple[int, int], list[tuple[int, int]]] = {}
    size = max(float(min_distance), 1.0)
    accepted: list[int] = []
    taken = np.zeros(rows.size, bool)

    def far_enough(r: int, c: int) -> bool:
        if min_distance <= 0:
            return True
        key = (int(r // size), int(c // size))
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                for rr, cc in grid.get((key[0] + dr, key[1] + dc), ()):
                    if (rr - r) ** 2 + (cc - c) ** 2 < min_distance ** 2:
                        return False
        return True

    for quota_pass in (True, False):
        for i in range(rows.size):
            if len(accepted) >= n:
                return accepted
            r, c, k = int(rows[i]), int(cols[i]), int(classes[i])
            if taken[i] or (quota_pass and shares.get(k, 0) <= 0) or not far_enough(r, c):
                continue
            taken[i] = True
            accepted.append(i)
            if quota_pass:
                shares[k] -= 1
            grid.setdefault((int(r // size), int(c // size)), []).append((r, c))
    return accepted


def write_suggestions(path: str | Path, suggestions: Sequence[Suggestion], crs_wkt: str | None,
                      labels: Sequence[int | None] | None = None) -> Path:
    """The suggestions as a GeoPackage point layer (the processing algorithm writes to QGIS's
    sink instead); ``labels`` fills the label field (tests and scripts that label from a map)."""
    from osgeo import ogr, osr

    path = Path(path)
    driver = ogr.GetDriverByName("GPKG")
    if path.exists():
        driver.DeleteDataSource(str(path))
    source = driver.CreateDataSource(str(path))
    srs = None
    if crs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs_wkt)
    layer = source.CreateLayer("suggestions", srs, ogr.wkbPoint)
    for name, kind in zip(FIELDS, (ogr.OFTInteger, ogr.OFTString, ogr.OFTReal, ogr.OFTReal, ogr.OFTInteger)):
        layer.CreateField(ogr.FieldDefn(name, kind))
    for i, item in enumerate(suggestions):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("class_id", item.class_id)
        feature.SetField("class_name", item.class_name)
        feature.SetField("probability", item.probability)
        feature.SetField("uncertainty", item.uncertainty)
        if labels is not None and labels[i] is not None:
            feature.SetField(LABEL_FIELD, int(labels[i]))
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(item.x, item.y)
        feature.SetGeometry(point)
        layer.CreateFeature(feature)
    source = None
    return path


@dataclass
class LabelledPoints:
    """Labelled pixels given besides the reference: flat indices into the grid and class ids."""

    flat: np.ndarray
    classes: np.ndarray
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_xy(cls, grid: Grid, xs: Sequence[float], ys: Sequence[float],
                labels: Sequence[int | None]) -> LabelledPoints:
        """Points in the grid's CRS with their labels; unlabelled points (None) are ignored, and
        so are points outside the grid (with a note); several points in one pixel: the last."""
        from rasterio.transform import Affine

        notes: list[str] = []
        keep = [i for i, label in enumerate(labels) if label is not None]
        bad = sorted({int(labels[i]) for i in keep if not 0 < int(labels[i]) <= 65535})
        if bad:
            raise ValueError(f"point labels must be class ids from 1 to 65535; found {bad[:5]}")
        inverse = ~Affine(*grid.transform)
        flat, classes, outside = [], [], 0
        for i in keep:
            col, row = inverse * (float(xs[i]), float(ys[i]))
            r, c = int(np.floor(row)), int(np.floor(col))
            if not (0 <= r < grid.height and 0 <= c < grid.width):
                outside += 1
                continue
            flat.append(r * grid.width + c)
            classes.append(int(labels[i]))
        if outside:
            notes.append(f"{outside} labelled point(s) lie outside the features' grid and are not used.")
        if len(labels) > len(keep):
            notes.append(f"{len(labels) - len(keep)} point(s) have no label and are not used.")
        last = {f: k for f, k in zip(flat, classes)}
        return cls(np.asarray(list(last), np.int64), np.asarray(list(last.values()), np.int64), notes)


def add_points_to_plan(plan, points: LabelledPoints, width: int) -> None:
    """Labelled points join a training plan (``core.train.SamplePlan``): their pixels train with
    their labels, except those in or next to the held-out test part."""
    from .train import touching

    if points.flat.size == 0:
        plan.notes.extend(points.notes)
        return
    height = plan.classes.shape[0]
    test = np.zeros(height * width, bool)
    test[plan.test] = True
    near_test = touching(test.reshape(height, width)).ravel()[points.flat]
    usable = ~near_test
    plan.notes.extend(points.notes)
    if near_test.any():
        plan.notes.append(f"{int(near_test.sum())} labelled point(s) lie in or next to the held-out test part and "
                          "do not train (they would inflate the test accuracy).")
    flat, classes = points.flat[usable], points.classes[usable]
    plan.classes.flat[flat] = classes.astype(plan.classes.dtype)
    plan.train = np.union1d(plan.train, flat)
    plan.notes.append(f"{int(usable.sum())} labelled point(s) added to the training pixels"
                      + (f" (classes {sorted(set(classes.tolist()))})." if usable.any() else "."))
