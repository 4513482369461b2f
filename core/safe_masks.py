"""Quality masks of Sentinel-2 products: the pixels a band's own masks call no data or saturated,
made nodata on import (a zero DN alone does not catch them: a saturated pixel holds 65535 only
before baseline 04.00's offset, and lost or filled packets may hold numbers that look valid).

Two formats, found in each granule's ``QI_DATA`` folder:

- baseline 04.00 and later: ``MSK_QUALIT_B01.jp2`` ... , one raster per band at the band's own
  resolution with eight one-bit layers (1 lost ancillary packets, 2 degraded ancillary packets,
  3 lost MSI packets, 4 degraded MSI packets, 5 defective pixels, 6 no data, 7 partially corrected
  cross-talk, 8 saturated pixels). Layers 3, 6 and 8 become nodata (:data:`QUALIT_LAYERS`); the
  others keep a usable measurement (defective pixels are interpolated by the processor).
- older baselines: GML vector masks ``MSK_NODATA_B01.gml`` (features of ``maskType``
  ``QT_NODATA_PIXELS``; ``QT_PARTIALLY_CORRECTED_PIXELS`` is kept) and ``MSK_SATURA_B01.gml``
  (every feature), ``eop:Mask`` documents whose ``eop:MaskFeature`` polygons (``gml:posList``,
  often with a height per vertex) are in the tile's CRS; the 2016 layout names them
  ``S2A_OPER_MSK_NODATA_..._B01_MSIL1C.gml``. An empty mask is ``<eop:maskMembers/>``.

Masks are read for the same source window as the band and applied before any resampling, so
resampled and mosaicked values never mix a defective pixel in.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import PurePosixPath
from typing import Sequence

import numpy as np

#: MSK_QUALIT layers (1-based) that become nodata: lost MSI packets, no data, saturated.
QUALIT_LAYERS = (3, 6, 8)
QUALIT_LAYER_COUNT = 8
#: GML mask kinds and the maskType values that become nodata (None: every feature).
GML_TYPES: dict[str, tuple[str, ...] | None] = {"NODATA": ("QT_NODATA_PIXELS",), "SATURA": None}
_MASK_NAME = re.compile(r"MSK_(QUALIT|NODATA|SATURA)_(?:.*_)?(B\d[\dA])(?:_MSIL1C|_MSIL2A)?\.(jp2|gml)$",
                        re.IGNORECASE)


def quality_members(names: Sequence[str], granule: str) -> dict[str, tuple[str, ...]]:
    """Band -> the quality-mask members of ``granule`` (a product-relative folder, as listed in
    ``names``): ``MSK_QUALIT`` rasters, or ``MSK_NODATA`` / ``MSK_SATURA`` GML files."""
    folder = granule.rstrip("/") + "/QI_DATA/"
    found: dict[str, list[str]] = {}
    for name in names:
        if not name.startswith(folder) or "/" in name[len(folder):]:
            continue
        match = _MASK_NAME.search(PurePosixPath(name).name)
        if match:
            found.setdefault(match.group(2).upper(), []).append(name)
    return {band: tuple(sorted(members)) for band, members in found.items()}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ring(element: ET.Element, label: str) -> list[tuple[float, float]]:
    """A ``gml:LinearRing``'s vertices (x, y), whatever its ``srsDimension``."""
    pos_list = next((e for e in element.iter() if _local(e.tag) == "posList"), None)
    if pos_list is None or not (pos_list.text or "").split():
        raise ValueError(f"{label}: a mask polygon has no gml:posList; the product's quality mask is damaged")
    dimension = int(pos_list.get("srsDimension", "2"))
    values = [float(v) for v in pos_list.text.split()]
    if dimension < 2 or len(values) % dimension:
        raise ValueError(f"{label}: a mask polygon's gml:posList does not hold whole {dimension}-D points")
    return [(values[i], values[i + 1]) for i in range(0, len(values), dimension)]


