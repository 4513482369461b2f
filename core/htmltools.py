"""The HTML toolkit of every report (accuracy, batch, training, experiment): the inline CSS, the
page head, tables, number formatting with ``n/a`` for what is missing, ``±`` intervals and
escaping.

One module so that every report looks the same and writes a missing or non-finite number the
same way. Reports must open anywhere, offline and years later: the CSS is inline, there is no
script, web font or URL, and every piece of text that comes from data is escaped (cells given to
:func:`table` are already escaped by the caller).
"""

from __future__ import annotations

import html
import math
from typing import Any, Sequence

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td.name,th.name{text-align:left}.swatch{display:inline-block;width:.9em;height:.9em;
border:1px solid #555;margin-right:.4em;vertical-align:middle}.summary td{font-size:1.1em}
.notes li{margin:.2em 0}.muted{color:#777;font-size:.9em}svg text{font-family:inherit}
"""

escape = html.escape


def page_start(title: str) -> list[str]:
    """The opening lines of a report page (doctype, head with the CSS, the title as heading)."""
    return ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>", f"<h1>{escape(title)}</h1>"]


def table(head: Sequence[str], rows: Sequence[Sequence[str]], css: str = "", escape_head: bool = True) -> str:
    """A table from already-escaped cells; the first column is left-aligned."""
    cells = [escape(h) if escape_head else h for h in head]
    out = [f'<table class="{css}">' if css else "<table>", "<tr>"]
    out += [f'<th class="name">{h}</th>' if i == 0 else f"<th>{h}</th>" for i, h in enumerate(cells)]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="name">{v}</td>' if i == 0 else f"<td>{v}</td>"
                                    for i, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def number(value: Any, digits: int = 3, grouping: bool = False) -> str:
    """``value`` with ``digits`` decimals (thousands separated with ``grouping``); ``n/a`` when
    missing or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):{',' if grouping else ''}.{digits}f}"


def integer(value: Any) -> str:
    """A count with thousands separated; ``n/a`` when missing."""
    return "n/a" if value is None else f"{int(value):,}"


def plus_minus(value: Any, spread: Any, digits: int = 3, grouping: bool = False) -> str:
    """``value ± spread`` (a standard deviation or a confidence interval's half-width), just
    ``value`` without a spread; ``n/a`` without a value."""
    if value is None:
        return "n/a"
    text = number(value, digits, grouping)
    return text if spread is None else f"{text} ± {number(spread, digits, grouping)}"
