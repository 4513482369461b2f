"""Sentinel-2 products as Copernicus delivers them (``.SAFE`` folders or their ``.zip``): what is
in them, read from their metadata, never guessed from names or values.

A product's ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` gives the level, processing baseline, sensing
time, ``QUANTIFICATION_VALUE`` (``BOA_QUANTIFICATION_VALUE`` for L2A), the per-band
``RADIO_ADD_OFFSET`` (L1C) / ``BOA_ADD_OFFSET`` (L2A) of baseline 04.00 and later, the special
values (``NODATA``, ``SATURATED``) and the band files (``IMAGE_FILE``). Each granule's
``MTD_TL.xml`` gives its tile's CRS and footprint (``Tile_Geocoding``). Zips are read in place
(Python's ``zipfile`` for the XML, GDAL's ``/vsizip/`` for the pixels): nothing is unzipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Sequence

from .safe_masks import quality_members
from .timestack import parse_datetime

#: ESA's band order; ``band_id`` / ``bandId`` in the metadata index it.
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
L1C_BANDS = BAND_IDS
#: L2A has no B10 (cirrus is used by the atmospheric correction only).
L2A_BANDS = tuple(b for b in BAND_IDS if b != "B10")
NATIVE_RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
                     "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20}
PRODUCT_METADATA = {"L1C": "MTD_MSIL1C.xml", "L2A": "MTD_MSIL2A.xml"}
#: Metadata names of the 2016 multi-granule layout (``S2A_OPER_MTD_SAFL1C_...xml``).
_OLD_METADATA = re.compile(r"^S2[A-D]_[A-Z]{4}_MTD_SAF(L1C|L2A)_.*\.xml$", re.IGNORECASE)
_TILE_METADATA = re.compile(r"^(MTD_TL|S2[A-D]_[A-Z]{4}_MTD_L(1C|2A)_TL_.*)\.xml$", re.IGNORECASE)
_BAND_SUFFIX = re.compile(r"_(B\d[\dA]|SCL)(?:_(\d+)m)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Granule:
    """One tile of a product: its CRS, footprint and band files (GDAL paths)."""

    tile: str
    crs: str
    bounds: tuple[float, float, float, float]
    bands: dict[str, str]
    resolutions: dict[str, int]
    #: band -> GDAL paths of its quality masks (:mod:`core.safe_masks`), where the product has them
    quality: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Product:
    """What one product's metadata says; ``path`` is the user's file or folder."""

    path: str
    name: str
    level: str
    baseline: str
    sensing_time: datetime
    quantification: float
    offsets: dict[str, float]
    nodata: int
    saturated: int | None
    granules: tuple[Granule, ...]

    @property
    def bands(self) -> tuple[str, ...]:
        return L1C_BANDS if self.level == "L1C" else L2A_BANDS

    def reflectance_of(self, band: str, dn: float) -> float:
        """``(DN + offset) / quantification``, the conversion the product specification gives."""
        return (dn + self.offsets.get(band, 0.0)) / self.quantification


class _Source:
    """Files of a product, whether a folder or a zip: listing, text of a member, GDAL path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if Path(path).is_dir():
            root = Path(path)
            self.names = sorted(str(p.relative_to(root)).replace("\\", "/") for p in root.rglob("*") if p.is_file())
        else:
            try:
                self.zip = zipfile.ZipFile(path)
                self.names = self.zip.namelist()
            except (zipfile.BadZipFile, OSError) as error:
                raise ValueError(f"'{Path(path).name}' is damaged or incomplete (a truncated download?): it does "
                                 f"not open as a zip ({error}); download it again") from None

    def text(self, name: str) -> bytes:
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (Path(self.path) / name).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValueError(f"'{Path(self.path).name}' is damaged or incomplete (a truncated download?): "
                             f"{name} cannot be read ({error}); download it again") from None

    def gdal_path(self, name: str) -> str:
        if self.zip is not None:
            return f"/vsizip/{Path(self.path).resolve().as_posix()}/{name}"
        return str(Path(self.path) / name)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    """First element of that local name anywhere (namespaces differ between PSD versions)."""
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def _find_all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(root: ET.Element, names: Sequence[str], what: str, product: str) -> str:
    for name in names:
        element = _find(root, name)
        if element is not None and (element.text or "").strip():
            return element.text.strip()
    raise ValueError(f"'{product}' has no {what} ({' or '.join(names)}) in its metadata: not a complete "
                     "Sentinel-2 product")


