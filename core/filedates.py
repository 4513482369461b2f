"""Acquisition dates of per-date rasters, from their file names or their metadata.

Users' downloads carry the date in the name (``S2A_MSIL1C_20170314T100021_N0204_...``,
``2017-03-14.tif``) or in a metadata item that differs by driver and exporter. Kept apart from
:mod:`.scenes` (which reads the rasters and builds the stack) because it is pure text parsing:
which digit runs are a date and which are tile ids, orbit numbers or processing baselines.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from .timestack import parse_datetime

#: Metadata items holding an acquisition time, most specific first (GDAL's default and IMAGERY
#: domains; the Sentinel-2 SAFE driver, ENVI/ERDAS exports, GeoTIFF's own date-time last since
#: it is often the file's creation time).
DATE_TAGS = (
    "ACQUISITIONDATETIME",
    "ACQUISITION_DATETIME",
    "DATATAKE_1_DATATAKE_SENSING_START",
    "SENSING_TIME",
    "SENSING_START",
    "PRODUCT_START_TIME",
    "DATE_ACQUIRED",
    "ACQUISITION_DATE",
    "DATETIME",
    "TIFFTAG_DATETIME",
)

NAME_PATTERNS_HELP = (
    "a Sentinel-2 product name (S2A_MSIL1C_20170314T100021_..., the sensing time is used), "
    "20170314T100021, 20170314, 2017-03-14 or 2017_03_14 anywhere in the file name"
)

# Digits glued to other digits are never a date (tile ids, orbit numbers, baselines like N0204).
_NAME_DATE_PATTERNS = (
    # old Sentinel-2 names: the validity start V<datetime> is the sensing time
    re.compile(r"_V(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})T(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})(?!\d)"),
    re.compile(
        r"(?<!\d)(?P<y>\d{4})(?P<sep>[-_.])(?P<m>\d{2})(?P=sep)(?P<d>\d{2})"
        r"(?:T(?P<H>\d{2})[-:]?(?P<M>\d{2})(?:[-:]?(?P<S>\d{2}))?)?(?!\d)"
    ),
    re.compile(r"(?<!\d)(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?!\d)"),
)
_YEARS = range(1950, 2101)


def date_from_name(name: str) -> datetime | None:
    """The acquisition date-time written in a file name, or ``None``.

    Old-style Sentinel-2 names prefer the ``_V<datetime>`` validity start; otherwise the leftmost
    valid date wins (the sensing time in ``S2A_MSIL1C_<sensing>_N..._R..._T..._<product time>``).
    Month, day, hour etc. are validated so other digit runs are not mistaken for dates.
    """
    stem = Path(name).name
    candidates: list[tuple[int, int, datetime]] = []
    for index, pattern in enumerate(_NAME_DATE_PATTERNS):
        for match in pattern.finditer(stem):
            value = _match_datetime(match)
            if value is not None:
                candidates.append((-1 if index == 0 else match.start(), -len(match.group(0)), value))
    return min(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


def _match_datetime(match: re.Match) -> datetime | None:
    parts = match.groupdict()
    year = int(parts["y"])
    if year not in _YEARS:
        return None
    try:
        return datetime(
            year,
            int(parts["m"]),
            int(parts["d"]),
            int(parts.get("H") or 0),
            int(parts.get("M") or 0),
            int(parts.get("S") or 0),
        )
    except ValueError:
        return None


def date_from_text(text: str) -> datetime | None:
    """A metadata date value: ISO (``2017-03-14T10:00:21.026Z``), TIFF (``2017:03:14 10:00:21``)
    or any form :func:`date_from_name` accepts."""
    text = (text or "").strip()
    if not text:
        return None
    tiff = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", text)
    if tiff:
        try:
            return datetime(*(int(g) for g in tiff.groups()))
        except ValueError:
            return None
    try:
        value = parse_datetime(text.replace(" ", "T", 1) if re.match(r"\d{4}-\d{2}-\d{2} ", text) else text)
    except ValueError:
        return date_from_name(text)
    return value.replace(microsecond=0) if value.year in _YEARS else None


def date_from_tags(tags: dict[str, str]) -> tuple[datetime, str] | None:
    """``(date, tag name)`` from the first known acquisition-date tag, or ``None``."""
    upper = {str(k).upper(): v for k, v in tags.items()}
    for key in DATE_TAGS:
        if key in upper:
            value = date_from_text(str(upper[key]))
            if value is not None:
                return value, key
    return None
