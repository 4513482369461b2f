"""Acquisition dates written as text: in file names, metadata items and band descriptions.

Users' downloads carry the date in the name (``S2A_MSIL1C_20170314T100021_N0204_...``,
``2017-03-14.tif``) or in a metadata item that differs by driver and exporter; stacks written
by other tools carry date and band in each band's description (``2017-03-14 B04``, Earth
Engine's ``20170314T100021_20170314T100316_T33TWM_B4``) or, in a VRT, in its files' names. Kept
apart from :mod:`.scenes` and :mod:`.timestack` (which read the rasters) because it is pure text
parsing: which digit runs are a date and which are tile ids, orbit numbers or baselines.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from .sentinel2 import L1C_BANDS, normalise_band_name

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


def parse_datetime(text: str) -> datetime:
    """Parse an ISO date or date-time; zone-aware values are converted to naive UTC."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError as error:
        raise ValueError(f"'{text}' is not an ISO date or date-time (like 2017-03-14T10:00:21)") from error
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


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


_DESCRIPTION = re.compile(r"^(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)\s+(\S.*)$")
#: A Sentinel-2 tile id (``T33TWM``), left out of a band's name.
_TILE_ID = re.compile(r"(?<![A-Za-z0-9])T\d{2}[A-Z]{3}(?![A-Za-z0-9])")
_SEPARATORS = re.compile(r"([\s_.-])[\s_.-]+")


def tidy_name(text: str) -> str:
    """What is left of a name once parts were cut out: runs of separators made one, none at the
    ends (``__T33TWM__NDVI_`` -> ``T33TWM_NDVI``)."""
    return _SEPARATORS.sub(r"\1", text).strip(" _.-")


def split_description(text: str) -> tuple[datetime, str] | None:
    """``"2017-03-14T10:00:21 B04"`` (EO LULC's descriptions) -> ``(datetime, "B04")``; ``None``
    if it has no leading ISO date."""
    match = _DESCRIPTION.match(text or "")
    if not match:
        return None
    try:
        return parse_datetime(match.group(1).replace(" ", "T")), match.group(2).strip()
    except ValueError:
        return None


def date_and_band(text: str) -> tuple[datetime, str] | None:
    """A band description holding a date and a band: ``2017-03-14 B04`` as EO LULC writes it (the
    band kept as written), else with the date anywhere: Earth Engine's
    ``20170314T100021_20170314T100316_T33TWM_B4``, ``B4_2017-03-14``, ``red 20170314`` (the
    Sentinel-2 band named, ``B04``) or ``NDVI_20170314`` (what is left without dates and tile ids,
    ``NDVI``). ``None`` without a date or a band."""
    strict = split_description(text)
    if strict is not None:
        return strict
    date = date_from_name(text or "")
    if date is None:
        return None
    rest = _TILE_ID.sub(" ", text)
    for pattern in _NAME_DATE_PATTERNS:
        rest = pattern.sub(" ", rest)
    band = tidy_name(rest)
    key = normalise_band_name(band)
    return (date, key if key in L1C_BANDS else band) if band else None


def structure_from_descriptions(
    descriptions: Sequence[str | None], count: int
) -> tuple[tuple[datetime | None, ...], tuple[str, ...], bool]:
    """Dates, bands and whether the layers run band by band, of a stack written by another tool
    whose every description holds a date and a band (:func:`date_and_band`; two dates or more,
    or Sentinel-2 bands, unless written ``<ISO date> <band>``) for whole dates;
    otherwise a single undated date whose bands are the descriptions (or ``band_1``...)."""
    strict = [split_description(d or "") for d in descriptions]
    parsed = strict if all(strict) else [date_and_band(d or "") for d in descriptions]
    # names with a date somewhere make a time stack only with two dates or Sentinel-2 bands: a DEM
    # described "SRTM 2000-02-11" or a map "LULC 2018-06-01" stays one undated band, as before
    if count and all(parsed) and (parsed is strict or len({p[0] for p in parsed}) > 1  # type: ignore[index]
                                  or all(p[1] in L1C_BANDS for p in parsed)):  # type: ignore[index]
        dates = tuple(dict.fromkeys(p[0] for p in parsed))  # type: ignore[index]
        bands = tuple(dict.fromkeys(p[1] for p in parsed))  # type: ignore[index]
        if len(dates) * len(bands) == count:
            if parsed == [(d, b) for d in dates for b in bands]:
                return dates, bands, False
            if parsed == [(d, b) for b in bands for d in dates]:
                return dates, bands, True
    names = [d.strip() if d and d.strip() else f"band_{i + 1}" for i, d in enumerate(descriptions)]
    if len(set(names)) != len(names):
        names = [f"band_{i + 1}" for i in range(count)]
    return (None,), tuple(names), False


def vrt_band_sources(path: str, count: int) -> tuple[str, ...] | None:
    """The name (without folder and extension) of the file each band of a VRT reads, when every
    band reads one file; ``None`` otherwise or when the VRT cannot be parsed."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    names: list[str] = []
    for band in root.findall("VRTRasterBand"):
        sources = {s.text.strip() for s in band.iter("SourceFilename") if s.text and s.text.strip()}
        if len(sources) != 1:
            return None
        names.append(Path(sources.pop().replace("\\", "/")).stem)
    return tuple(names) if len(names) == count else None
