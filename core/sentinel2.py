"""Sentinel-2 facts shared by the steps: band names and orders, and how stored values map to
top-of-atmosphere reflectance."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import numpy as np

#: The 13 L1C bands in ESA's order (eo-learn's BANDS-S2-L1C order).
L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: The 10 bands the s2cloudless model uses, in the model's feature order.
S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Processing baseline 04.00 (from this date) adds 1000 to every L1C digital number.
BASELINE_0400_START = datetime(2022, 1, 25)
#: Digital numbers are reflectance x 10000.
QUANTIFICATION = 10000
RADIOMETRIC_OFFSET = -1000

VALUE_SCALES = ("auto", "reflectance", "dn", "dn_offset")


def default_band_names(count: int) -> tuple[str, ...] | None:
    """Band names for a raster without descriptions: the L1C order for 13 bands, the s2cloudless
    order for 10; ``None`` otherwise."""
    if count == len(L1C_BANDS):
        return L1C_BANDS
    if count == len(S2CLOUDLESS_BANDS):
        return S2CLOUDLESS_BANDS
    return None


def find_bands(available: Sequence[str], wanted: Sequence[str], purpose: str = "") -> list[int]:
    """Indices of ``wanted`` bands, matched by :func:`normalise_band_name` (``B1`` == ``B01``,
    ``B4, central wavelength 665 nm`` == ``B04``); a ``ValueError`` lists the missing ones (and
    says what they are ``purpose``-ly needed for)."""
    normalised = {normalise_band_name(name): i for i, name in enumerate(available)}
    for name in wanted:
        refuse_ambiguous_band(available, name)
    missing = [name for name in wanted if normalise_band_name(name) not in normalised]
    if missing:
        why = f" ({purpose})" if purpose else ""
        raise ValueError(
            f"the stack lacks the band(s) {', '.join(missing)}; it has {', '.join(available)}. "
            f"Needed: {', '.join(wanted)}{why}"
        )
    return [normalised[normalise_band_name(name)] for name in wanted]


#: STAC's ``eo:common_name`` of each band, as Earth Search names its assets (``rededge1``: the
#: extension's plain ``rededge`` names three bands, so it is not taken as any).
COMMON_NAMES = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
                "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
                "B10": "cirrus", "B11": "swir16", "B12": "swir22", "SCL": "scl"}
_BY_COMMON_NAME = {common.upper(): band for band, common in COMMON_NAMES.items()}


def refuse_ambiguous_band(available: Sequence[str], name: str) -> None:
    """A ``ValueError`` when two of ``available`` read as band ``name`` (``B4`` and ``B04_10m``)."""
    key = normalise_band_name(name)
    same = [a for a in available if normalise_band_name(a) == key]
    if len(same) > 1:
        raise ValueError(f"the bands {', '.join(repr(a) for a in same)} all read as {key}; rename all but one "
                         "(band descriptions)")


#: A band number at the start of a name, with the resolution SAFE file names add (``B02_10m``),
#: alone or followed by a description after a space, comma, semicolon, colon or bracket (not
#: after ``_``: ``B04_mean`` is a feature of its own).
_BAND_NAME = re.compile(r"^B0*(\d{1,2})(A?)(?:_[126]0M)?(?=$|[\s,;:(\[])")
#: A common name alone or followed by a clause after a comma, colon or bracket (``nir (B08)``;
#: not ``Red Edge`` or ``NIR median``, names of their own).
_FIRST_WORD = re.compile(r"^([A-Z0-9]+)(?=$|\s*[,;:(\[])")


def normalise_band_name(name: str) -> str:
    """The one key by which band names from users, stacks and models are matched.

    Sentinel-2 band numbers in ESA's spelling whoever wrote them: ``B4``, ``b04``, ``B04 (Red)``,
    ``B4, central wavelength 665 nm`` (GDAL's SENTINEL2 driver, SNAP) -> ``B04``; ``B8a``,
    ``B8A (narrow NIR)`` -> ``B8A`` (never ``B08``). Other names are stripped and upper-cased
    (``ndvi`` == ``NDVI``). SAFE's ``B02_10m`` -> ``B02``; STAC common names (Earth Search's
    ``blue``, ``nir``, ``nir08``, ``swir16``) -> the band."""
    text = name.strip().upper()
    match = _BAND_NAME.match(text)
    if match is None:
        word = _FIRST_WORD.match(text)
        return _BY_COMMON_NAME.get(word.group(1), text) if word else text
    number, narrow = match.groups()
    return f"B{int(number)}A" if narrow else f"B{int(number):02d}"


@dataclass(frozen=True)
class Radiometry:
    """How to turn stored values into reflectance: ``(value + shift) / divisor``.

    Division (not multiplication by 1e-4) reproduces reflectance stored as float32(DN / 10000)
    bit for bit, which the exact-probability promise of the cloud mask depends on.
    """

    divisor: float = 1.0
    shift: float = 0.0
    reason: str = "values are reflectance"

    def apply(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Reflectance as float32 (a new array, or written into ``out``)."""
        if out is None:
            out = np.empty(values.shape, np.float32)
        out[...] = values
        if self.shift:
            out += np.float32(self.shift)
        if self.divisor != 1.0:
            out /= np.float32(self.divisor)
        return out


