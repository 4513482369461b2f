"""Sinergise's two eo-learn studies on the user's data: cloud handling (2 x 2 grid of cloudy-scene
filter on/off x cloud mask in interpolation on/off) and temporal resampling (several intervals),
optionally crossed with cloud-mask processing resolutions and classifiers.

Every variant runs the same steps as :func:`core.pipeline.run_pipeline`, with the same functions:
the cloud mask and the per-date features do not depend on the experiments' switches, so they are
computed once (per cloud-mask resolution and feature set) and shared. Per variant the features are
interpolated once; per seed a model is trained (the seed fixes the spatial split, the samples
and LightGBM, so a seed gives every variant the same samples and split). The test-split numbers
of a (variant, seed) therefore equal those of ``lulcpipeline`` with the same settings and seed,
and without its spatial smoothing (the variants compare the classifier's own maps). Only the
best variant is classified (with its first seed's model), at the end.

Variants run in parallel in joblib's loky worker processes when memory and cores allow
(:func:`core.workers.plan_workers`): each worker's share of memory is budgeted from the block
budget, the training arrays and the interpreter (:func:`core.experiment_memory.variant_memory_bytes`),
and each gets
``cpus // workers`` LightGBM threads so the cores are not oversubscribed. LightGBM runs with
``deterministic=True`` and prediction splits rows, not trees, over threads, so the numbers do not
depend on the thread count: parallel and sequential runs give identical accuracies. Processes,
not threads, so that each variant's peak memory is its own. A variant that fails (an exception,
or its worker process dying) is recorded with its error; the others go on. Cancel stops scheduling
new variants.

What is measured per (variant, seed): overall accuracy, weighted F1 and kappa on the held-out
test split, its confusion matrix, the number of features, interpolation seconds (per variant),
training seconds (sampling + LightGBM + test prediction), prediction seconds (the model on a
fixed sample of up to ``PREDICT_SAMPLE`` pixels, the same pixels for every variant), the epochs a
deep classifier ran before early stopping, and the peak resident memory above the level at the
start of the step (sampled from ``/proc/self/statm`` every 10 ms on Linux; elsewhere the growth
of the process's maximum RSS, which stays 0 below an earlier peak). In parallel runs the seconds
include the competition for the cores.

This module runs the experiment; the variants are defined in :mod:`core.variants`, the memory is
measured and budgeted in :mod:`core.experiment_memory`, the runs are compared in
:mod:`core.experiment_stats` and written out in :mod:`core.experiment_report`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .accuracy import confusion_matrix, json_safe
from .classify import classify
from .cloudmask import CloudDetector
from .experiment_memory import PREDICT_SAMPLE, PeakMemory, variant_memory_bytes
from .experiment_report import write_outputs
from .experiment_stats import METRICS, baseline_variant, compare, conclusions, confusion_differences, summarise
from .features import compute_features, is_prepared_feature_stack
from .featureset import FeatureSet
from .interpolate import check_inputs, date_grid, default_range, interpolate_stack
from .legend import Legend
from .model import LulcModel, predict_probabilities
from .pipeline import PipelineSettings, refuse_s2cloudless_on_l2a
from .progress import Cancelled, Progress, ensure_progress
from .reference import Reference
from .style import write_sidecar_qml
from .timestack import StackInfo, read_info
from .train import gather_rows, train_model
from .variants import Variant, resolution_text
from .workers import WORKER_IDLE_TIMEOUT, WorkerPlan, plan_workers, run_in_workers, worker_python


@dataclass
class ExperimentSettings:
    """How an experiment runs and where it writes, apart from what it compares (the variants and
    the seeds): one object for the options, as :class:`PipelineSettings` is for the pipeline."""

    #: The settings the variants change (``lulcpipeline``'s by default).
    base: PipelineSettings = field(default_factory=PipelineSettings)
    #: Variants at once: 1 = one after the other in this process, 0 = as many as the CPUs and the
    #: memory allow (:func:`core.workers.plan_workers`).
    workers: int = 1
    budget_bytes: int | None = None
    #: A given cloud mask on the input's dates (0 clear; for example an EOPatch's CLM or the SCL
    #: mask of an imported L2A product): the cloud-mask step is skipped. The feature step still runs
    #: when the input has the bands the features need (an L1C or L2A band stack); otherwise the
    #: input is taken as a prepared per-date feature stack (for example NDVI from an EOPatch).
    cloud_mask: str | Path | None = None
    title: str = "EO LULC experiment"
    #: Outputs; by default in the experiment's folder (``experiment.html``, ``experiment.csv``,
    #: ``best_classification.tif``; no JSON).
    html_path: str | Path | None = None
    csv_path: str | Path | None = None
    json_path: str | Path | None = None
    classification: str | Path | None = None


@dataclass
class ExperimentResult:
    runs: list[dict]
    summary: list[dict]
    comparisons: list[dict]
    sentences: list[str]
    best: str
    shared: dict
    document: dict


def run_experiment(
    l1c_stack: str,
    reference: Reference,
    legend: Legend,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    folder: str | Path,
    settings: ExperimentSettings | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Run the variants over the seeds; write the report (HTML, CSV, JSON) and the best variant's
    styled classification. Intermediate stacks go to ``folder``; outputs default to it too.

    With ``settings.cloud_mask`` the cloud-mask step is skipped, and so is the feature step when
    ``l1c_stack`` lacks the bands the features need (it is then the prepared feature stack); the
    variants then differ only in the scene filter, the mask's use in the interpolation, the grid
    and the classifier. Without it, s2cloudless on a stack tagged L2A is refused."""
    progress = ensure_progress(progress)
    options = settings or ExperimentSettings()
    seeds = [int(s) for s in seeds]
    _check(variants, seeds, options.workers)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classification = Path(options.classification) if options.classification else folder / "best_classification.tif"
    info = read_info(l1c_stack)
    if reference.classes.shape != (info.grid.height, info.grid.width):
        raise ValueError("the reference is not on the input stack's grid")
    # the studies compare the classifier's own maps: the pipeline's smoothing is not a variant here
    base = replace(options.base, smoothing=False)
    configs = [v.settings(base) for v in variants]
    for s in configs:
        s.train.validate()
    check_cloud_mask(info, configs, options.cloud_mask)

    shared, masks, features, configs = _shared_steps(l1c_stack, info, configs, folder, options, progress)
    labels = reference.class_ids
    tasks = [VariantTask(i, v.name, s, features[repr(s.features)],
                         masks[s.processing_resolution] if s.cloud_mask_in_interpolation else None,
                         str(folder / f"variant_{i}_interpolated.tif"), seeds, reference, legend, labels,
                         options.budget_bytes)
             for i, (v, s) in enumerate(zip(variants, configs))]
    plan, python, tasks = _plan(tasks, info, folder, reference, options, progress)
    outcomes = _run_variants(tasks, plan, python, progress.scaled(0.35, 0.9), progress)
    runs = [row for i in range(len(tasks)) for row in outcomes[i]["rows"]]
    models: dict[int, LulcModel] = {i: o["model"] for i, o in outcomes.items() if o["model"] is not None}
    interpolated = {i: o["interpolated"] for i, o in outcomes.items() if o["interpolated"]}

    summary = summarise(variants, configs, runs, seeds)
    best_index = _best_index(summary, runs, models, seeds)
    best = summary[best_index]
    comparisons = compare(summary, runs, seeds)
    sentences = conclusions(summary, comparisons, len(seeds))
    baseline = baseline_variant(summary, base)
    differences = confusion_differences(runs, [s["variant"] for s in summary], baseline, seeds) if baseline else []

    progress.log(f"Classifying with the best variant: {best['variant']} (seed {seeds[0]})")
    model = models[best_index]
    t0 = time.perf_counter()
    classify([interpolated[best_index]], model, classification, None, progress.scaled(0.9, 1.0),
             options.budget_bytes, configs[best_index].train.threads)
    best["classify_s"] = time.perf_counter() - t0
    write_sidecar_qml(classification, model.legend)
    model.save(folder / "best_model.json")
    for k, path in interpolated.items():
        if k != best_index:
            Path(path).unlink(missing_ok=True)

    class_names = {c: legend.with_names(reference.names).name(c) for c in labels}
    document = json_safe({
        "title": options.title, "seeds": seeds, "best_variant": best["variant"], "best_seed": seeds[0],
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
    write_outputs(document, Path(options.html_path) if options.html_path else folder / "experiment.html",
                  Path(options.csv_path) if options.csv_path else folder / "experiment.csv",
                  Path(options.json_path) if options.json_path else None)
    progress.report(1.0)
    return ExperimentResult(runs=runs, summary=summary, comparisons=comparisons, sentences=sentences,
                            best=best["variant"], shared=shared, document=document)


def _check(variants: Sequence[Variant], seeds: Sequence[int], workers: int) -> None:
    if not variants:
        raise ValueError("give at least one variant")
    if not seeds:
        raise ValueError("give at least one seed")
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be unique")
    if workers < 0:
        raise ValueError(f"the number of parallel variants must be 0 (automatic) or more, not {workers}")


#: What to do instead of s2cloudless on an L2A stack, in the experiment's parameters.
L2A_FIX = ("give its SCL mask (OUTPUT_MASK of 'Import Sentinel-2 products (SAFE)') as CLOUD_MASK: the cloud-mask "
           "step is then skipped and the features are still computed from the bands")


def check_cloud_mask(info: StackInfo, configs: Sequence[PipelineSettings], cloud_mask: str | Path | None) -> None:
    """Refuse before anything is computed: a given mask off the input's grid and dates, or
    s2cloudless (needed when a variant uses the mask) on a stack tagged L2A."""
    if cloud_mask is not None:
        try:
            check_inputs(info, read_info(str(cloud_mask)))
        except ValueError as error:
            raise ValueError(f"the CLOUD_MASK stack does not fit the input: {error}") from None
    elif any(s.cloud_mask_in_interpolation for s in configs):
        refuse_s2cloudless_on_l2a(info, L2A_FIX)


def _shared_steps(l1c_stack: str, info, configs: list[PipelineSettings], folder: Path, options: ExperimentSettings,
                  progress: Progress) -> tuple[dict, dict, dict, list[PipelineSettings]]:
    """The steps the variants share: one cloud mask per processing resolution, one feature stack
    per feature set (or the user's given mask and prepared features). Returns their seconds, the masks by resolution,
    the feature stacks by feature set and the variants' settings (without a resolution when the
    mask is prepared)."""
    budget_bytes = options.budget_bytes
    shared: dict[str, Any] = {"cloud_mask_s": 0.0, "features_s": 0.0}
    masks: dict[Any, str] = {}
    features: dict[str, str] = {}
    needed_masks = sorted({s.processing_resolution for s in configs if s.cloud_mask_in_interpolation}, key=str)
    needed_features = {repr(s.features): s.features for s in configs}
    if options.cloud_mask is not None:  # the user brings the cloud mask, and maybe the features
        cloud_mask = str(options.cloud_mask)
        if len(needed_masks) > 1:
            raise ValueError("with a given cloud mask there is no cloud-mask step: compare processing "
                             "resolutions on an L1C stack instead")
        configs = [replace(s, processing_resolution=None) for s in configs]
        masks, needed_masks = {None: cloud_mask}, []
        prepared = [key for key, spec in needed_features.items() if is_prepared_feature_stack(info, spec)]
        features = {key: str(l1c_stack) for key in prepared}
        needed_features = {key: spec for key, spec in needed_features.items() if key not in prepared}
        shared["prepared"] = {"cloud_mask": cloud_mask, **({"features": str(l1c_stack)} if prepared else {})}
        progress.log(f"Given cloud mask {cloud_mask}: no cloud-mask step; " + (
            f"prepared features ({', '.join(info.bands)}): no feature step." if prepared
            else "the features are computed from the input's bands."))
    share = progress.scaled(0.0, 0.35)
    steps = max(1, len(needed_masks) + len(needed_features))
    for k, resolution in enumerate(needed_masks):
        progress.log(f"Cloud mask (s2cloudless, processing resolution {resolution_text(resolution)}), "
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
    return shared, masks, features, configs


def _plan(tasks: list[VariantTask], info, folder: Path, reference: Reference, options: ExperimentSettings,
          progress: Progress) -> tuple[WorkerPlan, str | None, list[VariantTask]]:
    """How many variants run at once (:func:`plan_workers`), the workers' interpreter, and the
    tasks as they travel to worker processes (the reference as memory-mapped files, the cores
    shared out)."""
    budget_bytes = options.budget_bytes
    variant_bytes = max(variant_memory_bytes(info.grid.height, info.grid.width, _predicted_features(t),
                                             t.settings.train.samples, budget_bytes) for t in tasks)
    plan = plan_workers(options.workers, len(tasks), variant_bytes)
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
    return plan, python, tasks


def _run_variants(tasks: Sequence[VariantTask], plan: WorkerPlan, python: str | None, part: Progress,
                  progress: Progress) -> dict[int, dict]:
    """Every variant's outcome by index: one after the other here, or in worker processes."""
    outcomes: dict[int, dict] = {}
    if plan.workers == 1:
        for i, task in enumerate(tasks):
            progress.check()
            progress.log(f"Variant {i + 1}/{len(tasks)}: {task.name}")
            outcomes[i] = run_variant(task, part.scaled(i / len(tasks), (i + 1) / len(tasks)))
        return outcomes
    for done, outcome in enumerate(_run_parallel(tasks, plan.workers, python, progress), start=1):
        outcomes[outcome["index"]] = outcome
        rows = outcome["rows"]
        state = "ok" if all(r["status"] == "ok" for r in rows) else "; ".join(
            sorted({r["error"] for r in rows if r["status"] != "ok"}))
        progress.log(f"Variant {done}/{len(tasks)} finished: {tasks[outcome['index']].name} ({state})")
        part.report(done / len(tasks))
    return outcomes


def _best_index(summary: Sequence[dict], runs: Sequence[dict], models: dict[int, LulcModel],
                seeds: Sequence[int]) -> int:
    """The variant with the highest mean overall accuracy among those that ran on every seed.
    Ties go to the higher F1, then to fewer features, then to the earlier variant: never to the
    measured seconds, so that the choice (and the map) is the same in every run."""
    usable = [k for k, s in enumerate(summary) if s["n_ok"] == len(seeds) and k in models]
    if not usable:
        errors = "; ".join(f"{r['variant']}: {r['error']}" for r in runs if r["status"] == "failed")
        raise ValueError(f"every variant failed ({errors})")
    return min(usable, key=lambda k: (-summary[k]["overall_accuracy_mean"], -summary[k]["f1_weighted_mean"],
                                      summary[k]["n_features"], k))


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
            if trained.model.network is not None:  # a deep classifier: how long early stopping let it train
                row["epochs_run"] = trained.model.metadata["parameters"].get("epochs_run")
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


def _describe_error(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _prediction_sample(path: str, budget_bytes: int | None) -> np.ndarray:
    with FeatureSet([path]) as features:
        total = features.grid.height * features.grid.width
        flat = np.unique(np.linspace(0, total - 1, min(total, PREDICT_SAMPLE)).astype(np.int64))
        return gather_rows(features, flat, Progress(), budget_bytes)
