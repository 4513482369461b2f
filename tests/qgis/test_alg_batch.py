"""eolulc:batchpipeline through processing.run (a folder of tiles) and qgis_process.bin (one large
stack split into windows, on worker processes started from qgis_process.bin, which is no Python)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer

ALG = "eolulc:batchpipeline"


@pytest.fixture(scope="module")
def registered(qgis_app):
    """The algorithm on the eolulc provider (until provider.py lists it)."""
    from qgis.core import QgsApplication

    from eolulc.processing.batch import BatchPipelineAlgorithm

    if QgsApplication.processingRegistry().algorithmById(ALG) is None:
        provider = QgsApplication.processingRegistry().providerById("eolulc")
        assert provider.addAlgorithm(BatchPipelineAlgorithm())
    assert QgsApplication.processingRegistry().algorithmById(ALG) is not None
    return ALG


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    from eolulc.demo.synthetic import SyntheticScene

    folder = tmp_path_factory.mktemp("batch-tiles")
    for i in range(2):
        SyntheticScene(48, 48, 6, seed=i, origin=(455000.0 + i * 480, 5105000.0)).write(folder / f"t{i}")
    return folder


def test_batch_pipeline_main_path(registered, run_alg, tiles, tmp_path):
    result = run_alg(registered, {
        "INPUT_FOLDER": str(tiles), "WORKERS": 2, "INTERVAL_DAYS": 30, "SAMPLES": 1000,
        "OUTPUT_FOLDER": str(tmp_path / "work"), "OUTPUT_MOSAIC": str(tmp_path / "map.vrt"),
        "OUTPUT_REPORT": str(tmp_path / "report.html"),
    })
    assert result["TILES"] == 2 and result["FAILED_TILES"] == ""
    assert 0.3 <= result["OVERALL_ACCURACY"] <= 1.0
    layer = QgsRasterLayer(result["OUTPUT_MOSAIC"], "map")
    assert layer.isValid() and (layer.width(), layer.height()) == (96, 48)
    assert layer.renderer().type() == "paletted"  # the sidecar .qml
    assert json.loads((tmp_path / "report.json").read_text())["tiles"]["classified"] == ["t0", "t1"]
    assert Path(result["OUTPUT_MODEL"]).exists()


def test_folder_without_tiles_names_the_parameter(registered, run_alg, tmp_path):
    with pytest.raises(QgsProcessingException, match="INPUT_FOLDER.*no tiles"):
        run_alg(registered, {"INPUT_FOLDER": str(tmp_path), "OUTPUT_FOLDER": str(tmp_path / "work"),
                             "OUTPUT_MOSAIC": str(tmp_path / "map.vrt"), "OUTPUT_REPORT": str(tmp_path / "r.html")})


def test_both_inputs_name_the_parameter(registered, run_alg, tiles, tmp_path):
    with pytest.raises(QgsProcessingException, match="INPUT_STACK.*either a folder"):
        run_alg(registered, {"INPUT_FOLDER": str(tiles), "INPUT_STACK": str(tiles / "t0" / "l1c.tif"),
                             "REFERENCE": str(tiles / "t0" / "reference.tif"), "OUTPUT_FOLDER": str(tmp_path / "w"),
                             "OUTPUT_MOSAIC": str(tmp_path / "map.vrt"), "OUTPUT_REPORT": str(tmp_path / "r.html")})
    with pytest.raises(QgsProcessingException, match="REFERENCE"):
        run_alg(registered, {"INPUT_STACK": str(tiles / "t0" / "l1c.tif"), "OUTPUT_FOLDER": str(tmp_path / "w"),
                             "OUTPUT_MOSAIC": str(tmp_path / "map.vrt"), "OUTPUT_REPORT": str(tmp_path / "r.html")})


def test_qgis_process_batch_pipeline_splits_a_large_stack(qgis_process, tiles, tmp_path):
    """The main path from the command line: one 96 x 64 px stack in windows of 40 px, rounded up to
    48 (whole 160 m cells of the cloud mask) -> 2 x 2 windows."""
    from eolulc.demo.synthetic import SyntheticScene

    SyntheticScene(96, 64, 6, seed=5).write(tmp_path / "large")
    rc, result, text = qgis_process.run(ALG, {
        "INPUT_STACK": tmp_path / "large" / "l1c.tif", "REFERENCE": tmp_path / "large" / "reference.tif",
        "TILE_SIZE": 40, "WORKERS": 2, "INTERVAL_DAYS": 30, "SAMPLES": 1000,
        "OUTPUT_FOLDER": tmp_path / "work", "OUTPUT_MOSAIC": tmp_path / "map.vrt",
        "OUTPUT_REPORT": tmp_path / "report.html"})
    assert rc == 0, text
    assert result["results"]["TILES"] == 4 and result["results"]["FAILED_TILES"] == ""  # 2 x 2 windows of 48 px
    assert "Local processes: 2 worker(s)" in text  # worker processes, not threads, under qgis_process.bin
    assert (tmp_path / "map.vrt").is_file() and (tmp_path / "map.qml").is_file()
    assert sorted(p.name for p in (tmp_path / "work" / "tiles").iterdir()) == ["r00c00", "r00c01", "r01c00", "r01c01"]


def test_real_stack_in_48_px_tiles_has_no_hole(registered, run_alg, scene_stack, scene_reference, tmp_path):
    """The real 101 x 100 px stack with Tile size 48: the corner tile r02c02 (5 x 4 px) cannot be
    split into train and test; it is classified all the same, the log says why, and every pixel
    with data in the stack has a class in the mosaic."""
    import numpy as np
    from qgis.core import QgsProcessingFeedback

    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(scene_stack) as ds:
        valid = np.isfinite(ds.read()).any(axis=0)
        profile = {"driver": "GTiff", "width": ds.width, "height": ds.height, "count": 1, "dtype": "uint16",
                   "crs": ds.crs, "transform": ds.transform, "nodata": 0}
    with rasterio.open(tmp_path / "reference.tif", "w", **profile) as out:
        out.write(scene_reference.classes.astype(np.uint16), 1)
    feedback = QgsProcessingFeedback()
    result = run_alg(registered, {
        "INPUT_STACK": str(scene_stack), "REFERENCE": str(tmp_path / "reference.tif"), "TILE_SIZE": 48,
        "WORKERS": 2, "INTERVAL_DAYS": 30, "SAMPLES": 2000, "OUTPUT_FOLDER": str(tmp_path / "work"),
        "OUTPUT_MOSAIC": str(tmp_path / "map.vrt"), "OUTPUT_REPORT": str(tmp_path / "report.html"),
    }, feedback)
    assert result["TILES"] == 9 and result["FAILED_TILES"] == ""
    with rasterio.open(result["OUTPUT_MOSAIC"]) as ds:
        assert (ds.width, ds.height) == (100, 101)
        missing = valid & (ds.read(1) == ds.nodata)
    assert not missing.any(), f"{int(missing.sum())} pixels with data have no class"
    log = feedback.textLog()
    assert "Tile r02c02: no train/test split of its own" in log and "8 x 8 px block" in log, log
    assert "r02c02" in json.loads((tmp_path / "report.json").read_text())["tiles"]["unsplit"]
