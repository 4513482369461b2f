"""Reference land-cover maps on the features' grid: from a class raster or from polygons.

Training and accuracy need, for every pixel of the grid, the reference class (``0`` = no
reference) and, for polygon references, which polygon it came from (so a split can keep whole
polygons on one side). The reference is one small integer array per grid: a 10 000 x 10 000
grid is 200 MB as uint16, far below a stack's size.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .gdalerrors import open_raster, quiet_gdal, reading
from .progress import Progress, ensure_progress
from .timestack import Grid

#: Class id meaning "no reference here" (eo-learn's LULC convention).
NO_CLASS = 0


@dataclass
class Reference:
    """``classes`` (height, width) uint16 with :data:`NO_CLASS` where unknown; ``polygons``
    (height, width) int32 polygon numbers (0 = none) for polygon references; ``names`` from the
    reference's name field."""

    classes: np.ndarray
    polygons: np.ndarray | None = None
    names: dict[int, str] = field(default_factory=dict)

    @property
    def class_ids(self) -> list[int]:
        return [int(c) for c in np.unique(self.classes) if c != NO_CLASS]

    def counts(self) -> dict[int, int]:
        ids, counts = np.unique(self.classes[self.classes != NO_CLASS], return_counts=True)
        return {int(i): int(n) for i, n in zip(ids, counts)}


def class_id_from_value(value: object, field_name: str) -> int:
    """The class id held by a feature's class field ``field_name``: an integer, a whole number
    (``3.0``) or text holding an integer (``"3"``, as shapefiles and CSV imports often store
    codes). Anything else is a ``ValueError`` naming the field."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?[0-9]+", text):
            return int(text)
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        if math.isfinite(value) and value == int(value):
            return int(value)
    raise ValueError(
        f"the field '{field_name}' holds '{value}', which is not an integer class id; choose the field that "
        "holds the class ids as whole numbers (a number field, or a text field holding numbers such as '3'), "
        "e.g. LULC_ID"
    )


def require_named_layer(source: str) -> None:
    """A reference given as a file path that holds several vector layers (a GeoPackage, a
    FileGDB...) without naming one is ambiguous: a ``ValueError`` lists the layers and how to pick
    one (``file.gpkg|layername=x``). One layer, a named layer or no vector file: nothing to do."""
    if "|" in source or not os.path.isfile(source):
        return
    from osgeo import gdal

    with quiet_gdal():
        dataset = gdal.OpenEx(source, gdal.OF_VECTOR)
    if dataset is None:
        return
    names = [dataset.GetLayer(i).GetName() for i in range(dataset.GetLayerCount())]
    if len(names) > 1:
        listed = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ValueError(
            f"'{os.path.basename(source)}' holds {len(names)} layers ({listed}) and the reference names none: "
            f"pick one as {source}|layername={names[0]} (with that layer's name), or load the layer you mean "
            "into the project and choose it from the list"
        )


def rasterize_polygons(
    shapes: Iterable[tuple[dict, int]], grid: Grid, names: dict[int, str] | None = None
) -> Reference:
    """Burn ``(GeoJSON geometry in the grid's CRS, class id)`` pairs onto the grid (pixel centres
    inside a polygon; later polygons win where they overlap)."""
    from rasterio.features import rasterize
    from rasterio.transform import Affine

    items = [(geometry, int(value)) for geometry, value in shapes]
    if not items:
        raise ValueError("the reference has no polygons")
    bad = sorted({v for _, v in items if v < 0 or v > 65535})
    if bad:
        raise ValueError(f"class ids must be integers from 0 to 65535; found {bad[:5]}")
    shape = (grid.height, grid.width)
    transform = Affine(*grid.transform)
    classes = rasterize(items, out_shape=shape, transform=transform, fill=NO_CLASS, dtype="uint16")
    polygons = rasterize(
        [(geometry, number) for number, (geometry, _) in enumerate(items, start=1)],
        out_shape=shape, transform=transform, fill=0, dtype="int32",
    )
    reference = Reference(classes=classes, polygons=polygons, names=dict(names or {}))
    _require_overlap(reference)
    return reference


def read_reference_raster(path: str, grid: Grid, band: int = 1, require_classes: bool = True,
                          progress: Progress | None = None) -> Reference:
    """A class raster on ``grid``: read as it is when it lies on the same grid, otherwise
    resampled with nearest neighbour (classes must not be averaged). ``require_classes=False``
    accepts a grid without class pixels (a batch tile outside the labelled area). 0 is always
    :data:`NO_CLASS`: a raster that declares another nodata value and holds 0 gets a warning
    through ``progress`` saying how many pixels that drops."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, reproject

    with open_raster(path) as source, reading(path, f"band {band}"):
        if band < 1 or band > source.count:
            raise ValueError(f"the reference raster has {source.count} band(s), not band {band}")
        if source.dtypes[band - 1].startswith("float"):
            data = source.read(band)
            if np.any(np.isfinite(data) & (data != np.round(data))):
                raise ValueError("the reference raster holds fractional values; it must hold integer class ids")
        nodata = source.nodata
        same = Grid(source.width, source.height, source.crs.to_wkt() if source.crs else None,
                    tuple(source.transform)[:6]).same_as(grid)
        if same:
            data = source.read(band)
        else:
            if source.crs is None or grid.crs_wkt is None:
                raise ValueError("the reference raster and the features must both have a CRS to be aligned")
            data = np.zeros((grid.height, grid.width), np.float64)
            reproject(
                source=rasterio.band(source, band), destination=data,
                dst_transform=rasterio.Affine(*grid.transform), dst_crs=CRS.from_wkt(grid.crs_wkt),
                dst_nodata=np.nan, resampling=Resampling.nearest, init_dest_nodata=True,
            )
    values = np.asarray(data, dtype=np.float64)
    invalid = ~np.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        invalid |= values == nodata
    if np.any((values < 0) & ~invalid) or np.any((values > 65535) & ~invalid):
        raise ValueError("class ids must be integers from 0 to 65535")
    classes = np.where(invalid, NO_CLASS, values).astype(np.uint16)
    if nodata is not None and nodata != NO_CLASS:
        zeros = int(np.count_nonzero(~invalid & (values == NO_CLASS)))
        if zeros:
            shown = f"{nodata:g}" if isinstance(nodata, float) else str(nodata)
            ensure_progress(progress).warn(
                f"the reference raster declares nodata {shown} but also holds {zeros} pixel(s) of "
                f"{NO_CLASS} on the grid: {NO_CLASS} means 'no reference' (eo-learn's convention), so they "
                f"are left out as no data too. If {NO_CLASS} is a class of your legend, recode it to an "
                "unused id first (e.g. with 'Reclassify by table')"
            )
    reference = Reference(classes=classes)
    if require_classes:
        _require_overlap(reference)
    return reference


def _require_overlap(reference: Reference) -> None:
    if not np.any(reference.classes != NO_CLASS):
        raise ValueError(
            "the reference has no class pixels on the features' grid: it does not overlap the "
            "features, lies in another CRS than declared, or holds only 0 (no data)"
        )
