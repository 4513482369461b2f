"""eolulc:features through processing.run and qgis_process.bin on the real L1C scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from eolulc.core.sentinel2 import L1C_BANDS
from eolulc.core.timestack import open_stack, read_info

ALG = "eolulc:features"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _ndvi(scenes: np.ndarray) -> np.ndarray:
    nir = scenes[..., L1C_BANDS.index("B08")].astype(np.float64)
    red = scenes[..., L1C_BANDS.index("B04")].astype(np.float64)
    return (nir - red) / (nir + red)


@pytest.fixture
def registered(qgis_app):
    """The algorithm, registered by the eolulc provider itself (processing/provider.py)."""
    from qgis.core import QgsApplication

    assert QgsApplication.processingRegistry().algorithmById(ALG) is not None, f"{ALG} is not registered"
    return ALG


def test_processing_run_defaults(run_alg, registered, scene_stack_dn, reference_scenes, tmp_path):
    result = run_alg(ALG, {"INPUT": str(scene_stack_dn), "OUTPUT": str(tmp_path / "f.tif")})
    assert Path(result["OUTPUT"]) == tmp_path / "f.tif"
    with open_stack(str(tmp_path / "f.tif")) as stack:
        info, data = stack.info, stack.read()
    assert info.bands == ("B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NDBI")
    assert info.dates == read_info(str(scene_stack_dn)).dates
    np.testing.assert_allclose(data[..., 6], _ndvi(reference_scenes), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(data[..., 2], reference_scenes[..., L1C_BANDS.index("B04")])


def test_processing_run_custom_and_statistics(run_alg, registered, scene_stack, reference_scenes, tmp_path):
    run_alg(ALG, {"INPUT": str(scene_stack), "BANDS": "", "INDICES": [0], "CUSTOM_INDICES": "NDRE=B8A,B05",
                  "STATISTICS": [0, 8], "OUTPUT": str(tmp_path / "s.tif")})
    with open_stack(str(tmp_path / "s.tif")) as stack:
        info, data = stack.info, stack.read()
    assert info.dates == (None,) and info.bands == ("NDVI_mean", "NDVI_p90", "NDRE_mean", "NDRE_p90")
    ndvi = _ndvi(reference_scenes)
    np.testing.assert_allclose(data[0, ..., 0], ndvi.mean(axis=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(data[0, ..., 1], np.percentile(ndvi, 90, axis=0), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "parameters, parameter, text",
    [
        ({"BANDS": "B02,B13"}, "BANDS", "lacks the band(s) B13; it has B01, B02"),
        ({"CUSTOM_INDICES": "NDRE=B8A,B99"}, "CUSTOM_INDICES", "lacks the band(s) B99 needed for NDRE"),
        ({"CUSTOM_INDICES": "NDRE:B8A,B05"}, "CUSTOM_INDICES", "not a normalized difference like NDRE=B8A,B05"),
        ({"CUSTOM_INDICES": "NDVI=B08,B05"}, "CUSTOM_INDICES", "NDVI given twice"),
        ({"BANDS": "", "INDICES": []}, "BANDS", "empty, and no index is chosen: nothing to compute"),
    ],
)
def test_bad_parameters(run_alg, registered, scene_stack, tmp_path, parameters, parameter, text):
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, {"INPUT": str(scene_stack), "OUTPUT": str(out / "f.tif"), **parameters})
    assert f"({parameter})" in str(error.value) and text in str(error.value), str(error.value)
    assert _files(out) == []


def test_missing_index_band_names_indices(run_alg, registered, reference_scenes, tmp_path):
    import rasterio

    path = tmp_path / "in.tif"
    bands = [b for b in L1C_BANDS if b != "B11"]
    with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=12, dtype="float32",
                       crs="EPSG:32633", transform=rasterio.Affine(10, 0, 500000, 0, -10, 5000000)) as ds:
        ds.write(reference_scenes[0][..., [L1C_BANDS.index(b) for b in bands]].transpose(2, 0, 1))
        for i, band in enumerate(bands):
            ds.set_band_description(i + 1, f"2017-01-01T10:00:00 {band}")
    out = tmp_path / "out"
    with pytest.raises(QgsProcessingException) as error:
        run_alg(ALG, {"INPUT": str(path), "BANDS": "B04,B08", "OUTPUT": str(out / "f.tif")})
    assert "(INDICES)" in str(error.value) and "B11 needed for NDBI" in str(error.value)
    assert _files(out) == []
    # without NDBI the stack is fine
    run_alg(ALG, {"INPUT": str(path), "BANDS": "B04,B08", "INDICES": [0, 1], "OUTPUT": str(out / "f.tif")})
    assert read_info(str(out / "f.tif")).bands == ("B04", "B08", "NDVI", "NDWI")


def test_cancel_leaves_no_output(run_alg, registered, scene_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.05")
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    with pytest.raises(QgsProcessingException, match="Canceled"):
        run_alg(ALG, {"INPUT": str(scene_stack), "OUTPUT": str(tmp_path / "f.tif")}, feedback=feedback)
    assert _files(tmp_path) == []


def test_qgis_process_run(qgis_process, scene_stack, reference_scenes, tmp_path):
    assert ALG in qgis_process("list").stdout, f"qgis_process.bin does not list {ALG}"
    rc, result, text = qgis_process.run(ALG, {"INPUT": scene_stack, "BANDS": "B04", "CUSTOM_INDICES": "NDRE=B8A,B05",
                                              "STATISTICS": "0,8", "OUTPUT": tmp_path / "f.tif"})
    assert rc == 0, text
    assert Path(result["results"]["OUTPUT"]) == tmp_path / "f.tif"
    with open_stack(str(tmp_path / "f.tif")) as stack:
        assert stack.info.dates == (None,)
        features = ("B04", "NDVI", "NDWI", "NDBI", "NDRE")
        assert stack.info.bands == tuple(f"{f}_{s}" for f in features for s in ("mean", "p90"))
        np.testing.assert_allclose(stack.read()[0, ..., 2], _ndvi(reference_scenes).mean(axis=0), rtol=0, atol=1e-6)
