"""Per-tile steps of the batch pipeline, each run in a worker on one tile: the cloud mask of a
window (phase 0, :func:`mask_window`), the preparation (phase 1, :func:`prepare_tile`: cloud
mask -> features -> interpolation onto the shared date grid -> the tile's train/test split and
sample) and the classification with the pooled model (phase 3, :func:`classify_tile`).

They are the single-stack pipeline's steps applied to one tile, apart from the orchestration in
:mod:`core.batch` so that a worker process imports only what a tile needs. Each writes its files
atomically and its resume marker (:mod:`core.resume`) last, and is skipped when the marker matches.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .pipeline import GIVEN_MASK, PipelineSettings, describe_settings
from .progress import ensure_progress
from .resume import (
    MARKER_VERSION,
    file_stamp,
    input_stamps,
    model_id,
    read_marker,
    remove_stale_parts,
    tile_key,
    tile_paths,
    write_json_atomic,
)
from .tiles import (
    CLOUD_BANDS,
    EOPATCH_L1C,
    EOPATCH_MASK,
    EOPATCH_REFERENCE,
    EOPATCH_SKIPPED_PREFIXES,
    TileInput,
    cloud_detector,
    copy_window,
)


def mask_window(tile: TileInput, folder: str, settings: PipelineSettings, radiometry, budget_bytes: int | None,
                threads: int | None = None) -> dict:
    """Phase 0 of a ``window`` tile (in a worker): its cloud mask from the window plus halo (only
    the window kept; or the window of the given mask), its features, and its clear pixels per date
    as the scene filter counts them. Skipped when its marker matches."""
    from .features import compute_features
    from .interpolate import valid_fractions
    from .timestack import read_info

    tile_folder = Path(folder)
    tile_folder.mkdir(parents=True, exist_ok=True)
    paths = tile_paths(tile_folder)
    key = {"version": MARKER_VERSION, "inputs": input_stamps(tile),
           "radiometry": radiometry.reason if radiometry is not None else None,
           "pipeline": describe_settings(settings)}
    marker = read_marker(paths["stage"])
    if marker is not None and marker.get("key") == key and paths["cloud_mask"].exists() \
            and paths["features"].exists():
        return {**marker["summary"], "skipped": True}
    paths["stage"].unlink(missing_ok=True)
    paths["marker"].unlink(missing_ok=True)
    remove_stale_parts(tile_folder)
    started = time.perf_counter()
    info = read_info(tile.l1c)
    row, col, height, width = tile.window
    if tile.cloud_mask:  # the given mask's window: no cloud detection
        copy_window(tile.cloud_mask, paths["cloud_mask"], tile.window, budget_bytes=budget_bytes)
    else:
        _detect_window(tile, info, paths, settings, radiometry, budget_bytes, threads)
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
    write_json_atomic(paths["stage"], {"key": key, "summary": summary})
    return {**summary, "skipped": False}


def _detect_window(tile: TileInput, info, paths: dict[str, Path], settings: PipelineSettings, radiometry,
                   budget_bytes: int | None, threads: int | None) -> None:
    """s2cloudless on the window plus its halo; only the window's mask is kept."""
    from .sentinel2 import S2CLOUDLESS_BANDS, find_bands

    tile_folder = paths["cloud_mask"].parent
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
        detector = cloud_detector(settings, budget_bytes, threads)
        detector.forced_radiometry = radiometry  # decided once for the whole stack
        detector.run(str(with_halo), None, str(mask_halo))
        copy_window(mask_halo, paths["cloud_mask"], (row - top, col - left, height, width), budget_bytes=budget_bytes)
    finally:
        with_halo.unlink(missing_ok=True)
        mask_halo.unlink(missing_ok=True)


