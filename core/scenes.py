"""Per-date rasters (one acquisition per file) -> one time stack.

Users rarely have a time stack to start from: they have a folder of downloads, one raster per
acquisition, named after the product (``S2A_MSIL1C_20170314T100021_N0204_R122_T33TVM_...``) or by
hand (``2017-03-14.tif``). This module finds those files, works out each file's date (from the
name, else from the raster's metadata: :mod:`.filedates`) and band names, puts everything on one
grid (resampling files on another grid) and writes the stack block by block, all-or-nothing.

Nodata of the stack: the nodata of the first file (in date order) that declares one; Sentinel-2
digital numbers (unsigned integers) that declare none take 0, their products' "no data" number
(exports often drop it). Otherwise no nodata is declared unless some file has to be resampled, in
which case uncovered pixels get NaN (float stacks) or 0 (integer stacks).
Scale/offset: carried over when all files agree; if they differ (e.g. Sentinel-2 processing
baselines before and after 04.00), the stack holds float32 physical values instead; digital
numbers without scale metadata on both sides of baseline 04.00 get each file's scale and offset
judged (:func:`_baseline_offsets`). One file per band, and integers mixed with floating-point
files, are refused with how to fix them.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .atomic import atomic_outputs
from .bandfiles import VSIMEM_FOLDER, group_band_files, holds_band_files, write_date_vrt
from .blocks import iter_blocks
from .filedates import DATE_TAGS, NAME_PATTERNS_HELP, date_from_name, date_from_tags
from .gdalerrors import open_raster, reading
from .limits import MAX_GRID_SIDE
from .progress import Progress, ensure_progress
from .sentinel2 import (
    BASELINE_0400_START,
    QUANTIFICATION,
    RADIOMETRIC_OFFSET,
    band_token,
    carries_baseline_offset,
    default_band_names,
    find_bands,
    is_reflectance_band,
    normalise_band_name,
)
from .timestack import (
    Grid,
    StackInfo,
    StackWriter,
    bounded_gdal_cache,
    format_datetime,
    open_stack,
    window_text,
)

DEFAULT_FILTER = "*.tif;*.tiff;*.jp2;*.vrt;*.img"


RESAMPLING_METHODS = ("nearest", "bilinear", "cubic", "average")

TAG_DUPLICATES = "EOLULC_DUPLICATE_DATES"
TAG_SOURCES = "EOLULC_SOURCE_FILES"


@dataclass(frozen=True)
class Scene:
    """One per-date raster: where it is, when it was taken and how its pixels are laid out."""

    path: str
    date: datetime
    date_source: str
    bands: tuple[str, ...]
    grid: Grid
    dtype: str
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    #: digital numbers whose file declares no nodata: 0 taken as no data (:func:`holds_digital_numbers`)
    nodata_assumed: bool = False

    @property
    def name(self) -> str:
        return Path(self.path).name


def band_names_or_sentinel2(names: Sequence[str]) -> tuple[str, ...]:
    """Names read from descriptions are kept; unnamed 13- and 10-band rasters are taken to be
    Sentinel-2 L1C (all bands) and s2cloudless input (10 bands), in those standard orders."""
    generic = tuple(f"band_{i + 1}" for i in range(len(names)))
    if tuple(names) != generic:
        return tuple(names)
    return default_band_names(len(names)) or generic


def split_filter(file_filter: str | None) -> list[str]:
    """``"*.tif;*.jp2"`` (``;``, ``,`` or spaces between globs) -> ``["*.tif", "*.jp2"]``."""
    parts = [p.strip() for p in re.split(r"[;,\s]+", file_filter or "") if p.strip()]
    return parts or split_filter(DEFAULT_FILTER)


def find_rasters(
    folder: str | Path, file_filter: str | None = DEFAULT_FILTER, exclude: Iterable[str | Path | None] = ()
) -> list[str]:
    """Files directly in ``folder`` matching the filter (case-insensitive), hidden files and
    ``exclude`` (the output) left out, sorted by name."""
    folder_path = Path(folder) if folder else None
    if folder_path is None or not folder_path.exists():
        raise ValueError(f"the folder '{folder}' does not exist; choose the folder that holds the per-date rasters")
    if not folder_path.is_dir():
        raise ValueError(f"'{folder}' is a file, not a folder; choose the folder that holds the per-date rasters")
    patterns = [p.lower() for p in split_filter(file_filter)]
    skip = {Path(p).resolve() for p in exclude if p}
    files = sorted(
        str(p)
        for p in folder_path.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and any(fnmatch.fnmatch(p.name.lower(), pattern) for pattern in patterns)
        and p.resolve() not in skip
    )
    if not files:
        raise ValueError(
            f"no file in '{folder}' matches the file filter '{';'.join(patterns)}'; "
            "check the folder or widen the filter"
        )
    return files


def read_scene(path: str | Path) -> Scene | str:
    """The :class:`Scene` of a raster, or the file's name when no date can be found for it."""
    path = str(path)
    if not path.startswith(VSIMEM_FOLDER) and not Path(path).exists():
        raise ValueError(f"'{path}' does not exist")
    try:
        reader = open_stack(path)
    except ValueError as error:
        raise ValueError(
            f"'{Path(path).name}' is not a raster GDAL can read ({error}); remove it or narrow the file filter"
        ) from None
    with reader:
        info = reader.info
    if info.n_dates > 1:
        raise ValueError(
            f"'{Path(path).name}' is already a time stack of {info.n_dates} dates; give one acquisition per "
            "file (and do not write the output into the input folder)"
        )
    date = date_from_name(Path(path).name)
    source = "file name"
    if date is None and info.dates[0] is not None:
        date, source = info.dates[0], "EO LULC stack metadata"
    if date is None:
        found = date_from_tags({**_imagery_tags(path), **info.tags})
        if found is not None:
            date, source = found[0], f"metadata {found[1]}"
    if date is None:
        return path
    bands = info.bands if info.is_dated else band_names_or_sentinel2(info.bands)
    assumed = info.nodata is None and holds_digital_numbers(info.dtype, bands)
    return Scene(
        path=path,
        date=date,
        date_source=source,
        bands=tuple(bands),
        grid=info.grid,
        dtype=info.dtype,
        nodata=0.0 if assumed else info.nodata,
        scales=tuple(info.scales),
        offsets=tuple(info.offsets),
        nodata_assumed=assumed,
    )


