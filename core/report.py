"""Accuracy reports as one self-contained HTML file and as JSON, and the training report's
feature-importance section.

The HTML must open anywhere, offline and years later, so it carries its CSS inline
(:mod:`core.htmltools`, shared by every report) and draws its plots as inline SVG generated here:
no script, no web font, no URL. Every piece of text that comes from data (class names, notes,
titles) is escaped.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .accuracy import json_safe
from .atomic import atomic_outputs
from .htmltools import escape, integer, number, page_start, plus_minus, table


def write_report(
    html_path: str | Path | None,
    json_path: str | Path | None,
    report: dict[str, Any],
    title: str,
    notes: Sequence[str] = (),
    extra_sections: Sequence[tuple[str, str]] = (),
) -> None:
    """Write the report of :func:`core.accuracy.assess` as HTML and/or JSON, all or nothing.

    ``notes`` are plain-text remarks shown at the top (e.g. a random split overstating
    accuracy); ``extra_sections`` are ``(heading, html)`` pairs appended as they are (the HTML
    is the caller's, escape it there), e.g. feature importances.
    """
    data = json_safe({"title": title, "notes": list(notes), **report})
    json_text = json.dumps(data, indent=2, allow_nan=False)
    html_text = render_html(data, title, notes, extra_sections) if html_path is not None else ""
    with atomic_outputs([html_path, json_path]) as (html_temp, json_temp):
        if html_temp is not None:
            html_temp.write_text(html_text, encoding="utf-8")
        if json_temp is not None:
            json_temp.write_text(json_text, encoding="utf-8")


def render_html(
    report: dict[str, Any], title: str, notes: Sequence[str] = (), extra_sections: Sequence[tuple[str, str]] = ()
) -> str:
    """The report as one self-contained HTML page."""
    e = escape
    classes = report.get("per_class", [])
    all_notes = list(notes) + list(report.get("area_adjusted", {}).get("notes", []))
    parts = [
        *page_start(title),
        f'<p class="muted">EO LULC accuracy report, {e(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))}; '
        f"{integer(report.get('n_samples'))} compared pixels.</p>",
    ]
    if all_notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(str(n))}</li>" for n in all_notes) + "</ul>")
    parts.append("<h2>Summary</h2>")
    parts.append(table(
        ["Overall accuracy", "Cohen's kappa", "F1 (weighted)", "F1 (macro)", "Pixels"],
        [[number(report.get("overall_accuracy")), number(report.get("kappa")), number(report.get("f1_weighted")),
          number(report.get("f1_macro")), integer(report.get("n_samples"))]],
        css="summary",
    ))
    parts.append("<h2>Per class</h2>")
    parts.append(table(
        ["Class", "Id", "Precision (user's)", "Recall (producer's)", "F1", "Reference pixels", "Map pixels"],
        [[_class_cell(c), e(str(c["id"])), number(c.get("precision")), number(c.get("recall")), number(c.get("f1")),
          integer(c.get("support")), integer(c.get("predicted"))] for c in classes],
    ))
    parts.append(bar_chart_svg(classes))
    confusion = report.get("confusion")
    if confusion:
        parts.append("<h2>Confusion matrix</h2>")
        parts.append('<p class="muted">Rows: reference; columns: map. Colour: share of the reference row; '
                     "numbers: pixels.</p>")
        parts.append(confusion_svg(classes, confusion["counts"], confusion["row_normalised"]))
        head = ["Reference \\ map"] + [e(c["name"]) for c in classes] + ["Total"]
        rows = [[_class_cell(c)] + [integer(v) for v in row] + [integer(sum(row))]
                for c, row in zip(classes, confusion["counts"])]
        parts.append(table(head, rows, escape_head=False))
    area = report.get("area_adjusted")
    if area:
        parts.append(_area_section(area))
    for heading, body in extra_sections:
        parts.append(f"<h2>{e(heading)}</h2>{body}")
    parts.append("</body></html>")
    return "\n".join(parts)


def _area_section(area: dict[str, Any]) -> str:
    e = escape
    level = f"{100 * float(area.get('confidence', 0.95)):g} %"
    hectares = any("area_ha" in c for c in area["per_class"])
    head = ["Class", "Map pixels", "Weight", f"User's accuracy (± {level} CI)", f"Producer's accuracy (± {level} CI)",
            "Area (pixels)"] + (["Area (ha)"] if hectares else [])
    rows = []
    for c in area["per_class"]:
        row = [_class_cell(c), integer(c["map_pixels"]), number(c["weight"]), _interval(c["users_accuracy"]),
               _interval(c["producers_accuracy"]), _interval(c["area_pixels"], 0)]
        if hectares:
            row.append(_interval(c.get("area_ha") or {}, 1))
        rows.append(row)
    oa = area["overall_accuracy"]
    return (
        "<h2>Area-adjusted accuracy and area estimates</h2>"
        f"<p>{e(area.get('method', ''))}: estimates with {e(level)} confidence intervals (± half-width). "
        f"Stratified overall accuracy: <b>{_interval(oa)}</b>.</p>"
        + table(head, rows)
    )


def bar_chart_svg(classes: Sequence[dict[str, Any]]) -> str:
    """Grouped horizontal bars of precision, recall and F1 per class."""
    e = escape
    metrics = (("precision", "Precision", "#4c72b0"), ("recall", "Recall", "#dd8452"), ("f1", "F1", "#55a868"))
    label_w, plot_w, bar_h, gap = 190, 420, 9, 10
    group_h = bar_h * len(metrics) + gap
    height = 40 + group_h * len(classes) + 20
    width = label_w + plot_w + 60
    out = [f'<svg width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="Per-class precision, recall and F1">']
    for i, (_, name, colour) in enumerate(metrics):
        x = label_w + i * 110
        out.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="16" font-size="12">{name}</text>')
    top = 30
    for tick in range(0, 11, 2):
        x = label_w + plot_w * tick / 10
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - 18}" stroke="#ddd"/>'
                   f'<text x="{x:.1f}" y="{height - 4}" font-size="10" text-anchor="middle">{tick / 10:g}</text>')
    for k, c in enumerate(classes):
        y0 = top + k * group_h
        out.append(f'<rect x="4" y="{y0 + group_h / 2 - 10:.1f}" width="12" height="12" fill="{_colour(c)}" '
                   f'stroke="#555"/><text x="20" y="{y0 + group_h / 2:.1f}" font-size="12">'
                   f"{e(_short(c['name']))}</text>")
        for i, (key, name, colour) in enumerate(metrics):
            value = c.get(key)
            y = y0 + i * bar_h
            if value is None:
                out.append(f'<text x="{label_w + 2}" y="{y + bar_h - 1}" font-size="9" fill="#777">n/a</text>')
                continue
            out.append(f'<rect x="{label_w}" y="{y}" width="{plot_w * float(value):.1f}" height="{bar_h - 1}" '
                       f'fill="{colour}"><title>{e(c["name"])} {name}: {float(value):.3f}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def confusion_svg(classes: Sequence[dict[str, Any]], counts: Sequence[Sequence[int]],
                  normalised: Sequence[Sequence[float | None]]) -> str:
    """Heat map of the row-normalised confusion matrix, class colours on both axes."""
    e = escape
    n = len(classes)
    cell = max(28, min(64, 560 // max(n, 1)))
    left, top = 200, 150
    width, height = left + n * cell + 130, top + n * cell + 20  # room for the slanted column labels
    out = [f'<svg width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="Confusion matrix">',
           f'<text x="{left + n * cell / 2:.1f}" y="14" font-size="12" text-anchor="middle">map</text>',
           f'<text x="12" y="{top + n * cell / 2:.1f}" font-size="12" text-anchor="middle" '
           f'transform="rotate(-90 12 {top + n * cell / 2:.1f})">reference</text>']
    for k, c in enumerate(classes):
        name = e(_short(c["name"]))
        y = top + k * cell
        out.append(f'<rect x="{left - 16}" y="{y + cell / 2 - 6:.1f}" width="12" height="12" fill="{_colour(c)}" '
                   f'stroke="#555"/><text x="{left - 20}" y="{y + cell / 2 + 4:.1f}" font-size="11" '
                   f'text-anchor="end">{name}</text>')
        x = left + k * cell + cell / 2
        out.append(f'<rect x="{x - 6:.1f}" y="{top - 16}" width="12" height="12" fill="{_colour(c)}" stroke="#555"/>'
                   f'<text x="{x + 4:.1f}" y="{top - 20}" font-size="11" '
                   f'transform="rotate(-45 {x + 4:.1f} {top - 20})">{name}</text>')
    for r in range(n):
        for col in range(n):
            share = normalised[r][col]
            value = 0.0 if share is None else float(share)
            x, y = left + col * cell, top + r * cell
            fill = _blue(value)
            ink = "#fff" if value > 0.55 else "#222"
            out.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff">'
                       f'<title>reference {e(classes[r]["name"])}, map {e(classes[col]["name"])}: '
                       f"{int(counts[r][col])} pixels ({100 * value:.1f} %)</title></rect>")
            if counts[r][col]:
                out.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" font-size="{10 if cell < 40 else 11}" '
                           f'text-anchor="middle" fill="{ink}">{_compact(int(counts[r][col]))}</text>')
    out.append("</svg>")
    return "".join(out)


def _class_cell(c: dict[str, Any]) -> str:
    return f'<span class="swatch" style="background:{_colour(c)}"></span>{escape(str(c["name"]))}'


def _colour(c: dict[str, Any]) -> str:
    """The class colour if it is a plain ``#rrggbb`` (it lands in attributes), else grey."""
    value = str(c.get("colour", ""))
    if len(value) == 7 and value[0] == "#" and all(ch in "0123456789abcdefABCDEF" for ch in value[1:]):
        return value
    return "#999999"


def _blue(value: float) -> str:
    value = min(1.0, max(0.0, value))
    r, g, b = (247 + (8 - 247) * value, 251 + (48 - 251) * value, 255 + (107 - 255) * value)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def _compact(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1e6:.1f}M"
    if value >= 10_000:
        return f"{value / 1e3:.0f}k"
    return str(value)


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _interval(item: dict[str, Any], digits: int = 3) -> str:
    """An ``{"estimate", "ci"}`` item as ``estimate ± half-width``, thousands separated."""
    return plus_minus(item.get("estimate"), item.get("ci"), digits, grouping=True)


def importance_html(importances: list[tuple[str, float]], top: int = 30) -> str:
    """HTML table of the ``top`` most important features (share of the total split gain), for
    the training report's feature-importance section."""
    rows = "".join(
        f"<tr><td class='name'>{escape(name)}</td><td>{100 * share:.1f} %</td>"
        f"<td><svg width='200' height='10'><rect width='{200 * share / max(importances[0][1], 1e-12):.1f}' "
        f"height='10' fill='#4a7ab0'/></svg></td></tr>"
        for name, share in importances[:top]
    )
    more = f"<p class='muted'>{len(importances) - top} more features not shown.</p>" if len(importances) > top else ""
    return f"<table><tr><th class='name'>feature</th><th>gain share</th><th></th></tr>{rows}</table>{more}"


def settings_html(settings: dict[str, Any]) -> str:
    """A run's settings (``{name: value}``, e.g. ``pipeline.describe_settings``) as a two-column
    table, so that a report says how its map was made."""
    def shown(value: Any) -> str:
        if value is None:
            return "default"
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value) or "none"
        return str(value)

    return table(["Setting", "Value"], [[escape(name.replace("_", " ")), escape(shown(value))]
                                        for name, value in settings.items()])


def interpolation_html(interpolation: dict[str, Any], interval_days: int) -> str:
    """The date grid the features were interpolated onto and which acquisitions were kept (with
    their clear fraction when the scene filter counted it), from ``InterpolationPlan.as_dict``."""
    grid = [d.removesuffix("T00:00:00") for d in interpolation.get("output_dates", [])]
    kept = set(interpolation.get("kept_dates", []))
    fractions = interpolation.get("valid_fractions") or {}
    dates = sorted(set(fractions) | kept | set(interpolation.get("dropped_dates", [])))
    span = f"{grid[0]} to {grid[-1]}" if grid else "none"
    parts = [f"<p>{len(grid)} dates every {int(interval_days)} days, {escape(span)}; "
             f"{len(kept)} of {len(dates)} acquisitions kept (minimum clear fraction "
             f"{escape(str(interpolation.get('min_valid_fraction')))}).</p>",
             table(["Acquisition", "Clear fraction", "Used"],
                   [[escape(d), number(fractions.get(d)), "kept" if d in kept else "dropped"] for d in dates]),
             f"<p class='muted'>Grid dates: {escape(', '.join(grid))}.</p>"]
    return "".join(parts)
