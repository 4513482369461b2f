"""Outputs of an experiment: the runs as CSV, and the HTML report (variants table, accuracy
against compute time as inline SVG, paired comparisons, confusion differences, every run).

Kept apart from the running and the statistics so the document can be rendered again from its
JSON; built with the shared HTML toolkit (:mod:`core.htmltools`) like every other report.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

from .atomic import atomic_outputs
from .experiment_stats import METRICS
from .htmltools import escape, number, page_start, plus_minus, table
from .variants import resolution_text

CSV_COLUMNS = ("variant", "seed", "status", "error", "scene_filter", "cloud_mask_in_interpolation", "interval_days",
               "processing_resolution", "classifier", "n_dates", "n_features", "overall_accuracy", "f1_weighted",
               "kappa", "interpolate_s", "train_s", "predict_s", "peak_memory_mb", "epochs_run")


def write_outputs(document: dict, html_path: str | Path, csv_path: str | Path,
                  json_path: str | Path | None = None) -> None:
    """The report as HTML, the runs as CSV and the document as JSON (when ``json_path``), all or nothing."""
    html_text = render_html(document)
    csv_text = runs_csv(document["runs"])
    with atomic_outputs([html_path, csv_path, json_path]) as (h, c, j):
        h.write_text(html_text, encoding="utf-8")
        c.write_text(csv_text, encoding="utf-8")
        if j is not None:
            j.write_text(json.dumps(document, indent=2, allow_nan=False), encoding="utf-8")


def runs_csv(runs: Sequence[dict]) -> str:
    """One CSV row per (variant, seed), in :data:`CSV_COLUMNS`; missing values empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in runs:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in CSV_COLUMNS})
    return buffer.getvalue()


def render_html(document: dict) -> str:
    """The experiment's document (what :func:`core.experiment.run_experiment` writes as JSON) as one
    self-contained HTML page."""
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
             e(resolution_text(s["processing_resolution"])) if s["cloud_mask_in_interpolation"] else "not used",
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