def _imagery_tags(path: str) -> dict[str, str]:
    """GDAL's IMAGERY metadata domain (ACQUISITIONDATETIME of many satellite drivers)."""

    with open_raster(path) as ds:
        return ds.tags(ns="IMAGERY")


def scan_scenes(paths: Sequence[str | Path], progress: Progress | None = None) -> list[Scene]:
    """Read every file's date, bands and grid; sorted by (date, file name) so the input order
    never matters. Raises ``ValueError`` for no files, undated files or mismatched bands."""
    progress = ensure_progress(progress)
    unique: list[str] = []
    seen: set[Path] = set()
    for path in paths:  # the same file twice (folder and layers) counts once
        if path and Path(path).resolve() not in seen:
            seen.add(Path(path).resolve())
            unique.append(str(path))
    if not unique:
        raise ValueError("no input rasters: give a folder of per-date rasters or a list of raster layers")
    scenes: list[Scene] = []
    undated: list[str] = []
    for i, path in enumerate(unique):
        progress.check()
        scene = read_scene(path)
        if isinstance(scene, Scene):
            scenes.append(scene)
        else:
            undated.append(Path(scene).name)
        progress.report((i + 1) / len(unique))
    if undated:
        raise ValueError(
            f"no acquisition date found for {len(undated)} file(s): {', '.join(undated)}. "
            f"Put the date in the file name ({NAME_PATTERNS_HELP}) or in the raster metadata "
            f"(one of {', '.join(DATE_TAGS)})"
        )
    if holds_band_files(scenes):
        scenes = _date_rasters_of_band_files(scenes, progress)
    scenes.sort(key=lambda s: (s.date, s.name, s.path))
    first = scenes[0]
    for scene in scenes[1:]:
        if [normalise_band_name(b) for b in scene.bands] != [normalise_band_name(b) for b in first.bands]:
            raise ValueError(
                f"'{scene.name}' has bands {', '.join(scene.bands)} but '{first.name}' has "
                f"{', '.join(first.bands)}; all files must hold the same bands in the same order"
            )
    _refuse_mixed_value_kinds(scenes)
    assumed = [s.name for s in scenes if s.nodata_assumed]
    if assumed:
        progress.log(f"{len(assumed)} file(s) hold digital numbers and declare no nodata: 0, Sentinel-2's "
                     "no-data digital number (swath edges, empty tile corners), is taken as no data.")
    scenes = _baseline_offsets(scenes, progress)
    for scene in scenes:
        progress.log(f"{format_datetime(scene.date)}  {scene.name}  (date from {scene.date_source})")
    return scenes


