"""Many tiles in parallel: the pipeline over a folder of L1C stacks or EOPatches, or over one large
stack split into tiles, on local processes (joblib's loky) or on a ``dask.distributed`` cluster.

This module orchestrates the phases; the tiles are in :mod:`core.tiles`, the per-tile steps in
:mod:`core.tilesteps`, their resume markers in :mod:`core.resume` and the engines that run them
in :mod:`core.workers`. The ``window`` tiles of one large stack (:func:`core.tiles.split_stack`)
let the scene filter decide from the clear pixels of *all* windows, so the tiles' products equal
those of the single-stack pipeline on the whole stack (same model).

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
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .atomic import atomic_outputs
from .legend import Legend, default_legend
from .pipeline import PipelineSettings, describe_settings
from .progress import Progress, ensure_progress
from .resume import tile_paths
from .tiles import CLOUD_BANDS, KINDS, TileInput, check_tile_masks, cloud_detector, common_date_grid
from .tilesteps import classify_tile, mask_window, prepare_tile
from .workers import Task, dask_client, plan_workers, run_tasks, worker_python

EXECUTORS = ("local", "dask")
#: Memory one worker may use for its blocks (GDAL cache and LightGBM come on top).
DEFAULT_WORKER_BUDGET = 512 * 1024 * 1024
#: What a worker process needs on top of its block budget (interpreter, GDAL cache, models).
WORKER_OVERHEAD = 600 * 1024 * 1024


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


@dataclass
class _Batch:
    """What every phase needs: the output folder, the settings, the engine and the failures so far."""

    folder: Path
    settings: PipelineSettings
    budget_bytes: int | None
    threads: int | None
    engine: Callable[[Sequence[Task], Progress], Iterable[dict]]
    progress: Progress
    failed: list[TileFailure] = field(default_factory=list)

    def tile_folder(self, tile: TileInput) -> str:
        return str(self.folder / "tiles" / tile.name)

    def run(self, tasks: Sequence[Task], label: str, phase: Progress) -> dict[str, dict]:
        """The tasks' results by tile name; failures go to :attr:`failed` and the log."""
        results: dict[str, dict] = {}
        for done, outcome in enumerate(self.engine(tasks, phase), start=1):
            _collect(outcome, label, results, self.failed, self.progress)
            phase.report(done / len(tasks))
        return results

    def every_tile_failed(self) -> ValueError:
        return ValueError("every tile failed: " + "; ".join(f"{f.name}: {f.message}" for f in self.failed))


