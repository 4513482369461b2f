"""core.batch: many synthetic tiles in parallel, resume, a failing tile, worker processes killed
mid-run (local pool and Dask), the same run on a Dask LocalCluster, one large stack split into
windows (equal to the whole-stack pipeline), EOPatch tiles, and the workers' interpreter."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
import pytest
import rasterio
from conftest import write_scene_stack
from dask import distributed

from eolulc.core.batch import run_batch
from eolulc.core.legend import read_legend
from eolulc.core.pipeline import PipelineSettings
from eolulc.core.progress import Progress
from eolulc.core.tiles import TileInput, copy_window, discover_tiles, split_stack
from eolulc.core.train import TrainSettings
from eolulc.core.workers import worker_python
from eolulc.demo.synthetic import SyntheticScene

SIZE, DATES, PIXEL, N_TILES, COLUMNS = 48, 8, 10.0, 8, 4


def settings() -> PipelineSettings:
    return PipelineSettings(interval_days=30, train=TrainSettings(samples=2000, n_estimators=60, threads=1))


def write_tiles(folder: Path, n: int = N_TILES) -> Path:
    """``n`` tiles of a 4-column layout, touching, on one pixel grid; different seeds (and so dates)."""
    for i in range(n):
        row, col = divmod(i, COLUMNS)
        origin = (455000.0 + col * SIZE * PIXEL, 5105000.0 - row * SIZE * PIXEL)
        SyntheticScene(SIZE, SIZE, DATES, seed=i, origin=origin).write(folder / f"tile{i}")
    return folder


def read(path) -> tuple[np.ndarray, tuple]:
    with rasterio.open(path) as ds:
        return ds.read(1), tuple(ds.bounds), ds.nodata


@pytest.fixture(scope="module")
def tiles_folder(tmp_path_factory) -> Path:
    return write_tiles(tmp_path_factory.mktemp("tiles"))


@pytest.fixture(scope="module")
def local_run(tiles_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    logs: list[str] = []
    from eolulc.core.progress import Progress

    result = run_batch(discover_tiles(tiles_folder), out, read_legend(), settings(), workers=2,
                       progress=Progress(on_log=logs.append))
    return out, result, read(result.mosaic)[0]  # the mosaic as this run made it (later tests rewrite it)


def test_mosaic_covers_all_tiles_and_equals_the_tile_maps(local_run):
    out, result, _ = local_run
    assert result.failed == [] and result.tiles == [f"tile{i}" for i in range(N_TILES)]
    mosaic, bounds, nodata = read(result.mosaic)
    rows = N_TILES // COLUMNS
    assert mosaic.shape == (rows * SIZE, COLUMNS * SIZE)
    assert bounds == pytest.approx((455000.0, 5105000.0 - rows * SIZE * PIXEL, 455000.0 + COLUMNS * SIZE * PIXEL,
                                    5105000.0))
    for i, name in enumerate(result.tiles):
        row, col = divmod(i, COLUMNS)
        tile, _, _ = read(result.classifications[name])
        np.testing.assert_array_equal(mosaic[row * SIZE:(row + 1) * SIZE, col * SIZE:(col + 1) * SIZE], tile)
    assert (mosaic != nodata).mean() > 0.95  # pixels never seen clear stay nodata
    assert Path(result.mosaic).with_suffix(".qml").exists()
    report = json.loads(Path(result.report_json).read_text())
    assert 0.5 <= report["overall_accuracy"] <= 1.0
    assert report["tiles"]["classified"] == result.tiles
    assert Path(result.report).read_text().count("<svg") >= 1
    # one date grid for all tiles, although their acquisition dates differ
    model = json.loads(Path(result.model).read_text())
    assert len(model["metadata"]["batch"]["date_grid"]) > 1


def test_resume_does_no_tile_work(local_run, tiles_folder):
    out, first, _ = local_run
    markers = sorted((out / "tiles").glob("*/done.json"))
    assert len(markers) == N_TILES
    products = [p for pattern in ("features_interpolated.tif", "classification.tif", "confidence.tif", "samples.npz")
                for p in sorted((out / "tiles").glob(f"*/{pattern}"))]
    assert len(products) == 4 * N_TILES
    before = {p: p.stat().st_mtime_ns for p in markers + products}
    again = run_batch(discover_tiles(tiles_folder), out, read_legend(), settings(), workers=2)
    assert again.skipped == first.tiles
    assert {p: p.stat().st_mtime_ns for p in before} == before
    np.testing.assert_array_equal(read(again.mosaic)[0], local_run[2])


def test_other_sample_size_only_samples_again(local_run, tiles_folder):
    out, _, _ = local_run
    interpolated = sorted((out / "tiles").glob("*/features_interpolated.tif"))
    before = {p: p.stat().st_mtime_ns for p in interpolated}
    smaller = settings()
    smaller.train.samples = 1000
    logs: list[str] = []
    # no legend: the shipped one of the references' coding (eo-learn's ids here), said in the log
    result = run_batch(discover_tiles(tiles_folder), out, None, smaller, workers=2,
                       progress=Progress(on_log=logs.append))
    assert result.skipped == [] and result.failed == []
    legend = {c["id"]: c["name"] for c in json.loads(Path(result.model).read_text())["metadata"]["legend"]}
    assert legend and all(legend[i] == read_legend().name(i) for i in legend)
    assert any(line.startswith("Legend: the eo-learn Slovenia legend") for line in logs)
    assert {p: p.stat().st_mtime_ns for p in interpolated} == before
    marker = json.loads((out / "tiles" / "tile0" / "done.json").read_text())
    assert marker["quota"]["train"] == 2 * 1000 // N_TILES


def test_failing_tile_is_retried_reported_and_the_others_finish(tiles_folder, tmp_path):
    inputs = tmp_path / "inputs"
    for name in ("tile0", "tile1", "tile2"):
        shutil.copytree(tiles_folder / name, inputs / name)
    broken = inputs / "broken"
    broken.mkdir()
    (broken / "l1c.tif").write_bytes(b"II*\x00 not really a tiff")
    shutil.copy(tiles_folder / "tile3" / "reference.tif", broken / "reference.tif")
    result = run_batch(discover_tiles(inputs), tmp_path / "out", read_legend(), settings(), workers=2, retries=1)
    assert [(f.name, f.phase, f.attempts) for f in result.failed] == [("broken", "preparation", 2)]
    assert result.tiles == ["tile0", "tile1", "tile2"]
    assert not (tmp_path / "out" / "tiles" / "broken" / "done.json").exists()
    report = json.loads(Path(result.report_json).read_text())
    assert report["tiles"]["failed"][0]["name"] == "broken"


def test_cancel_stops_scheduling(tiles_folder, tmp_path):
    from eolulc.core.progress import Cancelled, Progress

    with pytest.raises(Cancelled):
        run_batch(discover_tiles(tiles_folder), tmp_path, read_legend(), settings(), workers=1,
                  progress=Progress(is_canceled=lambda: True))
    assert not list(tmp_path.glob("tiles/*/done.json"))


def test_bad_inputs(tmp_path, tiles_folder):
    with pytest.raises(ValueError, match="no tiles"):
        discover_tiles(tmp_path)
    tile = TileInput("a", str(tiles_folder / "tile0" / "l1c.tif"), str(tiles_folder / "tile0" / "reference.tif"))
    with pytest.raises(ValueError, match="same name"):
        run_batch([tile, tile], tmp_path, read_legend(), settings())
    with pytest.raises(ValueError, match="executor"):
        run_batch([tile], tmp_path, read_legend(), settings(), executor="slurm")


# ------------------------------------------------------------------ worker processes killed mid-run
def kill_during(folder: Path, pids: Callable[[], list[int]], pattern: str = "tiles/*/features.tif") -> list[int]:
    """Start a thread that SIGKILLs one worker process as soon as a tile is half-way (``pattern``
    exists under ``folder``); the killed pid is appended to the returned list."""
    killed: list[int] = []

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if any(folder.glob(pattern)):
                candidates = pids()
                if candidates:
                    os.kill(candidates[0], signal.SIGKILL)
                    killed.append(candidates[0])
                    return
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def loky_workers() -> list[int]:
    """This process's loky worker processes (not its resource tracker)."""
    workers = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if any("popen_loky" in part for part in child.cmdline()):
                workers.append(child.pid)
    return workers


