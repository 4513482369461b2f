"""Training a LightGBM land-cover classifier from feature stacks and a reference map.

The recipe follows eo-learn's LULC example and makes its weak spots explicit:

1. the reference is eroded per class (mixed pixels at class borders are not trusted);
2. labelled pixels are split into training and test *spatially* (square blocks, or whole
   polygons), because neighbouring pixels are nearly identical and a random pixel split
   reports the accuracy of memorising them;
3. training pixels are sampled (stratified by class, balanced, or counts per class: core.sampling);
4. LightGBM is trained with early stopping on a validation part of the *training* blocks, which
   keeps the model lean (prediction time is the pipeline's bottleneck) without touching the
   test split, but never below :data:`MIN_ROUNDS` rounds;
5. the test split gets the accuracy report.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import warnings
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from textwrap import shorten
from typing import Sequence

import numpy as np

from .accuracy import warning_notes
from .blocks import ALIGN, READ_THREADS, Block, iter_blocks, read_ahead
from .deep import DEEP_CLASSIFIERS, DEVICES
from .featureset import ChosenPixels, FeatureColumns, FeatureSet, pixel_windows
from .legend import Legend
from .limits import (
    MAX_BATCH_SIZE,
    MAX_BLOCK_SIZE,
    MAX_EPOCHS,
    MAX_EROSION,
    MAX_LEAVES,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_TREES,
    check_range,
)
from .model import LulcModel, predict_probabilities
from .progress import Progress, ensure_progress
from .reference import NO_CLASS, Reference
from .sampling import SAMPLINGS, check_class_samples, check_known_classes, parse_class_samples, sample_pixels, shortfall
from .suggest import LabelledPoints, add_points_to_plan
from .timestack import bounded_gdal_cache

SPLITS = ("blocks", "polygons", "random")
CLASSIFIERS = ("gbdt", "rf", *DEEP_CLASSIFIERS)
#: Test pixels used for the report at most (a random subset beyond that).
MAX_TEST_PIXELS = 200_000
#: LightGBM's early stopping keeps at least this many rounds (or all when fewer are asked for).
#: The multi-class log-loss of a random tenth of the training pixels turns after 23-45 rounds on
#: the real TestEOPatch and stopping there cost 0.3 points of overall accuracy on average and 2.5
#: on the worst of 11 spatial splits; 100 rounds or more keep it (bench/train_quality.py).
MIN_ROUNDS = 100
#: Rounds without improvement of the validation loss after which training stops.
PATIENCE = 25


class UnsplittableError(ValueError):
    """The labelled pixels lie in one split unit (block or polygon): no spatial split is possible.
    A batch tile catches it (its pixels then train only); a single run reports it."""


@dataclass
class TrainSettings:
    """What the user can set; the defaults are the recipe's."""

    samples: int = 20000
    sampling: str = "proportional"
    #: pixels per class, e.g. "1:500, 2:2000" (core.sampling); the others share the rest by ``sampling``
    class_samples: str = ""
    split: str = "blocks"
    test_fraction: float = 0.25
    block_size: int = 0  # 0 = automatic
    erosion: str = "1"
    classifier: str = "gbdt"
    n_estimators: int = 500
    learning_rate: float = 0.1
    num_leaves: int = 15
    #: share of the features each boosted tree may split on (LightGBM's feature_fraction): the
    #: dates and bands are redundant, so half of them per tree keeps the accuracy and fits faster
    feature_fraction: float = 0.5
    early_stopping: bool = True
    class_weight: str = "none"  # or "balanced"
    seed: int = 42
    threads: int | None = None
    #: deep classifiers (tempcnn, ltae; core.deep): most epochs (early stopping keeps the best),
    #: rows per step, Adam's learning rate, and where to train ("auto": a GPU when PyTorch sees one)
    epochs: int = 30
    batch_size: int = 256
    deep_learning_rate: float = 0.002
    device: str = "auto"

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"unknown split '{self.split}'; use one of {', '.join(SPLITS)}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling '{self.sampling}'; use one of {', '.join(SAMPLINGS)}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier '{self.classifier}'; use one of {', '.join(CLASSIFIERS)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"the test fraction must be between 0 and 1 (exclusive), not {self.test_fraction}")
        check_range("the number of training samples", self.samples, 10, MAX_SAMPLES)
        check_class_samples(self.class_counts(), self.samples)
        check_range("the number of boosting rounds", self.n_estimators, 1, MAX_TREES)
        check_range("the number of leaves per tree", self.num_leaves, 2, MAX_LEAVES)
        check_range("the split block size", self.block_size, 0, MAX_BLOCK_SIZE, "0 = automatic")
        check_range("the seed", self.seed, 0, MAX_SEED)
        if self.learning_rate <= 0:
            raise ValueError("LightGBM needs a positive learning rate")
        if not 0.0 < self.feature_fraction <= 1.0:
            raise ValueError(f"the feature fraction must be above 0 and at most 1, not {self.feature_fraction}")
        check_range("the number of epochs", self.epochs, 1, MAX_EPOCHS)
        check_range("the batch size", self.batch_size, 2, MAX_BATCH_SIZE)
        check_range("the deep learning rate", self.deep_learning_rate, 1e-6, 1.0)
        if self.device not in DEVICES:
            raise ValueError(f"unknown device '{self.device}'; use one of {', '.join(DEVICES)}")

    def class_counts(self) -> dict[int, int]:
        """The per-class counts of ``class_samples`` (empty: none)."""
        return parse_class_samples(self.class_samples)


