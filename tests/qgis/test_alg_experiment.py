"""eolulc:experiment on the real L1C scenes and the LULC polygons, through processing.run and qgis_process."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer

ALG = "eolulc:experiment"


@pytest.fixture(scope="module", autouse=True)
def registered(qgis_app):
    assert QgsApplication.processingRegistry().algorithmById(ALG) is not None


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
    # the 16-day, seed-42 numbers are those of lulcpipeline with the same settings (its default seed is
    # 42), without its smoothing: the experiment compares the classifier's own maps
    row = next(r for r in rows if r["variant"] == "16-day interval" and r["seed"] == "42")
    pipeline = run_alg("eolulc:lulcpipeline", {
        "INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
        "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 16, "SMOOTHING": False,
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
    rc, result, text = qgis_process.run(ALG, _params(scene_stack, eopatch_dir, tmp_path, SEEDS=1))
    assert rc == 0, text
    assert (tmp_path / "best.qml").is_file() and (tmp_path / "experiment.html").is_file()
    assert result["results"]["BEST_VARIANT"].endswith("interval")


# ---------------------------------------------------------------- the demo data (demo/synthetic.py)
def _demo_params(data: Path, out: Path, **extra) -> dict:
    params = {"INPUT": str(data / "l1c.tif"), "REFERENCE": str(data / "reference.gpkg"), "CLASS_FIELD": "LULC_ID",
              "NAME_FIELD": "LULC_NAME", "EXPERIMENT": 1, "INTERVALS": "16,32", "SEEDS": 1,
              "OUTPUT_HTML": str(out / "experiment.html"), "OUTPUT_CSV": str(out / "experiment.csv"),
              "OUTPUT_JSON": str(out / "experiment.json"), "OUTPUT": str(out / "best.tif")}
    params.update(extra)
    return params


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo scene (what tools/demo.py makes, 96 x 96 px, 8 dates) and the experiment on it
    through processing.run, two variants in parallel."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    import processing
    from eolulc.demo.synthetic import SyntheticScene

    root = tmp_path_factory.mktemp("demo")
    data = SyntheticScene(height=96, width=96, n_dates=8, seed=1).write(root / "data", polygons=True)
    out = root / "toolbox"
    result = processing.run(ALG, _demo_params(Path(data.l1c).parent, out, PARALLEL_VARIANTS=2),
                            context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    return Path(data.l1c).parent, out, result


def test_demo_experiment_equals_lulcpipeline(run_alg, demo, tmp_path):
    data, out, result = demo
    document = json.loads((out / "experiment.json").read_text())
    assert document["parallel"]["workers"] == min(2, os.cpu_count() or 1)
    assert {r["variant"]: r["status"] for r in document["runs"]} == {"16-day interval": "ok", "32-day interval": "ok"}
    assert any(s.startswith("Halving the interval from 32 to 16 days costs") for s in document["conclusions"])
    assert QgsRasterLayer(str(out / "best.tif"), "best").renderer().type() == "paletted"
    pipeline = run_alg("eolulc:lulcpipeline", {
        "INPUT": str(data / "l1c.tif"), "REFERENCE": str(data / "reference.gpkg"), "CLASS_FIELD": "LULC_ID",
        "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 32,
        **{name: str(tmp_path / f"{name.lower()}.tif") for name in (
            "OUTPUT", "OUTPUT_REFERENCE", "OUTPUT_AGREEMENT", "OUTPUT_CONFIDENCE")},
        "OUTPUT_MODEL": str(tmp_path / "model.json"), "OUTPUT_REPORT": str(tmp_path / "r.html")})
    row = next(r for r in document["runs"] if r["variant"] == "32-day interval")
    for key, metric in (("OVERALL_ACCURACY", "overall_accuracy"), ("F1_WEIGHTED", "f1_weighted"), ("KAPPA", "kappa")):
        assert row[metric] == pytest.approx(pipeline[key], abs=1e-12), metric


def test_demo_experiment_through_qgis_process(qgis_process, demo, tmp_path):
    """The same experiment from qgis_process.bin, variants one after the other: the same numbers."""
    data, out, result = demo
    rc, parsed, text = qgis_process.run(ALG, _demo_params(data, tmp_path, PARALLEL_VARIANTS=1))
    assert rc == 0, text
    assert parsed["results"]["BEST_VARIANT"] == result["BEST_VARIANT"]
    ours = json.loads((tmp_path / "experiment.json").read_text())
    theirs = json.loads((out / "experiment.json").read_text())
    assert ours["sequential"] is True
    key = ("variant", "seed", "status", "n_features", "overall_accuracy", "f1_weighted", "kappa", "confusion")
    assert [[r.get(k) for k in key] for r in ours["runs"]] == [[r.get(k) for k in key] for r in theirs["runs"]]
    assert ours["confusion_differences"] == theirs["confusion_differences"]
    assert (tmp_path / "best.qml").is_file()
    assert "Confusion differences against the baseline" in (tmp_path / "experiment.html").read_text()


def test_extra_factor_parameters(run_alg, scene_stack, eopatch_dir, tmp_path):
    result = run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path, INTERVALS="32", SEEDS=1,
                                  PROCESSING_RESOLUTIONS="160,80", CLASSIFIERS="gbdt"))
    rows = list(csv.DictReader((tmp_path / "experiment.csv").read_text().splitlines()))
    assert [(r["variant"], r["processing_resolution"], r["classifier"]) for r in rows] == [
        ("32-day interval, cloud mask at 160 m", "160.0", "gbdt"),
        ("32-day interval, cloud mask at 80 m", "80.0", "gbdt")]
    assert result["BEST_VARIANT"] in {r["variant"] for r in rows}
    document = json.loads((tmp_path / "experiment.json").read_text())
    assert [c["study"] for c in document["comparisons"]] == ["cloud mask resolution"]


@pytest.mark.parametrize("name, value", [("CLASSIFIERS", "gbdt,svm"), ("PROCESSING_RESOLUTIONS", "160,fine")])
def test_bad_extra_factors(run_alg, scene_stack, eopatch_dir, tmp_path, name, value):
    with pytest.raises(QgsProcessingException, match=rf"\({name}\)"):
        run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path, **{name: value}))


def test_real_test_eopatch_ndvi_through_qgis_process(qgis_process, eopatch_dir, tmp_path):
    """The seed's data as the user has it after 'Import eo-learn EOPatch': 68 dates of NDVI, the
    CLM cloud mask and the LULC raster; the cloud study runs without cloud-mask or feature step."""
    from eolulc.core.eopatch import import_eopatch

    ndvi, clm, lulc = tmp_path / "ndvi.tif", tmp_path / "clm.tif", tmp_path / "lulc.tif"
    import_eopatch(eopatch_dir, ["NDVI"], ndvi, "CLM", clm, "LULC", lulc)
    params = {"INPUT": str(ndvi), "CLOUD_MASK": str(clm), "REFERENCE": str(lulc), "EXPERIMENT": 0, "SEEDS": 2,
              "OUTPUT_HTML": str(tmp_path / "experiment.html"), "OUTPUT_CSV": str(tmp_path / "experiment.csv"),
              "OUTPUT_JSON": str(tmp_path / "experiment.json"), "OUTPUT": str(tmp_path / "best.tif")}
    rc, result, text = qgis_process.run(ALG, params)
    assert rc == 0, text
    document = json.loads((tmp_path / "experiment.json").read_text())
    assert [v["n_ok"] for v in document["variants"]] == [2, 2, 2, 2]
    assert {v["processing_resolution"] for v in document["variants"]} == {None}
    assert document["shared_steps"]["prepared"]["cloud_mask"] == str(clm)
    assert result["results"]["BEST_OVERALL_ACCURACY"] > 0.8
    assert (tmp_path / "best.qml").is_file()


def test_prepared_cloud_mask_on_other_dates_is_refused(run_alg, eopatch_dir, scene_stack, tmp_path):
    from eolulc.core.eopatch import import_eopatch

    ndvi, lulc = tmp_path / "ndvi.tif", tmp_path / "lulc.tif"
    import_eopatch(eopatch_dir, ["NDVI"], ndvi, None, None, "LULC", lulc)
    with pytest.raises(QgsProcessingException, match=r"\(CLOUD_MASK\)"):
        run_alg(ALG, {"INPUT": str(ndvi), "CLOUD_MASK": str(scene_stack), "REFERENCE": str(lulc), "SEEDS": 1,
                      "OUTPUT_HTML": str(tmp_path / "e.html"), "OUTPUT_CSV": str(tmp_path / "e.csv"),
                      "OUTPUT": str(tmp_path / "best.tif")})
