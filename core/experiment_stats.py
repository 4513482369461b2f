"""Statistics of the experiment's runs: per-variant means and standard deviations over the
seeds, paired comparisons (the seed fixes the split and the samples, so variants are compared
seed by seed with a paired t test), the conclusions in words, and the confusion differences
against a baseline variant.

Pure functions of the run rows, apart from how the runs are made (:mod:`core.experiment`) and
shown (:mod:`core.experiment_report`), so they can be checked on numbers written by hand.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .pipeline import PipelineSettings
from .variants import Variant

METRICS = ("overall_accuracy", "f1_weighted", "kappa")


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
