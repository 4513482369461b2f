"""The deep classifiers (CLASSIFIER tempcnn / ltae) through processing.run and qgis_process.bin on
the real TestEOPatch: train, classify, the pipeline, and the options every training algorithm
declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsApplication

from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.timestack import open_stack

#: CLASSIFIER's option indices (processing/training.py CLASSIFIER_OPTIONS) and DEVICE's cpu.
TEMPCNN, LTAE, CPU = 2, 3, 1


@pytest.fixture(scope="module")
def stacks(eopatch_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deep_alg")
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    return folder


@pytest.mark.parametrize("algorithm", ["eolulc:train", "eolulc:lulcpipeline", "eolulc:batchpipeline"])
def test_training_algorithms_offer_the_deep_classifiers(qgis_app, algorithm):
    definition = QgsApplication.processingRegistry().algorithmById(algorithm).parameterDefinition("CLASSIFIER")
    options = definition.options()
    assert "TempCNN" in options[TEMPCNN] and "L-TAE" in options[LTAE]


def test_train_ltae_then_classify(run_alg, stacks, tmp_path):
    result = run_alg("eolulc:train", {
        "FEATURES": [str(stacks / "ndvi16.tif")], "REFERENCE": str(stacks / "lulc.tif"), "CLASSIFIER": LTAE,
        "SAMPLES": 3000, "EPOCHS": 8, "DEVICE": CPU, "OUTPUT_MODEL": str(tmp_path / "model.json"),
        "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert result["OVERALL_ACCURACY"] >= 0.85
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["network"]["architecture"]["name"] == "ltae" and model["metadata"]["settings"]["epochs"] == 8
    classified = run_alg("eolulc:classify", {"FEATURES": [str(stacks / "ndvi16.tif")],
                                             "MODEL": str(tmp_path / "model.json"),
                                             "OUTPUT": str(tmp_path / "map.tif"),
                                             "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif")})
    with open_stack(classified["OUTPUT"]) as stack, open_stack(str(stacks / "lulc.tif")) as reference:
        labels, truth = stack.read()[0, ..., 0], reference.read()[0, ..., 0]
    assert (labels == truth)[truth > 0].mean() >= 0.85


def test_bad_deep_setting_names_the_parameter(run_alg, stacks, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="EPOCHS|epochs"):
        run_alg("eolulc:train", {"FEATURES": [str(stacks / "ndvi16.tif")], "REFERENCE": str(stacks / "lulc.tif"),
                                 "CLASSIFIER": TEMPCNN, "EPOCHS": 0, "OUTPUT_MODEL": str(tmp_path / "model.json"),
                                 "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert not (tmp_path / "model.json").exists()


def test_qgis_process_trains_tempcnn(qgis_process, stacks, tmp_path):
    rc, result, text = qgis_process.run("eolulc:train", {
        "FEATURES": stacks / "ndvi16.tif", "REFERENCE": stacks / "lulc.tif", "CLASSIFIER": TEMPCNN,
        "SAMPLES": 2000, "EPOCHS": 5, "DEVICE": CPU,
        "OUTPUT_MODEL": tmp_path / "model.json", "OUTPUT_REPORT": tmp_path / "report.html"})
    assert rc == 0, text
    assert result["results"]["OVERALL_ACCURACY"] >= 0.8
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["network"]["architecture"]["name"] == "tempcnn" and "lightgbm" not in model
