"""Sinergise's two eo-learn studies on the user's data: cloud handling (2 x 2 grid of cloudy-scene
filter on/off x cloud mask in interpolation on/off) and temporal resampling (several intervals),
optionally crossed with cloud-mask processing resolutions and classifiers.

Every variant runs the same steps as :func:`core.pipeline.run_pipeline`, with the same functions:
the cloud mask and the per-date features do not depend on the experiments' switches, so they are
computed once (per cloud-mask resolution and feature set) and shared. Per variant the features are
interpolated once; per seed a model is trained (the seed fixes the spatial split, the samples
and LightGBM, so a seed gives every variant the same samples and split). The test-split numbers
of a (variant, seed) therefore equal those of ``lulcpipeline`` with the same settings and seed.
Only the best variant is classified (with its first seed's model), at the end.

Variants run in parallel in joblib's loky worker processes when memory and cores allow
(:func:`plan_workers`): each worker's share of memory is budgeted from the block budget, the
training arrays and the interpreter (:func:`variant_memory_bytes`), and each gets
``cpus // workers`` LightGBM threads so the cores are not oversubscribed. LightGBM runs with
``deterministic=True`` and prediction splits rows, not trees, over threads, so the numbers do not
depend on the thread count: parallel and sequential runs give identical accuracies. Processes,
not threads, so that each variant's peak memory is its own. A variant that fails (an exception,
or its worker process dying) is recorded with its error; the others go on. Cancel stops scheduling
new variants.

What is measured per (variant, seed): overall accuracy, weighted F1 and kappa on the held-out
test split, its confusion matrix, the number of features, interpolation seconds (per variant),
training seconds (sampling + LightGBM + test prediction), prediction seconds (the model on a
fixed sample of up to ``PREDICT_SAMPLE`` pixels, the same pixels for every variant), and the peak
resident memory above the level at the start of the step (sampled from ``/proc/self/statm``
every 10 ms on Linux; elsewhere the growth of the process's maximum RSS, which stays 0 below an
earlier peak). In parallel runs the seconds include the competition for the cores.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .accuracy import confusion_matrix, json_safe
from .atomic import atomic_outputs
from .blocks import available_memory, default_budget_bytes
from .classify import classify
from .cloudmask import CloudDetector
from .features import compute_features
from .featureset import FeatureSet
from .htmltools import escape, number, page_start, plus_minus, table
from .interpolate import check_inputs, date_grid, default_range, interpolate_stack
from .legend import Legend
from .limits import MAX_INTERVAL_DAYS, check_range
from .model import LulcModel, predict_probabilities
from .pipeline import PipelineSettings
from .progress import Cancelled, Progress, ensure_progress
from .reference import Reference
from .style import write_sidecar_qml
from .timestack import GDAL_CACHE_MB, read_info
from .train import CLASSIFIERS, MAX_TEST_PIXELS, TrainSettings, gather_rows, train_model
from .workers import run_in_workers, worker_python

#: Pixels the prediction time is measured on (a fixed, evenly spread sample).
PREDICT_SAMPLE = 100_000
METRICS = ("overall_accuracy", "f1_weighted", "kappa")
CSV_COLUMNS = ("variant", "seed", "status", "error", "scene_filter", "cloud_mask_in_interpolation", "interval_days",
               "processing_resolution", "classifier", "n_dates", "n_features", "overall_accuracy", "f1_weighted",
               "kappa", "interpolate_s", "train_s", "predict_s", "peak_memory_mb")
#: A worker process before its variant starts: Python, numpy, GDAL/rasterio, scipy, LightGBM
#: (about 125 MB measured with Python 3.11 on Debian 12), with a margin.
WORKER_BASE_BYTES = 200 * 2**20
#: Reference-sized arrays a variant holds while training (the classes, their eroded copy, the
#: labelled/test/candidate masks, the split units as int64), in bytes per pixel.
REFERENCE_BYTES_PER_PIXEL = 32
#: Seconds an idle worker process waits for the next variant before it exits.
WORKER_IDLE_TIMEOUT = 60
_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainSettings))


@dataclass
class Variant:
    """A name and the settings it changes: :class:`PipelineSettings` fields (e.g.
    ``{"interval_days": 8}``) or :class:`TrainSettings` fields (e.g. ``{"classifier": "rf"}``)."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)

    def settings(self, base: PipelineSettings) -> PipelineSettings:
        own = {k: v for k, v in self.changes.items() if k not in _TRAIN_FIELDS}
        train = {k: v for k, v in self.changes.items() if k in _TRAIN_FIELDS}
        return replace(base, **own, train=replace(base.train, **train))


def cloud_variants() -> list[Variant]:
    """The 2 x 2 grid of the cloud study (the base settings' interval)."""
    out = []
    for scene_filter in (True, False):
        for mask in (True, False):
            out.append(Variant(f"filter {'on' if scene_filter else 'off'}, cloud mask {'on' if mask else 'off'}",
                               {"scene_filter": scene_filter, "cloud_mask_in_interpolation": mask}))
    return out


def interval_variants(days: Sequence[int] = (8, 16, 32)) -> list[Variant]:
    """The resampling study: one variant per interval (the base settings' cloud handling)."""
    return [Variant(f"{int(d)}-day interval", {"interval_days": int(d)}) for d in days]


def with_factors(variants: Sequence[Variant], base: PipelineSettings,
                 processing_resolutions: Sequence[float | None] | None = None,
                 classifiers: Sequence[str] | None = None) -> list[Variant]:
    """``variants`` crossed with the extra factors. A factor with one value sets it for every
    variant (names unchanged); with several, each variant is repeated per value and its name gets
    ``", cloud mask at 40 m"`` or ``", rf"``. A variant that does not use the cloud mask in
    interpolation is not repeated per resolution (the resolution only acts through the mask)."""
    resolutions = list(processing_resolutions or [base.processing_resolution])
    classifiers = list(classifiers or [base.train.classifier])
    out = []
    for variant in variants:
        uses_mask = variant.settings(base).cloud_mask_in_interpolation
        for classifier in classifiers:
            for k, resolution in enumerate(resolutions):
                if k and not uses_mask:
                    continue
                name = variant.name
                if len(resolutions) > 1 and uses_mask:
                    name += f", cloud mask at {_resolution_text(resolution)}"
                if len(classifiers) > 1:
                    name += f", {classifier}"
                out.append(Variant(name, {**variant.changes, "processing_resolution": resolution,
                                          "classifier": classifier}))
    return out