def _parse(data: bytes, member: str, product: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"'{product}': {member} is not readable XML ({error}); download the product again") from None


def find_products(folder: str | Path) -> list[str]:
    """``.SAFE`` folders and ``.zip`` files directly in ``folder`` (sorted by name)."""
    path = Path(folder) if folder else None
    if path is None or not path.is_dir():
        raise ValueError(f"the folder '{folder}' does not exist; choose the folder holding the .SAFE products")
    found = sorted(str(p) for p in path.iterdir() if not p.name.startswith(".") and (
        (p.is_dir() and p.name.upper().endswith(".SAFE")) or (p.is_file() and p.name.lower().endswith(".zip"))))
    if not found:
        raise ValueError(f"'{folder}' holds no Sentinel-2 product (no .SAFE folder, no .SAFE.zip or .zip file)")
    return found


def _metadata_member(names: Sequence[str]) -> tuple[str, str] | None:
    """``(member, level)`` of the product metadata at the product's top (a zip's first folder)."""
    for name in names:
        parts = PurePosixPath(name).parts
        if not parts or len(parts) > 2:
            continue
        leaf = parts[-1]
        for level, expected in PRODUCT_METADATA.items():
            if leaf == expected:
                return name, level
        old = _OLD_METADATA.match(leaf)
        if old:
            return name, old.group(1).upper()
    return None


def read_product(path: str | Path) -> Product:
    """The :class:`Product` of a ``.SAFE`` folder or zip; ``ValueError`` naming what is wrong."""
    path = str(path)
    label = Path(path).name
    if not Path(path).exists():
        raise ValueError(f"'{path}' does not exist")
    source = _Source(path)
    try:
        found = _metadata_member(source.names)
        if found is None:
            raise ValueError(f"'{label}' is not a Sentinel-2 product: it holds no MTD_MSIL1C.xml or MTD_MSIL2A.xml")
        member, level = found
        root = _parse(source.text(member), member, label)
        top = str(PurePosixPath(member).parent)
        prefix = "" if top == "." else top + "/"
        return _product(source, root, level, prefix, prefix.rstrip("/") or label)
    finally:
        source.close()


def _product(source: _Source, root: ET.Element, level: str, prefix: str, label: str) -> Product:
    baseline = _text(root, ["PROCESSING_BASELINE"], "processing baseline", label)
    sensing = parse_datetime(_text(root, ["DATATAKE_SENSING_START", "PRODUCT_START_TIME"], "sensing time", label))
    names = ("QUANTIFICATION_VALUE",) if level == "L1C" else ("BOA_QUANTIFICATION_VALUE",
                                                                "L2A_BOA_QUANTIFICATION_VALUE")
    quantification = float(_text(root, names, "quantification value", label))
    offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    offsets = {BAND_IDS[int(e.get("band_id", "-1"))]: float(e.text) for e in _find_all(root, offset_tag)
               if (e.get("band_id") or "").isdigit() and int(e.get("band_id")) < len(BAND_IDS)}
    special = {_text(v, ["SPECIAL_VALUE_TEXT"], "special value", label):
               int(_text(v, ["SPECIAL_VALUE_INDEX"], "special value", label))
               for v in _find_all(root, "Special_Values")}
    files = [e.text.strip() for e in _find_all(root, "IMAGE_FILE") if (e.text or "").strip()]
    files += [e.text.strip() for e in _find_all(root, "IMAGE_ID") if (e.text or "").strip()]  # 2016 layout
    if not files:
        raise ValueError(f"'{label}' lists no band files (IMAGE_FILE) in its metadata: not a complete product")
    present = set(source.names)
    granules = _granules(source, files, level, prefix, label, present)
    return Product(path=source.path, name=label, level=level, baseline=baseline, sensing_time=sensing,
                   quantification=quantification, offsets=offsets, nodata=special.get("NODATA", 0),
                   saturated=special.get("SATURATED"), granules=granules)