@dataclass
class TrainResult:
    model: LulcModel
    report: dict
    notes: list[str] = field(default_factory=list)
    importances: list[tuple[str, float]] = field(default_factory=list)
    #: reference and predicted class of the test pixels (for reports that add map-wide figures)
    test_truth: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    test_predicted: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def parse_erosion(spec: str) -> tuple[int, dict[int, int]]:
    """``"1"`` or ``"1, 8:0, 3:2"`` -> default radius and per-class radii."""
    default, per_class = 1, {}
    parts = [p.strip() for p in str(spec or "").replace(";", ",").split(",") if p.strip()]
    try:
        for part in parts:
            if ":" in part:
                key, value = part.split(":", 1)
                per_class[int(key)] = int(value)
            else:
                default = int(part)
    except ValueError:
        raise ValueError(f"'{spec}' is not an erosion setting; write a radius like 1, or 1, 8:0 for class 8 "
                         "not eroded") from None
    for radius in (default, *per_class.values()):
        check_range("the erosion radius", radius, 0, MAX_EROSION, "eo-learn's recipe erodes by 1 pixel")
    return default, per_class


def erosion_disk(radius: int) -> np.ndarray:
    """skimage's disk (what eo-learn's ErosionTask uses)."""
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return (x * x + y * y) <= radius * radius


def erode(classes: np.ndarray, spec: str, refuse_too_wide: bool = True) -> np.ndarray:
    """Each class shrunk by its radius; removed pixels become :data:`NO_CLASS` (as eo-learn's
    ErosionTask, with pixels at the map's edge not eroded by the edge). A radius as wide as the
    map is refused, or with ``refuse_too_wide=False`` (a batch tile's sliver of an edge window)
    leaves no labelled pixel, as erosion would on a larger map."""
    default, per_class = parse_erosion(spec)
    radii = [default, *per_class.values()]
    if max(radii) >= max(classes.shape):
        if not refuse_too_wide:
            return np.full_like(classes, NO_CLASS)
        raise ValueError(f"an erosion radius of {max(radii)} px is wider than the reference "
                         f"({classes.shape[1]} x {classes.shape[0]} px): no pixel would be left")
    present = [int(c) for c in np.unique(classes) if c != NO_CLASS]
    out = classes.copy()
    for radius in sorted({per_class.get(c, default) for c in present} - {0}):
        # one pass per radius, whatever the number of classes it erodes
        eroded = np.isin(classes, [c for c in present if per_class.get(c, default) == radius])
        out[eroded & ~same_class_around(classes, radius)] = NO_CLASS
    return out


