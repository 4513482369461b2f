"""One file per band and date grouped into one virtual raster per date.

Sentinel-2 often reaches users one band per file: a SAFE's ``IMG_DATA`` unzipped
(``T33TWM_20230101T100319_B04_10m.jp2``), the Copernicus Browser's raw band downloads
(``2023-01-01-00_00_2023-01-01-23_59_Sentinel-2_L2A_B04_(Raw).tiff``), per-band COGs. The stack
builder wants one raster per date, so the files of a date (same name once the band is taken out)
become a GDAL VRT with each file in its own band, its bands described as the stack describes
them. The VRTs live in GDAL's memory file system (``/vsimem/``): nothing is written next to the
user's files, and the same files always give the same VRT path.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .filedates import tidy_name
from .gdalerrors import quiet_gdal
from .sentinel2 import L1C_BANDS, band_token, without_band_token
from .timestack import format_datetime

if TYPE_CHECKING:
    from .progress import Progress
    from .scenes import Scene

#: Where the per-date VRTs are kept (GDAL's in-memory files).
VSIMEM_FOLDER = "/vsimem/eolulc_band_files"
_PRODUCT_EXTRAS = re.compile(
    r"(?<![A-Za-z0-9])(TCI|AOT|WVP|SCL|CLD|SNW|PVI|CLDPRB|SNWPRB|MSK_\w+|True_color|dataMask)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_RESOLUTION_SUFFIX = re.compile(r"_[126]0m(?=$|[^0-9A-Za-z])", re.IGNORECASE)


def is_product_extra(file_name: str) -> bool:
    """Files a product keeps beside its bands (true colour, aerosols, water vapour, scene
    classification, cloud and snow probabilities, previews, the Copernicus Browser's data mask)."""
    return _PRODUCT_EXTRAS.search(Path(file_name).name) is not None


def holds_band_files(scenes: Sequence[Scene]) -> bool:
    """Whether the files (a product's extras aside) hold one band each and some date has several
    of them named by band."""
    bands = [s for s in scenes if not is_product_extra(s.name)]
    if not bands or any(len(s.bands) != 1 for s in bands):
        return False
    per_date: dict[datetime, set[str]] = {}
    for scene in bands:
        token = band_token(scene.name)
        if token:
            per_date.setdefault(scene.date, set()).add(token)
    return any(len(tokens) > 1 for tokens in per_date.values())


def group_band_files(scenes: Sequence[Scene], progress: Progress) -> list[tuple[datetime, str, list[Scene]]]:
    """``(date, name, files in band order)`` per acquisition: the files whose names are equal
    without the band and SAFE's ``_10m``. A product's extras (TCI, AOT, WVP, SCL...) are left out
    and said so; of a band at several resolutions (an L2A's R10m, R20m and R60m in one folder)
    the finest is kept. A ``ValueError`` names files without a band in the name, a band twice at
    one resolution and acquisitions that lack bands others have."""
    extras = sorted({s.name for s in scenes if is_product_extra(s.name)})
    if extras:
        progress.log(f"Left out of the stack, not reflectance bands: {_some(extras)}.")
    bands = [s for s in scenes if not is_product_extra(s.name)]
    unnamed = [f"'{s.name}'" for s in bands if band_token(s.name) is None]
    if unnamed:
        raise ValueError(
            f"the files hold one band each, but {_some(unnamed)} name(s) no band (like B04 or B04_10m); "
            "remove them or narrow the file filter"
        )
    groups: dict[tuple[datetime, str], dict[str, Scene]] = {}
    coarser: list[str] = []
    same: list[str] = []
    for scene in sorted(bands, key=lambda s: s.grid.resolution[0]):  # finest first
        band = band_token(scene.name)
        files = groups.setdefault((scene.date, _name_without_band(scene.name)), {})
        kept = files.get(band)  # type: ignore[arg-type]
        if kept is None:
            files[band] = scene  # type: ignore[index]
        elif kept.grid.resolution[0] < scene.grid.resolution[0]:
            coarser.append(scene.name)
        else:
            same.append(f"'{kept.name}' and '{scene.name}'")
    if same:
        raise ValueError(f"{_some(same, '; ')} are the same band of one acquisition at one resolution; "
                         "keep one of each (or narrow the file filter)")
    if coarser:
        progress.log(f"Bands given at several resolutions: the finest kept, {len(coarser)} coarser file(s) "
                     f"left out ({_some(coarser)}).")
    all_bands = [b for b in L1C_BANDS if any(b in files for files in groups.values())]
    incomplete = [f"{name} lacks {', '.join(b for b in all_bands if b not in files)}"
                  for (_, name), files in groups.items() if len(files) != len(all_bands)]
    if incomplete:
        raise ValueError(
            f"one file per band: every acquisition needs the same bands ({', '.join(all_bands)}), but "
            f"{_some(incomplete, '; ')}. Add the missing files or remove that acquisition's files"
        )
    return [(date, name, [files[b] for b in all_bands]) for (date, name), files in sorted(groups.items())]


def write_date_vrt(date: datetime, name: str, files: Sequence[Scene]) -> str:
    """A VRT in GDAL's memory with each file in its own band, at the finest files' resolution
    (coarser bands repeated, nearest neighbour), bands described ``<date> <band>``."""
    from osgeo import gdal

    key = hashlib.sha1("\n".join(str(Path(f.path).resolve()) for f in files).encode()).hexdigest()[:12]
    path = f"{VSIMEM_FOLDER}/{key}/{name}.vrt"
    with quiet_gdal():
        dataset = gdal.BuildVRT(path, [f.path for f in files], separate=True, resolution="highest")
        if dataset is None or dataset.RasterCount != len(files):
            crs = sorted({f"{f.name}: {_crs_name(f.grid.crs_wkt)}" for f in files})
            raise ValueError(f"the band files of {name} cannot be put together in one raster "
                             f"({gdal.GetLastErrorMsg() or 'GDAL gave no reason'}); they need one CRS "
                             f"({_some(crs, '; ')})")
        for index, scene in enumerate(files, start=1):
            dataset.GetRasterBand(index).SetDescription(f"{format_datetime(date)} {band_token(scene.name)}")
        dataset = None  # written on close
    return path


def _name_without_band(file_name: str) -> str:
    """``T33TWM_20230101T100319_B04_10m.jp2`` -> ``T33TWM_20230101T100319``: what the files of one
    acquisition share."""
    stem = _RESOLUTION_SUFFIX.sub("", without_band_token(file_name))
    return tidy_name(stem) or "bands"


def _crs_name(wkt: str | None) -> str:
    if not wkt:
        return "no CRS"
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    return crs.to_string() if crs.to_epsg() else crs.wkt[:40]


def _some(items: Sequence[str], separator: str = ", ") -> str:
    return separator.join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