def _baseline_offsets(scenes: list[Scene], progress: Progress) -> list[Scene]:
    """Digital numbers without scale metadata on both sides of processing baseline 04.00
    (2022-01-25), whose products add 1000 to every number: each file from that date whose cirrus
    band (B10) never falls below 1000 gets the offset, the others none (harmonised archives remove
    it), so the stack holds reflectance on one scale (physical values, see the module docstring).
    Without B10 (L2A) the offset cannot be judged and only scale metadata counts."""
    if not all(holds_digital_numbers(s.dtype, s.bands) for s in scenes):
        return scenes
    if any(set(s.scales) != {1.0} or set(s.offsets) != {0.0} for s in scenes):
        return scenes
    recent = [s for s in scenes if s.date >= BASELINE_0400_START]
    if not recent or len(recent) == len(scenes):
        return scenes  # one side only: the stack's own judgement (cloud mask, features) sees it whole
    try:
        cirrus = find_bands(scenes[0].bands, ["B10"])[0]
    except ValueError:
        return scenes
    shifted = {s.path for s in recent if carries_baseline_offset(_cirrus_sample(s, cirrus))}
    if not shifted:
        return scenes
    progress.log(f"{len(shifted)} file(s) from {BASELINE_0400_START:%Y-%m-%d} carry processing baseline "
                 "04.00's +1000 offset and the earlier ones none: the stack holds reflectance (float32).")
    count = len(scenes[0].bands)
    return [replace(s, scales=(1 / QUANTIFICATION,) * count,
                    offsets=((RADIOMETRIC_OFFSET / QUANTIFICATION) if s.path in shifted else 0.0,) * count)
            for s in scenes]


def _cirrus_sample(scene: Scene, band: int) -> np.ndarray:
    """A file's B10 numbers read at 256 px at most (nearest), NaN where no data."""
    with open_raster(scene.path) as ds:
        shape = (min(256, ds.height), min(256, ds.width))
        values = ds.read(band + 1, out_shape=shape).astype(np.float64)
    if scene.nodata is not None:
        values[values == scene.nodata] = np.nan
    return values


def _date_rasters_of_band_files(scenes: list[Scene], progress: Progress) -> list[Scene]:
    """One file per band and date: each acquisition's files as one raster (a VRT in memory)."""
    groups = group_band_files(scenes, progress)
    bands = ", ".join(band_token(f.name) or "" for f in groups[0][2])
    progress.log(f"One file per band: {sum(len(files) for _, _, files in groups)} files make {len(groups)} "
                 f"acquisition(s) of the bands {bands}; coarser bands are repeated onto the finest pixels "
                 "(nearest neighbour).")
    dated = []
    for date, name, files in groups:
        scene = read_scene(write_date_vrt(date, name, files))
        assert isinstance(scene, Scene)  # its bands' descriptions are dated
        dated.append(replace(scene, date=date, date_source=files[0].date_source))
    return dated


def _refuse_mixed_value_kinds(scenes: Sequence[Scene]) -> None:
    """Integer files (digital numbers) and floating-point files (reflectance) without scale
    metadata would be stacked as they are, on two scales 10,000 apart."""
    if any(s.scales != scenes[0].scales or s.offsets != scenes[0].offsets for s in scenes):
        return  # converted to physical values (see the module docstring)
    integer = [s for s in scenes if np.dtype(s.dtype).kind in "ui"]
    floating = [s for s in scenes if np.dtype(s.dtype).kind == "f"]
    if integer and floating:
        raise ValueError(
            f"'{integer[0].name}' holds integers ({integer[0].dtype}: digital numbers?) but "
            f"'{floating[0].name}' floating-point values ({floating[0].dtype}: reflectance?), and no file says "
            "its scale: stacked together they would mix two scales. Give all files one kind (e.g. QGIS's "
            "Raster > Conversion > Translate to UInt16 digital numbers), or set their scale (gdal_edit -scale 0.0001)"
        )


def duplicate_dates(scenes: Sequence[Scene]) -> list[datetime]:
    """Dates that occur more than once (e.g. two tiles of one pass), each listed once."""
    dates = [s.date for s in scenes]
    return sorted({d for d in dates if dates.count(d) > 1})


