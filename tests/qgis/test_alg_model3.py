"""The shipped graphical model ``resources/models/lulc_chain.model3`` (``eolulc:lulcchain``): listed under
the provider, up to date with ``tools/make_model3.py``, and giving through ``qgis_process.bin`` the same
classification as ``eolulc:lulcpipeline`` for the same inputs and seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from eolulc.core.timestack import open_stack

REPO = Path(__file__).resolve().parents[2]
MODEL_FILE = REPO / "resources" / "models" / "lulc_chain.model3"
MODEL_ID = "eolulc:lulcchain"
STEPS = ("cloudmask", "features", "interpolate", "train", "classify", "smooth", "accuracy")


def _inputs(scene_stack: Path, eopatch_dir: Path) -> dict:
    """Inputs both take under the same names (the model's inputs are named like the pipeline's)."""
    return {"INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
            "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 16,
            "MIN_VALID_FRACTION": 0.8, "SEED": 42}


def _read(path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        return stack.read()


def test_model_listed_under_the_provider(qgis_app, qgis_process):
    from qgis.core import QgsApplication

    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    assert model is not None and model.provider().id() == "eolulc"
    assert model.group() == "Pipeline" and Path(model.sourceFilePath()) == MODEL_FILE
    # one "Pipeline" group in the toolbox (it groups by id), and a readable name
    pipeline = QgsApplication.processingRegistry().algorithmById("eolulc:lulcpipeline")
    assert model.groupId() == pipeline.groupId()
    assert model.displayName().startswith("LULC chain") and model.id() == MODEL_ID
    instance = model.create()  # what the dialog and the toolbox run
    assert instance.displayName() == model.displayName() and instance.groupId() == pipeline.groupId()
    children = model.childAlgorithms()
    assert sorted(children) == sorted(STEPS)
    assert all(child.algorithmId() == f"eolulc:{key}" and child.algorithm() is not None
               for key, child in children.items())
    assert "The eo-learn LULC chain" in model.shortHelpString()
    # the outputs are known once the provider is registered (the steps are its own algorithms)
    destinations = {p.name() for p in model.destinationParameterDefinitions()}
    assert destinations == {"smooth:classification", "smooth:confidence", "train:model", "train:test_report",
                            "accuracy:accuracy_report"}
    listed = qgis_process("list", timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert f"{MODEL_ID}\t" in listed.stdout


def test_shipped_model_is_valid_in_the_designer(qgis_app, qgis_process):
    """What the Model Designer checks (a red node, "Model is invalid" on Run): every child's
    parameters against its algorithm's definitions, read from the shipped file."""
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL_FILE))
    assert sorted(model.childAlgorithms()) == sorted(STEPS)
    for child_id in STEPS:
        valid, issues = model.validateChildAlgorithm(child_id)
        assert valid and not issues, f"{child_id}: {issues}"
    valid, issues = model.validate()
    assert valid and not issues, issues
    # the inputs in the order a user fills them in
    assert [p.parameterName() for p in model.orderedParameters()][:4] == [
        "INPUT", "REFERENCE", "CLASS_FIELD", "NAME_FIELD"]
    assert [p.name() for p in model.parameterDefinitions()][:3] == ["INPUT", "REFERENCE", "CLASS_FIELD"]


def test_model_file_is_up_to_date():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "make_model3.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_model_equals_pipeline(run_alg, qgis_process, scene_stack, eopatch_dir, tmp_path):
    inputs = _inputs(scene_stack, eopatch_dir)
    chain = tmp_path / "model3"
    chain.mkdir()
    rc, result, text = qgis_process.run(MODEL_ID, {
        **inputs, "smooth:classification": chain / "map.tif", "smooth:confidence": chain / "confidence.tif",
        "train:model": chain / "model.json", "train:test_report": chain / "test.html",
        "accuracy:accuracy_report": chain / "accuracy.html"})
    assert rc == 0, text
    assert Path(result["results"]["smooth:classification"]) == chain / "map.tif"

    pipeline = tmp_path / "pipeline"
    run_alg("eolulc:lulcpipeline", {
        **inputs, "OUTPUT": str(pipeline / "map.tif"), "OUTPUT_CONFIDENCE": str(pipeline / "confidence.tif"),
        "OUTPUT_REFERENCE": str(pipeline / "reference.tif"), "OUTPUT_AGREEMENT": str(pipeline / "agreement.tif"),
        "OUTPUT_MODEL": str(pipeline / "model.json"), "OUTPUT_REPORT": str(pipeline / "report.html")})

    mapped, expected = _read(chain / "map.tif"), _read(pipeline / "map.tif")
    assert mapped.shape == expected.shape and len(np.unique(expected)) > 1
    np.testing.assert_array_equal(mapped, expected)
    np.testing.assert_array_equal(_read(chain / "confidence.tif"), _read(pipeline / "confidence.tif"))
    assert (chain / "map.qml").is_file()  # the class raster opens styled
    for report in ("test.html", "accuracy.html"):
        html = (chain / report).read_text()
        assert "<svg" in html, report
    assert "held-out" in (pipeline / "report.html").read_text()