def _resolution_text(resolution: float | None) -> str:
    return "native resolution" if not resolution else f"{resolution:g} m"


def parse_intervals(text: str) -> list[int]:
    """``"8, 16,32"`` -> [8, 16, 32]."""
    try:
        days = [int(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"'{text}' is not a list of whole days such as 8,16,32") from None
    if not days:
        raise ValueError("give at least one interval in days, e.g. 8,16,32")
    for day in days:
        check_range("an interval", day, 1, MAX_INTERVAL_DAYS, "write whole days such as 8,16,32")
    return days


def parse_resolutions(text: str) -> list[float] | None:
    """``"160, 40"`` -> [160.0, 40.0]; empty -> ``None`` (the pipeline's default)."""
    parts = [p.strip() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        return None
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"'{text}' is not a list of resolutions in metres such as 160,40") from None
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"resolutions must be positive metres, got '{text}'")
    if len(set(values)) != len(values):
        raise ValueError(f"a resolution is listed twice in '{text}'")
    return values


def parse_classifiers(text: str) -> list[str] | None:
    """``"gbdt, rf"`` -> ["gbdt", "rf"]; empty -> ``None`` (the pipeline's default)."""
    names = [p.strip().lower() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    if not names:
        return None
    unknown = [n for n in names if n not in CLASSIFIERS]
    if unknown:
        raise ValueError(f"unknown classifier(s) {', '.join(unknown)}; use {' and/or '.join(CLASSIFIERS)}, "
                         "e.g. gbdt,rf")
    if len(set(names)) != len(names):
        raise ValueError(f"a classifier is listed twice in '{text}'")
    return names


@dataclass
class ExperimentResult:
    runs: list[dict]
    summary: list[dict]
    comparisons: list[dict]
    sentences: list[str]
    best: str
    shared: dict
    document: dict


# --------------------------------------------------------------------------- memory
class PeakMemory:
    """Peak resident memory above the level at entry, in MB (see the module's docstring)."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._statm = Path("/proc/self/statm")
        self._stop = threading.Event()

    def _rss(self) -> int:
        return int(self._statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        self._proc = self._statm.exists()
        if self._proc:
            self._start = self._peak = self._rss()

            def sample() -> None:
                while not self._stop.wait(0.01):
                    self._peak = max(self._peak, self._rss())

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        else:
            self._start = _max_rss_bytes()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss())
            self.peak_mb = (self._peak - self._start) / 2**20
        else:
            after = _max_rss_bytes()
            self.peak_mb = None if after is None or self._start is None else (after - self._start) / 2**20


def _max_rss_bytes() -> int | None:
    try:
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (AttributeError, OSError):  # pragma: no cover
        return None
    return value if sys.platform == "darwin" else value * 1024


def variant_memory_bytes(height: int, width: int, n_features: int, samples: int,
                         budget_bytes: int | None = None) -> int:
    """Budget of one variant in its own worker process: the interpreter and libraries
    (:data:`WORKER_BASE_BYTES`), GDAL's bounded cache, one block of the block budget (what the
    interpolation and the row gathering hold), twice the float32 feature rows of the training,
    test and prediction-sample pixels (LightGBM copies them) and the reference-sized masks."""
    pixels = height * width
    rows = min(samples, pixels) + min(pixels, MAX_TEST_PIXELS) + min(pixels, PREDICT_SAMPLE)
    return int(WORKER_BASE_BYTES + GDAL_CACHE_MB * 2**20 + (budget_bytes or default_budget_bytes())
               + 2 * rows * n_features * 4 + REFERENCE_BYTES_PER_PIXEL * pixels)


@dataclass
class WorkerPlan:
    """How many variants run at once, with how many LightGBM threads each, and why."""

    workers: int
    threads: int | None
    variant_mb: float
    available_mb: float | None
    cpus: int
    reason: str

    def as_dict(self) -> dict:
        return {"workers": self.workers, "threads_per_variant": self.threads, "variant_budget_mb": self.variant_mb,
                "available_mb": self.available_mb, "cpus": self.cpus, "reason": self.reason}


def plan_workers(requested: int, n_variants: int, variant_bytes: int, cpus: int | None = None,
                 available: int | None = None) -> WorkerPlan:
    """Variants at once: ``requested`` (0 = as many as the CPUs) bounded by the CPUs, the number
    of variants and the available memory divided by one variant's budget; 1 runs them in this
    process, one after the other."""
    cpus = max(1, cpus or os.cpu_count() or 1)
    available = available_memory() if available is None else available
    wanted = cpus if requested <= 0 else requested
    by_memory = max(1, available // variant_bytes) if available else wanted
    workers = int(max(1, min(wanted, cpus, n_variants, by_memory)))
    mb = variant_bytes / 2**20
    have = None if available is None else available / 2**20
    limits = [f"{'requested' if requested > 0 else 'automatic'} {wanted}", f"{cpus} CPU(s)", f"{n_variants} variant(s)"]
    if available:
        limits.append(f"{have:.0f} MB available / {mb:.0f} MB per variant = {available // variant_bytes}")
    reason = f"{workers} at once (the least of: {'; '.join(limits)})"
    return WorkerPlan(workers, max(1, cpus // workers) if workers > 1 else None, mb, have, cpus, reason)


# --------------------------------------------------------------------------- one variant
@dataclass
class VariantTask:
    """Everything one variant needs, picklable so that a worker process can run it."""

    index: int
    name: str
    settings: PipelineSettings
    features: str
    mask: str | None
    interpolated: str
    seeds: list[int]
    reference: Reference | None
    legend: Legend
    labels: list[int]
    budget_bytes: int | None
    #: In worker processes: the reference's arrays as ``.npy`` files (read memory-mapped) and names,
    #: instead of ``reference`` (so a large reference is not pickled once per variant).
    reference_files: tuple[str, str | None, dict] | None = None

    def load_reference(self) -> Reference:
        if self.reference is not None:
            return self.reference
        classes, polygons, names = self.reference_files
        polygons = None if polygons is None else np.load(polygons, mmap_mode="r")
        return Reference(np.load(classes, mmap_mode="r"), polygons, names)


def _common(task: VariantTask) -> dict:
    s = task.settings
    return {"variant": task.name, "scene_filter": s.scene_filter,
            "cloud_mask_in_interpolation": s.cloud_mask_in_interpolation, "interval_days": s.interval_days,
            "processing_resolution": s.processing_resolution if s.cloud_mask_in_interpolation else None,
            "classifier": s.train.classifier}


def run_variant(task: VariantTask, progress: Progress | None = None) -> dict:
    """Interpolate once, then train and measure per seed. Never raises except :class:`Cancelled`:
    failures are returned as rows with status "failed". Returns ``index``, ``rows``, the first
    seed's ``model`` (or ``None``) and the ``interpolated`` path (``None`` if interpolation failed)."""
    progress = ensure_progress(progress)
    s = task.settings
    common = _common(task)
    outcome: dict[str, Any] = {"index": task.index, "rows": [], "model": None, "interpolated": None}
    try:
        t0 = time.perf_counter()
        with PeakMemory() as memory:
            report = interpolate_stack(
                task.features, task.interpolated, start=s.start, end=s.end, interval_days=s.interval_days,
                mask_path=task.mask, min_valid_fraction=s.min_valid_fraction if s.scene_filter else 0.0,
                budget_bytes=task.budget_bytes, progress=progress.scaled(0.0, 0.2))
        interpolate_s = time.perf_counter() - t0
        common["n_dates"] = len(report.dates)
        outcome["interpolated"] = task.interpolated
    except Cancelled:
        raise
    except Exception as error:  # noqa: BLE001 - a failed variant must not stop the others
        progress.log(f"Variant '{task.name}' failed: {_describe_error(error)}")
        outcome["rows"] = [{**common, "seed": seed, "status": "failed", "error": _describe_error(error)}
                           for seed in task.seeds]
        return outcome
    sample = None
    reference = task.load_reference()
    for j, seed in enumerate(task.seeds):
        progress.check()
        n = len(task.seeds)
        sp = progress.scaled(0.2 + 0.8 * j / n, 0.2 + 0.8 * (j + 1) / n)
        row = {**common, "seed": seed, "interpolate_s": interpolate_s}
        try:
            with PeakMemory() as run_memory:
                t0 = time.perf_counter()
                trained = train_model([task.interpolated], reference, task.legend,
                                      replace(s.train, seed=seed), sp, task.budget_bytes)
                row["train_s"] = time.perf_counter() - t0
                if sample is None:
                    sample = _prediction_sample(task.interpolated, task.budget_bytes)
                t0 = time.perf_counter()
                predict_probabilities(trained.model.ensemble(s.train.threads), sample)
                row["predict_s"] = time.perf_counter() - t0
            peaks = [m.peak_mb for m in (memory, run_memory) if m.peak_mb is not None]
            row.update(status="ok", error="", n_features=len(trained.model.feature_names),
                       peak_memory_mb=max(peaks) if peaks else None,
                       confusion=confusion_matrix(trained.test_truth, trained.test_predicted, task.labels).tolist(),
                       **{m: float(trained.report[m]) for m in METRICS})
            if outcome["model"] is None:
                outcome["model"] = trained.model
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001
            progress.log(f"Variant '{task.name}', seed {seed} failed: {_describe_error(error)}")
            row.update(status="failed", error=_describe_error(error))
        outcome["rows"].append(row)
    return outcome