def test_local_worker_killed_mid_run_is_retried(local_run, tiles_folder, tmp_path):
    _, local, local_mosaic = local_run
    logs: list[str] = []
    from eolulc.core.progress import Progress

    killed = kill_during(tmp_path, loky_workers)
    result = run_batch(discover_tiles(tiles_folder), tmp_path, read_legend(), settings(), workers=2,
                       progress=Progress(on_log=logs.append))
    assert killed, "no worker was killed"
    assert result.failed == [] and result.tiles == local.tiles
    # the tiles the dead worker's pool was running were run again, one at a time
    assert any("succeeded on attempt 2" in line for line in logs), logs
    np.testing.assert_array_equal(read(result.mosaic)[0], local_mosaic)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as local_cluster:
        yield local_cluster


def test_dask_local_cluster_gives_the_local_mosaic(local_run, tiles_folder, tmp_path, cluster):
    _, local, local_mosaic = local_run
    assert len(local.tiles) == 8
    result = run_batch(discover_tiles(tiles_folder), tmp_path, read_legend(), settings(),
                       scheduler=cluster.scheduler_address)
    assert result.failed == [] and result.tiles == local.tiles
    np.testing.assert_array_equal(read(result.mosaic)[0], local_mosaic)


def test_dask_worker_killed_mid_run_the_run_completes(local_run, tiles_folder, tmp_path, cluster):
    from dask.distributed import Client

    _, local, local_mosaic = local_run
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        before = set(client.run(os.getpid).values())
        killed = kill_during(tmp_path, lambda: sorted(before))
        result = run_batch(discover_tiles(tiles_folder), tmp_path, read_legend(), settings(),
                           scheduler=cluster.scheduler_address)
        assert killed and killed[0] in before
        client.wait_for_workers(2, timeout=60)
        assert killed[0] not in set(client.run(os.getpid).values())  # the nanny started a new worker
    # the scheduler moved the dead worker's tile to a live worker: nothing lost, same map
    assert result.failed == [] and result.tiles == local.tiles
    np.testing.assert_array_equal(read(result.mosaic)[0], local_mosaic)