def radiometry_from_scale(scale: float, offset: float) -> Radiometry:
    """GDAL scale/offset (``reflectance = value * scale + offset``) as a :class:`Radiometry`."""
    if scale <= 0:
        raise ValueError(f"the stack's scale {scale} is not positive")
    divisor = 1.0 / scale
    if abs(divisor - round(divisor)) < 1e-6 * divisor:
        divisor = float(round(divisor))
    shift = offset * divisor
    if abs(shift - round(shift)) < 1e-6:
        shift = float(round(shift))
    return Radiometry(divisor, shift, f"the stack's scale {scale:g} and offset {offset:g}")


def detect_radiometry(sample: np.ndarray, dates: Sequence[datetime | None], cirrus: np.ndarray | None) -> Radiometry:
    """Guess the radiometry of values without scale metadata.

    Reflectance rarely exceeds 2, digital numbers are mostly above 100: the 99th percentile of the
    valid sample decides. For digital numbers acquired under baseline 04.00 (from 2022-01-25) the
    +1000 offset is assumed only when even the darkest cirrus-band (B10) values are above 1000,
    since harmonised archives remove it.
    """
    finite = sample[np.isfinite(sample) & (sample != 0)]
    if finite.size == 0:
        return Radiometry(reason="no valid values to inspect; assumed reflectance")
    high = float(np.percentile(finite, 99))
    if high <= 3.0:
        return Radiometry(reason=f"99th percentile {high:.3g} <= 3: reflectance")
    recent = any(d is not None and d >= BASELINE_0400_START for d in dates)
    if recent and cirrus is not None and carries_baseline_offset(cirrus):
        return Radiometry(
            QUANTIFICATION,
            RADIOMETRIC_OFFSET,
            "digital numbers with the -1000 offset of processing baseline 04.00 "
            f"(99th percentile {high:.0f}; dates from 2022-01-25; B10 never below 1000)",
        )
    return Radiometry(QUANTIFICATION, 0.0, f"digital numbers / 10000 (99th percentile {high:.0f} > 3)")


def carries_baseline_offset(cirrus: np.ndarray) -> bool:
    """Whether cirrus-band (B10) digital numbers carry baseline 04.00's +1000: even the darkest
    (1st percentile of the valid, non-zero values) are at least 1000. B10 sees almost nothing
    below the stratosphere, so without the offset its darkest numbers are far below 1000."""
    dark = cirrus[np.isfinite(cirrus) & (cirrus != 0)]
    return bool(dark.size) and float(np.percentile(dark, 1)) >= -RADIOMETRIC_OFFSET


