"""core.batch: many synthetic tiles in parallel, resume, a failing tile, and the same run on a Dask
LocalCluster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eolulc.core.batch import TileInput, discover_tiles, run_batch
from eolulc.core.legend import read_legend
from eolulc.core.pipeline import PipelineSettings
from eolulc.core.synthetic import SyntheticScene
from eolulc.core.train import TrainSettings

pytest.importorskip("joblib")
rasterio = pytest.importorskip("rasterio")

SIZE, DATES, PIXEL = 64, 8, 10.0


def settings() -> PipelineSettings:
    return PipelineSettings(interval_days=30, train=TrainSettings(samples=2000, n_estimators=60, threads=1))


def write_tiles(folder: Path, n: int = 4) -> Path:
    """``n`` tiles of a 2-column layout, touching, on one pixel grid; different seeds (and so dates)."""
    for i in range(n):
        row, col = divmod(i, 2)
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
    assert result.failed == [] and result.tiles == ["tile0", "tile1", "tile2", "tile3"]
    mosaic, bounds, nodata = read(result.mosaic)
    assert mosaic.shape == (2 * SIZE, 2 * SIZE)
    assert bounds == pytest.approx((455000.0, 5105000.0 - 2 * SIZE * PIXEL, 455000.0 + 2 * SIZE * PIXEL, 5105000.0))
    for i, name in enumerate(result.tiles):
        row, col = divmod(i, 2)
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
    assert len(markers) == 4
    before = {p: p.stat().st_mtime_ns for p in markers + sorted((out / "tiles").glob("*/features_interpolated.tif"))}
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
    result = run_batch(discover_tiles(tiles_folder), out, read_legend(), smaller, workers=2)
    assert result.skipped == [] and result.failed == []
    assert {p: p.stat().st_mtime_ns for p in interpolated} == before
    marker = json.loads((out / "tiles" / "tile0" / "done.json").read_text())
    assert marker["quota"]["train"] == 500


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


def test_dask_local_cluster_gives_the_local_mosaic(local_run, tiles_folder, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    _, local, local_mosaic = local_run
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        result = run_batch(discover_tiles(tiles_folder), tmp_path, read_legend(), settings(),
                           scheduler=cluster.scheduler_address)
    assert result.failed == [] and result.tiles == local.tiles
    np.testing.assert_array_equal(read(result.mosaic)[0], local_mosaic)
