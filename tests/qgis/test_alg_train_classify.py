"""eolulc:train and eolulc:classify through processing.run and qgis_process.bin, on the real
TestEOPatch with the polygon and the raster reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer

from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.timestack import open_stack


@pytest.fixture(scope="module")
def stacks(eopatch_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_alg")
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    return folder


def _train_params(stacks: Path, eopatch_dir: Path, out: Path, **extra) -> dict:
    params = {"FEATURES": [str(stacks / "ndvi16.tif")],
              "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"), "CLASS_FIELD": "LULC_ID",
              "NAME_FIELD": "LULC_NAME", "OUTPUT_MODEL": str(out / "model.json"),
              "OUTPUT_REPORT": str(out / "report.html")}
    params.update(extra)
    return params


def test_train_then_classify_with_polygons(run_alg, stacks, eopatch_dir, tmp_path):
    result = run_alg("eolulc:train", _train_params(stacks, eopatch_dir, tmp_path, SPLIT=1))
    assert result["OVERALL_ACCURACY"] >= 0.85
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "Feature importance" in html and "forest" in html
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["metadata"]["settings"]["split"] == "polygons"

    classified = run_alg("eolulc:classify", {"FEATURES": [str(stacks / "ndvi16.tif")],
                                             "MODEL": str(tmp_path / "model.json"),
                                             "OUTPUT": str(tmp_path / "map.tif"),
                                             "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif")})
    layer = QgsRasterLayer(classified["OUTPUT"], "map")
    assert layer.isValid()
    assert layer.renderer().type() == "paletted"  # the sidecar .qml styles it on opening
    reference = np.load(eopatch_dir / "mask_timeless/LULC.npy")[..., 0]
    with open_stack(str(tmp_path / "map.tif")) as stack:
        labels = stack.read()[0, ..., 0]
    assert (labels == reference)[reference > 0].mean() >= 0.85

    assessed = run_alg("eolulc:accuracy", {"INPUT": str(tmp_path / "map.tif"),
                                           "REFERENCE": str(stacks / "lulc.tif"),
                                           "OUTPUT_HTML": str(tmp_path / "accuracy.html")})
    assert assessed["OVERALL_ACCURACY"] >= 0.85


def test_raster_reference_in_another_crs_is_reprojected(run_alg, stacks, eopatch_dir, tmp_path):
    import processing

    moved = processing.run("native:reprojectlayer", {
        "INPUT": str(eopatch_dir / "vector_timeless/LULC.gpkg"), "TARGET_CRS": "EPSG:4326",
        "OUTPUT": str(tmp_path / "lulc_wgs84.gpkg")})["OUTPUT"]
    result = run_alg("eolulc:train", _train_params(stacks, eopatch_dir, tmp_path, REFERENCE=moved))
    assert result["OVERALL_ACCURACY"] >= 0.85


@pytest.mark.parametrize(
    "change, parameter, text",
    [
        ({"CLASS_FIELD": ""}, "CLASS_FIELD", "class field"),
        ({"CLASS_FIELD": "LULC_NAME"}, "CLASS_FIELD", "not an integer class id"),
        ({"EROSION": "one"}, "EROSION", "not an erosion setting"),
        ({"CLASS_SAMPLES": "2:lots"}, "CLASS_SAMPLES", "write class:pixels pairs"),
        ({"CLASS_SAMPLES": "2:-5"}, "CLASS_SAMPLES", "outside 0.."),
        ({"CLASS_SAMPLES": "2:15000", "SAMPLES": 10000}, "CLASS_SAMPLES", "more than the 10000 training pixels"),
        ({"CLASS_SAMPLES": "42:100"}, "CLASS_SAMPLES", "class(es) 42 are not in the reference"),
        ({"SPLIT": 1, "REFERENCE": "lulc.tif"}, "FEATURES", "polygon split needs a polygon reference"),
    ],
)
def test_train_bad_input(run_alg, stacks, eopatch_dir, tmp_path, change, parameter, text):
    out = tmp_path / "out"
    params = _train_params(stacks, eopatch_dir, out)
    if change.get("REFERENCE") == "lulc.tif":
        change = dict(change, REFERENCE=str(stacks / "lulc.tif"))
    params.update(change)
    with pytest.raises(QgsProcessingException) as error:
        run_alg("eolulc:train", params)
    assert f"({parameter})" in str(error.value) and text in str(error.value)
    assert not out.exists() or not list(out.iterdir())


def test_class_samples(run_alg, stacks, eopatch_dir, tmp_path):
    """Per-class counts: the listed classes get exactly that many training pixels, a class with 0
    none, the others share the rest of SAMPLES stratified (their counts add up to the rest)."""
    result = run_alg("eolulc:train", _train_params(stacks, eopatch_dir, tmp_path, SAMPLES=3000,
                                                   CLASS_SAMPLES="3:200, 8:30, 4:0"))
    assert result["OVERALL_ACCURACY"] > 0.5
    model = json.loads((tmp_path / "model.json").read_text())
    train = model["metadata"]["samples"]["train"]
    assert model["metadata"]["settings"]["class_samples"] == "3:200, 8:30, 4:0"
    assert train["3"] == 200 and train["8"] == 30 and "4" not in train
    assert sum(train.values()) == 3000


def test_reference_without_overlap(run_alg, stacks, eopatch_dir, tmp_path):
    import rasterio

    far = tmp_path / "far.tif"
    with rasterio.open(far, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=rasterio.Affine(10, 0, 100000, 0, -10, 100000)) as ds:
        ds.write(np.full((1, 10, 10), 2, np.uint8))
    with pytest.raises(QgsProcessingException, match=r"\(REFERENCE\).*no class pixels"):
        run_alg("eolulc:train", _train_params(stacks, eopatch_dir, tmp_path / "out", REFERENCE=str(far)))


def test_classify_bad_model_and_features(run_alg, stacks, eopatch_dir, tmp_path):
    not_a_model = tmp_path / "model.json"
    not_a_model.write_text("{}")
    params = {"FEATURES": [str(stacks / "ndvi16.tif")], "MODEL": str(not_a_model),
              "OUTPUT": str(tmp_path / "out" / "map.tif")}
    with pytest.raises(QgsProcessingException, match=r"\(MODEL\).*not an EO LULC model"):
        run_alg("eolulc:classify", params)
    run_alg("eolulc:train", _train_params(stacks, eopatch_dir, tmp_path, OUTPUT_REPORT=None))
    params.update(MODEL=str(tmp_path / "model.json"), FEATURES=[str(stacks / "ndvi.tif")])
    with pytest.raises(QgsProcessingException, match=r"\(FEATURES\).*do not match the model"):
        run_alg("eolulc:classify", params)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_classify_cancel_leaves_nothing(run_alg, stacks, eopatch_dir, tmp_path, monkeypatch):
    run_alg("eolulc:train", _train_params(stacks, eopatch_dir, tmp_path))
    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.1")
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg("eolulc:classify", {"FEATURES": [str(stacks / "ndvi16.tif")], "MODEL": str(tmp_path / "model.json"),
                                    "OUTPUT": str(out / "map.tif")}, feedback=feedback)
    assert not out.exists() or not list(out.iterdir())


def test_qgis_process_class_samples(qgis_process, stacks, tmp_path):
    rc, result, text = qgis_process.run("eolulc:train", {
        "FEATURES": stacks / "ndvi16.tif", "REFERENCE": stacks / "lulc.tif", "SAMPLES": 2000,
        "CLASS_SAMPLES": "2:300", "OUTPUT_MODEL": tmp_path / "model.json"})
    assert rc == 0, text
    assert json.loads((tmp_path / "model.json").read_text())["metadata"]["samples"]["train"]["2"] == 300
    rc, _, text = qgis_process.run("eolulc:train", {
        "FEATURES": stacks / "ndvi16.tif", "REFERENCE": stacks / "lulc.tif", "CLASS_SAMPLES": "77:300",
        "OUTPUT_MODEL": tmp_path / "bad.json"})
    assert rc != 0 and "CLASS_SAMPLES" in text and "77" in text and not (tmp_path / "bad.json").exists()


def test_qgis_process_train_and_classify(qgis_process, stacks, eopatch_dir, tmp_path):
    rc, result, text = qgis_process.run("eolulc:train", {
        "FEATURES": stacks / "ndvi16.tif", "REFERENCE": stacks / "lulc.tif",
        "OUTPUT_MODEL": tmp_path / "model.json", "OUTPUT_REPORT": tmp_path / "report.html"})
    assert rc == 0, text
    assert result["results"]["OVERALL_ACCURACY"] >= 0.85
    rc, result, text = qgis_process.run("eolulc:classify", {
        "FEATURES": stacks / "ndvi16.tif", "MODEL": tmp_path / "model.json", "OUTPUT": tmp_path / "map.tif"})
    assert rc == 0, text
    assert (tmp_path / "map.qml").is_file() and Path(result["results"]["OUTPUT"]) == tmp_path / "map.tif"
