"""Many tiles in parallel: the pipeline over a folder of L1C stacks, on local processes (joblib's
loky backend) or on a ``dask.distributed`` cluster.

Three phases:

1. per tile, in parallel: cloud mask -> features -> interpolation onto one date grid shared by
   all tiles, then a spatial train/test split of the tile's reference and a sample of its
   training and test pixels (``tiles/<name>/samples.npz``). Every file is written atomically
   and a ``done.json`` marker (holding the settings) is written last: a tile whose marker
   matches the settings is skipped when the batch runs again (resume);
2. in this process: one LightGBM model trained on the samples pooled from all tiles;
3. per tile, in parallel: classification with the pooled model; then a VRT mosaic of the tile
   maps with the legend's ``.qml`` and one accuracy report over the held-out pixels of all tiles.

A tile that fails is retried (``retries`` times, inside its worker), then reported; the others
finish. Cancel stops scheduling new tiles. Workers must be able to import this package (on a
cluster: the plugin folder and its dependencies installed on every worker, see the README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .atomic import atomic_outputs
from .legend import Legend
from .pipeline import PipelineSettings, _describe
from .progress import Cancelled, Progress, ensure_progress

EXECUTORS = ("local", "dask")
#: Memory one worker may use for its blocks (GDAL cache and LightGBM come on top).
DEFAULT_WORKER_BUDGET = 512 * 1024 * 1024
#: What a worker process needs on top of its block budget (interpreter, GDAL cache, models).
WORKER_OVERHEAD = 600 * 1024 * 1024
MARKER = "done.json"
MARKER_VERSION = 1
L1C_NAMES = ("l1c.tif", "l1c.tiff")
REFERENCE_NAMES = ("reference.tif", "reference.tiff")


@dataclass(frozen=True)
class TileInput:
    """One tile: an L1C time stack and its reference class raster."""

    name: str
    l1c: str
    reference: str


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


def discover_tiles(folder: str | Path) -> list[TileInput]:
    """Tiles in ``folder``: each subfolder holding ``l1c.tif`` and ``reference.tif`` (what
    :class:`core.synthetic.SyntheticScene` writes), and each pair ``<name>_l1c.tif`` +
    ``<name>_reference.tif``; sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is not a folder")
    tiles: dict[str, TileInput] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        l1c = next((sub / n for n in L1C_NAMES if (sub / n).is_file()), None)
        ref = next((sub / n for n in REFERENCE_NAMES if (sub / n).is_file()), None)
        if l1c is not None and ref is not None:
            tiles[sub.name] = TileInput(sub.name, str(l1c), str(ref))
    for l1c in sorted(folder.glob("*_l1c.tif")):
        name = l1c.name[: -len("_l1c.tif")]
        ref = folder / f"{name}_reference.tif"
        if ref.is_file() and name not in tiles:
            tiles[name] = TileInput(name, str(l1c), str(ref))
    if not tiles:
        raise ValueError(f"no tiles in '{folder}': expected subfolders with l1c.tif and reference.tif, "
                         "or pairs <name>_l1c.tif and <name>_reference.tif")
    return [tiles[k] for k in sorted(tiles)]