def _failed_outcome(task: VariantTask, message: str) -> dict:
    return {"index": task.index, "model": None, "interpolated": None,
            "rows": [{**_common(task), "seed": seed, "status": "failed", "error": message} for seed in task.seeds]}


def _run_parallel(tasks: Sequence[VariantTask], workers: int, python: str, progress: Progress) -> Iterator[dict]:
    """Outcomes of ``tasks`` in completion order, at most ``workers`` at a time in joblib's loky
    worker processes started with ``python`` (:func:`run_in_workers`). A task is submitted only
    while not canceled (those running finish). When a worker process dies (killed for memory, a
    crash in a library) the pool breaks and takes the variants it was running with it: those run
    again alone, each in a fresh one-worker pool, so only a variant that kills its worker by itself
    is reported failed; the rest go on in a fresh pool. The pool is shut down at the end."""

    def lost(task: VariantTask, error: BaseException, alone: bool) -> dict | None:
        return _failed_outcome(task, f"its worker process stopped: {_describe_error(error)}") if alone else None

    def broken(error: BaseException) -> None:
        progress.log(f"A worker process stopped ({_describe_error(error)}); its variants run again alone.")

    def failed(task: VariantTask, error: BaseException) -> dict:  # e.g. a result that cannot travel back
        return _failed_outcome(task, _describe_error(error))

    return run_in_workers(tasks, lambda pool, task: pool.submit(run_variant, task), workers, python, lost,
                          progress.canceled, failed=failed, broken=broken, idle_timeout=WORKER_IDLE_TIMEOUT)


def _predicted_features(task: VariantTask) -> int:
    """Features the variant will have: its grid dates x the feature stack's bands (0 if unknown)."""
    try:
        info = read_info(task.features)
        first, day_after = default_range(info)
        s = task.settings
        dates = date_grid(first if s.start is None else s.start, day_after if s.end is None else s.end,
                          s.interval_days)
        return len(dates) * info.n_bands
    except (ValueError, OSError):
        return 0


