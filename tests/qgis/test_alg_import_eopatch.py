"""eolulc:importeopatch through processing.run and qgis_process.bin, on the real TestEOPatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsProcessingException, QgsRasterLayer

ALG = "eolulc:importeopatch"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_processing_run_imports_ndvi_clm_lulc(run_alg, eopatch_dir: Path, tmp_path: Path):
    outputs = {"OUTPUT": tmp_path / "ndvi.tif", "OUTPUT_MASK": tmp_path / "clm.tif",
               "OUTPUT_TIMELESS": tmp_path / "lulc.tif"}
    result = run_alg(ALG, {"INPUT": str(eopatch_dir), "DATA_FEATURES": "NDVI",
                           **{k: str(v) for k, v in outputs.items()}})
    assert {k: Path(v) for k, v in result.items()} == outputs

    timestamps = json.loads((eopatch_dir / "timestamps.json").read_text())
    layer = QgsRasterLayer(str(outputs["OUTPUT"]), "ndvi")
    assert layer.isValid()
    assert layer.crs() == QgsCoordinateReferenceSystem("EPSG:32633")
    assert (layer.width(), layer.height(), layer.bandCount()) == (100, 101, 68)
    assert layer.rasterUnitsPerPixelX() == pytest.approx(10.0, abs=0.01)
    assert layer.bandName(1).endswith(f"{timestamps[0]} NDVI")
    provider = layer.dataProvider()
    ndvi = np.load(eopatch_dir / "data/NDVI.npy")
    block = provider.block(5, layer.extent(), 100, 101)
    assert block.value(40, 60) == pytest.approx(float(ndvi[4, 40, 60, 0]), abs=1e-7)

    mask = QgsRasterLayer(str(outputs["OUTPUT_MASK"]), "clm")
    assert mask.isValid() and mask.bandCount() == 68
    lulc = QgsRasterLayer(str(outputs["OUTPUT_TIMELESS"]), "lulc")
    assert lulc.isValid() and lulc.bandCount() == 1
    reference = np.load(eopatch_dir / "mask_timeless/LULC.npy")[..., 0]
    values = lulc.dataProvider().block(1, lulc.extent(), 100, 101)
    assert [values.value(r, c) for r, c in ((0, 0), (50, 50), (100, 99))] == [
        reference[r, c] for r, c in ((0, 0), (50, 50), (100, 99))
    ]


@pytest.mark.parametrize(
    "change, parameter, text",
    [
        ({"INPUT": "/nonexistent/patch"}, "INPUT", "does not exist"),
        ({"DATA_FEATURES": "NDVI,BOGUS"}, "DATA_FEATURES", "no data feature 'BOGUS'"),
        ({"MASK_FEATURE": "CLOUDS"}, "MASK_FEATURE", "available: mask/CLM"),
        ({"TIMELESS_FEATURE": "NOPE"}, "TIMELESS_FEATURE", "mask_timeless/LULC"),
    ],
)
def test_bad_input_names_parameter_and_leaves_nothing(run_alg, eopatch_dir, tmp_path, change, parameter, text):
    params = {"INPUT": str(eopatch_dir), "DATA_FEATURES": "NDVI", "OUTPUT": str(tmp_path / "a.tif"),
              "OUTPUT_MASK": str(tmp_path / "b.tif"), "OUTPUT_TIMELESS": str(tmp_path / "c.tif")}
    params.update(change)
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, params)
    assert f"({parameter})" in str(error.value) and text in str(error.value)
    assert _files(tmp_path) == []


def test_missing_bbox_and_unreadable_array(run_alg, eopatch_dir, tmp_path):
    patch = tmp_path / "patch"
    (patch / "data").mkdir(parents=True)
    (patch / "timestamps.json").write_text((eopatch_dir / "timestamps.json").read_text())
    (patch / "data" / "NDVI.npy").write_bytes(b"garbage")
    out = tmp_path / "out"
    params = {"INPUT": str(patch), "OUTPUT": str(out / "a.tif"), "MASK_FEATURE": "", "TIMELESS_FEATURE": ""}
    with pytest.raises(QgsProcessingException, match="no bbox.geojson"):
        run_alg(ALG, params)
    (patch / "bbox.geojson").write_text((eopatch_dir / "bbox.geojson").read_text())
    with pytest.raises(QgsProcessingException, match="cannot read the array data/NDVI"):
        run_alg(ALG, params)
    assert _files(out) == []


def test_cancel_leaves_no_output(run_alg, eopatch_dir, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingFeedback

    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.05")
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg(ALG, {"INPUT": str(eopatch_dir), "DATA_FEATURES": "NDVI", "OUTPUT": str(tmp_path / "a.tif"),
                      "OUTPUT_MASK": str(tmp_path / "b.tif"), "OUTPUT_TIMELESS": str(tmp_path / "c.tif")},
                feedback=feedback)
    assert _files(tmp_path) == []


def test_qgis_process_list_help_and_run(qgis_process, eopatch_dir, tmp_path):
    listing = qgis_process("list")
    assert listing.returncode == 0, listing.stderr
    assert "eolulc:importeopatch" in listing.stdout and "eolulc:buildtimestack" in listing.stdout

    helped = qgis_process("help", ALG)
    assert helped.returncode == 0, helped.stderr
    assert "bbox.geojson" in helped.stdout and "DATA_FEATURES" in helped.stdout
    assert "Comma-separated names of temporal data features" in helped.stdout

    rc, result, text = qgis_process.run(ALG, {"INPUT": eopatch_dir, "DATA_FEATURES": "NDVI",
                                              "OUTPUT": tmp_path / "ndvi.tif", "OUTPUT_MASK": tmp_path / "clm.tif",
                                              "OUTPUT_TIMELESS": tmp_path / "lulc.tif"})
    assert rc == 0, text
    assert Path(result["results"]["OUTPUT"]) == tmp_path / "ndvi.tif"
    from eolulc.core.timestack import open_stack

    with open_stack(str(tmp_path / "clm.tif")) as stack:
        assert stack.info.n_dates == 68 and stack.info.bands == ("CLM",)
        np.testing.assert_array_equal(stack.read(), np.load(eopatch_dir / "mask/CLM.npy"))


def test_qgis_process_bad_input_fails_cleanly(qgis_process, tmp_path):
    rc, _, text = qgis_process.run(ALG, {"INPUT": tmp_path / "missing", "OUTPUT": tmp_path / "a.tif"})
    assert rc != 0
    assert "EOPatch folder (INPUT)" in text and "does not exist" in text
    assert "Traceback" not in text
    assert not (tmp_path / "a.tif").exists()
