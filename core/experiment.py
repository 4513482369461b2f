"""Sinergise's two eo-learn studies on the user's data: cloud handling (2 x 2 grid of cloudy-scene
filter on/off x cloud mask in interpolation on/off) and temporal resampling (several intervals).

Every variant runs the same steps as :func:`core.pipeline.run_pipeline`, with the same functions:
the cloud mask and the per-date features do not depend on the experiments' switches, so they are
computed once (per cloud-mask resolution and feature set) and shared. Per variant the features are
interpolated once; per seed a model is trained (the seed fixes the spatial split, the samples
and LightGBM, so a seed gives every variant the same samples and split). The test-split numbers
of a (variant, seed) therefore equal those of ``lulcpipeline`` with the same settings and seed.
Only the best variant is classified (with its first seed's model), at the end.

Variants run one after the other (sequentially): the steps already use all cores, and memory
stays that of one pipeline run. A variant that fails is recorded with its error; the others go on.

What is measured per (variant, seed): overall accuracy, weighted F1 and kappa on the held-out
test split, the number of features, interpolation seconds (per variant), training seconds
(sampling + LightGBM + test prediction), prediction seconds (the model on a fixed sample of up to
``PREDICT_SAMPLE`` pixels, the same pixels for every variant), and the peak resident memory above
the level at the start of the step (sampled from ``/proc/self/statm`` every 10 ms on Linux;
elsewhere the growth of the process's maximum RSS, which stays 0 below an earlier peak).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .accuracy import json_safe
from .atomic import atomic_outputs
from .classify import classify
from .cloudmask import CloudDetector
from .features import compute_features
from .featureset import FeatureSet
from .interpolate import interpolate_stack
from .legend import Legend
from .model import predict_probabilities
from .pipeline import PipelineSettings
from .progress import Cancelled, Progress, ensure_progress
from .reference import Reference
from .report import CSS, _table
from .style import write_sidecar_qml
from .timestack import read_info
from .train import gather_rows, train_model

#: Pixels the prediction time is measured on (a fixed, evenly spread sample).
PREDICT_SAMPLE = 100_000
METRICS = ("overall_accuracy", "f1_weighted", "kappa")
CSV_COLUMNS = ("variant", "seed", "status", "error", "scene_filter", "cloud_mask_in_interpolation", "interval_days",
               "n_dates", "n_features", "overall_accuracy", "f1_weighted", "kappa", "interpolate_s", "train_s",
               "predict_s", "peak_memory_mb")


@dataclass
class Variant:
    """A name and the :class:`PipelineSettings` fields it changes (e.g. ``{"interval_days": 8}``)."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)

    def settings(self, base: PipelineSettings) -> PipelineSettings:
        return replace(base, **self.changes)


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