def gml_polygons(data: bytes, label: str) -> list[dict]:
    """The polygons (GeoJSON-like, in the tile's CRS) of a GML quality mask that become nodata:
    its kind (from the root's ``gml:id``, e.g. ``..._MSK_NODATA_...``, or the file ``label``) picks
    the ``maskType`` values (:data:`GML_TYPES`)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"{label} is not readable XML ({error}); download the product again") from None
    ident = " ".join(v for k, v in root.attrib.items() if _local(k) == "id") + " " + label
    kind = next((k for k in GML_TYPES if f"MSK_{k}" in ident.upper()), None)
    if kind is None:
        return []
    types = GML_TYPES[kind]
    shapes = []
    for feature in (e for e in root.iter() if _local(e.tag) == "MaskFeature"):
        mask_type = next((e.text or "" for e in feature.iter() if _local(e.tag) == "maskType"), "").strip()
        if types is not None and mask_type not in types:
            continue
        for polygon in (e for e in feature.iter() if _local(e.tag) == "Polygon"):
            rings = []
            for part in polygon:
                if _local(part.tag) in ("exterior", "interior"):
                    rings.append(_ring(part, label))
            if rings:
                shapes.append({"type": "Polygon", "coordinates": rings})
    return shapes


def read_bytes(path: str) -> bytes:
    """A file's bytes through GDAL's virtual file systems (``/vsizip/`` members included)."""
    from osgeo import gdal

    handle = gdal.VSIFOpenL(path, "rb")
    if handle is None:
        raise ValueError(f"{path} cannot be read (a truncated download?); download the product again")
    try:
        chunks = []
        while True:
            chunk = gdal.VSIFReadL(1, 1 << 20, handle)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        gdal.VSIFCloseL(handle)


class DefectMasks:
    """One granule's quality masks: :meth:`apply` sets the defective pixels of a band's source
    window to 0 (nodata). GML polygons are parsed once; rasters are read per window."""

    def __init__(self, quality: dict[str, tuple[str, ...]], bands: Sequence[str], label: str) -> None:
        self.label = label
        self.sources = {b: quality[b] for b in bands if quality.get(b)}
        self._shapes: dict[str, list[dict]] = {}

    def _gml(self, path: str) -> list[dict]:
        if path not in self._shapes:
            self._shapes[path] = gml_polygons(read_bytes(path), f"{self.label}: {PurePosixPath(path).name}")
        return self._shapes[path]

    def apply(self, band: str, data: np.ndarray, transform) -> int:
        """Zero the defective pixels of ``data`` (a window of ``band`` at its native resolution,
        georeferenced by the rasterio ``transform``); returns how many were set."""
        defective = np.zeros(data.shape, bool)
        for path in self.sources.get(band, ()):
            if path.lower().endswith(".jp2"):
                defective |= self._raster(path, data.shape, transform)
            else:
                shapes = self._gml(path)
                if shapes:
                    from rasterio.features import rasterize

                    defective |= rasterize(shapes, out_shape=data.shape, transform=transform, fill=0,
                                           default_value=1, dtype="uint8").astype(bool)
        data[defective] = 0
        return int(defective.sum())

    def _raster(self, path: str, shape: tuple[int, int], transform) -> np.ndarray:
        """The MSK_QUALIT layers of :data:`QUALIT_LAYERS` over the window (nearest when the mask
        is on another pixel size than the band)."""
        from rasterio.enums import Resampling
        from rasterio.windows import from_bounds

        from .gdalerrors import open_raster, reading
        from .jpeg2000 import decode_window

        height, width = shape
        a, _, c, _, e, f = tuple(transform)[:6]
        with reading(path, f"quality mask {PurePosixPath(path).name} of {self.label}"):
            with open_raster(path) as ds:
                if ds.count != QUALIT_LAYER_COUNT:
                    raise ValueError(f"{self.label}: {PurePosixPath(path).name} has {ds.count} layers, a Sentinel-2 "
                                     f"quality mask has {QUALIT_LAYER_COUNT}; download the product again")
                window = from_bounds(c, f + e * height, c + a * width, f, transform=ds.transform)
                pixels = _pixels_inside(window, ds.width, ds.height, width, height)
                if pixels is not None:
                    # the usual case (the mask on the band's pixels): a plain read gives the same
                    # pixels, without the 25 % more time a boundless read's VRT costs
                    # OpenJPEG decodes only these layers' code-blocks under the window; GDAL all
                    layers = decode_window(path, pixels.row_off, pixels.col_off, pixels.height, pixels.width,
                                         [layer - 1 for layer in QUALIT_LAYERS])
                    if layers is None:
                        layers = ds.read(list(QUALIT_LAYERS), window=pixels)
                else:
                    layers = ds.read(list(QUALIT_LAYERS), window=window, resampling=Resampling.nearest,
                                     out_shape=(len(QUALIT_LAYERS), height, width), boundless=True, fill_value=0)
        return np.any(layers != 0, axis=0)


def _pixels_inside(window, ds_width: int, ds_height: int, width: int, height: int):
    """``window`` (of a mask) as whole pixels when it lies inside the mask on them, ``width`` x
    ``height`` of them (read as it is: no resampling, no filling); None otherwise."""
    from rasterio.windows import Window

    values = (window.col_off, window.row_off, window.width, window.height)
    if any(abs(v - round(v)) > 1e-6 for v in values):
        return None
    col, row, w, h = (round(v) for v in values)
    inside = (w, h) == (width, height) and col >= 0 and row >= 0 and col + w <= ds_width and row + h <= ds_height
    return Window(col, row, w, h) if inside else None