def stack_radiometry(reader, band_indices: Sequence[int], cirrus_index: int | None = None) -> Radiometry:
    """:func:`detect_radiometry` on the centre window (256 px at most) of every date of a stack
    without scale metadata; ``reader`` a :class:`~.timestack.StackReader`, ``cirrus_index`` the
    stack index of B10 where it has one. The cloud mask and the features judge the same way, so
    a model sees the same reflectance whichever step made its inputs."""
    import math

    info = reader.info
    bands = list(dict.fromkeys([*band_indices, *([] if cirrus_index is None else [cirrus_index])]))
    h, w = info.grid.height, info.grid.width
    size = min(256, h), min(256, w)
    window = ((h - size[0]) // 2, (w - size[1]) // 2, size[0], size[1])
    sample = reader.read(window, bands=bands).astype(np.float64)
    if info.nodata is not None and not math.isnan(info.nodata):
        sample[sample == info.nodata] = np.nan
    cirrus = None if cirrus_index is None else sample[..., bands.index(cirrus_index)]
    return detect_radiometry(sample, info.dates, cirrus)


_BAND_TOKEN = re.compile(r"(?<![A-Z0-9])B(?:0?[1-9]|1[0-2]|8A)(?![0-9A-Z])", re.IGNORECASE)
#: The last word of a file name, before SAFE's resolution or a bracketed note (``..._red.tif``,
#: ``..._nir_10m.tif``, the Copernicus Browser's ``..._SCL_(Raw).tiff``).
_LAST_WORD = re.compile(r"(?<![A-Z0-9])([A-Z0-9]+)(?:_[126]0M)?(?:[_ ]?\([^)]*\))?$", re.IGNORECASE)
_FIRST_WORD_OF_STEM = re.compile(r"^([A-Z0-9]+)(?![A-Z0-9])", re.IGNORECASE)
#: Landsat product ids (``LC08_L2SP_044034_20170314_...``): their B5 is no Sentinel-2 B05.
_LANDSAT = re.compile(r"^L[COTEM]0[4-9]_", re.IGNORECASE)


def band_token(file_name: str) -> str | None:
    """The Sentinel-2 band a file name names (``T33TWM_20230101T100319_B04_10m.jp2``,
    ``..._Sentinel-2_L2A_B04_(Raw).tiff``, the last such token wins; a common name as the last or
    the first word, ``S2B_20230101_red.tif``, ``nir_20230101.tif``) -> ``B04``; None for none and
    for Landsat's names."""
    span = _band_span(_stem(file_name))
    return span[2] if span else None


def without_band_token(file_name: str) -> str:
    """The file name's stem without the band :func:`band_token` finds (``T33TWM_20230101_B04_10m.jp2``
    -> ``T33TWM_20230101__10m``)."""
    stem = _stem(file_name)
    span = _band_span(stem)
    return stem if span is None else stem[:span[0]] + stem[span[1]:]


def _band_span(stem: str) -> tuple[int, int, str] | None:
    """Where in a file name's stem its band is named, and which band."""
    if _LANDSAT.match(stem):
        return None
    found = list(_BAND_TOKEN.finditer(stem))
    if found:
        return found[-1].start(), found[-1].end(), normalise_band_name(found[-1].group(0))
    for word in (_LAST_WORD.search(stem), _FIRST_WORD_OF_STEM.match(stem)):
        if word and word.group(1).upper() in _BY_COMMON_NAME:
            return word.start(1), word.end(1), _BY_COMMON_NAME[word.group(1).upper()]
    return None


def _stem(file_name: str) -> str:
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"\.(tiff?|jp2|j2k|vrt|img|png|nc|hdf)$", "", name, flags=re.IGNORECASE)


def is_reflectance_band(name: str) -> bool:
    """A Sentinel-2 band name (``B4``, ``b04``, ``B8A``...): its values may be digital numbers."""
    return normalise_band_name(name) in L1C_BANDS


def radiometry_for(choice: str) -> Radiometry | None:
    """A user's explicit choice (``None`` for ``auto``)."""
    if choice == "auto":
        return None
    if choice == "reflectance":
        return Radiometry(reason="set by the user: reflectance")
    if choice == "dn":
        return Radiometry(QUANTIFICATION, 0.0, "set by the user: digital numbers / 10000")
    if choice == "dn_offset":
        return Radiometry(QUANTIFICATION, RADIOMETRIC_OFFSET, "set by the user: (digital numbers - 1000) / 10000")
    raise ValueError(f"unknown value scale '{choice}'; use one of {', '.join(VALUE_SCALES)}")
