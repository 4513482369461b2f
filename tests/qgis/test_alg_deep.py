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
DEEP = ("EPOCHS", "BATCH_SIZE", "DEEP_LEARNING_RATE", "DEVICE")
#: Non-default deep settings and what the model's metadata says of them.
TINY = {"EPOCHS": 2, "BATCH_SIZE": 64, "DEEP_LEARNING_RATE": 0.01, "DEVICE": CPU}
TINY_SETTINGS = {"epochs": 2, "batch_size": 64, "deep_learning_rate": 0.01, "device": "cpu"}


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


@pytest.mark.parametrize("algorithm", ["eolulc:lulcpipeline", "eolulc:batchpipeline", "eolulc:experiment"])
def test_deep_settings_are_train_s_everywhere(qgis_app, algorithm):
    """EPOCHS, BATCH_SIZE, DEEP_LEARNING_RATE and DEVICE: train's declaration (label, default,
    bounds, help), in the Advanced group."""
    from qgis.core import QgsProcessingParameterDefinition

    registry = QgsApplication.processingRegistry()
    train, other = registry.algorithmById("eolulc:train"), registry.algorithmById(algorithm)
    for name in DEEP:
        ours, theirs = other.parameterDefinition(name), train.parameterDefinition(name)
        assert ours is not None, name
        assert ours.toVariantMap() == theirs.toVariantMap() | {"flags": ours.toVariantMap()["flags"]}, name
        assert ours.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced, name
        assert ours.help() == theirs.help() and ours.help(), name


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory) -> Path:
    """A small demo scene (demo/synthetic.py): 96 x 96 px, 8 dates, l1c.tif and reference.tif."""
    from eolulc.demo.synthetic import SyntheticScene

    folder = tmp_path_factory.mktemp("deep_scene")
    SyntheticScene(96, 96, 8, seed=1).write(folder / "t0")
    return folder


def test_lulcpipeline_passes_the_deep_settings(run_alg, small_scene, tmp_path):
    result = run_alg("eolulc:lulcpipeline", {
        "INPUT": str(small_scene / "t0" / "l1c.tif"), "REFERENCE": str(small_scene / "t0" / "reference.tif"),
        "INTERVAL_DAYS": 30, "SAMPLES": 1000, "CLASSIFIER": TEMPCNN, **TINY,
        "OUTPUT": str(tmp_path / "map.tif"), "OUTPUT_MODEL": str(tmp_path / "model.json")})
    model = json.loads(Path(result["OUTPUT_MODEL"]).read_text())
    assert model["network"]["architecture"]["name"] == "tempcnn"
    assert {k: model["metadata"]["settings"][k] for k in TINY_SETTINGS} == TINY_SETTINGS
    assert model["metadata"]["parameters"]["epochs_run"] <= 2


def test_batchpipeline_passes_the_deep_settings(run_alg, small_scene, tmp_path):
    result = run_alg("eolulc:batchpipeline", {
        "INPUT_FOLDER": str(small_scene), "WORKERS": 1, "INTERVAL_DAYS": 30, "SAMPLES": 1000, "CLASSIFIER": LTAE,
        **TINY, "OUTPUT_FOLDER": str(tmp_path / "work"), "OUTPUT_MOSAIC": str(tmp_path / "map.vrt"),
        "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert result["FAILED_TILES"] == ""
    model = json.loads(Path(result["OUTPUT_MODEL"]).read_text())
    assert model["network"]["architecture"]["name"] == "ltae"
    assert {k: model["metadata"]["settings"][k] for k in TINY_SETTINGS} == TINY_SETTINGS


def _experiment_params(scene: Path, out: Path, **extra) -> dict:
    return {"INPUT": str(scene / "t0" / "l1c.tif"), "REFERENCE": str(scene / "t0" / "reference.tif"),
            "EXPERIMENT": 1, "INTERVALS": "30", "SEEDS": 1, "PARALLEL_VARIANTS": 1,
            "OUTPUT_HTML": str(out / "experiment.html"), "OUTPUT_CSV": str(out / "experiment.csv"),
            "OUTPUT_JSON": str(out / "experiment.json"), "OUTPUT": str(out / "best.tif"), **extra}


def test_experiment_passes_the_deep_settings(run_alg, small_scene, tmp_path):
    """Every deep variant trains with the given settings (EPOCHS bounds the epochs each ran); LightGBM's
    variant is untouched by them."""
    run_alg("eolulc:experiment", _experiment_params(small_scene, tmp_path, CLASSIFIERS="gbdt,tempcnn,ltae",
                                                    EPOCHS=1, BATCH_SIZE=64, DEVICE=CPU))
    runs = json.loads((tmp_path / "experiment.json").read_text())["runs"]
    assert {r["classifier"]: (r["status"], r.get("epochs_run")) for r in runs} == {
        "gbdt": ("ok", None), "tempcnn": ("ok", 1), "ltae": ("ok", 1)}


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


def test_qgis_process_experiment_with_tiny_epochs(qgis_process, small_scene, tmp_path):
    rc, result, text = qgis_process.run("eolulc:experiment", _experiment_params(
        small_scene, tmp_path, CLASSIFIERS="ltae", EPOCHS=1, DEEP_LEARNING_RATE=0.01, DEVICE=CPU))
    assert rc == 0, text
    runs = json.loads((tmp_path / "experiment.json").read_text())["runs"]
    assert [(r["classifier"], r["status"], r["epochs_run"]) for r in runs] == [("ltae", "ok", 1)]
    assert result["results"]["BEST_VARIANT"] == "30-day interval"