# ------------------------------------------------------------------ one large stack split into windows
def test_split_stack_equals_the_whole_stack_pipeline(tmp_path):
    """Windows with a halo give the cloud mask, the interpolated features and the map of the
    single-stack steps on the whole stack (same model), pixel for pixel: no seams."""
    from eolulc.core.classify import classify
    from eolulc.core.cloudmask import CloudDetector
    from eolulc.core.features import compute_features
    from eolulc.core.interpolate import interpolate_stack
    from eolulc.core.model import load_model

    scene = SyntheticScene(112, 112, DATES, seed=3).write(tmp_path / "big")
    l1c, reference = tmp_path / "big" / "l1c.tif", tmp_path / "big" / "reference.tif"
    config = settings()
    tiles = split_stack(l1c, reference, 40, config)  # 40 px -> 48 (whole 160 m cells of the cloud mask)
    assert [t.window for t in tiles[:3]] == [(0, 0, 48, 48), (0, 48, 48, 48), (0, 96, 48, 16)]
    assert len(tiles) == 9 and tiles[0].halo == 48
    result = run_batch(tiles, tmp_path / "out", read_legend(), config, workers=2)
    assert result.failed == [] and len(result.tiles) == 9
    del scene

    whole = tmp_path / "whole"
    whole.mkdir()
    CloudDetector(processing_resolution=config.processing_resolution).run(str(l1c), None, str(whole / "mask.tif"))
    compute_features(str(l1c), str(whole / "features.tif"), config.features)
    interpolation = interpolate_stack(str(whole / "features.tif"), str(whole / "interpolated.tif"),
                                      interval_days=config.interval_days, mask_path=str(whole / "mask.tif"),
                                      min_valid_fraction=config.min_valid_fraction)
    assert len(interpolation.kept) < DATES  # the scene filter dropped dates: decided over all windows alike
    classify([str(whole / "interpolated.tif")], load_model(result.model), str(whole / "map.tif"))

    mosaic, bounds, _ = read(result.mosaic)
    expected, expected_bounds, _ = read(whole / "map.tif")
    assert bounds == pytest.approx(expected_bounds)
    np.testing.assert_array_equal(mosaic, expected)
    with rasterio.open(whole / "mask.tif") as ds:
        mask = ds.read()
    with rasterio.open(whole / "interpolated.tif") as ds:
        interpolated = ds.read()
    for tile in tiles:
        row, col, height, width = tile.window
        folder = tmp_path / "out" / "tiles" / tile.name
        with rasterio.open(folder / "cloud_mask.tif") as ds:
            np.testing.assert_array_equal(ds.read(), mask[:, row:row + height, col:col + width], err_msg=tile.name)
        with rasterio.open(folder / "features_interpolated.tif") as ds:
            np.testing.assert_array_equal(ds.read(), interpolated[:, row:row + height, col:col + width],
                                          err_msg=tile.name)
    # resume: nothing is computed again
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "tiles").glob("*/*.tif")}
    again = run_batch(tiles, tmp_path / "out", read_legend(), config, workers=2)
    assert again.skipped == sorted(t.name for t in tiles)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_split_stack_bad_inputs(tmp_path, tiles_folder):
    with pytest.raises(ValueError, match="tile size"):
        split_stack(tiles_folder / "tile0" / "l1c.tif", tiles_folder / "tile0" / "reference.tif", 0)
    with pytest.raises(ValueError, match="reference raster"):
        split_stack(tiles_folder / "tile0" / "l1c.tif", tmp_path / "missing.tif", 32)


