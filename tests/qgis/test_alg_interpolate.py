"""eolulc:interpolate through processing.run, a model and qgis_process.bin, on the real TestEOPatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

ALG = "eolulc:interpolate"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def registered(qgis_app):
    """The algorithm in the eolulc provider (until provider.py lists it)."""
    from qgis.core import QgsApplication

    from eolulc.processing.interpolate import InterpolateAlgorithm

    provider = QgsApplication.processingRegistry().providerById("eolulc")
    if provider.algorithm("interpolate") is None:
        provider.addAlgorithm(InterpolateAlgorithm())
    return ALG


@pytest.fixture(scope="module")
def stacks(eopatch_dir: Path, tmp_path_factory) -> dict[str, Path]:
    from eolulc.core.eopatch import import_eopatch

    folder = tmp_path_factory.mktemp("stacks")
    paths = {"ndvi": folder / "ndvi.tif", "clm": folder / "clm.tif"}
    import_eopatch(eopatch_dir, ["NDVI"], paths["ndvi"], "CLM", paths["clm"])
    return paths


def test_processing_run_equals_eolearn(run_alg, registered, stacks, tmp_path: Path):
    from eolulc.core.timestack import open_stack

    out = {"OUTPUT": tmp_path / "i.tif", "OUTPUT_COUNT": tmp_path / "n.tif", "OUTPUT_REPORT": tmp_path / "r.json"}
    result = run_alg(ALG, {"INPUT": str(stacks["ndvi"]), "MASK": str(stacks["clm"]), "START": "2016-01-01",
                           "END": "2016-12-31", **{k: str(v) for k, v in out.items()}})
    assert {k: Path(v) for k, v in result.items()} == out
    with np.load(FIXTURES / "interpolate_filter08_2016_16d.npz") as fixture:
        expected, kept = fixture["expected"], list(fixture["kept_dates"])
    with open_stack(str(out["OUTPUT"])) as stack:
        actual = stack.read()
        assert stack.info.n_dates == 23 and stack.info.bands == ("NDVI",)
    np.testing.assert_allclose(actual, expected, atol=1e-5, equal_nan=True)
    report = json.loads(out["OUTPUT_REPORT"].read_text())
    assert report["kept_dates"] == kept and len(report["dropped_dates"]) == 68 - len(kept)
    with open_stack(str(out["OUTPUT_COUNT"])) as stack:
        assert stack.read().max() == len(kept)  # (the cloudy 2015-12-08 pair is dropped)


def test_default_grid_and_explicit_dates(run_alg, registered, stacks, tmp_path: Path):
    from eolulc.core.timestack import read_info

    run_alg(ALG, {"INPUT": str(stacks["ndvi"]), "MIN_VALID_FRACTION": 0, "INTERVAL_DAYS": 100,
                  "OUTPUT": str(tmp_path / "a.tif")})
    dates = read_info(str(tmp_path / "a.tif")).dates
    assert dates[0].isoformat() == "2015-07-11T00:00:00" and len(dates) == 9  # 2015-07-11 .. 2017-12-22
    run_alg(ALG, {"INPUT": str(stacks["ndvi"]), "DATES": "2016-05-01, 2016-06-01T10:00:00",
                  "START": "ignored", "OUTPUT": str(tmp_path / "b.tif")})
    assert [d.isoformat() for d in read_info(str(tmp_path / "b.tif")).dates] == [
        "2016-05-01T00:00:00", "2016-06-01T10:00:00"]


def test_bad_inputs_name_the_parameter_and_leave_nothing(run_alg, registered, stacks, tmp_path: Path):
    from eolulc.core.timestack import StackWriter, open_stack

    with open_stack(str(stacks["clm"])) as stack:
        info, data = stack.info, stack.read(dates=range(10))
    shorter = tmp_path / "in" / "clm10.tif"
    shorter.parent.mkdir()
    with StackWriter(str(shorter), info.evolve(dates=info.dates[:10])) as writer:
        writer.write(data)
    out = tmp_path / "out"
    base = {"INPUT": str(stacks["ndvi"]), "OUTPUT": str(out / "o.tif"), "OUTPUT_REPORT": str(out / "r.json")}
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, {**base, "MASK": str(shorter)})
    assert "(MASK)" in str(error.value) and "same order" in str(error.value)
    with pytest.raises(QgsProcessingException, match="outside the input's"):
        run_alg(ALG, {**base, "START": "2019-01-01", "END": "2019-12-31"})
    with pytest.raises(QgsProcessingException, match=r"\(START\)"):
        run_alg(ALG, {**base, "START": "not a date"})
    assert _files(out) == []


def test_cancel_leaves_no_output(run_alg, registered, stacks, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.02")
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 30 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg(ALG, {"INPUT": str(stacks["ndvi"]), "MASK": str(stacks["clm"]), "OUTPUT": str(tmp_path / "o.tif"),
                      "OUTPUT_COUNT": str(tmp_path / "n.tif")}, feedback=feedback)
    assert _files(tmp_path) == []


def test_runs_inside_a_model(registered, stacks, tmp_path: Path):
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    import processing

    model = QgsProcessingModelAlgorithm("interpolate model", "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("stack", "stack"), QgsProcessingModelParameter("stack"))
    child = QgsProcessingModelChildAlgorithm(ALG)
    child.setChildId("interp")
    child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("stack")])
    child.addParameterSources("MIN_VALID_FRACTION", [QgsProcessingModelChildParameterSource.fromStaticValue(0.5)])
    output = QgsProcessingModelOutput("result")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"result": output})
    model.addChildAlgorithm(child)
    target = tmp_path / "model.tif"
    result = processing.run(model, {"stack": str(stacks["ndvi"]), "interp:result": str(target)},
                            context=QgsProcessingContext(), feedback=QgsProcessingFeedback())
    assert Path(result["interp:result"]) == target and target.exists()


def test_qgis_process_run(qgis_process, stacks, tmp_path: Path):
    assert ALG in qgis_process("list").stdout, f"qgis_process.bin does not list {ALG}"
    helped = qgis_process("help", ALG)
    assert helped.returncode == 0 and "MIN_VALID_FRACTION" in helped.stdout
    rc, result, text = qgis_process.run(ALG, {"INPUT": stacks["ndvi"], "MASK": stacks["clm"], "START": "2016-01-01",
                                              "END": "2016-12-31", "OUTPUT": tmp_path / "i.tif"})
    assert rc == 0, text
    assert Path(result["results"]["OUTPUT"]) == tmp_path / "i.tif"
    from eolulc.core.timestack import open_stack

    with open_stack(str(tmp_path / "i.tif")) as stack, np.load(FIXTURES / "interpolate_filter08_2016_16d.npz") as z:
        np.testing.assert_allclose(stack.read(), z["expected"], atol=1e-5, equal_nan=True)
    rc, _, text = qgis_process.run(ALG, {"INPUT": stacks["ndvi"], "START": "2030-01-01", "END": "2030-06-01",
                                         "OUTPUT": tmp_path / "bad.tif"})
    assert rc != 0 and "outside the input's" in text and "Traceback" not in text
    assert not (tmp_path / "bad.tif").exists()