# --------------------------------------------------------------------------- running
def run_experiment(
    l1c_stack: str,
    reference: Reference,
    legend: Legend,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    folder: str | Path,
    progress: Progress | None = None,
    base: PipelineSettings | None = None,
    html_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    json_path: str | Path | None = None,
    classification: str | Path | None = None,
    budget_bytes: int | None = None,
    title: str = "EO LULC experiment",
    workers: int = 1,
    cloud_mask: str | Path | None = None,
) -> ExperimentResult:
    """Run the variants over the seeds; write the report (HTML, CSV, JSON) and the best variant's
    styled classification. Intermediate stacks go to ``folder``; outputs default to it too.
    ``workers``: variants at once (1 = one after the other in this process, 0 = as many as the
    CPUs and the memory allow, see :func:`plan_workers`).

    ``cloud_mask``: ``l1c_stack`` is then a prepared per-date feature stack (for example NDVI
    imported from an eo-learn EOPatch) and this its cloud mask on the same dates (1 = cloud):
    the cloud-mask and feature steps are skipped, so the variants differ only in the scene
    filter, the mask's use in the interpolation, the grid and the classifier."""
    progress = ensure_progress(progress)
    base = base or PipelineSettings()
    seeds = [int(s) for s in seeds]
    if not variants:
        raise ValueError("give at least one variant")
    if not seeds:
        raise ValueError("give at least one seed")
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be unique")
    if workers < 0:
        raise ValueError(f"the number of parallel variants must be 0 (automatic) or more, not {workers}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path = Path(html_path) if html_path else folder / "experiment.html"
    csv_path = Path(csv_path) if csv_path else folder / "experiment.csv"
    json_path = Path(json_path) if json_path else None
    classification = Path(classification) if classification else folder / "best_classification.tif"
    info = read_info(l1c_stack)
    if reference.classes.shape != (info.grid.height, info.grid.width):
        raise ValueError("the reference is not on the input stack's grid")
    settings = [v.settings(base) for v in variants]
    for s in settings:
        s.train.validate()

    # shared steps: one cloud mask per processing resolution, one feature stack per feature set
    shared: dict[str, Any] = {"cloud_mask_s": 0.0, "features_s": 0.0}
    masks: dict[Any, str] = {}
    features: dict[str, str] = {}
    needed_masks = sorted({s.processing_resolution for s in settings if s.cloud_mask_in_interpolation}, key=str)
    needed_features = {repr(s.features): s.features for s in settings}
    if cloud_mask is not None:  # the user brings the shared steps' products
        if len(needed_masks) > 1:
            raise ValueError("with a prepared cloud mask there is no cloud-mask step: compare processing "
                             "resolutions on an L1C stack instead")
        check_inputs(info, read_info(str(cloud_mask)))
        settings = [replace(s, processing_resolution=None) for s in settings]
        masks, features = {None: str(cloud_mask)}, {key: str(l1c_stack) for key in needed_features}
        needed_masks, needed_features = [], {}
        shared["prepared"] = {"features": str(l1c_stack), "cloud_mask": str(cloud_mask)}
        progress.log(f"Prepared features ({', '.join(info.bands)}) and cloud mask: no cloud-mask or feature step.")
    share = progress.scaled(0.0, 0.35)
    steps = max(1, len(needed_masks) + len(needed_features))
    for k, resolution in enumerate(needed_masks):
        progress.log(f"Cloud mask (s2cloudless, processing resolution {_resolution_text(resolution)}), "
                     "shared by the variants")
        path = str(folder / f"cloud_mask_{k}.tif")
        t0 = time.perf_counter()
        CloudDetector(processing_resolution=resolution, budget_bytes=budget_bytes).run(
            l1c_stack, None, path, share.scaled(k / steps, (k + 1) / steps))
        shared["cloud_mask_s"] += time.perf_counter() - t0
        masks[resolution] = path
    for k, (key, spec) in enumerate(needed_features.items()):
        progress.log("Features (bands and indices per date), shared by the variants")
        path = str(folder / f"features_{k}.tif")
        n = len(needed_masks) + k
        t0 = time.perf_counter()
        compute_features(l1c_stack, path, spec, share.scaled(n / steps, (n + 1) / steps), budget_bytes)
        shared["features_s"] += time.perf_counter() - t0
        features[key] = path

    labels = reference.class_ids
    tasks = [VariantTask(i, v.name, s, features[repr(s.features)],
                         masks[s.processing_resolution] if s.cloud_mask_in_interpolation else None,
                         str(folder / f"variant_{i}_interpolated.tif"), seeds, reference, legend, labels, budget_bytes)
             for i, (v, s) in enumerate(zip(variants, settings))]
    variant_bytes = max(variant_memory_bytes(info.grid.height, info.grid.width, _predicted_features(t),
                                             t.settings.train.samples, budget_bytes) for t in tasks)
    plan = plan_workers(workers, len(tasks), variant_bytes)
    python = worker_python() if plan.workers > 1 else None
    if plan.workers > 1 and python is None:
        progress.log(f"Warning: no Python interpreter found to start worker processes with (sys.executable is "
                     f"'{sys.executable}'); the variants run one after the other.")
        plan = replace(plan, workers=1, threads=None)
    if plan.workers > 1:
        files = (str(folder / "reference_classes.npy"),
                 None if reference.polygons is None else str(folder / "reference_polygons.npy"), dict(reference.names))
        np.save(files[0], reference.classes)
        if files[1] is not None:
            np.save(files[1], reference.polygons)
        tasks = [replace(t, reference=None, reference_files=files, settings=replace(t.settings, train=replace(
            t.settings.train, threads=min(t.settings.train.threads or plan.threads, plan.threads))))
            for t in tasks]
        progress.log(f"Variants in parallel: {plan.reason}; {plan.threads} LightGBM thread(s) each; worker "
                     f"processes run {python}.")

    outcomes: dict[int, dict] = {}
    part = progress.scaled(0.35, 0.9)
    if plan.workers == 1:
        for i, task in enumerate(tasks):
            progress.check()
            progress.log(f"Variant {i + 1}/{len(tasks)}: {task.name}")
            outcomes[i] = run_variant(task, part.scaled(i / len(tasks), (i + 1) / len(tasks)))
    else:
        for done, outcome in enumerate(_run_parallel(tasks, plan.workers, python, progress), start=1):
            outcomes[outcome["index"]] = outcome
            rows = outcome["rows"]
            state = "ok" if all(r["status"] == "ok" for r in rows) else "; ".join(
                sorted({r["error"] for r in rows if r["status"] != "ok"}))
            progress.log(f"Variant {done}/{len(tasks)} finished: {tasks[outcome['index']].name} ({state})")
            part.report(done / len(tasks))
    runs = [row for i in range(len(tasks)) for row in outcomes[i]["rows"]]
    models: dict[int, LulcModel] = {i: o["model"] for i, o in outcomes.items() if o["model"] is not None}
    interpolated = {i: o["interpolated"] for i, o in outcomes.items() if o["interpolated"]}

    summary = summarise(variants, settings, runs, seeds)
    usable = [k for k, s in enumerate(summary) if s["n_ok"] == len(seeds) and k in models]
    if not usable:
        errors = "; ".join(f"{r['variant']}: {r['error']}" for r in runs if r["status"] == "failed")
        raise ValueError(f"every variant failed ({errors})")
    # ties go to the higher F1, then to fewer features, then to the earlier variant: never to the
    # measured seconds, so that the choice (and the map) is the same in every run
    best_index = min(usable, key=lambda k: (-summary[k]["overall_accuracy_mean"], -summary[k]["f1_weighted_mean"],
                                            summary[k]["n_features"], k))
    best = summary[best_index]
    comparisons = compare(summary, runs, seeds)
    sentences = conclusions(summary, comparisons, len(seeds))
    baseline = baseline_variant(summary, base)
    differences = confusion_differences(runs, [s["variant"] for s in summary], baseline, seeds) if baseline else []

    progress.log(f"Classifying with the best variant: {best['variant']} (seed {seeds[0]})")
    model = models[best_index]
    t0 = time.perf_counter()
    classify([interpolated[best_index]], model, classification, None, progress.scaled(0.9, 1.0), budget_bytes,
             settings[best_index].train.threads)
    best["classify_s"] = time.perf_counter() - t0
    write_sidecar_qml(classification, model.legend)
    model.save(folder / "best_model.json")
    for k, path in interpolated.items():
        if k != best_index:
            Path(path).unlink(missing_ok=True)

    class_names = {c: legend.with_names(reference.names).name(c) for c in labels}
    document = json_safe({
        "title": title, "seeds": seeds, "best_variant": best["variant"], "best_seed": seeds[0],
        "sequential": plan.workers == 1, "parallel": plan.as_dict(), "shared_steps": shared,
        "variants": summary, "runs": runs, "comparisons": comparisons, "conclusions": sentences,
        "confusion_labels": labels, "confusion_names": [class_names[c] for c in labels],
        "confusion_baseline": baseline, "confusion_differences": differences,
        "measured": "test-split accuracy of each (variant, seed); seconds of interpolation (per variant), "
                    "training (sampling, LightGBM, test prediction) and prediction of a fixed pixel sample; "
                    "peak resident memory above the level at the start of the variant's step, in MB"
                    + (f"; {plan.workers} variants ran at once, so the seconds include the competition for "
                       "the cores" if plan.workers > 1 else ""),
    })
    html_text = render_html(document)
    csv_text = runs_csv(runs)
    with atomic_outputs([html_path, csv_path, json_path]) as (h, c, j):
        h.write_text(html_text, encoding="utf-8")
        c.write_text(csv_text, encoding="utf-8")
        if j is not None:
            j.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")
    progress.report(1.0)
    return ExperimentResult(runs=runs, summary=summary, comparisons=comparisons, sentences=sentences,
                            best=best["variant"], shared=shared, document=document)


def _describe_error(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _prediction_sample(path: str, budget_bytes: int | None) -> np.ndarray:
    with FeatureSet([path]) as features:
        total = features.grid.height * features.grid.width
        flat = np.unique(np.linspace(0, total - 1, min(total, PREDICT_SAMPLE)).astype(np.int64))
        return gather_rows(features, flat, Progress(), budget_bytes)


# --------------------------------------------------------------------------- statistics
def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, float)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else None


def summarise(variants: Sequence[Variant], settings: Sequence[PipelineSettings], runs: Sequence[dict],
              seeds: Sequence[int]) -> list[dict]:
    """Per variant: mean and std over the seeds that ran."""
    out = []
    for variant, s in zip(variants, settings):
        mine = [r for r in runs if r["variant"] == variant.name]
        ok = [r for r in mine if r["status"] == "ok"]
        item = {"variant": variant.name, "scene_filter": s.scene_filter,
                "cloud_mask_in_interpolation": s.cloud_mask_in_interpolation, "interval_days": s.interval_days,
                "processing_resolution": s.processing_resolution if s.cloud_mask_in_interpolation else None,
                "classifier": s.train.classifier, "n_seeds": len(seeds), "n_ok": len(ok),
                "errors": sorted({r["error"] for r in mine if r["status"] != "ok"})}
        for key in METRICS + ("train_s", "predict_s", "peak_memory_mb"):
            values = [r[key] for r in ok if r.get(key) is not None]
            item[f"{key}_mean"], item[f"{key}_std"] = _mean_std(values)
        item["n_features"] = ok[0]["n_features"] if ok else None
        item["n_dates"] = ok[0].get("n_dates") if ok else None
        item["interpolate_s"] = ok[0]["interpolate_s"] if ok else None
        item["compute_s"] = (item["interpolate_s"] + item["train_s_mean"] + item["predict_s_mean"]) if ok else None
        out.append(item)
    return out


def paired(runs: Sequence[dict], a: str, b: str, seeds: Sequence[int], metric: str = "overall_accuracy") -> dict:
    """``b - a`` per seed (both ok): mean, std, paired t and whether |t| beats the two-sided 95 %
    critical value of Student's t with n - 1 degrees of freedom."""
    by = {(r["variant"], r["seed"]): r for r in runs if r["status"] == "ok"}
    diffs = [by[(b, s)][metric] - by[(a, s)][metric] for s in seeds if (a, s) in by and (b, s) in by]
    n = len(diffs)
    mean, std = _mean_std(diffs)
    t = critical = None
    beyond = None
    if n >= 2:
        from scipy.stats import t as student

        critical = float(student.ppf(0.975, n - 1))
        if std == 0:
            beyond = mean != 0
            t = None if mean == 0 else math.copysign(math.inf, mean)
        else:
            t = mean / (std / math.sqrt(n))
            beyond = abs(t) > critical
    return {"from": a, "to": b, "metric": metric, "n": n, "mean_difference": mean, "std_difference": std,
            "t": t, "t_critical_95": critical, "beyond_noise": beyond}


#: The factors that define a variant, in :func:`summarise`'s keys.
FACTORS = ("scene_filter", "cloud_mask_in_interpolation", "interval_days", "processing_resolution", "classifier")


def _same_except(a: dict, b: dict, *free: str) -> bool:
    return all(a[f] == b[f] for f in FACTORS if f not in free)


def compare(summary: Sequence[dict], runs: Sequence[dict], seeds: Sequence[int]) -> list[dict]:
    """Paired comparisons, each changing one factor with the others equal: the cloud study (each
    cloud setting against filter on + mask on), the resampling study (each interval against its
    double), and, when several were run, each classifier against the first and each cloud-mask
    resolution against the first."""
    ok = [s for s in summary if s["n_ok"]]
    out = []

    def add(study: str, a: dict, b: dict, **extra: Any) -> None:
        item = {"study": study, **paired(runs, a["variant"], b["variant"], seeds), **extra,
                "from_compute_s": a["compute_s"], "to_compute_s": b["compute_s"]}
        item["time_ratio"] = b["compute_s"] / a["compute_s"] if a["compute_s"] else None
        out.append(item)

    for s in ok:
        # a variant without the mask is compared with the masked base at the first resolution
        base = next((b for b in ok if b["scene_filter"] and b["cloud_mask_in_interpolation"]
                     and _same_except(b, s, "scene_filter", "cloud_mask_in_interpolation", "processing_resolution")
                     and s["processing_resolution"] in (None, b["processing_resolution"])), None)
        if base is not None and base is not s:
            add("cloud", base, s)
    for s in ok:
        double = next((b for b in ok if b["interval_days"] == 2 * s["interval_days"]
                       and _same_except(b, s, "interval_days")), None)
        if double is not None:
            add("interval", double, s, from_days=double["interval_days"], to_days=s["interval_days"],
                from_features=double["n_features"], to_features=s["n_features"])
    for factor, study in (("classifier", "classifier"), ("processing_resolution", "cloud mask resolution")):
        values = list(dict.fromkeys(s[factor] for s in ok if s[factor] is not None))
        for s in ok:
            if s[factor] is None or s[factor] == values[0]:
                continue
            first = next((b for b in ok if b[factor] == values[0] and _same_except(b, s, factor)), None)
            if first is not None:
                add(study, first, s)
    return out


def _diff_text(c: dict, n_seeds: int) -> str:
    text = f"{c['mean_difference']:+.4f}"
    if c["std_difference"] is not None:
        text += f" ± {c['std_difference']:.4f}"
    text += f" (mean ± std of the paired difference over {c['n']} seed{'s' if c['n'] != 1 else ''}"
    if c["beyond_noise"] is None:
        return text + "; one seed gives no noise estimate, run two or more)"
    t = "∞" if c["t"] is not None and math.isinf(c["t"]) else ("0" if c["t"] is None else f"{c['t']:.2f}")
    verdict = "beyond the seed-to-seed noise" if c["beyond_noise"] else "within the seed-to-seed noise"
    return text + f", paired t = {t}, 95 % critical {c['t_critical_95']:.2f}): {verdict}"


def _cost_text(c: dict) -> str:
    if c["time_ratio"] is None:
        return "an unmeasured compute time"
    return (f"{c['time_ratio']:.2f} times the compute time ({c['from_compute_s']:.2f} s -> "
            f"{c['to_compute_s']:.2f} s per run: interpolation, training and prediction)")


def conclusions(summary: Sequence[dict], comparisons: Sequence[dict], n_seeds: int) -> list[str]:
    """The two questions of the seed study (and the extra factors), answered in words from the numbers."""
    out = []
    for s in summary:
        if s["n_ok"] < s["n_seeds"]:
            out.append(f"Variant '{s['variant']}' failed ({s['n_seeds'] - s['n_ok']} of {s['n_seeds']} runs): "
                       + "; ".join(s["errors"]))
    cloud = [c for c in comparisons if c["study"] == "cloud"]
    if cloud:
        for c in cloud:
            out.append(f"Cloud handling: '{c['to']}' instead of '{c['from']}' changes the overall accuracy by "
                       + _diff_text(c, n_seeds) + ".")
        verdicts = [c["beyond_noise"] for c in cloud]
        if any(v is None for v in verdicts):
            out.append("Does cloud handling change accuracy beyond noise here? Not answerable with one seed.")
        elif any(verdicts):
            out.append("Does cloud handling change accuracy beyond noise here? Yes: "
                       + ", ".join(f"'{c['to']}'" for c in cloud if c["beyond_noise"])
                       + " differ from filtering and masking by more than the seed-to-seed noise.")
        else:
            out.append("Does cloud handling change accuracy beyond noise here? No: every cloud setting is within "
                       "the seed-to-seed noise of filtering and masking.")
    for c in (c for c in comparisons if c["study"] == "interval"):
        out.append(f"Halving the interval from {c['from_days']} to {c['to_days']} days costs {_cost_text(c)}, "
                   f"{c['from_features']} -> {c['to_features']} features, and changes the overall accuracy by "
                   + _diff_text(c, n_seeds) + ".")
    for c in (c for c in comparisons if c["study"] in ("classifier", "cloud mask resolution")):
        out.append(f"{c['study'].capitalize()}: '{c['to']}' instead of '{c['from']}' costs {_cost_text(c)} and "
                   "changes the overall accuracy by " + _diff_text(c, n_seeds) + ".")
    return out


def baseline_variant(summary: Sequence[dict], base: PipelineSettings) -> str | None:
    """The reference of the confusion differences: the variant with ``lulcpipeline``'s settings
    (``base``) if it ran, else the first variant that ran."""
    ok = [s for s in summary if s["n_ok"]]
    target = {"scene_filter": base.scene_filter, "cloud_mask_in_interpolation": base.cloud_mask_in_interpolation,
              "interval_days": base.interval_days, "classifier": base.train.classifier,
              "processing_resolution": base.processing_resolution if base.cloud_mask_in_interpolation else None}
    match = next((s for s in ok if all(s[f] == target[f] for f in FACTORS)), None)
    return (match or ok[0])["variant"] if ok else None


def _row_shares(counts: np.ndarray) -> np.ndarray:
    support = counts.sum(axis=1, keepdims=True).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, counts / np.where(support > 0, support, 1), np.nan)


