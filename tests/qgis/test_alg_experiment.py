"""eolulc:experiment on the real L1C scenes and the LULC polygons, through processing.run and qgis_process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer

ALG = "eolulc:experiment"


@pytest.fixture(scope="module", autouse=True)
def registered(qgis_app):
    """Add the algorithm to the provider when the provider does not list it (yet)."""
    from eolulc.processing.experiment import ExperimentAlgorithm

    registry = QgsApplication.processingRegistry()
    if registry.algorithmById(ALG) is None:
        provider = registry.providerById("eolulc")
        provider.addAlgorithm(ExperimentAlgorithm())
    assert registry.algorithmById(ALG) is not None


def _params(scene_stack: Path, eopatch_dir: Path, out: Path, **extra) -> dict:
    params = {"INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
              "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "EXPERIMENT": 1, "INTERVALS": "16,32",
              "SEEDS": 2, "OUTPUT_HTML": str(out / "experiment.html"), "OUTPUT_CSV": str(out / "experiment.csv"),
              "OUTPUT_JSON": str(out / "experiment.json"), "OUTPUT": str(out / "best.tif")}
    params.update(extra)
    return params


def test_interval_experiment(run_alg, scene_stack, eopatch_dir, tmp_path):
    result = run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path))
    assert result["BEST_VARIANT"] in ("16-day interval", "32-day interval")
    assert 0.5 <= result["BEST_OVERALL_ACCURACY"] <= 1.0
    layer = QgsRasterLayer(str(tmp_path / "best.tif"), "best")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    rows = list(csv.DictReader((tmp_path / "experiment.csv").read_text().splitlines()))
    assert {(r["variant"], r["seed"]) for r in rows} == {(v, s) for v in ("16-day interval", "32-day interval")
                                                         for s in ("42", "43")}
    document = json.loads((tmp_path / "experiment.json").read_text())
    assert any(s.startswith("Halving the interval from 32 to 16 days") for s in document["conclusions"])
    assert "Halving the interval" in (tmp_path / "experiment.html").read_text()
    # the 16-day, seed-42 numbers are those of lulcpipeline with the same settings (its default seed is 42)
    row = next(r for r in rows if r["variant"] == "16-day interval" and r["seed"] == "42")
    pipeline = run_alg("eolulc:lulcpipeline", {
        "INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
        "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 16,
        **{name: str(tmp_path / "pipeline" / f"{name.lower()}.tif") for name in (
            "OUTPUT", "OUTPUT_REFERENCE", "OUTPUT_AGREEMENT", "OUTPUT_CONFIDENCE")},
        "OUTPUT_MODEL": str(tmp_path / "pipeline" / "model.json"),
        "OUTPUT_REPORT": str(tmp_path / "pipeline" / "r.html")})
    for key, metric in (("OVERALL_ACCURACY", "overall_accuracy"), ("F1_WEIGHTED", "f1_weighted"), ("KAPPA", "kappa")):
        assert float(row[metric]) == pytest.approx(pipeline[key], abs=1e-12), metric


def test_bad_intervals(run_alg, scene_stack, eopatch_dir, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"\(INTERVALS\)"):
        run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path / "out", INTERVALS="8,sixteen"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_qgis_process_experiment(qgis_process, scene_stack, eopatch_dir, tmp_path):
    if ALG not in qgis_process("list").stdout:
        pytest.skip(f"{ALG} is not registered in processing/provider.py yet")
    rc, result, text = qgis_process.run(ALG, _params(scene_stack, eopatch_dir, tmp_path, SEEDS=1))
    assert rc == 0, text
    assert (tmp_path / "best.qml").is_file() and (tmp_path / "experiment.html").is_file()
    assert result["results"]["BEST_VARIANT"].endswith("interval")
