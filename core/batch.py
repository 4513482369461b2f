"""Many tiles in parallel: the pipeline over a folder of L1C stacks or EOPatches, or over one large
stack split into tiles, on local processes (joblib's loky) or on a ``dask.distributed`` cluster.

Tiles come in three kinds (:class:`TileInput`):

- ``stack``: an L1C time stack and its reference raster (a folder of tiles);
- ``eopatch``: an eo-learn EOPatch folder. With 13-band L1C data (``data/BANDS-S2-L1C``) it is a
  ``stack`` tile; otherwise its temporal data features (NDVI, ...) *are* the features and its
  ``mask/CLM`` is the cloud mask (no cloud detection, no feature computation), as in eo-learn's
  own LULC example where the patches carry them;
- ``window``: a window of one large stack (:func:`split_stack`). Its cloud mask is computed on the
  window plus a halo (the averaging and dilation disks and the coarse processing grid) and only
  the window is kept; the scene filter decides from the clear pixels of *all* windows. So the
  tiles' products equal those of the single-stack pipeline on the whole stack (same model).

Phases:

0. ``window`` tiles only, per tile in parallel: cloud mask (with halo) and features of the window,
   and its clear pixels per date; then, here, the dates the scene filter keeps for all windows;
1. per tile, in parallel: cloud mask -> features -> interpolation onto one date grid shared by
   all tiles, then a spatial train/test split of the tile's reference and a sample of its
   training and test pixels (``tiles/<name>/samples.npz``). Every file is written atomically
   and a ``done.json`` marker (holding the settings) is written last: a tile whose marker
   matches the settings is skipped when the batch runs again (resume);
2. in this process: one LightGBM model trained on the samples pooled from all tiles;
3. per tile, in parallel: classification with the pooled model; then a VRT mosaic of the tile
   maps with the legend's ``.qml`` and one accuracy report over the held-out pixels of all tiles.

A tile that only lacks what the recipe expects (a spatial split of its own, labelled pixels, a date
passing its scene filter, any data) is no failure: it is classified with the pooled model and named,
with the reason, in the log and the report; its place in the mosaic is never a hole.
A tile that fails is retried once, then reported; the others finish. A worker process that dies
(killed, out of memory, a crash in a native library) costs the tiles it was running one attempt;
locally those tiles are then retried one at a time so a tile that kills its worker is identified,
on Dask the scheduler moves them to other workers. Cancel stops scheduling new tiles. Workers must
be able to import this package (on a cluster: the plugin folder and its dependencies installed on
every worker, see the README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import traceback
from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .atomic import atomic_outputs, remove_stale_temporaries
from .blocks import available_memory
from .legend import Legend
from .pipeline import PipelineSettings, describe_settings
from .progress import Cancelled, Progress, ensure_progress
from .workers import run_in_workers, worker_python

EXECUTORS = ("local", "dask")
KINDS = ("stack", "eopatch", "window")
#: Memory one worker may use for its blocks (GDAL cache and LightGBM come on top).
DEFAULT_WORKER_BUDGET = 512 * 1024 * 1024
#: What a worker process needs on top of its block budget (interpreter, GDAL cache, models).
WORKER_OVERHEAD = 600 * 1024 * 1024
MARKER = "done.json"
STAGE_MARKER = "window.json"
MARKER_VERSION = 2
L1C_NAMES = ("l1c.tif", "l1c.tiff")
REFERENCE_NAMES = ("reference.tif", "reference.tiff")
#: EOPatch features: the L1C bands (then the tile runs the whole pipeline), the cloud mask, the
#: reference; temporal data features starting with a skipped prefix (cloud probabilities) are
#: never features.
EOPATCH_L1C = "BANDS-S2-L1C"
EOPATCH_MASK = "CLM"
EOPATCH_REFERENCE = "LULC"
EOPATCH_SKIPPED_PREFIXES = ("CLP",)
CLOUD_BANDS = "all 13 L1C bands or the 10 the s2cloudless model uses"
#: Seconds an idle local worker process waits for the next tile before it exits.
WORKER_IDLE_TIMEOUT = 60


@dataclass(frozen=True)
class TileInput:
    """One tile. ``stack``: ``l1c`` and ``reference`` are rasters; ``eopatch``: both are the
    EOPatch folder and ``features`` names its data features (empty = all but cloud
    probabilities); ``window``: both are the large stack and its reference, ``window`` is the
    tile's ``(row, col, height, width)`` in them and ``halo`` the pixels read around it."""

    name: str
    l1c: str
    reference: str
    kind: str = "stack"
    window: tuple[int, int, int, int] | None = None
    halo: int = 0
    features: tuple[str, ...] = ()


@dataclass
class TileFailure:
    name: str
    phase: str
    message: str
    attempts: int


@dataclass
class BatchResult:
    mosaic: str
    report: str
    report_json: str
    model: str
    tiles: list[str]
    classifications: dict[str, str]
    failed: list[TileFailure]
    skipped: list[str]
    report_data: dict
    notes: list[str] = field(default_factory=list)