def confusion_differences(runs: Sequence[dict], variants: Sequence[str], baseline: str,
                          seeds: Sequence[int]) -> list[dict]:
    """Per variant: its test confusion matrix (counts summed over the seeds where it and the
    baseline both ran, rows = reference, columns = map) as row shares, minus the baseline's over
    the same seeds. A seed tests the same pixels in every variant, so a row of the difference
    sums to 0: a positive diagonal cell is more of that class mapped right, a positive
    off-diagonal cell more of it mapped as the column's class."""
    by = {(r["variant"], r["seed"]): np.asarray(r["confusion"], np.int64)
          for r in runs if r["status"] == "ok" and r.get("confusion") is not None}
    out = []
    for name in variants:
        common = [s for s in seeds if (name, s) in by and (baseline, s) in by]
        if not common:
            continue
        mine = sum(by[(name, s)] for s in common)
        theirs = sum(by[(baseline, s)] for s in common)
        shares = _row_shares(mine)
        out.append({"variant": name, "baseline": baseline, "seeds": common, "counts": mine.tolist(),
                    "row_shares": shares.tolist(), "difference": (shares - _row_shares(theirs)).tolist()})
    return out


# --------------------------------------------------------------------------- outputs
def runs_csv(runs: Sequence[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in runs:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in CSV_COLUMNS})
    return buffer.getvalue()