def run_batch(
    tiles: Sequence[TileInput],
    folder: str | Path,
    legend: Legend | None,
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
    # tiles are mapped one by one, so a smoothing window would stop at every tile's edge: the
    # batch does not smooth (yet), and its model, report and resume keys say so
    settings = dataclasses.replace(settings or PipelineSettings(), smoothing=False)
    settings.train.validate()
    progress = ensure_progress(progress)
    if scheduler:
        executor = "dask"
    windows = _check_tiles(tiles, executor)
    check_tile_masks(tiles, settings)
    folder = Path(folder)
    (folder / "tiles").mkdir(parents=True, exist_ok=True)
    mosaic = Path(mosaic) if mosaic else folder / "mosaic.vrt"
    report = Path(report) if report else folder / "report.html"
    report_json = report.with_suffix(".json")
    model_path = folder / "model.json"

    with contextlib.ExitStack() as stack:
        engine, threads = _engine(stack, executor, scheduler, workers, retries, budget_bytes, len(tiles), progress)
        batch = _Batch(folder, settings, budget_bytes, threads, engine, progress)
        grid_dates = common_date_grid(tiles, settings)
        kept, tiles = _mask_windows(batch, windows, tiles)
        prepared, skipped, tile_notes = _prepare_tiles(batch, tiles, grid_dates, kept, 0.3 if windows else 0.0)
        ready, model, x_test, y_test, notes = _train(batch, tiles, prepared, legend, grid_dates, model_path)
        notes.extend(tile_notes)
        classified = _classify_tiles(batch, ready, model_path)
    failed = batch.failed
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


def _check_tiles(tiles: Sequence[TileInput], executor: str) -> list[TileInput]:
    """The tiles checked (a clear error for what cannot run); returns the ``window`` tiles."""
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
    return windows


def _engine(stack: contextlib.ExitStack, executor: str, scheduler: str | None, workers: int, retries: int,
            budget_bytes: int | None, n_tiles: int, progress: Progress):
    """The engine that runs a phase's tasks (its client and pools closed by ``stack``) and the
    threads each task may use."""
    client, python, pools = None, None, []
    if executor == "dask":
        client = stack.enter_context(dask_client(scheduler))
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        workers = n_workers  # tasks in flight: one per cluster worker (the cluster sizes itself)
        threads = None  # each task uses its worker machine's cores
        progress.log(f"Dask cluster {client.scheduler.address}: {n_workers} worker(s).")
    else:
        # the tiles are not a bound: a pool reuses its workers for the next phase's tasks
        plan = plan_workers(workers, None, (budget_bytes or DEFAULT_WORKER_BUDGET) + WORKER_OVERHEAD, unit="tile")
        workers = plan.workers
        threads = plan.threads or plan.cpus  # no oversubscription of the cores
        python = worker_python()
        if python is None:
            progress.log("Warning: no Python interpreter found to start worker processes with (sys.executable "
                         f"is '{sys.executable}'); the tiles run in threads of this process, and a tile that "
                         "crashes stops the whole run.")
        stack.callback(lambda: [pool.shutdown(wait=True) for pool in pools])
        progress.log(f"Local {'processes' if python else 'threads'}: {workers} worker(s), {n_tiles} tile(s).")

    def engine(tasks: Sequence[Task], phase: Progress) -> Iterable[dict]:
        return run_tasks(tasks, executor, workers, retries, phase, client, python, pools)

    return engine, threads


def _mask_windows(batch: _Batch, windows: Sequence[TileInput],
                  tiles: Sequence[TileInput]) -> tuple[list[int] | None, list[TileInput]]:
    """Phase 0 (windows of one large stack): the dates the scene filter keeps over all windows,
    and the tiles left (a window whose cloud mask failed is dropped)."""
    if not windows:
        return None, list(tiles)
    settings, progress = batch.settings, batch.progress
    phase = progress.scaled(0.0, 0.3)
    # a given mask needs no s2cloudless radiometry
    radiometry = None if windows[0].cloud_mask else _stack_radiometry(windows[0].l1c, settings, progress)
    tasks = [(t.name, mask_window, (t, batch.tile_folder(t), settings, radiometry, batch.budget_bytes, batch.threads))
             for t in windows]
    staged = batch.run(tasks, "cloud mask", phase)
    if not staged:
        raise batch.every_tile_failed()
    kept = _kept_dates(staged, settings, progress)
    return kept, [t for t in tiles if t.kind != "window" or t.name in staged]


def _prepare_tiles(batch: _Batch, tiles: Sequence[TileInput], grid_dates: Sequence[str],
                   kept: Sequence[int] | None, start: float) -> tuple[dict[str, dict], list[str], list[str]]:
    """Phase 1: each tile's interpolated features and samples; their summaries, the tiles resumed
    and the notes on tiles prepared another way than the recipe."""
    settings, progress = batch.settings, batch.progress
    quota = {"train": max(10, math.ceil(2 * settings.train.samples / len(tiles))),
             "test": max(100, 200_000 // len(tiles))}
    tasks = [(t.name, prepare_tile, (t, batch.tile_folder(t), settings, grid_dates, quota, batch.budget_bytes,
                                     batch.threads, kept if t.kind == "window" else None))
             for t in tiles]
    prepared = batch.run(tasks, "preparation", progress.scaled(start, 0.6))
    skipped = sorted(n for n, s in prepared.items() if s.get("skipped"))
    if skipped:
        progress.log(f"Resumed: {len(skipped)} tile(s) already prepared ({', '.join(skipped)}).")
    tile_notes = _tile_notes(tiles, prepared)
    for line in tile_notes:
        progress.log(line)
    return prepared, skipped, tile_notes


def _train(batch: _Batch, tiles: Sequence[TileInput], prepared: dict[str, dict], legend: Legend | None,
           grid_dates: Sequence[str], model_path: Path):
    """Phase 2: the pooled model, saved to ``model_path``; returns the tiles it learnt from, the
    model, the held-out test rows and the notes."""
    progress, settings = batch.progress, batch.settings
    progress.check()
    ready = [t for t in tiles if t.name in prepared]
    if not ready:
        raise batch.every_tile_failed()
    progress.log(f"Training on samples pooled from {len(ready)} tile(s).")
    model, x_test, y_test, notes = _train_pooled(ready, batch.folder, legend, settings, progress.scaled(0.6, 0.75))
    model.metadata["pipeline"] = describe_settings(settings)
    model.metadata["batch"] = {"tiles": [t.name for t in ready], "date_grid": grid_dates}
    model.save(model_path)
    return ready, model, x_test, y_test, notes


def _classify_tiles(batch: _Batch, ready: Sequence[TileInput], model_path: Path) -> dict[str, dict]:
    """Phase 3: each tile's map with the pooled model."""
    tasks = [(t.name, classify_tile, (t, batch.tile_folder(t), str(model_path), batch.budget_bytes, batch.threads))
             for t in ready]
    classified = batch.run(tasks, "classification", batch.progress.scaled(0.75, 0.97))
    if not classified:
        raise batch.every_tile_failed()
    return classified


def _stack_radiometry(l1c: str, settings: PipelineSettings, progress: Progress):
    """How the large stack's values become reflectance, decided once from the whole stack (as
    the single-stack cloud mask does), so no window guesses differently."""
    from .sentinel2 import S2CLOUDLESS_BANDS, find_bands
    from .timestack import open_stack

    detector = cloud_detector(settings)
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


def _train_pooled(tiles: Sequence[TileInput], folder: Path, legend: Legend | None, settings: PipelineSettings,
                  progress: Progress):
    """One model from the tiles' samples (``train.fit_classifier``, the same fit as
    :func:`core.train.train_model`); without a ``legend`` the shipped one of the references' coding."""
    from datetime import timezone

    from .featureset import describe_stack
    from .model import LulcModel
    from .sampling import sample_pixels
    from .timestack import read_info
    from .train import fit_classifier, library_versions

    train = settings.train
    x_train, y_train, x_test, y_test, reference_ids = [], [], [], [], set()
    names = None
    for tile in tiles:
        with np.load(tile_paths(folder / "tiles" / tile.name)["samples"]) as data:
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
        chosen = sample_pixels(np.ones(y.size, bool), y, train.samples, train.sampling, rng, train.class_counts())
        x, y = x[chosen], y[chosen]
    class_ids = sorted(int(c) for c in np.unique(y))
    if len(class_ids) < 2:
        raise ValueError(f"the pooled training pixels hold class(es) {class_ids} only; a classifier needs two or more")
    notes = [f"Training pooled {y.size} pixels from {len(tiles)} tiles; {yt.size} held-out test pixels."]
    info = read_info(str(tile_paths(folder / "tiles" / tiles[0].name)["interpolated"]))
    fitted, parameters, _ = fit_classifier(x, y, class_ids, names, [describe_stack(info)], train, rng, progress)
    if legend is None:
        legend, which = default_legend(set(class_ids) | reference_ids)
        progress.log(f"Legend: {which}.")
    model_legend = legend.restricted(set(class_ids) | reference_ids)
    counts = {str(c): int((y == c).sum()) for c in class_ids}
    model = LulcModel(**fitted, metadata={
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
    from .accuracy import assess, pixel_area_m2, raster_grid, warning_notes
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
    all_notes = list(notes) + warning_notes(report, model.class_ids)
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