def available_memory() -> int | None:
    """Bytes of memory available now (Linux, macOS); ``None`` when unknown."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


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
        ("samples", "samples.npz"), ("classification", "classification.tif"), ("confidence", "confidence.tif"),
        ("marker", MARKER))}


def _file_stamp(path: str) -> dict:
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _tile_key(tile: TileInput, settings: PipelineSettings, grid_dates: Sequence[str]) -> dict:
    """What a tile's phase-1 outputs depend on (compared with the marker to resume); the sample
    sizes (which depend on the number of tiles) are kept apart: they only redo the sampling."""
    train = settings.train
    return {
        "version": MARKER_VERSION,
        "inputs": {"l1c": _file_stamp(tile.l1c), "reference": _file_stamp(tile.reference)},
        "pipeline": _describe(settings),
        "date_grid": list(grid_dates),
        "split": {"split": train.split, "test_fraction": train.test_fraction, "block_size": train.block_size,
                  "erosion": train.erosion, "sampling": train.sampling, "seed": train.seed},
    }


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_outputs([path]) as (temp,):
        temp.write_text(json.dumps(data, indent=1), encoding="utf-8")


def prepare_tile(tile: TileInput, folder: str, settings: PipelineSettings, grid_dates: Sequence[str],
                 quota: dict, budget_bytes: int | None, threads: int | None = None) -> dict:
    """Phase 1 of one tile (in a worker); skipped when its marker matches. Returns a summary."""
    from .cloudmask import CloudDetector
    from .features import compute_features
    from .interpolate import interpolate_stack
    from .timestack import parse_datetime

    paths = _tile_paths(Path(folder))
    key = _tile_key(tile, settings, grid_dates)
    marker = _read_marker(paths["marker"])
    if marker is not None and marker.get("key") == key and paths["interpolated"].exists():
        if marker.get("quota") == quota and paths["samples"].exists():
            return {**marker["summary"], "skipped": True}
        # only the sample size changed (another number of tiles): sample again, keep the rest
        summary = dict(marker["summary"])
        started = time.perf_counter()
    else:
        paths["marker"].unlink(missing_ok=True)  # outputs change from here: the tile is not done
        started = time.perf_counter()
        CloudDetector(processing_resolution=settings.processing_resolution, budget_bytes=budget_bytes,
                      threads=threads).run(tile.l1c, None, str(paths["cloud_mask"]))
        compute_features(tile.l1c, str(paths["features"]), settings.features, None, budget_bytes)
        interpolation = interpolate_stack(
            str(paths["features"]), str(paths["interpolated"]), grid=[parse_datetime(d) for d in grid_dates],
            mask_path=str(paths["cloud_mask"]) if settings.cloud_mask_in_interpolation else None,
            min_valid_fraction=settings.min_valid_fraction if settings.scene_filter else 0.0,
            budget_bytes=budget_bytes)
        summary = {"name": tile.name, "dates_kept": len(interpolation.kept),
                   "dates_in": len(interpolation.input_dates)}
    samples = _sample_tile(tile, str(paths["interpolated"]), settings, quota, budget_bytes)
    with atomic_outputs([paths["samples"]]) as (temp,):
        with open(temp, "wb") as handle:
            np.savez(handle, **samples)
    summary.update(seconds=round(time.perf_counter() - started, 3), train_pixels=int(samples["y_train"].size),
                   test_pixels=int(samples["y_test"].size),
                   reference_classes=[int(c) for c in samples["reference_classes"]])
    # last: the tile is complete
    _write_json_atomic(paths["marker"], {"key": key, "quota": quota, "summary": summary})
    return {**summary, "skipped": False}


def _sample_tile(tile: TileInput, interpolated: str, settings: PipelineSettings, quota: dict,
                 budget_bytes: int | None) -> dict[str, np.ndarray]:
    """The tile's spatial train/test split and its sampled feature rows (train's recipe, per tile)."""
    from .featureset import FeatureSet
    from .reference import NO_CLASS, read_reference_raster
    from .train import _touching, erode, gather_rows, sample_pixels, split_mask

    train = settings.train
    with FeatureSet([interpolated]) as features:
        reference = read_reference_raster(tile.reference, features.grid)
        # one seed per tile, derived from the seed and the tile's name: reproducible, not identical
        rng = np.random.default_rng([train.seed, *tile.name.encode("utf-8")])
        classes = erode(reference.classes, train.erosion)
        labelled = classes != NO_CLASS
        empty = np.zeros((0, features.n_features), np.float32)
        if not labelled.any():
            nothing = np.zeros(0, np.int64)
            return {"x_train": empty, "y_train": nothing, "x_test": empty, "y_test": nothing,
                    "names": np.array(features.names), "reference_classes": np.array(reference.class_ids, np.int64)}
        notes: list[str] = []
        test = split_mask(reference, labelled, train, rng, notes)
        candidates = labelled & ~test
        if train.split != "random":
            candidates &= ~_touching(test)
        train_idx = sample_pixels(candidates, classes, quota["train"], train.sampling, rng)
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
    """Phase 3 of one tile (in a worker): the class map with the pooled model."""
    from .classify import classify
    from .model import load_model

    paths = _tile_paths(Path(folder))
    model = load_model(model_path)
    result = classify([str(paths["interpolated"])], model, str(paths["classification"]), str(paths["confidence"]),
                      None, budget_bytes, threads=threads)
    return {"name": tile.name, "classification": str(paths["classification"]), "class_pixels": result.class_pixels,
            "nodata": result.nodata}


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
def _run_tasks(tasks: Sequence[tuple[str, Callable, tuple]], executor: str, workers: int, retries: int,
               progress: Progress, client=None) -> Iterable[dict]:
    """Outcomes of ``(name, function, args)`` tasks, in completion order. Each task is scheduled
    only after ``progress.check()``: cancel stops scheduling new tiles (those running finish)."""
    canceled = []

    def scheduled():
        for name, function, args in tasks:
            if progress.canceled():
                canceled.append(name)
                return
            yield name, function, args

    if executor == "dask":
        yield from _run_dask(scheduled(), client, workers, retries)
    else:
        from joblib import Parallel, delayed

        if workers <= 1:
            for name, function, args in scheduled():
                yield _attempt(function, retries, name, *args)
        else:
            parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered", pre_dispatch="n_jobs")
            yield from parallel(delayed(_attempt)(function, retries, name, *args)
                                for name, function, args in scheduled())
    if canceled:
        raise Cancelled("canceled by the user")


def _run_dask(tasks, client, workers: int, retries: int) -> Iterable[dict]:
    """At most ``workers`` tasks in flight on the cluster; the next is submitted when one ends."""
    from dask.distributed import as_completed

    pending = as_completed(loop=client.loop)
    in_flight = 0
    for name, function, args in tasks:
        pending.add(client.submit(_attempt, function, retries, name, *args, key=f"eolulc-{name}-{time.time_ns()}",
                                  pure=False))
        in_flight += 1
        if in_flight >= workers:
            yield next(pending).result()
            in_flight -= 1
    for future in pending:
        yield future.result()


# ---------------------------------------------------------------------------- the batch
def common_date_grid(tiles: Sequence[TileInput], settings: PipelineSettings) -> list[str]:
    """One interpolation grid for all tiles (the model needs the same features everywhere):
    from the settings' start/end, or the earliest to the latest acquisition of all tiles."""
    from .interpolate import date_grid
    from .timestack import format_datetime, read_info

    firsts, lasts = [], []
    for tile in tiles:
        try:
            info = read_info(tile.l1c)
        except Exception:  # noqa: BLE001 (an unreadable tile fails in its own task, with its message)
            continue
        dates = [d for d in info.dates if d is not None]
        if dates:
            firsts.append(min(dates))
            lasts.append(max(dates))
    if not firsts and not (settings.start and settings.end):
        raise ValueError("no tile has a readable, dated L1C stack")
    start = settings.start or min(firsts).strftime("%Y-%m-%d")
    end = settings.end or (max(lasts) + timedelta(days=1)).strftime("%Y-%m-%d")
    return [format_datetime(d) for d in date_grid(start, end, settings.interval_days)]


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
    """Run the three phases over ``tiles``; products in ``folder`` (``tiles/<name>/``,
    ``model.json``, ``mosaic.vrt`` + ``.qml``, ``report.html`` + ``report.json``).

    ``executor`` "local" runs ``workers`` processes (0 = as many as the CPUs and the memory
    allow, ``budget_bytes`` each); "dask" (implied by ``scheduler``) runs on the cluster at
    ``scheduler`` (``tcp://host:8786``), or on an existing default ``dask.distributed`` client.
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
    folder = Path(folder)
    (folder / "tiles").mkdir(parents=True, exist_ok=True)
    mosaic = Path(mosaic) if mosaic else folder / "mosaic.vrt"
    report = Path(report) if report else folder / "report.html"
    report_json = report.with_suffix(".json")
    model_path = folder / "model.json"

    with contextlib.ExitStack() as stack:
        client = None
        if executor == "dask":
            client = stack.enter_context(_dask_client(scheduler))
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            workers = n_workers  # tasks in flight: one per cluster worker (the cluster sizes itself)
            threads = None  # each task uses its worker machine's cores
            progress.log(f"Dask cluster {client.scheduler.address}: {n_workers} worker(s).")
        else:
            workers = local_workers(workers, budget_bytes or DEFAULT_WORKER_BUDGET)
            threads = max(1, (os.cpu_count() or 1) // workers)  # no oversubscription of the cores
            progress.log(f"Local processes: {workers} worker(s), {len(tiles)} tile(s).")

        # -- phase 1
        grid_dates = common_date_grid(tiles, settings)
        quota = {"train": max(10, math.ceil(2 * settings.train.samples / len(tiles))),
                 "test": max(100, 200_000 // len(tiles))}
        failed: list[TileFailure] = []
        prepared: dict[str, dict] = {}
        phase = progress.scaled(0.0, 0.6)
        tasks = [(t.name, prepare_tile, (t, str(folder / "tiles" / t.name), settings, grid_dates, quota, budget_bytes,
                                         threads))
                 for t in tiles]
        for done, outcome in enumerate(_run_tasks(tasks, executor, workers, retries, phase, client), start=1):
            _collect(outcome, "preparation", prepared, failed, progress)
            phase.report(done / len(tiles))
        skipped = sorted(n for n, s in prepared.items() if s.get("skipped"))
        if skipped:
            progress.log(f"Resumed: {len(skipped)} tile(s) already prepared ({', '.join(skipped)}).")

        # -- phase 2
        progress.check()
        ready = [t for t in tiles if t.name in prepared]
        if not ready:
            raise ValueError("every tile failed: " + "; ".join(f"{f.name}: {f.message}" for f in failed))
        progress.log(f"Training on samples pooled from {len(ready)} tile(s).")
        model, x_test, y_test, notes = _train_pooled(ready, folder, legend, settings, progress.scaled(0.6, 0.75))
        model.metadata["pipeline"] = _describe(settings)
        model.metadata["batch"] = {"tiles": [t.name for t in ready], "date_grid": grid_dates}
        model.save(model_path)

        # -- phase 3
        phase = progress.scaled(0.75, 0.97)
        classified: dict[str, dict] = {}
        tasks = [(t.name, classify_tile, (t, str(folder / "tiles" / t.name), str(model_path), budget_bytes, threads))
                 for t in ready]
        for done, outcome in enumerate(_run_tasks(tasks, executor, workers, retries, phase, client), start=1):
            _collect(outcome, "classification", classified, failed, progress)
            phase.report(done / len(ready))
    if not classified:
        raise ValueError("every tile failed: " + "; ".join(f"{f.name}: {f.message}" for f in failed))

    order = [t.name for t in tiles if t.name in classified]
    maps = {n: classified[n]["classification"] for n in order}
    nodata = classified[order[0]]["nodata"]
    build_mosaic([maps[n] for n in order], mosaic, nodata)
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
    """One LightGBM model from the tiles' samples (``train._fit``, the same fit as
    :func:`core.train.train_model`)."""
    from datetime import timezone

    from .featureset import describe_stack
    from .model import LulcModel
    from .timestack import read_info
    from .train import _fit, _versions, sample_pixels

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
    booster, parameters = _fit(x, y, class_ids, names, train, rng, progress)
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
        "versions": _versions(),
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
        predicted = class_ids[np.argmax(predict_probabilities(model.ensemble(settings.train.threads), x_test[keep]),
                                        axis=1)]
    else:
        raise ValueError("no tile has held-out test pixels with data: no accuracy report is possible")
    map_counts: dict[int, int] = {}
    for outcome in classified.values():
        for c, n in outcome["class_pixels"].items():
            map_counts[int(c)] = map_counts.get(int(c), 0) + int(n)
    first = next(iter(maps.values()))
    report = assess(truth.astype(int), predicted.astype(int), model.legend, map_pixel_counts=map_counts,
                    pixel_area_m2=pixel_area_m2(raster_grid(first)))
    report.update(split=settings.train.split, pipeline=_describe(settings), tiles={
        "classified": list(maps), "resumed": skipped,
        "failed": [dataclasses.asdict(f) for f in failed],
        "prepared": {n: {k: v for k, v in s.items() if k != "reference_classes"} for n, s in prepared.items()},
    })
    all_notes = list(notes)
    if failed:
        all_notes.append("Failed tile(s), not in the map nor the report: "
                         + "; ".join(f"{f.name} ({f.phase}): {f.message}" for f in failed))
    write_report(html, json_path, report, f"EO LULC batch: accuracy on the held-out pixels of {len(maps)} tiles",
                 notes=all_notes)
    return report


def build_mosaic(paths: Sequence[str], output: str | Path, nodata: float) -> Path:
    """A VRT of the tile maps (same CRS and pixel size; each tile on the common pixel grid)."""
    from osgeo import gdal

    output = Path(output)
    with atomic_outputs([output]) as (temp,):
        options = gdal.BuildVRTOptions(srcNodata=nodata, VRTNodata=nodata, resolution="highest")
        vrt = gdal.BuildVRT(str(temp), [os.path.abspath(p) for p in paths], options=options)
        if vrt is None:
            raise ValueError("GDAL could not build the mosaic of the tile maps")
        vrt.FlushCache()
        vrt = None
    return output