def render_html(document: dict) -> str:
    e = escape
    summary, runs = document["variants"], document["runs"]
    shared = document["shared_steps"]
    parts = [*page_start(document["title"]),
             f"<p class=\"muted\">Seeds {e(', '.join(str(s) for s in document['seeds']))}; {e(_how_run(document))}"
             "; the cloud mask and the features are computed once and shared "
             f"({number(shared['cloud_mask_s'], 2)} s and {number(shared['features_s'], 2)}"
             " s). Accuracy is measured on the held-out test split, as in lulcpipeline.</p>",
             "<h2>Conclusions</h2><ul class=\"notes\">"
             + "".join(f"<li>{e(s)}</li>" for s in document["conclusions"]) + "</ul>",
             f"<p>Best variant: <b>{e(document['best_variant'])}</b> (its classification uses seed "
             f"{e(str(document['best_seed']))}).</p>",
             "<h2>Variants (mean ± std over seeds)</h2>"]
    head = ["Variant", "Classifier", "Cloud mask at", "Runs ok", "Dates", "Features", "Overall accuracy",
            "F1 (weighted)", "Kappa", "Interpolation (s)", "Training (s)", "Prediction (s)", "Peak memory (MB)"]
    rows = [[e(s["variant"]), e(s["classifier"]),
             e(_resolution_text(s["processing_resolution"])) if s["cloud_mask_in_interpolation"] else "not used",
             f"{s['n_ok']}/{s['n_seeds']}", number(s["n_dates"], 0), number(s["n_features"], 0),
             *(plus_minus(s[f"{m}_mean"], s[f"{m}_std"]) for m in METRICS), number(s["interpolate_s"], 2),
             plus_minus(s["train_s_mean"], s["train_s_std"], 2), plus_minus(s["predict_s_mean"], s["predict_s_std"], 3),
             plus_minus(s["peak_memory_mb_mean"], None, 1)]
            for s in summary]
    parts.append(table(head, rows))
    parts.append("<h2>Accuracy against compute time</h2>" + accuracy_time_svg(summary))
    if document["comparisons"]:
        parts.append("<h2>Paired comparisons (overall accuracy)</h2>")
        parts.append(table(
            ["Study", "From", "To", "Seeds", "Mean difference", "Std", "Paired t", "95 % critical", "Beyond noise"],
            [[e(c["study"]), e(c["from"]), e(c["to"]), str(c["n"]), number(c["mean_difference"], 4),
              number(c["std_difference"], 4), number(c["t"], 2), number(c["t_critical_95"], 2),
              {True: "yes", False: "no", None: "n/a"}[c["beyond_noise"]]] for c in document["comparisons"]]))
    if document.get("confusion_differences"):
        parts.append(confusion_section(document))
    parts.append("<h2>Every run</h2>")
    parts.append(table(["Variant", "Seed", "Status", "Overall accuracy", "F1 (weighted)", "Kappa", "Training (s)",
                        "Prediction (s)", "Error"],
                       [[e(r["variant"]), e(str(r["seed"])), e(r["status"]), number(r.get("overall_accuracy")),
                         number(r.get("f1_weighted")), number(r.get("kappa")), number(r.get("train_s"), 2),
                         number(r.get("predict_s"), 3), e(r.get("error") or "")] for r in runs]))
    parts.append(f"<p class=\"muted\">{e(document['measured'])}.</p></body></html>")
    return "\n".join(parts)