def same_class_around(classes: np.ndarray, radius: int) -> np.ndarray:
    """True where every pixel of the disk of ``radius`` around a pixel that lies on the map has
    that pixel's class: the pixels a binary erosion of their own class keeps, the map's edge not
    eroding (scipy's ``border_value=1``)."""
    height, width = classes.shape
    same = np.ones(classes.shape, bool)
    for dy, dx in zip(*np.nonzero(erosion_disk(radius))):
        dy, dx = int(dy) - radius, int(dx) - radius
        if (dy == 0 and dx == 0) or abs(dy) >= height or abs(dx) >= width:
            continue  # the pixel itself, or no pair of pixels on the map this far apart
        rows = slice(max(0, -dy), height - max(0, dy))
        cols = slice(max(0, -dx), width - max(0, dx))
        same[rows, cols] &= classes[rows, cols] == classes[rows.start + dy:rows.stop + dy,
                                                           cols.start + dx:cols.stop + dx]
    return same


def auto_block_size(height: int, width: int) -> int:
    """About 40 or more blocks, each 8 to 64 pixels wide."""
    return int(max(8, min(64, round(math.sqrt(height * width / 40)))))


def split_mask(reference: Reference, labelled: np.ndarray, settings: TrainSettings,
               rng: np.random.Generator, notes: list[str]) -> np.ndarray:
    """Boolean (h, w): True for test pixels among ``labelled``; the rest of ``labelled`` trains."""
    h, w = labelled.shape
    total = int(labelled.sum())
    if settings.split == "random":
        notes.append("Random pixel split: neighbouring pixels are on both sides, so the test accuracy is "
                     "optimistic (it overstates how well the map does elsewhere). Prefer the spatial split.")
        return labelled & (rng.random((h, w)) < settings.test_fraction)
    if settings.split == "polygons":
        if reference.polygons is None:
            raise ValueError("the polygon split needs a polygon reference (a vector layer)")
        units = np.where(labelled, reference.polygons, 0)
        unit_label = "polygon"
    else:
        size = settings.block_size or auto_block_size(h, w)
        rows = np.arange(h)[:, None] // size
        cols = np.arange(w)[None, :] // size
        units = np.where(labelled, rows * (w // size + 1) + cols + 1, 0)
        unit_label = f"{size} x {size} px block"
    ids, counts = np.unique(units[units > 0], return_counts=True)
    if ids.size < 2:
        raise UnsplittableError(f"the labelled pixels lie in a single {unit_label}: a spatial split is "
                                "impossible; use smaller blocks or the random split")
    order = rng.permutation(ids.size)
    cumulative = np.cumsum(counts[order])
    n_test = int(np.searchsorted(cumulative, settings.test_fraction * total) + 1)
    n_test = min(max(1, n_test), ids.size - 1)
    test_ids = ids[order[:n_test]]
    test = np.isin(units, test_ids) & labelled
    notes.append(f"Spatial split by {unit_label}: {n_test} of {ids.size} {unit_label}s held out for testing.")
    return test


@bounded_gdal_cache()
def gather_rows(features: FeatureSet, flat_indices: np.ndarray, progress: Progress,
                budget_bytes: int | None = None) -> np.ndarray:
    """Feature rows of the given pixels. Only the stacks' tiles that hold some are read (adjacent
    ones together, each window trimmed to its pixels) and only those pixels converted: sampling
    reads a fraction of the stacks when the reference covers a fraction of them. Decoding is the
    work here, so :data:`~.blocks.READ_THREADS` threads decode, each with its own handles."""
    grid = features.grid
    out = np.empty((flat_indices.size, features.n_features), np.float32)
    chosen = ChosenPixels(flat_indices, grid.width)
    with ExitStack() as stack:
        readers = [features] + [stack.enter_context(FeatureSet(features.paths)) for _ in range(READ_THREADS - 1)]
        blocks = iter_blocks(grid.height, grid.width, READ_THREADS * features.bytes_per_pixel(), budget_bytes,
                             progress=progress)
        wanted = ((block, chosen.pixels_in(block.window)[0]) for block in blocks)
        wanted = ((block, inside) for block, inside in wanted if inside.size)
        reads = [functools.partial(_chosen_rows, reader, chosen) for reader in readers]
        with closing(read_ahead(wanted, reads)) as blocks_read:
            for (_, inside), rows in blocks_read:
                out[inside] = rows
    return out


def _chosen_rows(features: FeatureSet, chosen: ChosenPixels, item: tuple[Block, np.ndarray]) -> np.ndarray:
    """The rows of a block's chosen pixels (``inside``: their positions in ``chosen``), in that order."""
    block, inside = item
    rows, cols = chosen.rows[inside], chosen.cols[inside]
    windows = list(pixel_windows(rows, cols, ALIGN))
    if sum(w[1][2] * w[1][3] for w in windows) > 0.5 * block.height * block.width:
        # most of the block is needed: one read of it beats many of its strips
        windows = list(pixel_windows(rows, cols, max(block.height, block.width)))
    out = np.empty((inside.size, features.n_features), np.float32)
    for positions, window, local in windows:
        out[positions] = features.read_pixels(window, local)
    return out


@dataclass
class SamplePlan:
    """Which pixels train the model and which test it (flat indices into the grid), decided from
    the reference alone, so the rows can be collected while the features are being made."""

    classes: np.ndarray  # the eroded reference (h, w)
    train: np.ndarray  # sorted flat indices of the sampled training pixels
    test: np.ndarray  # sorted flat indices of the test pixels (at most MAX_TEST_PIXELS)
    notes: list[str] = field(default_factory=list)


def plan_samples(reference: Reference, settings: TrainSettings, rng: np.random.Generator) -> SamplePlan:
    """Erosion, spatial split (with a one-pixel gap) and sampling; raises ``ValueError`` when the
    reference cannot train a classifier."""
    notes: list[str] = []
    classes = erode(reference.classes, settings.erosion)
    lost = sorted(set(reference.class_ids) - set(int(c) for c in np.unique(classes) if c != NO_CLASS))
    if lost:
        notes.append(f"Erosion removed every pixel of class(es) {lost}; lower the erosion for them "
                     f"(e.g. '1, {lost[0]}:0').")
    labelled = classes != NO_CLASS
    if not labelled.any():
        raise ValueError("no reference pixels are left after erosion; lower the erosion radius")
    test = split_mask(reference, labelled, settings, rng, notes)
    train_candidates = labelled & ~test
    if settings.split != "random":
        # a one-pixel gap: training pixels touching test pixels would share their spectra
        train_candidates &= ~touching(test)
    train_ids = sorted(int(c) for c in np.unique(classes[train_candidates]))
    if len(train_ids) < 2:
        raise ValueError(f"the training part holds only class(es) {train_ids}; a classifier needs two or more. "
                         "Check the reference, lower the erosion or the test fraction")
    test_only = sorted(set(int(c) for c in np.unique(classes[test])) - set(train_ids))
    if test_only:
        notes.append(f"Class(es) {test_only} occur only in the test part: the model cannot predict them.")
    available = int(train_candidates.sum())
    if available < settings.samples:
        notes.append(f"{settings.samples} training pixels were asked for, but the training part holds only "
                     f"{available} labelled pixels: all of them are used.")
    class_counts = settings.class_counts()
    check_known_classes(class_counts, reference.class_ids)
    ids, sizes = np.unique(classes[train_candidates], return_counts=True)
    short = shortfall(class_counts, dict(zip(ids.tolist(), sizes.tolist())))
    if short:
        notes.append("The training part holds fewer pixels than the per-class counts ask for: "
                     + ", ".join(f"class {c} {k}" for c, k in short.items()) + "; all of them are used.")
    train_idx = sample_pixels(train_candidates, classes, settings.samples, settings.sampling, rng, class_counts)
    test_idx = np.flatnonzero(test)
    if test_idx.size > MAX_TEST_PIXELS:
        test_idx = np.sort(rng.choice(test_idx, MAX_TEST_PIXELS, replace=False))
    return SamplePlan(classes=classes, train=train_idx, test=test_idx, notes=notes)


def fit_model(
    x_train: np.ndarray,
    plan: SamplePlan,
    features: FeatureColumns,
    reference: Reference,
    legend: Legend,
    settings: TrainSettings,
    rng: np.random.Generator,
    progress: Progress,
) -> tuple[LulcModel, list[tuple[str, float]]]:
    """The model fitted on the rows of ``plan.train`` (in that order) and its feature importances
    (gain shares, largest first); notes about the training data go to ``plan.notes``."""
    flat_classes = plan.classes.ravel()
    y_train_ids = flat_classes[plan.train]
    usable = ~np.all(np.isnan(x_train), axis=1)
    if not usable.any():
        raise ValueError("the features hold only nodata where the reference has classes")
    x_train, y_train_ids = x_train[usable], y_train_ids[usable]
    constant = constant_columns(x_train)
    if constant.all():
        raise ValueError(f"all {constant.size} features are constant over the training pixels: they carry no "
                         "information about the classes. Check the feature stacks (nodata, a wrong band, a "
                         "constant index)")
    if constant.any():
        shown = ", ".join(n for n, c in zip(features.names, constant) if c)
        plan.notes.append(f"{int(constant.sum())} of {constant.size} features are constant or nodata over the "
                          f"training pixels and carry no information (e.g. a date of the grid before the first "
                          f"clear observation): {shorten(shown, 200)}.")
    class_ids = sorted(int(c) for c in np.unique(y_train_ids))
    if len(class_ids) < 2:
        raise ValueError("the features have data for only one reference class; a classifier needs two or more")
    counts = {c: int((y_train_ids == c).sum()) for c in class_ids}
    tiny = [c for c, n in counts.items() if n < 5]
    if tiny:
        plan.notes.append(f"Class(es) {tiny} have fewer than 5 training pixels; their results are unreliable.")
    fitted, parameters, gains = fit_classifier(x_train, y_train_ids, class_ids, features.names, features.describe(),
                                               settings, rng, progress)
    y_test_ids = flat_classes[plan.test]
    grid = features.grid
    model_legend = legend.with_names(reference.names).restricted(set(class_ids) | set(reference.class_ids))
    model = LulcModel(
        **fitted,
        metadata={
            "feature_names": features.names,
            "inputs": features.describe(),
            "crs_wkt": grid.crs_wkt,
            "resolution": list(grid.resolution),
            "class_ids": class_ids,
            "legend": model_legend.to_json(),
            "parameters": parameters,
            "settings": {k: v for k, v in vars(settings).items() if k != "threads"},
            "samples": {"train": {str(k): v for k, v in counts.items()},
                        "test": {str(int(c)): int((y_test_ids == c).sum()) for c in np.unique(y_test_ids)}},
            "versions": library_versions(),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    if gains is None:  # a deep network has no gain per feature
        return model, []
    total_gain = float(gains.sum()) or 1.0
    importances = sorted(((n, float(g) / total_gain) for n, g in zip(features.names, gains)), key=lambda t: -t[1])
    return model, importances


def constant_columns(rows: np.ndarray) -> np.ndarray:
    """Columns whose values (NaN aside) vary by no more than float32 rounding, or are all NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        low, high = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
    scale = np.maximum(1.0, np.maximum(np.abs(low), np.abs(high)))
    return ~(high - low > 1e-6 * scale)


def importance_table(importances: list[tuple[str, float]]) -> list[dict]:
    """Feature importances as the reports list them."""
    return [{"feature": n, "gain_share": round(g, 6)} for n, g in importances]


def held_out_report(truth: np.ndarray, predicted: np.ndarray, legend: Legend, split: str, notes: list[str],
                importances: list[tuple[str, float]]) -> dict:
    """The accuracy report of the test pixels, with the split, the notes and the importances."""
    from .accuracy import assess

    report = assess(truth.astype(int), predicted.astype(int), legend)
    report["split"] = split
    report["notes"] = notes
    report["feature_importance"] = importance_table(importances)
    return report


def train_model(
    feature_paths: Sequence[str],
    reference: Reference,
    legend: Legend,
    settings: TrainSettings | None = None,
    progress: Progress | None = None,
    budget_bytes: int | None = None,
    points: LabelledPoints | None = None,
) -> TrainResult:
    """Train and evaluate; returns the model (not yet saved), the test report and notes.
    ``points``: labelled points that train besides the reference (see :mod:`.suggest`)."""
    settings = settings or TrainSettings()
    settings.validate()
    progress = ensure_progress(progress)
    rng = np.random.default_rng(settings.seed)
    with FeatureSet(feature_paths) as features:
        grid = features.grid
        if reference.classes.shape != (grid.height, grid.width):
            raise ValueError("the reference is not on the features' grid")
        plan = plan_samples(reference, settings, rng)
        if points is not None:
            add_points_to_plan(plan, points, grid.width)
        progress.log(f"{plan.train.size} training and {plan.test.size} test pixels; {features.n_features} features.")
        rows = gather_rows(features, np.concatenate([plan.train, plan.test]), progress.scaled(0.0, 0.4), budget_bytes)
        x_train, x_test = rows[: plan.train.size], rows[plan.train.size:]
        model, importances = fit_model(x_train, plan, features, reference, legend, settings, rng, progress)
        del x_train
        progress.report(0.9)
        class_ids = model.class_ids
        if x_test.size:
            probabilities = predict_probabilities(model.ensemble(settings.threads), x_test)
            y_pred = np.asarray(class_ids)[np.argmax(probabilities, axis=1)]
        else:
            y_pred = np.zeros(0, int)
        y_test_ids = plan.classes.ravel()[plan.test]
        report = held_out_report(y_test_ids, y_pred, model.legend, settings.split, plan.notes, importances)
        plan.notes.extend(warning_notes(report, class_ids))  # (report["notes"] is plan.notes)
        progress.report(1.0)
    return TrainResult(model=model, report=report, notes=plan.notes, importances=importances,
                       test_truth=y_test_ids.astype(int), test_predicted=y_pred.astype(int))


def touching(mask: np.ndarray) -> np.ndarray:
    """Pixels in or next to (8 neighbours) the mask."""
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, structure=np.ones((3, 3), bool))


def fit_classifier(x: np.ndarray, y_ids: np.ndarray, class_ids: list[int], names: list[str], inputs: list[dict],
                   settings: TrainSettings, rng: np.random.Generator, progress: Progress):
    """LightGBM (:func:`fit_booster`) or a deep network (``core.deep``, PyTorch imported only
    then): the :class:`LulcModel` fields of the fit, its parameters, and the features' gains
    (None for a network)."""
    if settings.classifier in DEEP_CLASSIFIERS:
        from .deep import fit_network

        network, parameters = fit_network(x, y_ids, class_ids, inputs, settings, rng, progress)
        return {"model_text": "", "network": network}, parameters, None
    booster, parameters = fit_booster(x, y_ids, class_ids, names, settings, rng, progress)
    return {"model_text": booster.model_to_string()}, parameters, booster.feature_importance(importance_type="gain")


def fit_booster(x: np.ndarray, y_ids: np.ndarray, class_ids: list[int], names: list[str],
                settings: TrainSettings, rng: np.random.Generator, progress: Progress):
    """LightGBM on sampled rows (class ids ``y_ids``), early-stopped on a validation part of them;
    shared by :func:`train_model` and the pooled training of many tiles (``core.batch``) so both
    fit the same way. Returns the booster and its parameters."""
    import lightgbm

    index_of = {c: i for i, c in enumerate(class_ids)}
    y = np.array([index_of[int(c)] for c in y_ids])
    parameters = {
        "objective": "multiclass",
        "num_class": len(class_ids),
        "boosting": settings.classifier,
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "feature_fraction": settings.feature_fraction,
        "seed": settings.seed,
        "deterministic": True,
        "num_threads": settings.threads or os.cpu_count() or 1,
        "verbosity": -1,
    }
    if settings.classifier == "rf":
        parameters.update(bagging_fraction=0.632, bagging_freq=1, feature_fraction=0.7)
    weights = None
    if settings.class_weight == "balanced":
        counts = np.bincount(y, minlength=len(class_ids)).astype(float)
        weights = (len(y) / (len(class_ids) * counts))[y]
    safe_names = [f"f{i}" for i in range(len(names))]  # LightGBM forbids some characters in names
    callbacks = [lambda env: progress.report(0.4 + 0.5 * (env.iteration + 1) / env.end_iteration)]
    valid_sets = None
    if settings.early_stopping and settings.classifier == "gbdt" and len(y) >= 50:
        order = rng.permutation(len(y))
        n_valid = max(len(class_ids), len(y) // 10)
        valid, train = order[:n_valid], order[n_valid:]
        train_set = lightgbm.Dataset(x[train], y[train], weight=None if weights is None else weights[train],
                                     feature_name=safe_names, free_raw_data=True)
        valid_sets = [lightgbm.Dataset(x[valid], y[valid], reference=train_set,
                                       weight=None if weights is None else weights[valid])]
        callbacks.append(StopAfterFloor(min(MIN_ROUNDS, settings.n_estimators), PATIENCE))
    else:
        train_set = lightgbm.Dataset(x, y, weight=weights, feature_name=safe_names, free_raw_data=True)
    booster = lightgbm.train(parameters, train_set, num_boost_round=settings.n_estimators,
                             valid_sets=valid_sets, callbacks=callbacks)
    if valid_sets is not None and booster.best_iteration:
        booster = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        parameters["trees_kept"] = booster.num_trees() // len(class_ids)
    progress.log(f"LightGBM {settings.classifier}: {booster.num_trees() // len(class_ids)} iterations x "
                 f"{len(class_ids)} classes.")
    return booster, parameters


class StopAfterFloor:
    """LightGBM callback: early stopping on the first validation metric that may end training
    only once ``floor`` rounds are done (:data:`MIN_ROUNDS`), and keeps at least ``floor`` rounds
    (LightGBM's ``best_iteration``), more when the validation loss was still improving."""

    order = 30  # after LightGBM's evaluation and our progress callback

    def __init__(self, floor: int, patience: int) -> None:
        self.floor, self.patience = floor, patience
        self.best_score, self.best_iteration, self.best_results = math.inf, 0, None

    def __call__(self, env) -> None:
        import lightgbm

        score, higher_is_better = env.evaluation_result_list[0][2:4]
        score = -score if higher_is_better else score
        if score < self.best_score:
            self.best_score, self.best_iteration, self.best_results = score, env.iteration, env.evaluation_result_list
        last = env.iteration + 1 == env.end_iteration
        if last or (env.iteration + 1 >= self.floor and env.iteration - self.best_iteration >= self.patience):
            kept = max(self.best_iteration, min(self.floor, env.iteration + 1) - 1)  # 0-based, as LightGBM's
            raise lightgbm.callback.EarlyStopException(kept, self.best_results)


def library_versions() -> dict[str, str]:
    """Versions recorded in a model file (a model may predict differently under others)."""
    import lightgbm

    return {"lightgbm": lightgbm.__version__, "numpy": np.__version__, "python": platform.python_version()}