def _granules(source: _Source, files: list[str], level: str, prefix: str, label: str,
              present: set[str]) -> tuple[Granule, ...]:
    """Group the band files by granule folder; keep each band's finest resolution."""
    by_granule: dict[str, dict[str, tuple[int, str]]] = {}
    for entry in files:
        entry = entry if entry.lower().endswith(".jp2") else entry + ".jp2"
        if "/" not in entry:  # 2016 layout lists bare names; find the file
            match = [n for n in present if n.endswith("/" + entry)]
            entry = match[0][len(prefix):] if match else entry
        stem = PurePosixPath(entry).stem
        found = _BAND_SUFFIX.search(stem)
        if not found:
            continue  # TCI, AOT, WVP, ...
        band = found.group(1).upper()
        resolution = int(found.group(2)) if found.group(2) else NATIVE_RESOLUTION.get(band, 10)
        parts = PurePosixPath(entry).parts
        granule = "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "GRANULE" else ""
        bands = by_granule.setdefault(granule, {})
        if band not in bands or resolution < bands[band][0]:
            bands[band] = (resolution, entry)
    wanted = (L1C_BANDS if level == "L1C" else L2A_BANDS + ("SCL",))
    granules = []
    for granule, bands in sorted(by_granule.items()):
        missing = [b for b in wanted if b not in bands or prefix + bands[b][1] not in present]
        if missing:
            raise ValueError(f"'{label}' lacks the band file(s) of {', '.join(missing)} (listed in its metadata "
                             "but not in the product): an incomplete download? Download it again")
        crs, bounds, tile = _tile_geocoding(source, prefix + granule, label, present)
        quality = quality_members(sorted(present), prefix + granule)
        granules.append(Granule(tile=tile, crs=crs, bounds=bounds,
                                bands={b: source.gdal_path(prefix + f) for b, (_, f) in bands.items()},
                                resolutions={b: r for b, (r, _) in bands.items()},
                                quality={b: tuple(source.gdal_path(m) for m in members)
                                         for b, members in quality.items()}))
    return tuple(granules)


def _tile_geocoding(source: _Source, granule: str, label: str, present: set[str]) -> tuple[str, tuple, str]:
    """CRS (``EPSG:326xx``), bounds ``(xmin, ymin, xmax, ymax)`` and tile id from MTD_TL.xml."""
    members = [n for n in present if n.startswith(granule + "/") and n.count("/") == granule.count("/") + 1
               and _TILE_METADATA.match(PurePosixPath(n).name)]
    if not members:
        raise ValueError(f"'{label}' lacks the granule metadata (MTD_TL.xml) of {granule}: an incomplete download?")
    root = _parse(source.text(members[0]), members[0], label)
    crs = _text(root, ["HORIZONTAL_CS_CODE"], "tile CRS", label)
    sizes = {int(e.get("resolution", "0")): e for e in _find_all(root, "Size")}
    positions = {int(e.get("resolution", "0")): e for e in _find_all(root, "Geoposition")}
    resolution = min(set(sizes) & set(positions), default=None)
    if resolution is None:
        raise ValueError(f"'{label}': the granule metadata of {granule} has no Tile_Geocoding Size/Geoposition")
    size, position = sizes[resolution], positions[resolution]
    ulx, uly = float(_text(position, ["ULX"], "ULX", label)), float(_text(position, ["ULY"], "ULY", label))
    xdim, ydim = float(_text(position, ["XDIM"], "XDIM", label)), float(_text(position, ["YDIM"], "YDIM", label))
    ncols, nrows = int(_text(size, ["NCOLS"], "NCOLS", label)), int(_text(size, ["NROWS"], "NROWS", label))
    bounds = (ulx, uly + ydim * nrows, ulx + xdim * ncols, uly)
    tile_id = _text(root, ["TILE_ID"], "tile id", label)
    tile = re.search(r"_T(\d{2}[A-Z]{3})_", tile_id)
    return crs, bounds, tile.group(1) if tile else tile_id