def make_grid(
    reference: Grid,
    crs: str | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    resolution: float | None = None,
) -> Grid:
    """The output grid: ``reference`` (the first file's grid) with whichever of CRS (any form
    rasterio accepts), bounds ``(xmin, ymin, xmax, ymax)`` in that CRS and pixel size are given."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.warp import calculate_default_transform, transform_bounds

    if crs is None and bounds is None and resolution is None:
        return reference
    src_crs = CRS.from_wkt(reference.crs_wkt) if reference.crs_wkt else None
    try:
        dst_crs = CRS.from_user_input(crs) if crs else src_crs
    except Exception as error:  # noqa: BLE001 - rasterio raises CRSError
        raise ValueError(f"'{crs}' is not a coordinate reference system: {error}") from None
    reprojected = dst_crs is not None and src_crs is not None and dst_crs != src_crs
    if crs and src_crs is None:
        raise ValueError("the first file has no CRS, so it cannot be reprojected; leave the target CRS empty")
    if bounds is None:
        bounds = transform_bounds(src_crs, dst_crs, *reference.bounds) if reprojected else reference.bounds
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if not (xmax > xmin and ymax > ymin):
        raise ValueError(f"the target extent {bounds} is empty")
    if resolution is not None:
        res_x = res_y = float(resolution)
    elif reprojected:
        transform, _, _ = calculate_default_transform(
            src_crs, dst_crs, reference.width, reference.height, *reference.bounds
        )
        res_x = res_y = float(abs(transform.a))
    else:  # the reference's own pixel size, non-square pixels included
        res_x, res_y = abs(reference.transform[0]), abs(reference.transform[4])
    if not (res_x > 0 and res_y > 0):
        raise ValueError(f"the target resolution must be positive, got {resolution}")
    width = max(1, math.ceil((xmax - xmin) / res_x - 1e-6))
    height = max(1, math.ceil((ymax - ymin) / res_y - 1e-6))
    if max(width, height) > MAX_GRID_SIDE:
        raise ValueError(f"a pixel size of {res_x:g} x {res_y:g} makes the output {width} x {height} px, more than "
                         f"{MAX_GRID_SIDE} px a side; choose a larger resolution or a smaller extent")
    return Grid(
        width=width,
        height=height,
        crs_wkt=dst_crs.to_wkt() if dst_crs else None,
        transform=tuple(from_origin(xmin, ymax, res_x, res_y))[:6],
    )


def _output_layout(scenes: Sequence[Scene], grid: Grid) -> tuple[str, float | None, bool, tuple, tuple]:
    """``(dtype, nodata, to_physical, scales, offsets)`` of the stack (see the module docstring)."""
    first = scenes[0]
    to_physical = any(s.scales != first.scales or s.offsets != first.offsets for s in scenes)
    dtype = np.result_type(*[np.dtype(s.dtype) for s in scenes])
    if to_physical:
        dtype = np.result_type(dtype, np.float32) if dtype.kind == "f" else np.dtype("float32")
        return dtype.name, float("nan"), True, (), ()
    nodata = next((s.nodata for s in scenes if s.nodata is not None), None)
    if nodata is None and any(not s.grid.same_as(grid) for s in scenes):
        nodata = float("nan") if dtype.kind == "f" else 0.0
    return dtype.name, nodata, False, first.scales, first.offsets


def holds_digital_numbers(dtype: str, bands: Sequence[str]) -> bool:
    """Sentinel-2 bands stored as unsigned integers: digital numbers, whose 0 is "no data" (the
    swath's edge, a tile's empty corner) in every product, whether or not an export declared it."""
    return np.dtype(dtype).kind == "u" and all(is_reflectance_band(b) for b in bands)


class _SceneSource:
    """Reads one scene's windows on the output grid (resampled through a WarpedVRT if needed)."""

    def __init__(self, scene: Scene, grid: Grid, dtype: str, nodata: float | None, resampling: str) -> None:
        import rasterio
        from rasterio.crs import CRS
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        self.scene = scene
        self.dtype = dtype
        self.nodata = nodata
        self._ds = open_raster(scene.path)
        self._vrt = None
        self.warped = not scene.grid.same_as(grid)
        if self.warped:
            if not grid.crs_wkt or not scene.grid.crs_wkt:
                self._ds.close()
                raise ValueError(
                    f"'{scene.name}' is not on the output grid and it or the output grid has no CRS, "
                    "so it cannot be resampled; give it a CRS"
                )
            options = dict(
                crs=CRS.from_wkt(grid.crs_wkt),
                transform=rasterio.Affine(*grid.transform),
                width=grid.width,
                height=grid.height,
                resampling=Resampling[resampling],
                nodata=nodata,
                dtype=dtype,
            )
            if scene.nodata is not None:
                options["src_nodata"] = scene.nodata
            self._vrt = WarpedVRT(self._ds, **options)

    def read(self, window: tuple[int, int, int, int]) -> np.ndarray:
        """``(height, width, bands)`` in the output dtype, nodata mapped to the output nodata."""
        from rasterio.windows import Window

        row, col, height, width = window
        rio_window = Window(col, row, width, height)
        with reading(self.scene.path, window_text(window, None)):
            if self._vrt is not None:
                data = self._vrt.read(window=rio_window).astype(self.dtype, copy=False)
                missing = None  # the warp already wrote the output nodata
            else:
                raw = self._ds.read(window=rio_window)
        if self._vrt is None:
            missing = _nodata_mask(raw, self.scene.nodata)
            data = raw.astype(self.dtype, copy=False)
        return np.moveaxis(self._finish(data, missing), 0, -1)

    def _finish(self, data: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
        return data if missing is None or self.nodata is None else np.where(missing, self.nodata, data)

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
        self._ds.close()


class _PhysicalSource(_SceneSource):
    """Like :class:`_SceneSource` but converts digital numbers with the file's own scale/offset."""

    def _finish(self, data: np.ndarray, missing: np.ndarray | None) -> np.ndarray:
        if missing is None and self._vrt is not None:
            missing = np.isnan(data)
        scales = np.asarray(self.scene.scales, dtype=self.dtype)[:, None, None]
        offsets = np.asarray(self.scene.offsets, dtype=self.dtype)[:, None, None]
        values = data * scales + offsets
        return values if missing is None else np.where(missing, np.nan, values).astype(self.dtype, copy=False)


def _nodata_mask(data: np.ndarray, nodata: float | None) -> np.ndarray | None:
    if nodata is None:
        return None
    if isinstance(nodata, float) and math.isnan(nodata):
        return np.isnan(data) if data.dtype.kind == "f" else None
    return data == nodata


@bounded_gdal_cache()
def build_time_stack(
    scenes: Sequence[Scene],
    output: str | Path,
    grid: Grid | None = None,
    resampling: str = "nearest",
    progress: Progress | None = None,
    budget_bytes: int | None = None,
) -> StackInfo:
    """Write the scenes (from :func:`scan_scenes`) as one stack at ``output`` on ``grid`` (the
    first scene's grid if ``None``), window by window; nothing is left at ``output`` on failure."""
    progress = ensure_progress(progress)
    if not scenes:
        raise ValueError("no input rasters to stack")
    if resampling not in RESAMPLING_METHODS:
        raise ValueError(f"unknown resampling '{resampling}'; use one of {', '.join(RESAMPLING_METHODS)}")
    grid = grid or scenes[0].grid
    dtype, nodata, to_physical, scales, offsets = _output_layout(scenes, grid)
    duplicates = duplicate_dates(scenes)
    tags = {TAG_SOURCES: json.dumps([s.name for s in scenes])}
    if duplicates:
        tags[TAG_DUPLICATES] = json.dumps([format_datetime(d) for d in duplicates])
        progress.log(
            "Dates that occur more than once (kept, one stack date per file): "
            + ", ".join(format_datetime(d) for d in duplicates)
        )
    if to_physical:
        progress.log("The files have different scale/offset; the stack holds float32 physical values.")
    warped = [s.name for s in scenes if not s.grid.same_as(grid)]
    if warped:
        progress.log(f"Resampled onto the output grid ({resampling}): {', '.join(warped)}")
    if nodata is not None and not any(s.nodata is not None for s in scenes) and not to_physical:
        progress.log(f"No file declares nodata; pixels the resampled files do not cover are set to {nodata}.")
    info = StackInfo(
        grid=grid,
        dates=tuple(s.date for s in scenes),
        bands=scenes[0].bands,
        dtype=dtype,
        nodata=nodata,
        scales=scales,
        offsets=offsets,
        tags=tags,
    )
    source_type = _PhysicalSource if to_physical else _SceneSource
    itemsize = np.dtype(dtype).itemsize
    bytes_per_pixel = (info.n_dates + 2) * info.n_bands * itemsize * 2
    sources: list[_SceneSource] = []
    try:
        for scene in scenes:
            sources.append(source_type(scene, grid, dtype, nodata, resampling))
        with atomic_outputs([output]) as (temp,):
            with StackWriter(str(temp), info) as writer:
                for block in iter_blocks(grid.height, grid.width, bytes_per_pixel, budget_bytes, progress=progress):
                    out = np.empty((info.n_dates, block.height, block.width, info.n_bands), dtype=dtype)
                    for t, source in enumerate(sources):
                        out[t] = source.read(block.window)
                    writer.write(out, block.window)
                progress.check()
    finally:
        for source in sources:
            source.close()
    return info