def discover_tiles(folder: str | Path, eopatch_features: Sequence[str] = ()) -> list[TileInput]:
    """Tiles in ``folder``: each subfolder holding ``l1c.tif`` and ``reference.tif`` (what
    :class:`core.synthetic.SyntheticScene` writes), each EOPatch subfolder (``bbox.geojson``),
    and each pair ``<name>_l1c.tif`` + ``<name>_reference.tif``; sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is not a folder")
    tiles: dict[str, TileInput] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        l1c = next((sub / n for n in L1C_NAMES if (sub / n).is_file()), None)
        ref = next((sub / n for n in REFERENCE_NAMES if (sub / n).is_file()), None)
        if l1c is not None and ref is not None:
            tiles[sub.name] = TileInput(sub.name, str(l1c), str(ref))
        elif (sub / "bbox.geojson").is_file():
            tiles[sub.name] = TileInput(sub.name, str(sub), str(sub), kind="eopatch",
                                        features=tuple(eopatch_features))
    for l1c in sorted(folder.glob("*_l1c.tif")):
        name = l1c.name[: -len("_l1c.tif")]
        ref = folder / f"{name}_reference.tif"
        if ref.is_file() and name not in tiles:
            tiles[name] = TileInput(name, str(l1c), str(ref))
    if not tiles:
        raise ValueError(f"no tiles in '{folder}': expected subfolders with l1c.tif and reference.tif, "
                         "EOPatch subfolders (bbox.geojson, data/, mask/), or pairs <name>_l1c.tif and "
                         "<name>_reference.tif")
    return [tiles[k] for k in sorted(tiles)]


def _detector(settings: PipelineSettings, budget_bytes: int | None = None, threads: int | None = None):
    from .cloudmask import CloudDetector

    return CloudDetector(processing_resolution=settings.processing_resolution, budget_bytes=budget_bytes,
                         threads=threads)


def split_stack(l1c: str | Path, reference: str | Path, tile_size: int,
                settings: PipelineSettings | None = None) -> list[TileInput]:
    """``window`` tiles of ``tile_size`` px (rounded up to whole cells of the cloud mask's
    processing grid, so every window starts on a cell of the whole stack's grid) covering the
    stack; the last row and column may be narrower."""
    from .timestack import read_info

    settings = settings or PipelineSettings()
    if tile_size < 1:
        raise ValueError(f"the tile size must be 1 pixel or more (got {tile_size})")
    info = read_info(str(l1c))
    if not info.is_dated:
        raise ValueError(f"'{l1c}' is not a time stack: its bands carry no acquisition dates")
    if not Path(reference).is_file():
        raise ValueError(f"the reference raster '{reference}' does not exist")
    detector = _detector(settings)
    factor = detector.factor_for(info)
    size = factor * math.ceil(tile_size / factor)
    halo = detector.halo(factor)
    height, width = info.grid.height, info.grid.width
    rows, cols = math.ceil(height / size), math.ceil(width / size)
    digits = max(2, len(str(max(rows, cols) - 1)))
    return [TileInput(f"r{r:0{digits}d}c{c:0{digits}d}", str(l1c), str(reference), kind="window",
                      window=(r * size, c * size, min(size, height - r * size), min(size, width - c * size)),
                      halo=halo)
            for r in range(rows) for c in range(cols)]


def local_workers(requested: int, worker_budget: int = DEFAULT_WORKER_BUDGET) -> int:
    """``requested`` (0 = automatic) bounded by the CPUs and by the memory available for workers
    of ``worker_budget`` each (plus their overhead)."""
    cpus = os.cpu_count() or 1
    wanted = requested if requested > 0 else cpus
    memory = available_memory()
    by_memory = max(1, memory // (worker_budget + WORKER_OVERHEAD)) if memory else wanted
    return int(max(1, min(wanted, cpus, by_memory)))


# ---------------------------------------------------------------------------- the tile tasks
def _tile_paths(folder: Path) -> dict[str, Path]:
    return {name: folder / file for name, file in (
        ("cloud_mask", "cloud_mask.tif"), ("features", "features.tif"), ("interpolated", "features_interpolated.tif"),
        ("reference", "reference.tif"), ("samples", "samples.npz"), ("classification", "classification.tif"),
        ("confidence", "confidence.tif"), ("marker", MARKER), ("stage", STAGE_MARKER))}


def _remove_stale_parts(folder: Path) -> None:
    """Temporary files of an attempt whose worker died before it could clean up."""
    remove_stale_temporaries(folder)


def _file_stamp(path: str | Path) -> dict:
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _input_stamps(tile: TileInput) -> dict:
    """What identifies a tile's inputs: path, size and time of each file read."""
    if tile.kind == "eopatch":
        files = sorted(Path(top) / name for top, _, names in os.walk(tile.l1c, followlinks=True) for name in names)
        return {"eopatch": [_file_stamp(p) for p in files]}
    stamps = {"l1c": _file_stamp(tile.l1c), "reference": _file_stamp(tile.reference)}
    if tile.kind == "window":
        stamps.update(window=list(tile.window or ()), halo=tile.halo)
    return stamps


def _tile_key(tile: TileInput, settings: PipelineSettings, grid_dates: Sequence[str],
              extra: dict | None = None) -> dict:
    """What a tile's phase-1 outputs depend on (compared with the marker to resume); the sample
    sizes (which depend on the number of tiles) are kept apart: they only redo the sampling."""
    train = settings.train
    return {
        "version": MARKER_VERSION,
        "kind": tile.kind,
        "features": list(tile.features),
        "inputs": _input_stamps(tile),
        "pipeline": describe_settings(settings),
        "date_grid": list(grid_dates),
        "split": {"split": train.split, "test_fraction": train.test_fraction, "block_size": train.block_size,
                  "erosion": train.erosion, "sampling": train.sampling, "seed": train.seed},
        **(extra or {}),
    }


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_outputs([path]) as (temp,):
        temp.write_text(json.dumps(data, indent=1), encoding="utf-8")


def copy_window(source: str | Path, target: str | Path, window: tuple[int, int, int, int],
                dates: Sequence[int] | None = None, bands: Sequence[int] | None = None,
                budget_bytes: int | None = None) -> None:
    """A window (and optionally some date and band indices) of a stack as a stack of its own,
    georeferenced where the window lies; written atomically, block by block."""
    from .blocks import iter_blocks
    from .timestack import Grid, StackInfo, StackWriter, open_stack

    row, col, height, width = window
    with open_stack(str(source)) as reader:
        info = reader.info
        t_idx = list(range(info.n_dates)) if dates is None else list(dates)
        b_idx = list(range(info.n_bands)) if bands is None else list(bands)
        a, b, c, d, e, f = info.grid.transform
        grid = Grid(width=width, height=height, crs_wkt=info.grid.crs_wkt,
                    transform=(a, b, c + col * a + row * b, d, e, f + col * d + row * e))
        # per-date statistics of the source (EOLULC_* tags) do not hold for a part of it
        out = StackInfo(grid=grid, dates=tuple(info.dates[t] for t in t_idx), bands=tuple(info.bands[i] for i in b_idx),
                        dtype=info.dtype, nodata=info.nodata, scales=tuple(info.scales[i] for i in b_idx),
                        offsets=tuple(info.offsets[i] for i in b_idx),
                        tags={k: v for k, v in info.tags.items() if not k.startswith("EOLULC_")})
        per_pixel = 2 * len(t_idx) * len(b_idx) * np.dtype(info.dtype).itemsize + 64
        with atomic_outputs([target]) as (temp,), StackWriter(str(temp), out) as writer:
            for block in iter_blocks(height, width, per_pixel, budget_bytes):
                data = reader.read((row + block.row, col + block.col, block.height, block.width), dates=t_idx,
                                   bands=b_idx)
                writer.write(data, block.window)


def mask_window(tile: TileInput, folder: str, settings: PipelineSettings, radiometry, budget_bytes: int | None,
                threads: int | None = None) -> dict:
    """Phase 0 of a ``window`` tile (in a worker): its cloud mask from the window plus halo (only
    the window kept), its features, and its clear pixels per date as the scene filter counts them.
    Skipped when its marker matches."""
    from .features import compute_features
    from .interpolate import valid_fractions
    from .sentinel2 import S2CLOUDLESS_BANDS, find_bands
    from .timestack import read_info

    tile_folder = Path(folder)
    tile_folder.mkdir(parents=True, exist_ok=True)
    paths = _tile_paths(tile_folder)
    key = {"version": MARKER_VERSION, "inputs": _input_stamps(tile), "radiometry": radiometry.reason,
           "pipeline": describe_settings(settings)}
    marker = _read_marker(paths["stage"])
    if marker is not None and marker.get("key") == key and paths["cloud_mask"].exists() \
            and paths["features"].exists():
        return {**marker["summary"], "skipped": True}
    paths["stage"].unlink(missing_ok=True)
    paths["marker"].unlink(missing_ok=True)
    _remove_stale_parts(tile_folder)
    started = time.perf_counter()
    info = read_info(tile.l1c)
    row, col, height, width = tile.window
    top, left = max(0, row - tile.halo), max(0, col - tile.halo)
    bottom = min(info.grid.height, row + height + tile.halo)
    right = min(info.grid.width, col + width + tile.halo)
    with_halo = tile_folder / ".l1c_halo.tif"
    mask_halo = tile_folder / ".cloud_mask_halo.tif"
    try:
        bands = find_bands(info.bands, S2CLOUDLESS_BANDS, CLOUD_BANDS)
        copy_window(tile.l1c, with_halo, (top, left, bottom - top, right - left), bands=bands,
                    budget_bytes=budget_bytes)
        detector = _detector(settings, budget_bytes, threads)
        detector.forced_radiometry = radiometry  # decided once for the whole stack
        detector.run(str(with_halo), None, str(mask_halo))
        copy_window(mask_halo, paths["cloud_mask"], (row - top, col - left, height, width), budget_bytes=budget_bytes)
    finally:
        with_halo.unlink(missing_ok=True)
        mask_halo.unlink(missing_ok=True)
    with_core = tile_folder / ".l1c.tif"
    try:
        copy_window(tile.l1c, with_core, tile.window, budget_bytes=budget_bytes)
        compute_features(str(with_core), str(paths["features"]), settings.features, None, budget_bytes)
    finally:
        with_core.unlink(missing_ok=True)
    # what interpolate_stack's scene filter would count on this window: clear pixels of the
    # mask, or valid values of the features when the mask is not used
    counted = paths["cloud_mask"] if settings.cloud_mask_in_interpolation else paths["features"]
    total = height * width * read_info(str(counted)).n_bands
    fractions = valid_fractions(paths["features"], paths["cloud_mask"] if settings.cloud_mask_in_interpolation
                                else None, budget_bytes)
    summary = {"name": tile.name, "valid": [int(round(f * total)) for f in fractions], "total": total,
               "seconds": round(time.perf_counter() - started, 3)}
    _write_json_atomic(paths["stage"], {"key": key, "summary": summary})
    return {**summary, "skipped": False}


def prepare_tile(tile: TileInput, folder: str, settings: PipelineSettings, grid_dates: Sequence[str],
                 quota: dict, budget_bytes: int | None, threads: int | None = None,
                 kept: Sequence[int] | None = None) -> dict:
    """Phase 1 of one tile (in a worker); skipped when its marker matches. ``kept``: the dates of
    the large stack the scene filter kept (``window`` tiles). Returns a summary."""
    tile_folder = Path(folder)
    tile_folder.mkdir(parents=True, exist_ok=True)
    paths = _tile_paths(tile_folder)
    extra = {"kept": list(kept)} if kept is not None else None
    if tile.kind == "window":
        extra = {**(extra or {}), "stage": (_read_marker(paths["stage"]) or {}).get("key")}
    key = _tile_key(tile, settings, grid_dates, extra)
    marker = _read_marker(paths["marker"])
    reference = tile.reference if tile.kind != "eopatch" else str(paths["reference"])
    if marker is not None and marker.get("key") == key and paths["interpolated"].exists():
        if marker.get("quota") == quota and paths["samples"].exists():
            return {**marker["summary"], "skipped": True}
        # only the sample size changed (another number of tiles): sample again, keep the rest
        summary = dict(marker["summary"])
        started = time.perf_counter()
    else:
        paths["marker"].unlink(missing_ok=True)  # outputs change from here: the tile is not done
        _remove_stale_parts(tile_folder)
        started = time.perf_counter()
        if tile.kind == "window":
            summary = _interpolate_window(tile, paths, settings, grid_dates, kept, budget_bytes)
        elif tile.kind == "eopatch":
            summary = _interpolate_eopatch(tile, paths, settings, grid_dates, budget_bytes, threads)
        else:
            summary = _interpolate_stack(tile.l1c, paths, settings, grid_dates, budget_bytes, threads)
        summary["name"] = tile.name
    unsplit: list[str] = []
    samples = _sample_tile(tile, reference, str(paths["interpolated"]), settings, quota, budget_bytes, unsplit)
    with atomic_outputs([paths["samples"]]) as (temp,):
        with open(temp, "wb") as handle:
            np.savez(handle, **samples)
    summary.pop("unsplit", None)
    summary.update(seconds=round(time.perf_counter() - started, 3), train_pixels=int(samples["y_train"].size),
                   test_pixels=int(samples["y_test"].size),
                   reference_classes=[int(c) for c in samples["reference_classes"]],
                   **({"unsplit": unsplit[0]} if unsplit else {}))
    # last: the tile is complete
    _write_json_atomic(paths["marker"], {"key": key, "quota": quota, "summary": summary})
    return {**summary, "skipped": False}


def _interpolate(features: Path, mask: Path | None, output: Path, settings: PipelineSettings,
                 grid_dates: Sequence[str], min_valid_fraction: float, budget_bytes: int | None) -> dict:
    """The features interpolated onto the common date grid. When no date of the tile passes its
    own scene filter (a cloudy or mostly empty tile) all its dates are kept, cloud-masked, so the
    tile is still mapped wherever it was seen clear (and said so in its summary)."""
    from .interpolate import plan_interpolation, valid_fractions, write_interpolation
    from .timestack import bounded_gdal_cache, parse_datetime

    mask_path = str(mask) if mask is not None and settings.cloud_mask_in_interpolation else None
    fractions, summary = None, {}
    with bounded_gdal_cache():  # as interpolate_stack does
        if min_valid_fraction > 0:
            fractions = valid_fractions(str(features), mask_path, budget_bytes)
            if not np.any(fractions > min_valid_fraction):
                best = float(np.max(fractions, initial=0.0))
                summary["scene_filter"] = (f"no date has a valid fraction above {min_valid_fraction:g} (the best is "
                                           f"{best:.3f}): all dates kept, cloud-masked")
                fractions, min_valid_fraction = None, 0.0
        plan = plan_interpolation(str(features), grid=[parse_datetime(d) for d in grid_dates], mask_path=mask_path,
                                  min_valid_fraction=min_valid_fraction, fractions=fractions,
                                  budget_bytes=budget_bytes)
        write_interpolation(str(features), plan, str(output), mask_path=mask_path, budget_bytes=budget_bytes)
    return {"dates_kept": len(plan.kept), "dates_in": len(plan.input_dates), **summary}


def _interpolate_stack(l1c: str, paths: dict[str, Path], settings: PipelineSettings, grid_dates: Sequence[str],
                       budget_bytes: int | None, threads: int | None) -> dict:
    """Cloud mask -> features -> interpolation of an L1C stack (the single-stack pipeline's steps)."""
    from .features import compute_features

    _detector(settings, budget_bytes, threads).run(l1c, None, str(paths["cloud_mask"]))
    compute_features(l1c, str(paths["features"]), settings.features, None, budget_bytes)
    return _interpolate(paths["features"], paths["cloud_mask"], paths["interpolated"], settings, grid_dates,
                        settings.min_valid_fraction if settings.scene_filter else 0.0, budget_bytes)


def _interpolate_window(tile: TileInput, paths: dict[str, Path], settings: PipelineSettings,
                        grid_dates: Sequence[str], kept: Sequence[int] | None, budget_bytes: int | None) -> dict:
    """Interpolation of a window's features (phase 0) on the dates kept for the whole stack: the
    kept dates are copied out and interpolated without a filter of their own."""
    from .timestack import read_info

    n_dates = read_info(str(paths["features"])).n_dates
    kept = list(range(n_dates)) if kept is None else list(kept)
    if len(kept) == n_dates:
        return _interpolate(paths["features"], paths["cloud_mask"], paths["interpolated"], settings, grid_dates,
                            0.0, budget_bytes)
    window = (0, 0, tile.window[2], tile.window[3])
    features, mask = paths["features"].with_name(".features_kept.tif"), paths["cloud_mask"].with_name(".mask_kept.tif")
    try:
        copy_window(paths["features"], features, window, dates=kept, budget_bytes=budget_bytes)
        copy_window(paths["cloud_mask"], mask, window, dates=kept, budget_bytes=budget_bytes)
        summary = _interpolate(features, mask, paths["interpolated"], settings, grid_dates, 0.0, budget_bytes)
    finally:
        features.unlink(missing_ok=True)
        mask.unlink(missing_ok=True)
    summary["dates_in"] = n_dates
    return summary


def eopatch_features(patch, names: Sequence[str] = ()) -> list[str]:
    """The data features an EOPatch tile learns from: ``names``, or every temporal data feature
    but cloud probabilities (:data:`EOPATCH_SKIPPED_PREFIXES`)."""
    if names:
        return [patch.feature(n, ("data",)).name for n in names]
    chosen = [f.name for f in patch.features.values()
              if f.kind == "data" and not f.name.upper().startswith(EOPATCH_SKIPPED_PREFIXES)]
    if not chosen:
        raise ValueError(f"the EOPatch '{patch.folder}' has no temporal data features to learn from (data/*.npy)")
    return chosen


def _interpolate_eopatch(tile: TileInput, paths: dict[str, Path], settings: PipelineSettings,
                         grid_dates: Sequence[str], budget_bytes: int | None, threads: int | None) -> dict:
    """An EOPatch with L1C bands runs the whole pipeline; one with features (NDVI, ...) has them
    interpolated directly, with its ``CLM`` as the cloud mask when it has one."""
    from .eopatch import import_eopatch, read_eopatch

    patch = read_eopatch(tile.l1c)
    patch.feature(EOPATCH_REFERENCE, ("mask_timeless", "data_timeless"))  # a clear error when missing
    if f"data/{EOPATCH_L1C}" in patch.features:
        l1c = paths["features"].with_name("l1c.tif")
        import_eopatch(patch, [EOPATCH_L1C], l1c, timeless_feature=EOPATCH_REFERENCE,
                       output_timeless=paths["reference"], budget_bytes=budget_bytes)
        return _interpolate_stack(str(l1c), paths, settings, grid_dates, budget_bytes, threads)
    has_mask = f"mask/{EOPATCH_MASK}" in patch.features
    import_eopatch(patch, eopatch_features(patch, tile.features), paths["features"],
                   mask_feature=EOPATCH_MASK if has_mask else None,
                   output_mask=paths["cloud_mask"] if has_mask else None,
                   timeless_feature=EOPATCH_REFERENCE, output_timeless=paths["reference"], budget_bytes=budget_bytes)
    return _interpolate(paths["features"], paths["cloud_mask"] if has_mask else None, paths["interpolated"],
                        settings, grid_dates, settings.min_valid_fraction if settings.scene_filter else 0.0,
                        budget_bytes)


def _sample_tile(tile: TileInput, reference_path: str, interpolated: str, settings: PipelineSettings, quota: dict,
                 budget_bytes: int | None, unsplit: list[str] | None = None) -> dict[str, np.ndarray]:
    """The tile's spatial train/test split and its sampled feature rows (train's recipe, per tile).

    A tile whose labelled pixels cannot be split (all in one block: a small edge window, or
    labels in one corner) is no failure: its sampled labelled pixels all train the pooled model
    and none tests it (a test part would lie next to its own training pixels, and leaving them
    out would drop real reference data, maybe a class no other tile has). Why is appended to
    ``unsplit``, as it is for a tile without labelled pixels."""
    from .featureset import FeatureSet
    from .reference import NO_CLASS, read_reference_raster
    from .train import UnsplittableError, erode, gather_rows, sample_pixels, split_mask, touching

    train = settings.train
    with FeatureSet([interpolated]) as features:
        reference = read_reference_raster(reference_path, features.grid, require_classes=False)
        # one seed per tile, derived from the seed and the tile's name: reproducible, not identical
        rng = np.random.default_rng([train.seed, *tile.name.encode("utf-8")])
        classes = erode(reference.classes, train.erosion)
        labelled = classes != NO_CLASS
        empty = np.zeros((0, features.n_features), np.float32)
        if not labelled.any():
            if unsplit is not None:
                where = (" after erosion" if (reference.classes != NO_CLASS).any() else
                         " (the reference holds only 0 on this tile or does not overlap it)")
                unsplit.append(f"no labelled pixels{where}: it neither trains nor tests the model")
            nothing = np.zeros(0, np.int64)
            return {"x_train": empty, "y_train": nothing, "x_test": empty, "y_test": nothing,
                    "names": np.array(features.names), "reference_classes": np.array(reference.class_ids, np.int64)}
        notes: list[str] = []
        try:
            test = split_mask(reference, labelled, train, rng, notes)
        except UnsplittableError as error:
            test = np.zeros_like(labelled)
            if unsplit is not None:
                reason = error.args[0].split(";")[0].replace(": a spatial split", ", so a spatial split")
                unsplit.append(f"{reason}: its {int(labelled.sum())} labelled pixels go to training (sampled like "
                               "any tile's), none to testing")
        candidates = labelled & ~test
        if train.split != "random" and test.any():
            candidates &= ~touching(test)
        train_idx = sample_pixels(candidates, classes, quota["train"], train.sampling, rng)
        test_idx = np.flatnonzero(test)
        if test_idx.size > quota["test"]:
            test_idx = np.sort(rng.choice(test_idx, quota["test"], replace=False))
        rows = gather_rows(features, np.concatenate([train_idx, test_idx]), ensure_progress(None), budget_bytes)
        flat = classes.ravel().astype(np.int64)
        return {"x_train": rows[: train_idx.size], "y_train": flat[train_idx],
                "x_test": rows[train_idx.size:], "y_test": flat[test_idx],
                "names": np.array(features.names), "reference_classes": np.array(reference.class_ids, np.int64)}


def _model_id(model) -> str:
    """What a tile map depends on in a model file (not when it was written)."""
    import hashlib

    metadata = {k: v for k, v in model.metadata.items() if k != "created"}
    text = model.model_text + json.dumps(metadata, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def classify_tile(tile: TileInput, folder: str, model_path: str, budget_bytes: int | None,
                  threads: int | None = None) -> dict:
    """Phase 3 of one tile (in a worker): the class map with the pooled model; skipped when the
    map was made from the same features with the same model (resume)."""
    from .classify import classify
    from .model import load_model

    paths = _tile_paths(Path(folder))
    marker_path = Path(folder) / "classified.json"
    model = load_model(model_path)
    key = {"model": _model_id(model), "features": _file_stamp(paths["interpolated"])}
    marker = _read_marker(marker_path)
    if marker is not None and marker.get("key") == key and paths["classification"].exists() \
            and paths["confidence"].exists():
        return {**marker["summary"], "skipped": True}
    marker_path.unlink(missing_ok=True)
    _remove_stale_parts(Path(folder))
    result = classify([str(paths["interpolated"])], model, str(paths["classification"]), str(paths["confidence"]),
                      None, budget_bytes, threads=threads, allow_empty=True)  # a tile without data: all nodata
    summary = {"name": tile.name, "classification": str(paths["classification"]),
               "class_pixels": {str(c): int(n) for c, n in result.class_pixels.items()}, "nodata": result.nodata}
    _write_json_atomic(marker_path, {"key": key, "summary": summary})
    return {**summary, "skipped": False}


def _attempt(function: Callable, retries: int, name: str, *args) -> dict:
    """Run ``function(*args)``, retrying ``retries`` times; never raises (the outcome is returned)."""
    errors = []
    for attempt in range(1, retries + 2):
        try:
            return {"name": name, "ok": True, "result": function(*args), "attempts": attempt}
        except Exception as error:  # noqa: BLE001 (any failure of a tile is reported, not fatal)
            errors.append(f"{type(error).__name__}: {error}")
            last = traceback.format_exc()
    return {"name": name, "ok": False, "message": errors[-1], "attempts": len(errors), "traceback": last}


# ---------------------------------------------------------------------------- the engines
Task = tuple[str, Callable, tuple]


def _run_tasks(tasks: Sequence[Task], executor: str, workers: int, retries: int, progress: Progress,
               client=None, python: str | None = None, pools: list | None = None) -> Iterable[dict]:
    """Outcomes of ``(name, function, args)`` tasks, in completion order. Each task is scheduled
    only after ``progress.canceled()`` said no: cancel stops scheduling new tiles (those running
    finish), then raises :class:`Cancelled`. ``python``: the interpreter of local worker
    processes; ``None`` runs the tiles in threads of this process. The process pools used are
    appended to ``pools`` (the caller shuts them down when the batch is over)."""
    canceled: list[bool] = []

    def go_on() -> bool:
        if progress.canceled():
            canceled.append(True)
            return False
        return True

    if executor == "dask":
        yield from _run_dask(tasks, client, workers, retries, go_on)
    elif workers <= 1 and python is None:
        for name, function, args in tasks:
            if not go_on():
                break
            yield _attempt(function, retries, name, *args)
    else:
        yield from _run_local(tasks, workers, retries, go_on, python, pools if pools is not None else [])
    if canceled:
        raise Cancelled("canceled by the user")


def _describe_broken(error: BaseException) -> str:
    """A broken pool's error with its cause (the worker's own traceback when it sent one)."""
    text = f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in str(error.__cause__ or "").splitlines() if line.strip().strip('"')]
    return f"{text}; {lines[-1]}" if lines else text


def _run_local(tasks: Sequence[Task], workers: int, retries: int, go_on: Callable[[], bool],
               python: str | None, pools: list) -> Iterator[dict]:
    """Tasks on joblib's loky process pool (threads when ``python`` is ``None``), at most
    ``workers`` at a time (:func:`run_in_workers`). When a worker process dies the pool breaks and
    every task it was running is charged one attempt; those with attempts left are then run alone
    in a fresh one-worker pool (so a tile that kills its worker cannot take the others down with
    it again), the rest in a fresh pool."""
    charged: dict[str, int] = {}

    def submit(pool: Executor, task: Task) -> Future:
        name, function, args = task
        return pool.submit(_attempt, function, retries - charged.get(name, 0), name, *args)

    def finished(task: Task, outcome: dict) -> dict:
        outcome["attempts"] += charged.get(task[0], 0)
        return outcome

    def lost(task: Task, error: BaseException, alone: bool) -> dict | None:
        name = task[0]
        charged[name] = charged.get(name, 0) + 1
        if charged[name] <= retries:
            return None
        return {"name": name, "ok": False, "attempts": charged[name],
                "message": f"its worker process failed ({_describe_broken(error)})"}

    return run_in_workers(tasks, submit, workers, python, lost, lambda: not go_on(), finished=finished,
                          idle_timeout=WORKER_IDLE_TIMEOUT, pools=pools)


def _run_dask(tasks: Sequence[Task], client, workers: int, retries: int, go_on: Callable[[], bool]) -> Iterator[dict]:
    """At most ``workers`` tasks in flight on the cluster; the next is submitted when one ends.
    A task whose worker dies is moved to another worker by the scheduler itself (up to its
    ``allowed-failures``, then ``KilledWorker``, reported); a task lost otherwise (a connection
    dropped) is submitted once more."""
    from dask.distributed import as_completed

    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover (distributed always has it)
        KilledWorker = ()  # noqa: N806
    import dask

    allowed = int(dask.config.get("distributed.scheduler.allowed-failures", 3))
    pending = as_completed(loop=client.loop)
    queue: deque[Task] = deque(tasks)
    lost: dict[str, int] = {}
    in_flight: dict = {}
    stopped = False

    def submit(task: Task) -> None:
        name, function, args = task
        future = client.submit(_attempt, function, retries - lost.get(name, 0), name, *args,
                               key=f"eolulc-{name}-{time.time_ns()}", pure=False)
        in_flight[future.key] = task
        pending.add(future)

    while queue and len(in_flight) < workers:
        if not go_on():
            stopped = True
            break
        submit(queue.popleft())
    for future in pending:
        task = in_flight.pop(future.key)
        name = task[0]
        try:
            outcome = future.result()
            outcome["attempts"] += lost.get(name, 0)
        except KilledWorker as error:
            outcome = {"name": name, "ok": False, "attempts": allowed + 1 + lost.get(name, 0),
                       "message": f"its worker died on every try ({type(error).__name__}: {error})"}
        except Exception as error:  # noqa: BLE001 (a lost task is retried or reported, not fatal)
            lost[name] = lost.get(name, 0) + 1
            if lost[name] <= retries and not stopped:
                submit(task)
                continue
            outcome = {"name": name, "ok": False, "attempts": lost[name], "message": f"{type(error).__name__}: {error}"}
        yield outcome
        while queue and len(in_flight) < workers and not stopped:
            if not go_on():
                stopped = True
                break
            submit(queue.popleft())


# ---------------------------------------------------------------------------- the batch
def _tile_dates(tile: TileInput) -> list[datetime]:
    if tile.kind == "eopatch":
        from .eopatch import read_eopatch

        return list(read_eopatch(tile.l1c).timestamps)
    from .timestack import read_info

    return [d for d in read_info(tile.l1c).dates if d is not None]


def common_date_grid(tiles: Sequence[TileInput], settings: PipelineSettings) -> list[str]:
    """One interpolation grid for all tiles (the model needs the same features everywhere):
    from the settings' start/end, or the earliest to the latest acquisition of all tiles."""
    from .interpolate import date_grid
    from .timestack import format_datetime

    firsts, lasts, seen = [], [], set()
    for tile in tiles:
        if tile.l1c in seen:  # the windows of one stack
            continue
        seen.add(tile.l1c)
        try:
            dates = _tile_dates(tile)
        except Exception:  # noqa: BLE001 (an unreadable tile fails in its own task, with its message)
            continue
        if dates:
            firsts.append(min(dates))
            lasts.append(max(dates))
    if not firsts and not (settings.start and settings.end):
        raise ValueError("no tile has a readable, dated L1C stack or EOPatch")
    start = settings.start or min(firsts).strftime("%Y-%m-%d")
    end = settings.end or (max(lasts) + timedelta(days=1)).strftime("%Y-%m-%d")
    return [format_datetime(d) for d in date_grid(start, end, settings.interval_days)]


def _stack_radiometry(l1c: str, settings: PipelineSettings, progress: Progress):
    """How the large stack's values become reflectance, decided once from the whole stack (as
    the single-stack cloud mask does), so no window guesses differently."""
    from .sentinel2 import S2CLOUDLESS_BANDS, find_bands
    from .timestack import open_stack

    detector = _detector(settings)
    with open_stack(l1c) as reader:
        bands = find_bands(reader.info.bands, S2CLOUDLESS_BANDS, CLOUD_BANDS)
        radiometry = detector.radiometry(reader, bands, progress)
    progress.log(f"Values: {radiometry.reason}.")
    return radiometry


def _kept_dates(staged: dict[str, dict], settings: PipelineSettings, progress: Progress) -> list[int] | None:
    """The scene filter over all windows: the dates whose valid share of all windows' pixels is
    above the minimum (what the single-stack interpolation decides for the whole stack)."""
    if not settings.scene_filter or settings.min_valid_fraction <= 0:
        return None
    valid = np.sum([np.asarray(s["valid"], np.int64) for s in staged.values()], axis=0)
    total = sum(int(s["total"]) for s in staged.values())
    fractions = valid / total
    kept = [i for i, f in enumerate(fractions) if f > settings.min_valid_fraction]
    if not kept:
        raise ValueError(f"no date has a valid fraction above {settings.min_valid_fraction:g} over the whole stack "
                         f"(the best is {float(fractions.max()):.3f}); lower the minimum")
    progress.log(f"Scene filter over all windows: {len(kept)} of {len(fractions)} dates kept "
                 f"(valid fraction above {settings.min_valid_fraction:g}).")
    return kept


def run_batch(
    tiles: Sequence[TileInput],
    folder: str | Path,
    legend: Legend,
    settings: PipelineSettings | None = None,
    executor: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    retries: int = 1,
    progress: Progress | None = None,
    budget_bytes: int | None = DEFAULT_WORKER_BUDGET,
    mosaic: str | Path | None = None,
    report: str | Path | None = None,
) -> BatchResult:
    """Run the phases over ``tiles``; products in ``folder`` (``tiles/<name>/``,
    ``model.json``, ``mosaic.vrt`` + ``.qml``, ``report.html`` + ``report.json``).

    ``executor`` "local" runs ``workers`` processes (0 = as many as the CPUs and the memory
    allow, ``budget_bytes`` each) started with :func:`worker_python` (threads of this process
    when there is none); "dask" (implied by ``scheduler``) runs on the cluster at ``scheduler``
    (``tcp://host:8786``), or on an existing default ``dask.distributed`` client.
    Raises ``ValueError`` when no tile survives or the survivors cannot be pooled.
    """
    settings = settings or PipelineSettings()
    settings.train.validate()
    progress = ensure_progress(progress)
    if scheduler:
        executor = "dask"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor '{executor}'; use one of {', '.join(EXECUTORS)}")
    if not tiles:
        raise ValueError("no tiles given")
    names = [t.name for t in tiles]
    if len(set(names)) != len(names):
        raise ValueError("two tiles have the same name")
    unknown = sorted({t.kind for t in tiles} - set(KINDS))
    if unknown:
        raise ValueError(f"unknown tile kind(s) {unknown}; use {', '.join(KINDS)}")
    windows = [t for t in tiles if t.kind == "window"]
    if len({(t.l1c, t.reference) for t in windows}) > 1:
        raise ValueError("window tiles must all come from one stack (split_stack)")
    folder = Path(folder)
    (folder / "tiles").mkdir(parents=True, exist_ok=True)
    mosaic = Path(mosaic) if mosaic else folder / "mosaic.vrt"
    report = Path(report) if report else folder / "report.html"
    report_json = report.with_suffix(".json")
    model_path = folder / "model.json"

    def tile_folder(tile: TileInput) -> str:
        return str(folder / "tiles" / tile.name)

    with contextlib.ExitStack() as stack:
        client, python, pools = None, None, []
        if executor == "dask":
            client = stack.enter_context(_dask_client(scheduler))
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            workers = n_workers  # tasks in flight: one per cluster worker (the cluster sizes itself)
            threads = None  # each task uses its worker machine's cores
            progress.log(f"Dask cluster {client.scheduler.address}: {n_workers} worker(s).")
        else:
            workers = local_workers(workers, budget_bytes or DEFAULT_WORKER_BUDGET)
            threads = max(1, (os.cpu_count() or 1) // workers)  # no oversubscription of the cores
            python = worker_python()
            if python is None:
                progress.log("Warning: no Python interpreter found to start worker processes with (sys.executable "
                             f"is '{sys.executable}'); the tiles run in threads of this process, and a tile that "
                             "crashes stops the whole run.")
            stack.callback(lambda: [pool.shutdown(wait=True) for pool in pools])
            progress.log(f"Local {'processes' if python else 'threads'}: {workers} worker(s), {len(tiles)} tile(s).")

        def run(function_tasks, phase: Progress):
            return _run_tasks(function_tasks, executor, workers, retries, phase, client, python, pools)

        grid_dates = common_date_grid(tiles, settings)
        failed: list[TileFailure] = []

        # -- phase 0 (windows of one large stack)
        kept, start = None, 0.0
        if windows:
            start = 0.3
            phase = progress.scaled(0.0, start)
            radiometry = _stack_radiometry(windows[0].l1c, settings, progress)
            staged: dict[str, dict] = {}
            tasks = [(t.name, mask_window, (t, tile_folder(t), settings, radiometry, budget_bytes, threads))
                     for t in windows]
            for done, outcome in enumerate(run(tasks, phase), start=1):
                _collect(outcome, "cloud mask", staged, failed, progress)
                phase.report(done / len(windows))
            if not staged:
                raise ValueError("every tile failed: " + "; ".join(f"{f.name}: {f.message}" for f in failed))
            kept = _kept_dates(staged, settings, progress)
            tiles = [t for t in tiles if t.kind != "window" or t.name in staged]

        # -- phase 1
        quota = {"train": max(10, math.ceil(2 * settings.train.samples / len(tiles))),
                 "test": max(100, 200_000 // len(tiles))}
        prepared: dict[str, dict] = {}
        phase = progress.scaled(start, 0.6)
        tasks = [(t.name, prepare_tile, (t, tile_folder(t), settings, grid_dates, quota, budget_bytes, threads,
                                         kept if t.kind == "window" else None))
                 for t in tiles]
        for done, outcome in enumerate(run(tasks, phase), start=1):
            _collect(outcome, "preparation", prepared, failed, progress)
            phase.report(done / len(tiles))
        skipped = sorted(n for n, s in prepared.items() if s.get("skipped"))
        if skipped:
            progress.log(f"Resumed: {len(skipped)} tile(s) already prepared ({', '.join(skipped)}).")
        tile_notes = _tile_notes(tiles, prepared)
        for line in tile_notes:
            progress.log(line)

        # -- phase 2
        progress.check()
        ready = [t for t in tiles if t.name in prepared]
        if not ready:
            raise ValueError("every tile failed: " + "; ".join(f"{f.name}: {f.message}" for f in failed))
        progress.log(f"Training on samples pooled from {len(ready)} tile(s).")
        model, x_test, y_test, notes = _train_pooled(ready, folder, legend, settings, progress.scaled(0.6, 0.75))
        notes.extend(tile_notes)
        model.metadata["pipeline"] = describe_settings(settings)
        model.metadata["batch"] = {"tiles": [t.name for t in ready], "date_grid": grid_dates}
        model.save(model_path)

        # -- phase 3
        phase = progress.scaled(0.75, 0.97)
        classified: dict[str, dict] = {}
        tasks = [(t.name, classify_tile, (t, tile_folder(t), str(model_path), budget_bytes, threads)) for t in ready]
        for done, outcome in enumerate(run(tasks, phase), start=1):
            _collect(outcome, "classification", classified, failed, progress)
            phase.report(done / len(ready))
    if not classified:
        raise ValueError("every tile failed: " + "; ".join(f"{f.name}: {f.message}" for f in failed))
    if kept is not None and failed:
        notes.append("The scene filter counted only the windows whose cloud mask succeeded.")

    order = [t.name for t in tiles if t.name in classified]
    empty = [n for n in order if not any(classified[n]["class_pixels"].values())]
    if empty:
        notes.append(f"Tile(s) without a pixel with data, nodata in the map: {', '.join(empty)}.")
        progress.log(notes[-1])
    maps = {n: classified[n]["classification"] for n in order}
    nodata = classified[order[0]]["nodata"]
    # windows: the mosaic lies on the large stack's grid even when a whole edge row of them failed
    build_mosaic([maps[n] for n in order], mosaic, nodata, _stack_bounds(windows[0].l1c) if windows else None)
    from .style import write_sidecar_qml

    write_sidecar_qml(mosaic, model.legend.restricted(model.class_ids), nodata=nodata)
    report_data = _report(model, x_test, y_test, classified, maps, failed, skipped, prepared, settings, notes,
                          report, report_json)
    progress.report(1.0)
    return BatchResult(mosaic=str(mosaic), report=str(report), report_json=str(report_json), model=str(model_path),
                       tiles=order, classifications=maps, failed=failed, skipped=skipped, report_data=report_data,
                       notes=notes)


@contextlib.contextmanager
def _dask_client(scheduler: str | None):
    try:
        from dask.distributed import Client, default_client
    except ImportError:
        raise ValueError("running on a Dask cluster needs the Python package 'dask[distributed]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=30, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"cannot reach the Dask scheduler at '{scheduler}': {error}") from None
        with client:
            yield client
    else:
        try:
            yield default_client()
        except ValueError:
            raise ValueError("give the Dask scheduler's address (tcp://host:8786)") from None


def _tile_notes(tiles: Sequence[TileInput], prepared: dict[str, dict]) -> list[str]:
    """Tiles prepared another way than the recipe (no split of their own, no date passing their
    scene filter): one line each, for the log and the report. They are classified all the same."""
    lines = []
    for tile in tiles:
        summary = prepared.get(tile.name, {})
        if summary.get("unsplit"):
            lines.append(f"Tile {tile.name}: no train/test split of its own, {summary['unsplit']}; it is "
                         "classified with the pooled model like the others.")
        if summary.get("scene_filter"):
            lines.append(f"Tile {tile.name}: {summary['scene_filter']}.")
    return lines


def _stack_bounds(l1c: str) -> tuple[float, float, float, float]:
    from .timestack import read_info

    return read_info(l1c).grid.bounds


def _collect(outcome: dict, phase: str, results: dict, failed: list[TileFailure], progress: Progress) -> None:
    name = outcome["name"]
    if outcome["ok"]:
        results[name] = outcome["result"]
        if outcome["attempts"] > 1:
            progress.log(f"Tile {name}: {phase} succeeded on attempt {outcome['attempts']}.")
        return
    failed.append(TileFailure(name, phase, outcome["message"], outcome["attempts"]))
    progress.log(f"Tile {name}: {phase} failed after {outcome['attempts']} attempt(s): {outcome['message']}")


def _train_pooled(tiles: Sequence[TileInput], folder: Path, legend: Legend, settings: PipelineSettings,
                  progress: Progress):
    """One LightGBM model from the tiles' samples (``train.fit_booster``, the same fit as
    :func:`core.train.train_model`)."""
    from datetime import timezone

    from .featureset import describe_stack
    from .model import LulcModel
    from .timestack import read_info
    from .train import fit_booster, library_versions, sample_pixels

    train = settings.train
    x_train, y_train, x_test, y_test, reference_ids = [], [], [], [], set()
    names = None
    for tile in tiles:
        with np.load(_tile_paths(folder / "tiles" / tile.name)["samples"]) as data:
            tile_names = [str(n) for n in data["names"]]
            if names is None:
                names = tile_names
            elif tile_names != names:
                raise ValueError(f"tile {tile.name} has other features than tile {tiles[0].name}")
            x_train.append(data["x_train"])
            y_train.append(data["y_train"])
            x_test.append(data["x_test"])
            y_test.append(data["y_test"])
            reference_ids.update(int(c) for c in data["reference_classes"])
    x, y = np.concatenate(x_train), np.concatenate(y_train)
    xt, yt = np.concatenate(x_test), np.concatenate(y_test)
    usable = ~np.all(np.isnan(x), axis=1)
    x, y = x[usable], y[usable]
    rng = np.random.default_rng(train.seed)
    if y.size > train.samples:
        chosen = sample_pixels(np.ones(y.size, bool), y, train.samples, train.sampling, rng)
        x, y = x[chosen], y[chosen]
    class_ids = sorted(int(c) for c in np.unique(y))
    if len(class_ids) < 2:
        raise ValueError(f"the pooled training pixels hold class(es) {class_ids} only; a classifier needs two or more")
    notes = [f"Training pooled {y.size} pixels from {len(tiles)} tiles; {yt.size} held-out test pixels."]
    booster, parameters = fit_booster(x, y, class_ids, names, train, rng, progress)
    model_legend = legend.restricted(set(class_ids) | reference_ids)
    info = read_info(str(_tile_paths(folder / "tiles" / tiles[0].name)["interpolated"]))
    counts = {str(c): int((y == c).sum()) for c in class_ids}
    model = LulcModel(model_text=booster.model_to_string(), metadata={
        "feature_names": names,
        "inputs": [describe_stack(info)],
        "crs_wkt": info.grid.crs_wkt,
        "resolution": list(info.grid.resolution),
        "class_ids": class_ids,
        "legend": model_legend.to_json(),
        "parameters": parameters,
        "settings": {k: v for k, v in dataclasses.asdict(train).items() if k != "threads"},
        "samples": {"train": counts, "test": {str(int(c)): int((yt == c).sum()) for c in np.unique(yt)}},
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    progress.report(1.0)
    return model, xt, yt, notes


def _report(model, x_test, y_test, classified, maps, failed, skipped, prepared, settings, notes, html, json_path):
    from .accuracy import assess, pixel_area_m2, raster_grid
    from .model import predict_probabilities
    from .report import write_report

    class_ids = np.asarray(model.class_ids)
    keep = ~np.all(np.isnan(x_test), axis=1) if x_test.size else np.zeros(0, bool)
    truth = y_test[keep]
    if truth.size:
        ensemble = model.ensemble(settings.train.threads)
        predicted = class_ids[np.argmax(predict_probabilities(ensemble, x_test[keep]), axis=1)]
    else:
        raise ValueError("no tile has held-out test pixels with data: no accuracy report is possible")
    map_counts: dict[int, int] = {}
    for outcome in classified.values():
        for c, n in outcome["class_pixels"].items():
            map_counts[int(c)] = map_counts.get(int(c), 0) + int(n)
    first = next(iter(maps.values()))
    report = assess(truth.astype(int), predicted.astype(int), model.legend, map_pixel_counts=map_counts,
                    pixel_area_m2=pixel_area_m2(raster_grid(first)))
    report.update(split=settings.train.split, pipeline=describe_settings(settings), tiles={
        "classified": list(maps), "resumed": skipped,
        "failed": [dataclasses.asdict(f) for f in failed],
        "unsplit": {n: s["unsplit"] for n, s in prepared.items() if s.get("unsplit")},
        "prepared": {n: {k: v for k, v in s.items() if k != "reference_classes"} for n, s in prepared.items()},
    })
    all_notes = list(notes)
    if failed:
        # a tile that failed only at classification was prepared: its samples trained and tested the model
        all_notes.append("Failed tile(s), nodata in the map; not in the training nor in this report unless they "
                         "failed only at classification: "
                         + "; ".join(f"{f.name} ({f.phase}): {f.message}" for f in failed))
    write_report(html, json_path, report, f"EO LULC batch: accuracy on the held-out pixels of {len(maps)} tiles",
                 notes=all_notes)
    return report


def build_mosaic(paths: Sequence[str], output: str | Path, nodata: float,
                 bounds: tuple[float, float, float, float] | None = None) -> Path:
    """A VRT of the tile maps (same CRS and pixel size; each tile on the common pixel grid), over
    ``bounds`` (left, bottom, right, top) when given, else over the tiles; nodata where no tile is."""
    from osgeo import gdal

    output = Path(output)
    with atomic_outputs([output]) as (temp,):
        options = gdal.BuildVRTOptions(srcNodata=nodata, VRTNodata=nodata, resolution="highest",
                                       outputBounds=bounds)
        vrt = gdal.BuildVRT(str(temp), [os.path.abspath(p) for p in paths], options=options)
        if vrt is None:
            raise ValueError("GDAL could not build the mosaic of the tile maps")
        vrt.FlushCache()
        vrt = None
    return output