def parse_intervals(text: str) -> list[int]:
    """``"8, 16,32"`` -> [8, 16, 32]."""
    try:
        days = [int(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"'{text}' is not a list of whole days such as 8,16,32") from None
    if not days:
        raise ValueError("give at least one interval in days, e.g. 8,16,32")
    return days


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
) -> ExperimentResult:
    """Run the variants over the seeds; write the report (HTML, CSV, JSON) and the best variant's
    styled classification. Intermediate stacks go to ``folder``; outputs default to it too."""
    progress = ensure_progress(progress)
    base = base or PipelineSettings()
    seeds = [int(s) for s in seeds]
    if not variants:
        raise ValueError("give at least one variant")
    if not seeds:
        raise ValueError("give at least one seed")
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be unique")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path = Path(html_path) if html_path else folder / "experiment.html"
    csv_path = Path(csv_path) if csv_path else folder / "experiment.csv"
    json_path = Path(json_path) if json_path else None
    classification = Path(classification) if classification else folder / "best_classification.tif"
    info = read_info(l1c_stack)
    if reference.classes.shape != (info.grid.height, info.grid.width):
        raise ValueError("the reference is not on the L1C stack's grid")
    settings = [v.settings(base) for v in variants]
    for s in settings:
        s.train.validate()

    # shared steps: one cloud mask per processing resolution, one feature stack per feature set
    shared: dict[str, Any] = {"cloud_mask_s": 0.0, "features_s": 0.0}
    masks: dict[Any, str] = {}
    features: dict[str, str] = {}
    needed_masks = sorted({s.processing_resolution for s in settings if s.cloud_mask_in_interpolation}, key=str)
    needed_features = {repr(s.features): s.features for s in settings}
    share = progress.scaled(0.0, 0.35)
    steps = len(needed_masks) + len(needed_features)
    for k, resolution in enumerate(needed_masks):
        progress.log(f"Cloud mask (s2cloudless, processing resolution {resolution}), shared by the variants")
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

    runs: list[dict] = []
    models: dict[int, Any] = {}
    interpolated: dict[int, str] = {}
    part = progress.scaled(0.35, 0.9)
    for i, (variant, s) in enumerate(zip(variants, settings)):
        progress.check()
        vp = part.scaled(i / len(variants), (i + 1) / len(variants))
        progress.log(f"Variant {i + 1}/{len(variants)}: {variant.name}")
        common = {"variant": variant.name, "scene_filter": s.scene_filter,
                  "cloud_mask_in_interpolation": s.cloud_mask_in_interpolation, "interval_days": s.interval_days}
        out = str(folder / f"variant_{i}_interpolated.tif")
        try:
            t0 = time.perf_counter()
            with PeakMemory() as memory:
                report = interpolate_stack(
                    features[repr(s.features)], out, start=s.start, end=s.end, interval_days=s.interval_days,
                    mask_path=masks[s.processing_resolution] if s.cloud_mask_in_interpolation else None,
                    min_valid_fraction=s.min_valid_fraction if s.scene_filter else 0.0,
                    budget_bytes=budget_bytes, progress=vp.scaled(0.0, 0.2))
            interpolate_s = time.perf_counter() - t0
            common["n_dates"] = len(report.dates)
            interpolated[i] = out
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001 - a failed variant must not stop the others
            progress.log(f"Variant '{variant.name}' failed: {error}")
            runs.extend({**common, "seed": seed, "status": "failed", "error": _describe_error(error)}
                        for seed in seeds)
            continue
        sample = None
        for j, seed in enumerate(seeds):
            progress.check()
            sp = vp.scaled(0.2 + 0.8 * j / len(seeds), 0.2 + 0.8 * (j + 1) / len(seeds))
            row = {**common, "seed": seed, "interpolate_s": interpolate_s}
            try:
                with PeakMemory() as run_memory:
                    t0 = time.perf_counter()
                    trained = train_model([out], reference, legend, replace(s.train, seed=seed), sp, budget_bytes)
                    row["train_s"] = time.perf_counter() - t0
                    if sample is None:
                        sample = _prediction_sample(out, budget_bytes)
                    t0 = time.perf_counter()
                    predict_probabilities(trained.model.ensemble(s.train.threads), sample)
                    row["predict_s"] = time.perf_counter() - t0
                row.update(status="ok", error="", n_features=len(trained.model.feature_names),
                           peak_memory_mb=max(memory.peak_mb or 0.0, run_memory.peak_mb or 0.0)
                           if memory.peak_mb is not None or run_memory.peak_mb is not None else None,
                           **{m: float(trained.report[m]) for m in METRICS})
                if j == 0:
                    models[i] = trained.model
            except Cancelled:
                raise
            except Exception as error:  # noqa: BLE001
                progress.log(f"Variant '{variant.name}', seed {seed} failed: {error}")
                row.update(status="failed", error=_describe_error(error))
            runs.append(row)

    summary = summarise(variants, settings, runs, seeds)
    usable = [k for k, s in enumerate(summary) if s["n_ok"] == len(seeds) and k in models]
    if not usable:
        errors = "; ".join(f"{r['variant']}: {r['error']}" for r in runs if r["status"] == "failed")
        raise ValueError(f"every variant failed ({errors})")
    best_index = max(usable, key=lambda k: (summary[k]["overall_accuracy_mean"], -summary[k]["compute_s"]))
    best = summary[best_index]
    comparisons = compare(summary, runs, seeds)
    sentences = conclusions(summary, comparisons, len(seeds))

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

    document = json_safe({
        "title": title, "seeds": seeds, "best_variant": best["variant"], "best_seed": seeds[0],
        "sequential": True, "shared_steps": shared, "variants": summary, "runs": runs,
        "comparisons": comparisons, "conclusions": sentences,
        "measured": "test-split accuracy of each (variant, seed); seconds of interpolation (per variant), "
                    "training (sampling, LightGBM, test prediction) and prediction of a fixed pixel sample; "
                    "peak resident memory above the level at the start of the variant's step, in MB",
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
                "n_seeds": len(seeds), "n_ok": len(ok),
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


def compare(summary: Sequence[dict], runs: Sequence[dict], seeds: Sequence[int]) -> list[dict]:
    """The cloud study (each cloud setting against filter on + mask on, same interval) and the
    resampling study (each interval against its double, same cloud handling)."""
    ok = [s for s in summary if s["n_ok"]]
    out = []
    for s in ok:
        base = next((b for b in ok if b["scene_filter"] and b["cloud_mask_in_interpolation"]
                     and b["interval_days"] == s["interval_days"]), None)
        if base is not None and base is not s:
            out.append({"study": "cloud", **paired(runs, base["variant"], s["variant"], seeds)})
    for s in ok:
        double = next((b for b in ok if b["interval_days"] == 2 * s["interval_days"]
                       and b["scene_filter"] == s["scene_filter"]
                       and b["cloud_mask_in_interpolation"] == s["cloud_mask_in_interpolation"]), None)
        if double is not None:
            item = {"study": "interval", **paired(runs, double["variant"], s["variant"], seeds),
                    "from_days": double["interval_days"], "to_days": s["interval_days"],
                    "from_compute_s": double["compute_s"], "to_compute_s": s["compute_s"],
                    "from_features": double["n_features"], "to_features": s["n_features"]}
            item["time_ratio"] = s["compute_s"] / double["compute_s"] if double["compute_s"] else None
            out.append(item)
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


def conclusions(summary: Sequence[dict], comparisons: Sequence[dict], n_seeds: int) -> list[str]:
    """The two questions of the seed study, answered in words from the numbers."""
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
        cost = (f"{c['time_ratio']:.2f} times the compute time ({c['from_compute_s']:.2f} s -> "
                f"{c['to_compute_s']:.2f} s per run: interpolation, training and prediction)"
                if c["time_ratio"] is not None else "an unmeasured compute time")
        out.append(f"Halving the interval from {c['from_days']} to {c['to_days']} days costs {cost}, "
                   f"{c['from_features']} -> {c['to_features']} features, and changes the overall accuracy by "
                   + _diff_text(c, n_seeds) + ".")
    return out


# --------------------------------------------------------------------------- outputs
def runs_csv(runs: Sequence[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in runs:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in CSV_COLUMNS})
    return buffer.getvalue()


def _n(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def _pm(mean: Any, std: Any, digits: int = 3) -> str:
    return "n/a" if mean is None else _n(mean, digits) + ("" if std is None else f" ± {_n(std, digits)}")


def render_html(document: dict) -> str:
    e = html.escape
    summary, runs = document["variants"], document["runs"]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{e(document['title'])}</title><style>{CSS}</style></head><body>",
             f"<h1>{e(document['title'])}</h1>",
             f"<p class=\"muted\">Seeds {e(', '.join(str(s) for s in document['seeds']))}; variants run "
             "sequentially; the cloud mask and the features are computed once and shared "
             f"({_n(document['shared_steps']['cloud_mask_s'], 2)} s and {_n(document['shared_steps']['features_s'], 2)}"
             " s). Accuracy is measured on the held-out test split, as in lulcpipeline.</p>",
             "<h2>Conclusions</h2><ul class=\"notes\">"
             + "".join(f"<li>{e(s)}</li>" for s in document["conclusions"]) + "</ul>",
             f"<p>Best variant: <b>{e(document['best_variant'])}</b> (its classification uses seed "
             f"{e(str(document['best_seed']))}).</p>",
             "<h2>Variants (mean ± std over seeds)</h2>"]
    head = ["Variant", "Runs ok", "Dates", "Features", "Overall accuracy", "F1 (weighted)", "Kappa",
            "Interpolation (s)", "Training (s)", "Prediction (s)", "Peak memory (MB)"]
    rows = [[e(s["variant"]), f"{s['n_ok']}/{s['n_seeds']}", _n(s["n_dates"], 0), _n(s["n_features"], 0),
             *(_pm(s[f"{m}_mean"], s[f"{m}_std"]) for m in METRICS), _n(s["interpolate_s"], 2),
             _pm(s["train_s_mean"], s["train_s_std"], 2), _pm(s["predict_s_mean"], s["predict_s_std"], 3),
             _pm(s["peak_memory_mb_mean"], None, 1)]
            for s in summary]
    parts.append(_table(head, rows))
    parts.append("<h2>Accuracy against compute time</h2>" + accuracy_time_svg(summary))
    if document["comparisons"]:
        parts.append("<h2>Paired comparisons (overall accuracy)</h2>")
        parts.append(_table(
            ["Study", "From", "To", "Seeds", "Mean difference", "Std", "Paired t", "95 % critical", "Beyond noise"],
            [[e(c["study"]), e(c["from"]), e(c["to"]), str(c["n"]), _n(c["mean_difference"], 4),
              _n(c["std_difference"], 4), _n(c["t"], 2), _n(c["t_critical_95"], 2),
              {True: "yes", False: "no", None: "n/a"}[c["beyond_noise"]]] for c in document["comparisons"]]))
    parts.append("<h2>Every run</h2>")
    parts.append(_table(["Variant", "Seed", "Status", "Overall accuracy", "F1 (weighted)", "Kappa", "Training (s)",
                         "Prediction (s)", "Error"],
                        [[e(r["variant"]), e(str(r["seed"])), e(r["status"]), _n(r.get("overall_accuracy")),
                          _n(r.get("f1_weighted")), _n(r.get("kappa")), _n(r.get("train_s"), 2),
                          _n(r.get("predict_s"), 3), e(r.get("error") or "")] for r in runs]))
    parts.append(f"<p class=\"muted\">{e(document['measured'])}.</p></body></html>")
    return "\n".join(parts)


def accuracy_time_svg(summary: Sequence[dict]) -> str:
    """Mean overall accuracy (± std) against compute seconds per run, one labelled point per variant."""
    e = html.escape
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
