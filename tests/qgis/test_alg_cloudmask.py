"""eolulc:cloudmask through processing.run, a graphical model chain, and qgis_process.bin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import SCENE_FRAMES
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from eolulc.core.eopatch import read_eopatch
from eolulc.core.timestack import format_datetime, open_stack

ALG = "eolulc:cloudmask"


def _read(path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        return stack.read()[..., 0]


@pytest.fixture(scope="module")
def clp_clm(eopatch_dir):
    frames = list(SCENE_FRAMES)
    return (np.load(eopatch_dir / "data/CLP_S2C.npy")[frames, ..., 0],
            np.load(eopatch_dir / "mask/CLM.npy")[frames, ..., 0])


def test_processing_run_at_10m(run_alg, scene_stack_dn, clp_clm, tmp_path):
    result = run_alg(ALG, {"INPUT": str(scene_stack_dn), "PROCESSING_RESOLUTION": 10, "AVERAGE_OVER": 4,
                           "DILATION_SIZE": 2, "OUTPUT_PROBABILITY": str(tmp_path / "p.tif"),
                           "OUTPUT_MASK": str(tmp_path / "m.tif")})
    assert Path(result["OUTPUT_MASK"]) == tmp_path / "m.tif"
    np.testing.assert_allclose(_read(tmp_path / "p.tif"), clp_clm[0], atol=1e-6, rtol=0)
    assert (_read(tmp_path / "m.tif") == clp_clm[1]).mean() >= 0.995


def test_graphical_model_chains_buildtimestack_and_cloudmask(run_alg, eopatch_dir, reference_scenes, clp_clm,
                                                            tmp_path):
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFile,
    )

    import processing

    patch = read_eopatch(eopatch_dir)
    grid = patch.grid(101, 100)
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i, frame in enumerate(SCENE_FRAMES):
        stamp = format_datetime(patch.timestamps[frame]).replace("-", "").replace(":", "")
        name = folder / f"S2A_MSIL1C_{stamp}_N0204_R122_T33TVM_{stamp}.tif"
        with rasterio.open(name, "w", driver="GTiff", width=100, height=101, count=13, dtype="uint16",
                           crs=grid.crs_wkt, transform=rasterio.Affine(*grid.transform)) as ds:
            ds.write(np.round(reference_scenes[i].astype(np.float64) * 10000).astype(np.uint16).transpose(2, 0, 1))

    model = QgsProcessingModelAlgorithm("L1C folder to clouds", "EO LULC tests")
    model.addModelParameter(
        QgsProcessingParameterFile("folder", "Scenes", behavior=QgsProcessingParameterFile.Behavior.Folder),
        QgsProcessingModelParameter("folder"),
    )
    build = QgsProcessingModelChildAlgorithm("eolulc:buildtimestack")
    build.setChildId("build")
    build.addParameterSources("INPUT_FOLDER", [QgsProcessingModelChildParameterSource.fromModelParameter("folder")])
    model.addChildAlgorithm(build)
    clouds = QgsProcessingModelChildAlgorithm("eolulc:cloudmask")
    clouds.setChildId("clouds")
    clouds.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("build", "OUTPUT")])
    clouds.addParameterSources("PROCESSING_RESOLUTION", [QgsProcessingModelChildParameterSource.fromStaticValue(10)])
    output = QgsProcessingModelOutput("mask")
    output.setChildId("clouds")
    output.setChildOutputName("OUTPUT_MASK")
    clouds.setModelOutputs({"mask": output})
    model.addChildAlgorithm(clouds)
    model.updateDestinationParameters()

    result = processing.run(model, {"folder": str(folder), "clouds:mask": str(tmp_path / "mask.tif")})
    assert Path(result["clouds:mask"]) == tmp_path / "mask.tif"
    # build sorts by date: frames 0..4 of the patch, so compare against the sorted reference
    order = np.argsort([patch.timestamps[f] for f in SCENE_FRAMES])
    assert (_read(tmp_path / "mask.tif") == clp_clm[1][order]).mean() >= 0.995


@pytest.mark.parametrize(
    "case, parameter, text",
    [
        ("missing_bands", "INPUT", "lacks the band(s) B09, B10"),
        ("no_dates", "INPUT", "not a time stack"),
    ],
)
def test_bad_input(run_alg, reference_scenes, tmp_path, case, parameter, text):
    path = tmp_path / "in.tif"
    if case == "missing_bands":
        with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=11, dtype="float32") as ds:
            ds.write(reference_scenes[0][..., :11].transpose(2, 0, 1))
            for i, band in enumerate("B01 B02 B03 B04 B05 B06 B07 B08 B8A B11 B12".split()):
                ds.set_band_description(i + 1, f"2017-01-01T10:00:00 {band}")
    else:
        with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=13, dtype="float32") as ds:
            ds.write(reference_scenes[0].transpose(2, 0, 1))
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, {"INPUT": str(path), "OUTPUT_MASK": str(out / "m.tif")})
    assert f"({parameter})" in str(error.value) and text in str(error.value)
    assert not out.exists() or not list(out.iterdir())


def test_cancel_leaves_no_output(run_alg, scene_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "2")
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg(ALG, {"INPUT": str(scene_stack), "PROCESSING_RESOLUTION": 10,
                      "OUTPUT_PROBABILITY": str(tmp_path / "p.tif"), "OUTPUT_MASK": str(tmp_path / "m.tif")},
                feedback=feedback)
    assert not list(tmp_path.iterdir())


def test_qgis_process_run(qgis_process, scene_stack, clp_clm, tmp_path):
    helped = qgis_process("help", ALG)
    assert helped.returncode == 0 and "PROCESSING_RESOLUTION" in helped.stdout
    rc, result, text = qgis_process.run(ALG, {"INPUT": scene_stack, "OUTPUT_MASK": tmp_path / "m.tif"})
    assert rc == 0, text
    assert Path(result["results"]["OUTPUT_MASK"]) == tmp_path / "m.tif"
    with rasterio.open(tmp_path / "m.tif") as ds:
        fractions = json.loads(ds.tags()["EOLULC_VALID_FRACTION"])
    assert len(fractions) == 5
    # the default coarse processing agrees with the service's mask too
    assert (_read(tmp_path / "m.tif") == clp_clm[1]).mean() >= 0.99