# ------------------------------------------------------------------ EOPatch tiles
def test_eopatch_tiles_use_their_features_and_cloud_mask(eopatch_dir, tmp_path):
    """Two tiles from the real TestEOPatch (NDVI + CLM, no L1C bands): the second is the same
    arrays with the bbox moved one patch east. Their NDVI is interpolated with CLM as the mask."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "east").mkdir()
    (inputs / "west").symlink_to(eopatch_dir, target_is_directory=True)
    for name in ("data", "mask", "mask_timeless", "timestamps.json"):
        (inputs / "east" / name).symlink_to(eopatch_dir / name)
    bbox = json.loads((eopatch_dir / "bbox.geojson").read_text())
    ring = bbox["coordinates"][0]
    width = max(p[0] for p in ring) - min(p[0] for p in ring)
    for point in ring:
        point[0] += width
    (inputs / "east" / "bbox.geojson").write_text(json.dumps(bbox))

    tiles = discover_tiles(inputs)
    assert [(t.name, t.kind) for t in tiles] == [("east", "eopatch"), ("west", "eopatch")]
    result = run_batch(tiles, tmp_path / "out", read_legend(), settings(), workers=2)
    assert result.failed == [] and result.tiles == ["east", "west"]
    model = json.loads(Path(result.model).read_text())["metadata"]
    assert {name.split(" ")[1] for name in model["feature_names"]} == {"NDVI"}  # not CLP, CLP_S2C
    assert set(model["class_ids"]) <= {1, 2, 3, 4, 8}
    mosaic, bounds, nodata = read(result.mosaic)
    assert mosaic.shape == (101, 200) and bounds[2] - bounds[0] == pytest.approx(2 * width)
    np.testing.assert_array_equal(mosaic[:, :100], mosaic[:, 100:])  # same arrays, same model
    # the cloud mask is the patch's CLM (nodata where IS_DATA is 0), not a new detection
    clm = np.load(eopatch_dir / "mask" / "CLM.npy")[..., 0]
    is_data = np.load(eopatch_dir / "mask" / "IS_DATA.npy")[..., 0]
    with rasterio.open(tmp_path / "out" / "tiles" / "west" / "cloud_mask.tif") as ds:
        np.testing.assert_array_equal(ds.read(), np.where(is_data == 1, clm, ds.nodata))
    assert json.loads(Path(result.report_json).read_text())["overall_accuracy"] > 0.5
    with pytest.raises(ValueError, match="no data feature 'B04'"):
        run_batch(discover_tiles(inputs, ["B04"]), tmp_path / "bad", read_legend(), settings(), workers=1,
                  retries=0)


# ------------------------------------------------------------------ the workers' interpreter
def make_program(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_worker_python_is_a_real_interpreter_not_qgis(tmp_path):
    import sys

    # this interpreter, when it is one
    assert worker_python() == sys.executable
    # QGIS desktop on Linux: sys.executable is /usr/bin/qgis, Python lives in the prefix
    qgis = make_program(tmp_path / "usr" / "bin" / "qgis")
    python = make_program(tmp_path / "usr" / "bin" / "python3.11")
    assert worker_python(qgis, str(tmp_path / "usr"), "", "linux", (3, 11)) == python
    # macOS bundle: Contents/MacOS/QGIS with bin/python3 beside it, another prefix
    bundle = make_program(tmp_path / "QGIS.app" / "Contents" / "MacOS" / "QGIS")
    python3 = make_program(tmp_path / "QGIS.app" / "Contents" / "MacOS" / "bin" / "python3")
    assert worker_python(bundle, str(tmp_path / "nowhere"), "", "darwin", (3, 12)) == python3
    # Windows (OSGeo4W): qgis-bin.exe, python.exe in sys.exec_prefix
    exe = make_program(tmp_path / "osgeo4w" / "bin" / "qgis-bin.exe")
    python_exe = make_program(tmp_path / "osgeo4w" / "apps" / "Python312" / "python.exe")
    assert worker_python(exe, str(tmp_path / "osgeo4w" / "apps" / "Python312"), "", "win32", (3, 12)) == python_exe
    # QGIS's embedded Python (qgis_process): sys.executable is the python3 first on PATH, from
    # another installation (a pyenv shim here) that cannot load QGIS's modules
    shim = make_program(tmp_path / "pyenv" / "shims" / "python3")
    assert worker_python(shim, str(tmp_path / "usr"), shim, "linux", (3, 11)) == python
    # a virtual environment: its own python, inside its prefix
    venv_python = make_program(tmp_path / "venv" / "bin" / "python")
    assert worker_python(venv_python, str(tmp_path / "venv"), python, "linux", (3, 11),
                         str(tmp_path / "usr")) == venv_python
    # none: the caller falls back to threads
    lonely = make_program(tmp_path / "opt" / "qgis")
    assert worker_python(lonely, str(tmp_path / "empty"), "", "linux", (3, 11)) is None
    (tmp_path / "usr" / "bin" / "python3.11").chmod(0o644)  # not executable: not a candidate
    assert worker_python(lonely, str(tmp_path / "usr"), "", "linux", (3, 11)) is None


def test_without_a_python_the_tiles_run_in_threads():
    """The fallback when no interpreter is found: the same engine on threads of this process."""
    from eolulc.core.progress import Progress
    from eolulc.core.workers import run_tasks

    tasks = [(name, threading.get_ident, ()) for name in ("a", "b", "c")]
    outcomes = list(run_tasks(tasks, "local", 2, 0, Progress(), python=None))
    assert sorted(o["name"] for o in outcomes) == ["a", "b", "c"] and all(o["ok"] for o in outcomes)
    assert threading.get_ident() not in {o["result"] for o in outcomes}


# ------------------------------------------------------------------ tiles too small for a split (real data)
def write_reference(classes: np.ndarray, like: Path, path: Path, window: tuple[int, int, int, int] | None = None
                    ) -> Path:
    """Classes (0 = no class) as a raster on the grid of the stack ``like``, or on its ``window``
    ``(row, col, height, width)``."""
    from rasterio.windows import Window

    row, col, height, width = window or (0, 0, *classes.shape)
    with rasterio.open(like) as ds:
        transform = ds.window_transform(Window(col, row, width, height))
        profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint16",
                   "crs": ds.crs, "transform": transform, "nodata": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as out:
        out.write(classes[row:row + height, col:col + width].astype(np.uint16), 1)
    return path


def test_real_stack_in_48_px_windows_leaves_no_hole(scene_stack, scene_reference, tmp_path):
    """The real 101 x 100 px stack in windows of 48 px: the corner window r02c02 is 5 x 4 px, too
    small for a spatial split of its own. It is still classified with the pooled model (its
    labelled pixels train), the log and the report name it, and every pixel with data in the
    input has a class in the mosaic."""
    from eolulc.core.progress import Progress

    reference = write_reference(scene_reference.classes, scene_stack, tmp_path / "reference.tif")
    tiles = split_stack(scene_stack, reference, 48, settings())
    assert len(tiles) == 9 and tiles[-1].name == "r02c02" and tiles[-1].window == (96, 96, 5, 4)
    logs: list[str] = []
    result = run_batch(tiles, tmp_path / "out", read_legend(), settings(), workers=2,
                       progress=Progress(on_log=logs.append))
    assert result.failed == [] and result.tiles == [t.name for t in tiles]
    with rasterio.open(scene_stack) as ds:
        valid = np.isfinite(ds.read()).any(axis=0)
    with rasterio.open(result.mosaic) as ds:
        assert (ds.width, ds.height) == (100, 101)
        mosaic = ds.read(1)
        nodata = ds.nodata
    assert valid.all()  # the real scenes have data everywhere
    missing = valid & (mosaic == nodata)
    assert not missing.any(), f"{int(missing.sum())} valid pixels without a class, e.g. {np.argwhere(missing)[:5]}"
    assert set(np.unique(mosaic)) <= set(json.loads(Path(result.model).read_text())["metadata"]["class_ids"])
    unsplit = [line for line in logs if "r02c02" in line and "split" in line]
    assert unsplit and "train" in unsplit[0], logs
    report = json.loads(Path(result.report_json).read_text())
    assert report["tiles"]["unsplit"] == {"r02c02": report["tiles"]["unsplit"]["r02c02"]}
    assert "single" in report["tiles"]["unsplit"]["r02c02"]
    assert "r02c02" in Path(result.report).read_text()


def test_windows_without_labels_with_one_class_or_without_data_are_no_failures(eopatch_dir, reference_scenes,
                                                                                 scene_reference, tmp_path):
    """r00c01 has no labelled pixels (it neither trains nor tests), r01c00 one class only (split as
    usual), r02c01 no data at all (nodata in the map), r02c02 too small for a split: none fails,
    every pixel with data has a class."""
    scenes = np.array(reference_scenes)
    scenes[:, 96:, 48:96] = np.nan
    stack = write_scene_stack(tmp_path / "l1c.tif", eopatch_dir, scenes)
    classes = scene_reference.classes.copy()
    classes[:48, 48:96] = 0
    one_class = classes[48:96, :48]
    one_class[one_class != 0] = 4
    reference = write_reference(classes, stack, tmp_path / "reference.tif")
    tiles = split_stack(stack, reference, 48, settings())
    result = run_batch(tiles, tmp_path / "out", read_legend(), settings(), workers=2)
    assert result.failed == [] and result.tiles == [t.name for t in tiles]
    mosaic, _, nodata = read(result.mosaic)
    valid = np.isfinite(scenes).any(axis=(0, 3))
    assert not (valid & (mosaic == nodata)).any()
    assert (mosaic[96:, 48:96] == nodata).all()  # no data in, no class out
    report = json.loads(Path(result.report_json).read_text())["tiles"]
    assert sorted(report["unsplit"]) == ["r00c01", "r02c02"]
    assert report["unsplit"]["r00c01"].startswith("no labelled pixels")
    assert report["prepared"]["r00c01"]["train_pixels"] == report["prepared"]["r00c01"]["test_pixels"] == 0
    assert report["prepared"]["r01c00"]["train_pixels"] > 0 and report["prepared"]["r01c00"]["test_pixels"] > 0
    assert "Tile(s) without a pixel with data, nodata in the map: r02c01." in Path(result.report).read_text()


def test_a_damaged_window_is_reported_and_nodata_in_the_mosaic(scene_stack, scene_reference, tmp_path):
    """A genuine failure (the working folder's interpolated stack is a folder) of the whole last
    column of windows: retried, reported, and nodata in a mosaic that keeps the stack's extent."""
    reference = write_reference(scene_reference.classes, scene_stack, tmp_path / "reference.tif")
    tiles = split_stack(scene_stack, reference, 48, settings())
    damaged = ["r00c02", "r01c02", "r02c02"]
    for name in damaged:
        (tmp_path / "out" / "tiles" / name / "features_interpolated.tif").mkdir(parents=True)
    result = run_batch(tiles, tmp_path / "out", read_legend(), settings(), workers=2)
    assert [(f.name, f.phase, f.attempts) for f in result.failed] == [(n, "preparation", 2) for n in damaged]
    assert all("IsADirectoryError" in f.message for f in result.failed)
    mosaic, bounds, nodata = read(result.mosaic)
    with rasterio.open(scene_stack) as ds:
        assert mosaic.shape == (ds.height, ds.width) and bounds == pytest.approx(tuple(ds.bounds))
    assert (mosaic[:, 96:] == nodata).all() and (mosaic[:, :96] != nodata).all()
    report = json.loads(Path(result.report_json).read_text())
    assert [f["name"] for f in report["tiles"]["failed"]] == damaged
    assert "Failed tile(s), nodata in the map" in Path(result.report).read_text()


def test_folder_tiles_cloudy_or_empty_are_classified(eopatch_dir, reference_scenes, scene_reference, tmp_path):
    """Folder tiles have a scene filter each: tile b (no data in 40 of its 101 rows) has no date
    above 0.8 valid and c none at all; all their dates are kept instead of failing the tile."""
    from eolulc.core.progress import Progress

    scenes = np.array(reference_scenes)
    scenes[:, :40, 40:80] = np.nan
    scenes[:, :, 80:] = np.nan
    whole = write_scene_stack(tmp_path / "whole.tif", eopatch_dir, scenes)
    inputs = tmp_path / "inputs"
    for name, col, width in (("a", 0, 40), ("b", 40, 40), ("c", 80, 20)):
        window = (0, col, 101, width)
        copy_window(whole, inputs / name / "l1c.tif", window)
        write_reference(scene_reference.classes, whole, inputs / name / "reference.tif", window)
    logs: list[str] = []
    result = run_batch(discover_tiles(inputs), tmp_path / "out", read_legend(), settings(), workers=2,
                       progress=Progress(on_log=logs.append))
    assert result.failed == [] and result.tiles == ["a", "b", "c"]
    mosaic, _, nodata = read(result.mosaic)
    valid = np.isfinite(scenes).any(axis=(0, 3))
    assert mosaic.shape == valid.shape and not (valid & (mosaic == nodata)).any()
    assert (mosaic[~valid] == nodata).all()
    for name in ("b", "c"):
        assert any(line.startswith(f"Tile {name}: no date has a valid fraction above 0.8") for line in logs), logs
    assert "Tile(s) without a pixel with data, nodata in the map: c." in logs