def _how_run(document: dict) -> str:
    plan = document.get("parallel") or {}
    if document.get("sequential", True):
        return "variants run one after the other"
    return (f"variants run {plan.get('workers')} at a time in worker processes with "
            f"{plan.get('threads_per_variant')} LightGBM thread(s) each ({plan.get('reason')})")


def _difference_colour(value: float | None, diagonal: bool, scale: float) -> str:
    """Green where the variant does better than the baseline (more on the diagonal, less off it),
    red where worse; the stronger, the larger the difference relative to ``scale``."""
    if value is None or not math.isfinite(value) or value == 0 or scale <= 0:
        return "#ffffff"
    better = value > 0 if diagonal else value < 0
    strength = min(1.0, abs(value) / scale)
    r, g, b = (26, 150, 65) if better else (215, 25, 28)
    mix = [round(255 + (c - 255) * (0.15 + 0.7 * strength)) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def confusion_section(document: dict) -> str:
    """Per variant, its confusion matrix (row shares) minus the baseline's, as coloured tables."""
    e = escape
    names = [e(str(n)) for n in document["confusion_names"]]
    items = document["confusion_differences"]
    values = [abs(v) for item in items if item["variant"] != item["baseline"]
              for row in item["difference"] for v in row if v is not None]
    scale = max(values, default=0.0)
    out = ["<h2>Confusion differences against the baseline</h2>",
           f"<p class=\"muted\">Baseline: <b>{e(document['confusion_baseline'])}</b>. Each table is the variant's test "
           "confusion matrix (counts summed over the seeds, as shares of each reference class's row) minus the "
           "baseline's, in percentage points; rows are the reference, columns the map. Green: better than the "
           "baseline (more pixels of the class mapped right, or fewer mapped as another class); red: worse.</p>"]
    for item in items:
        shares = item["row_shares"] if item["variant"] == item["baseline"] else item["difference"]
        head = '<tr><th class="name">reference \\ map</th>' + "".join(f"<th>{n}</th>" for n in names) + "</tr>"
        rows = []
        for i, row in enumerate(shares):
            cells = []
            for j, v in enumerate(row):
                if item["variant"] == item["baseline"]:
                    cells.append(f"<td>{'–' if v is None else f'{100 * v:.1f}'}</td>")
                else:
                    text = "–" if v is None else f"{100 * v:+.1f}"
                    cells.append(f'<td style="background:{_difference_colour(v, i == j, scale)}">{text}</td>')
            rows.append(f'<tr><td class="name">{names[i]}</td>' + "".join(cells) + "</tr>")
        label = ("the baseline itself (row shares, %)" if item["variant"] == item["baseline"]
                 else "minus the baseline (percentage points)")
        out.append(f"<h3>{e(item['variant'])}: {label}, seeds {e(', '.join(str(s) for s in item['seeds']))}</h3>"
                   f"<table>{head}{''.join(rows)}</table>")
    return "".join(out)


def accuracy_time_svg(summary: Sequence[dict]) -> str:
    """Mean overall accuracy (± std) against compute seconds per run, one labelled point per variant."""
    e = escape
    points = [s for s in summary if s["n_ok"] and s["compute_s"] is not None]
    width, height, left, right, top, bottom = 720, 360, 60, 220, 20, 45
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="Overall accuracy against compute time">']
    if not points:
        return "".join(out) + '<text x="20" y="40">no variant ran</text></svg>'
    xs = [p["compute_s"] for p in points]
    lo = [p["overall_accuracy_mean"] - (p["overall_accuracy_std"] or 0) for p in points]
    hi = [p["overall_accuracy_mean"] + (p["overall_accuracy_std"] or 0) for p in points]
    x0, x1 = 0.0, max(xs) * 1.1 or 1.0
    y0, y1 = min(lo), max(hi)
    pad = max(0.005, (y1 - y0) * 0.15)
    y0, y1 = max(0.0, y0 - pad), min(1.0, y1 + pad)
    if y1 <= y0:
        y0, y1 = max(0.0, y0 - 0.01), y0 + 0.01
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + pw * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + ph * (1 - (y - y0) / (y1 - y0))

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for k in range(5):
        yv, xv = y0 + (y1 - y0) * k / 4, x0 + (x1 - x0) * k / 4
        out.append(f'<line x1="{left}" y1="{py(yv):.1f}" x2="{left + pw}" y2="{py(yv):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{py(yv) + 4:.1f}" font-size="10" text-anchor="end">{yv:.3f}</text>'
                   f'<text x="{px(xv):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{xv:.2g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
               "compute seconds per run (interpolation + training + prediction)</text>"
               f'<text x="14" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2})">overall accuracy</text>')
    colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
    for k, p in enumerate(points):
        c = colours[k % len(colours)]
        x, y = px(p["compute_s"]), py(p["overall_accuracy_mean"])
        std = p["overall_accuracy_std"] or 0
        label = e(p["variant"])
        out.append(f'<line x1="{x:.1f}" y1="{py(p["overall_accuracy_mean"] - std):.1f}" x2="{x:.1f}" '
                   f'y2="{py(p["overall_accuracy_mean"] + std):.1f}" stroke="{c}"/>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{c}"><title>{label}: '
                   f'{p["overall_accuracy_mean"]:.3f} in {p["compute_s"]:.2f} s</title></circle>'
                   f'<rect x="{left + pw + 12}" y="{top + 16 * k}" width="10" height="10" fill="{c}"/>'
                   f'<text x="{left + pw + 26}" y="{top + 16 * k + 9}" font-size="11">{label}</text>')
    out.append("</svg>")
    return "".join(out)
