"""Accuracy of a class map against a reference: confusion matrix, OA, kappa, F1 and the
area-adjusted estimates of Olofsson et al. (2014).

Everything is computed from the confusion matrix, so a map of any size is assessed by adding up
per-block matrices (:func:`compare_raster`) without ever holding the map in memory. Results are
plain JSON-ready dicts: undefined ratios (a class never mapped has no precision) are ``None``,
never NaN, so the JSON is valid for every reader.

Conventions: confusion rows are the reference, columns the map. Per-class F1 is
``2 TP / (2 TP + FP + FN)`` and averages treat undefined values as 0, as scikit-learn does, so
figures can be compared with it.

Olofsson, P., Foody, G. M., Herold, M., Stehman, S. V., Woodcock, C. E., Wulder, M. A. (2014).
Good practices for estimating area and assessing accuracy of land change. Remote Sensing of
Environment 148, 42-57.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .blocks import iter_blocks
from .gdalerrors import open_raster, reading
from .legend import Legend
from .progress import Progress, ensure_progress
from .timestack import Grid, bounded_gdal_cache, window_text


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Counts (int64) with rows = reference ``y_true`` and columns = map ``y_pred`` in the order of
    ``labels``; pairs with a value outside ``labels`` are not counted."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"reference and map differ in size ({y_true.size} and {y_pred.size} values)")
    labels = np.asarray([int(v) for v in labels], dtype=np.int64)
    n = labels.size
    if n == 0:
        return np.zeros((0, 0), np.int64)
    order = np.argsort(labels)
    sorted_labels = labels[order]

    def index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = values.astype(np.int64, copy=False)
        pos = np.clip(np.searchsorted(sorted_labels, values), 0, n - 1)
        return order[pos], sorted_labels[pos] == values

    rows, row_ok = index(y_true)
    cols, col_ok = index(y_pred)
    ok = row_ok & col_ok
    flat = np.bincount(rows[ok] * n + cols[ok], minlength=n * n)
    return flat.reshape(n, n).astype(np.int64)


def assess(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    legend: Legend,
    map_pixel_counts: Mapping[int, int] | None = None,
    pixel_area_m2: float | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Accuracy of the map values ``y_pred`` against the reference ``y_true`` (same-size integer
    arrays of the compared pixels only: filter no data first).

    ``map_pixel_counts`` (class id -> pixels of that class in the whole map) adds the
    area-adjusted estimates, with the map classes as strata; ``pixel_area_m2`` adds hectares.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    labels = sorted({int(v) for v in np.unique(y_true)} | {int(v) for v in np.unique(y_pred)})
    counts = confusion_matrix(y_true, y_pred, labels)
    return assess_confusion(counts, labels, legend, map_pixel_counts, pixel_area_m2, confidence)


#: Cohen's kappa below this: the map agrees with the reference little more than chance would.
CHANCE_KAPPA = 0.1


def warning_notes(report: Mapping[str, Any], class_ids: Sequence[int]) -> list[str]:
    """Warnings that belong next to the figures: a map no better than chance (a high overall accuracy
    can come from always answering the largest class), and model classes it never predicts."""
    notes = []
    kappa = report.get("kappa")
    if kappa is not None and not math.isnan(kappa) and kappa < CHANCE_KAPPA and len(report["labels"]) > 1:
        notes.append(f"Cohen's kappa is {kappa:.3f}: the map agrees with the reference little more than chance "
                     "would (the overall accuracy may come from answering the largest class). Check that the "
                     "features carry information about the classes.")
    tested = {c["id"]: c for c in report["per_class"] if c["support"] > 0}
    never = [c for class_id, c in tested.items() if class_id in set(class_ids) and c["predicted"] == 0]
    if never:
        names = ", ".join(f"{c['id']} {c['name']}" for c in never)
        notes.append(f"The model never predicts class(es) {names} on the test pixels: they are missing from the map.")
    return notes


def assess_confusion(
    counts: np.ndarray,
    labels: Sequence[int],
    legend: Legend,
    map_pixel_counts: Mapping[int, int] | None = None,
    pixel_area_m2: float | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """:func:`assess` from an accumulated confusion matrix (rows reference, columns map)."""
    counts = np.asarray(counts, dtype=np.int64)
    labels = [int(v) for v in labels]
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"the confusion matrix is {counts.shape}, expected {len(labels)} x {len(labels)}")
    total = int(counts.sum())
    if total == 0:
        raise ValueError("no pixel has both a reference class and a map class: nothing to compare")
    if not 0 < confidence < 1:
        raise ValueError(f"the confidence level must lie between 0 and 1, not {confidence}")
    legend = legend.restricted(labels)
    c = counts.astype(np.float64)
    tp = np.diag(c)
    support = c.sum(axis=1)  # reference
    predicted = c.sum(axis=0)  # map
    precision = _divide(tp, predicted)
    recall = _divide(tp, support)
    f1 = _divide(2 * tp, 2 * tp + (predicted - tp) + (support - tp))
    f1_zero = np.nan_to_num(f1, nan=0.0)
    oa = float(tp.sum() / total)
    expected = float((support * predicted).sum() / total**2)
    kappa = (oa - expected) / (1 - expected) if expected < 1 else (1.0 if oa == 1 else math.nan)
    report: dict[str, Any] = {
        "n_samples": total,
        "labels": labels,
        "overall_accuracy": oa,
        "kappa": kappa,
        "f1_weighted": float((f1_zero * support).sum() / support.sum()),
        "f1_macro": float(f1_zero.mean()),
        "per_class": [
            {
                "id": label,
                "name": legend.name(label),
                "colour": legend.colour(label),
                "precision": precision[k],
                "recall": recall[k],
                "f1": f1[k],
                "support": int(support[k]),
                "predicted": int(predicted[k]),
            }
            for k, label in enumerate(labels)
        ],
        "confusion": {
            "rows": "reference",
            "columns": "map",
            "counts": counts.tolist(),
            "row_normalised": _divide(c, support[:, None]).tolist(),
        },
    }
    if map_pixel_counts is not None:
        report["area_adjusted"] = area_adjusted(counts, labels, map_pixel_counts, legend, pixel_area_m2, confidence)
    return json_safe(report)


def area_adjusted(
    counts: np.ndarray,
    labels: Sequence[int],
    map_pixel_counts: Mapping[int, int],
    legend: Legend,
    pixel_area_m2: float | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Stratified estimates of Olofsson et al. (2014), eq. 2-10, with the map classes as strata.

    Confidence intervals are given as half-widths (``estimate +- ci``). A map class without any
    reference pixel cannot be estimated: it is left out and the weights of the others
    renormalised, with a note saying so.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    mapped = {int(k): int(v) for k, v in map_pixel_counts.items() if int(v) > 0}
    ids = sorted(set(labels) | set(mapped))
    index = {label: k for k, label in enumerate(labels)}
    n = np.zeros((len(ids), len(ids)))  # rows = map stratum i, columns = reference class j (the paper's layout)
    for a, ref in enumerate(ids):
        for b, mp in enumerate(ids):
            if ref in index and mp in index:
                n[b, a] = counts[index[ref], index[mp]]
    sampled = n.sum(axis=1)
    notes = []
    unknown = [label for k, label in enumerate(ids) if sampled[k] > 0 and label not in mapped]
    if unknown:
        raise ValueError(f"the map pixel counts lack class(es) {unknown} that the compared map pixels hold")
    missing = [label for k, label in enumerate(ids) if label in mapped and sampled[k] == 0]
    if missing:
        share = sum(mapped[m] for m in missing) / sum(mapped.values())
        notes.append(
            f"map class(es) {', '.join(legend.name(m) for m in missing)} ({100 * share:.2f} % of the map) have no "
            "reference pixel: they are left out of the area-adjusted estimates"
        )
    single = [label for k, label in enumerate(ids) if sampled[k] == 1]
    if single:
        notes.append(
            f"map class(es) {', '.join(legend.name(m) for m in single)} have a single reference pixel: their "
            "variance cannot be estimated and counts as 0"
        )
    strata = np.array([mapped.get(label, 0) if sampled[k] > 0 else 0 for k, label in enumerate(ids)], np.float64)
    total_pixels = strata.sum()
    w = strata / total_pixels
    share = _divide(n, sampled[:, None])  # n_ij / n_i.
    share = np.nan_to_num(share)
    p = w[:, None] * share  # eq. 4: estimated area proportions p_ij
    variance_denominator = np.maximum(sampled - 1, 1)  # n_i. - 1; one-sample strata have p(1-p) = 0
    users = np.diag(share).copy()
    users[sampled == 0] = np.nan
    area_proportion = p.sum(axis=0)  # p_.j
    producers = _divide(np.diag(p), area_proportion)
    oa = float(np.trace(p))
    oa_var = float(np.nansum(w**2 * users * (1 - users) / variance_denominator))  # eq. 5
    users_var = users * (1 - users) / variance_denominator  # eq. 6
    area_var = (w[:, None] ** 2 * share * (1 - share) / variance_denominator[:, None]).sum(axis=0)  # eq. 10
    # eq. 7, with N_i. the map pixels of stratum i and N_.j the estimated pixels of class j
    big_n = strata
    est_n = area_proportion * total_pixels
    producers_var = np.full(len(ids), np.nan)
    for j in range(len(ids)):
        if est_n[j] <= 0:
            continue
        first = big_n[j] ** 2 * (1 - producers[j]) ** 2 * (0.0 if sampled[j] == 0 else users_var[j])
        others = [
            big_n[i] ** 2 * share[i, j] * (1 - share[i, j]) / variance_denominator[i]
            for i in range(len(ids)) if i != j and sampled[i] > 0
        ]
        producers_var[j] = (first + producers[j] ** 2 * sum(others)) / est_n[j] ** 2

    def interval(value: float, variance: float, scale: float = 1.0) -> dict[str, Any]:
        se = math.sqrt(variance) * scale if variance == variance else math.nan
        return {"estimate": value * scale, "se": se, "ci": z * se}

    hectares = pixel_area_m2 / 10000.0 if pixel_area_m2 else None
    classes = []
    for k, label in enumerate(ids):
        item = {
            "id": label,
            "name": legend.name(label),
            "colour": legend.colour(label),
            "map_pixels": int(mapped.get(label, 0)),
            "reference_pixels": int(sampled[k]),
            "weight": float(w[k]),
            "users_accuracy": interval(users[k], users_var[k]),
            "producers_accuracy": interval(producers[k], producers_var[k]),
            "area_proportion": interval(area_proportion[k], area_var[k]),
            "area_pixels": interval(area_proportion[k], area_var[k], total_pixels),
        }
        if hectares:
            item["area_ha"] = interval(area_proportion[k], area_var[k], total_pixels * hectares)
        classes.append(item)
    return {
        "method": "Olofsson et al. (2014), stratified by map class",
        "confidence": confidence,
        "z": z,
        "total_pixels": int(total_pixels),
        "pixel_area_m2": pixel_area_m2,
        "overall_accuracy": interval(oa, oa_var),
        "per_class": classes,
        "notes": notes,
    }


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars made Python numbers and NaN/inf made ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = np.full(a.shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


# ---------------------------------------------------------------- rasters, block by block
def raster_grid(path: str) -> Grid:
    """The grid of any single-band GDAL raster."""
    with open_raster(path) as ds:
        return Grid(ds.width, ds.height, ds.crs.to_wkt() if ds.crs else None, tuple(ds.transform)[:6])


def pixel_area_m2(grid: Grid) -> float | None:
    """Area of one pixel in square metres, or ``None`` when the CRS is not in metres."""
    if not grid.crs_wkt:
        return None
    from rasterio.crs import CRS

    try:
        crs = CRS.from_wkt(grid.crs_wkt)
        if not crs.is_projected:
            return None
        _, factor = crs.linear_units_factor
    except Exception:  # noqa: BLE001 - any CRS rasterio cannot interpret has no known unit
        return None
    a, b, _, d, e, _ = grid.transform
    return abs(a * e - b * d) * factor * factor


@bounded_gdal_cache()
def compare_raster(
    path: str,
    reference: np.ndarray,
    ignore: Iterable[int] = (0,),
    progress: Progress | None = None,
    budget_bytes: int | None = None,
) -> tuple[np.ndarray, list[int], dict[int, int]]:
    """Compare band 1 of the class raster ``path`` with ``reference`` (its grid's shape), block
    by block: returns ``(confusion counts, labels, map pixel counts)``.

    Map nodata and ``ignore`` classes (in map or reference) are left out of the comparison;
    the map counts cover every valid map pixel, reference or not (the strata of the area
    estimates). A map and a reference without a class id in common are refused: their figures
    would all be 0.
    """
    from rasterio.windows import Window

    progress = ensure_progress(progress)
    ignored = np.asarray(sorted({int(v) for v in ignore}), np.int64)
    pairs: dict[int, int] = {}
    mapped: dict[int, int] = {}
    with open_raster(path) as ds:
        if (ds.height, ds.width) != reference.shape:
            raise ValueError(f"the reference is {reference.shape}, the map {(ds.height, ds.width)}")
        nodata = ds.nodata
        is_float = ds.dtypes[0].startswith("float")
        for block in iter_blocks(ds.height, ds.width, 40, budget_bytes, progress=progress):
            row, col, h, w = block.window
            with reading(path, window_text(block.window, None)):
                values = ds.read(1, window=Window(col, row, w, h))
            valid = np.ones(values.shape, bool)
            if is_float:
                valid &= np.isfinite(values)
            if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
                valid &= values != nodata
            if is_float and np.any(valid & (values != np.round(values))):
                raise ValueError("the class raster holds fractional values; it must hold integer class ids")
            if np.any(valid & ((values < 0) | (values > 65535))):
                raise ValueError("class ids must be integers from 0 to 65535")
            classes = np.where(valid, values, 0).astype(np.int64)
            valid &= ~np.isin(classes, ignored)
            ids, n = np.unique(classes[valid], return_counts=True)
            for i, k in zip(ids.tolist(), n.tolist()):
                mapped[i] = mapped.get(i, 0) + k
            truth = reference[row:row + h, col:col + w].astype(np.int64)
            both = valid & ~np.isin(truth, ignored)
            codes, n = np.unique(truth[both] * 65536 + classes[both], return_counts=True)
            for code, k in zip(codes.tolist(), n.tolist()):
                pairs[code] = pairs.get(code, 0) + k
    reference_ids, map_ids = {code // 65536 for code in pairs}, {code % 65536 for code in pairs}
    _require_shared_classes(sorted(reference_ids), sorted(map_ids))
    labels = sorted(reference_ids | map_ids)
    position = {label: k for k, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), np.int64)
    for code, k in pairs.items():
        counts[position[code // 65536], position[code % 65536]] += k
    return counts, labels, mapped


def _require_shared_classes(reference_ids: Sequence[int], map_ids: Sequence[int]) -> None:
    """Refuse a comparison whose map and reference have no class id in common (where both have
    data): every figure would be 0, and the cause is almost always two legends."""
    if not reference_ids or not map_ids or set(reference_ids) & set(map_ids):
        return

    def listed(ids: Sequence[int]) -> str:
        return ", ".join(str(i) for i in ids[:20]) + (f" ... ({len(ids)} ids)" if len(ids) > 20 else "")

    raise ValueError(
        f"the map and the reference share no class id: where both have data the reference holds class ids "
        f"{listed(reference_ids)} and the map {listed(map_ids)}. They likely use different legends (class "
        "codings): recode one to the other's ids (e.g. QGIS's 'Reclassify by table') or compare the map with "
        "the reference it was trained on"
    )