def prepare_tile(tile: TileInput, folder: str, settings: PipelineSettings, grid_dates: Sequence[str],
                 quota: dict, budget_bytes: int | None, threads: int | None = None,
                 kept: Sequence[int] | None = None) -> dict:
    """Phase 1 of one tile (in a worker); skipped when its marker matches. ``kept``: the dates of
    the large stack the scene filter kept (``window`` tiles). Returns a summary."""
    tile_folder = Path(folder)
    tile_folder.mkdir(parents=True, exist_ok=True)
    paths = tile_paths(tile_folder)
    extra = {"kept": list(kept)} if kept is not None else None
    if tile.kind == "window":
        extra = {**(extra or {}), "stage": (read_marker(paths["stage"]) or {}).get("key")}
    key = tile_key(tile, settings, grid_dates, extra)
    marker = read_marker(paths["marker"])
    reference = tile.reference if tile.kind != "eopatch" else str(paths["reference"])
    if marker is not None and marker.get("key") == key and paths["interpolated"].exists():
        if marker.get("quota") == quota and paths["samples"].exists():
            return {**marker["summary"], "skipped": True}
        # only the sample size changed (another number of tiles): sample again, keep the rest
        summary = dict(marker["summary"])
        started = time.perf_counter()
    else:
        paths["marker"].unlink(missing_ok=True)  # outputs change from here: the tile is not done
        remove_stale_parts(tile_folder)
        started = time.perf_counter()
        if tile.kind == "window":
            summary = _interpolate_window(tile, paths, settings, grid_dates, kept, budget_bytes)
        elif tile.kind == "eopatch":
            summary = _interpolate_eopatch(tile, paths, settings, grid_dates, budget_bytes, threads)
        else:
            summary = _interpolate_stack(tile.l1c, paths, settings, grid_dates, budget_bytes, threads,
                                         tile.cloud_mask)
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
    write_json_atomic(paths["marker"], {"key": key, "quota": quota, "summary": summary})
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
                       budget_bytes: int | None, threads: int | None, cloud_mask: str | None = None) -> dict:
    """Cloud mask -> features -> interpolation of a band stack (the single-stack pipeline's
    steps); with a given ``cloud_mask`` (an L2A stack's SCL mask, an EOPatch's CLM) s2cloudless
    does not run."""
    from .features import compute_features

    if cloud_mask is None:
        cloud_detector(settings, budget_bytes, threads).run(l1c, None, str(paths["cloud_mask"]))
    compute_features(l1c, str(paths["features"]), settings.features, None, budget_bytes)
    mask = Path(cloud_mask) if cloud_mask is not None else paths["cloud_mask"]
    return _interpolate(paths["features"], mask, paths["interpolated"], settings, grid_dates,
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
    """An EOPatch with L1C bands runs the whole pipeline (with its ``CLM`` instead of s2cloudless
    for the ``given`` source); one with features (NDVI, ...) has them interpolated directly, with
    its ``CLM`` as the cloud mask when it has one."""
    from .eopatch import import_eopatch, read_eopatch

    patch = read_eopatch(tile.l1c)
    patch.feature(EOPATCH_REFERENCE, ("mask_timeless", "data_timeless"))  # a clear error when missing
    has_mask = f"mask/{EOPATCH_MASK}" in patch.features
    if f"data/{EOPATCH_L1C}" in patch.features:
        l1c = paths["features"].with_name("l1c.tif")
        given = settings.cloud_mask_source == GIVEN_MASK  # its CLM instead of s2cloudless
        import_eopatch(patch, [EOPATCH_L1C], l1c, mask_feature=EOPATCH_MASK if given else None,
                       output_mask=paths["cloud_mask"] if given else None, timeless_feature=EOPATCH_REFERENCE,
                       output_timeless=paths["reference"], budget_bytes=budget_bytes)
        return _interpolate_stack(str(l1c), paths, settings, grid_dates, budget_bytes, threads,
                                  str(paths["cloud_mask"]) if given else None)
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
    from .sampling import sample_pixels
    from .train import UnsplittableError, erode, gather_rows, split_mask, touching

    train = settings.train
    with FeatureSet([interpolated]) as features:
        reference = read_reference_raster(reference_path, features.grid, require_classes=False)
        # one seed per tile, derived from the seed and the tile's name: reproducible, not identical
        rng = np.random.default_rng([train.seed, *tile.name.encode("utf-8")])
        # a sliver (an edge window 1 px wide) keeps no labelled pixel, as on a larger tile
        classes = erode(reference.classes, train.erosion, refuse_too_wide=False)
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
        # per-class counts scaled as the total is (the pooled model draws the exact counts)
        share = quota["train"] / train.samples
        counts = {c: math.ceil(k * share) for c, k in train.class_counts().items()}
        train_idx = sample_pixels(candidates, classes, quota["train"], train.sampling, rng, counts)
        test_idx = np.flatnonzero(test)
        if test_idx.size > quota["test"]:
            test_idx = np.sort(rng.choice(test_idx, quota["test"], replace=False))
        rows = gather_rows(features, np.concatenate([train_idx, test_idx]), ensure_progress(None), budget_bytes)
        flat = classes.ravel().astype(np.int64)
        return {"x_train": rows[: train_idx.size], "y_train": flat[train_idx],
                "x_test": rows[train_idx.size:], "y_test": flat[test_idx],
                "names": np.array(features.names), "reference_classes": np.array(reference.class_ids, np.int64)}


def classify_tile(tile: TileInput, folder: str, model_path: str, budget_bytes: int | None,
                  threads: int | None = None) -> dict:
    """Phase 3 of one tile (in a worker): the class map with the pooled model; skipped when the
    map was made from the same features with the same model (resume)."""
    from .classify import classify
    from .model import load_model

    paths = tile_paths(Path(folder))
    marker_path = Path(folder) / "classified.json"
    model = load_model(model_path)
    key = {"model": model_id(model), "features": file_stamp(paths["interpolated"])}
    marker = read_marker(marker_path)
    if marker is not None and marker.get("key") == key and paths["classification"].exists() \
            and paths["confidence"].exists():
        return {**marker["summary"], "skipped": True}
    marker_path.unlink(missing_ok=True)
    remove_stale_parts(Path(folder))
    result = classify([str(paths["interpolated"])], model, str(paths["classification"]), str(paths["confidence"]),
                      None, budget_bytes, threads=threads, allow_empty=True)  # a tile without data: all nodata
    summary = {"name": tile.name, "classification": str(paths["classification"]),
               "class_pixels": {str(c): int(n) for c, n in result.class_pixels.items()}, "nodata": result.nodata}
    write_json_atomic(marker_path, {"key": key, "summary": summary})
    return {**summary, "skipped": False}
