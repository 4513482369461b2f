"""eolulc:classify's probabilities, eolulc:smooth, eolulc:uncertainty, eolulc:suggestsamples and
train's labelled points through processing.run and qgis_process.bin, on the real TestEOPatch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer, QgsVectorLayer

from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.timestack import open_stack


@pytest.fixture(scope="module")
def probabilities(eopatch_dir, tmp_path_factory, qgis_app) -> Path:
    """NDVI on the 16-day grid, a model from a sample of 300 pixels, and its probability stack."""
    import processing

    folder = tmp_path_factory.mktemp("smooth_alg")
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    processing.run("eolulc:train", {"FEATURES": [str(folder / "ndvi16.tif")], "REFERENCE": str(folder / "lulc.tif"),
                                    "SAMPLES": 300, "SEED": 0, "OUTPUT_MODEL": str(folder / "model.json")})
    result = processing.run("eolulc:classify", {
        "FEATURES": [str(folder / "ndvi16.tif")], "MODEL": str(folder / "model.json"),
        "OUTPUT": str(folder / "map.tif"), "OUTPUT_PROBABILITIES": str(folder / "probs.tif")})
    assert result["OUTPUT_PROBABILITIES"] == str(folder / "probs.tif")
    return folder


def test_probabilities_smoothing_and_uncertainty_are_styled(run_alg, probabilities, tmp_path):
    layer = QgsRasterLayer(str(probabilities / "probs.tif"), "p")
    assert layer.isValid() and layer.bandCount() >= 2 and layer.renderer().type() == "singlebandpseudocolor"
    assert any("forest" in layer.bandName(b) for b in range(1, layer.bandCount() + 1))  # bands named by class

    result = run_alg("eolulc:smooth", {"INPUT": str(probabilities / "probs.tif"), "WINDOW_SIZE": 5,
                                       "MIN_MAPPING_UNIT": 4, "OUTPUT": str(tmp_path / "smooth.tif"),
                                       "OUTPUT_PROBABILITIES": str(tmp_path / "sprobs.tif")})
    assert result["CHANGED_PIXELS"] > 0
    smoothed = QgsRasterLayer(result["OUTPUT"], "s")
    assert smoothed.isValid() and smoothed.renderer().type() == "paletted"
    with open_stack(str(probabilities / "map.tif")) as a, open_stack(result["OUTPUT"]) as b:
        before, after = a.read()[0, ..., 0], b.read()[0, ..., 0]
    reference = np.load(Path(__file__).resolve().parents[1] / "data/TestEOPatch/mask_timeless/LULC.npy")[..., 0]
    labelled = reference > 0
    assert (before != after).any()
    assert (after == reference)[labelled].mean() >= (before == reference)[labelled].mean() - 0.02

    result = run_alg("eolulc:uncertainty", {"INPUT": str(tmp_path / "sprobs.tif"), "METHOD": 1,
                                            "OUTPUT": str(tmp_path / "margin.tif")})
    assert 0 < result["MEAN_UNCERTAINTY"] < 1
    margin = QgsRasterLayer(result["OUTPUT"], "u")
    assert margin.isValid() and margin.renderer().type() == "singlebandpseudocolor"

    with pytest.raises(QgsProcessingException, match="SMOOTHNESS.*one per"):
        run_alg("eolulc:smooth", {"INPUT": str(probabilities / "probs.tif"), "SMOOTHNESS": "1, 2",
                                  "OUTPUT": str(tmp_path / "bad.tif")})


def test_suggested_points_labelled_train_the_model(run_alg, probabilities, tmp_path):
    result = run_alg("eolulc:suggestsamples", {"INPUT": str(probabilities / "probs.tif"), "NUMBER": 30,
                                               "MIN_DISTANCE": 4, "OUTPUT": str(tmp_path / "points.gpkg")})
    assert result["POINTS"] == 30
    layer = QgsVectorLayer(result["OUTPUT"], "points")
    assert layer.isValid() and layer.featureCount() == 30
    assert [f.name() for f in layer.fields()][-5:] == ["class_id", "class_name", "probability", "uncertainty",
                                                       "label"]
    # the "user" labels the points from the reference raster
    reference = QgsRasterLayer(str(probabilities / "lulc.tif"), "lulc")
    index = layer.fields().indexOf("label")
    layer.startEditing()
    for feature in layer.getFeatures():
        value, ok = reference.dataProvider().sample(feature.geometry().asPoint(), 1)
        if ok and value > 0:
            layer.changeAttributeValue(feature.id(), index, int(value))
    assert layer.commitChanges()
    del layer

    common = {"FEATURES": [str(probabilities / "ndvi16.tif")], "REFERENCE": str(probabilities / "lulc.tif"),
              "SAMPLES": 40, "SEED": 0}
    before = run_alg("eolulc:train", {**common, "OUTPUT_MODEL": str(tmp_path / "m0.json")})
    after = run_alg("eolulc:train", {**common, "LABELLED_POINTS": str(tmp_path / "points.gpkg"),
                                     "OUTPUT_MODEL": str(tmp_path / "m1.json")})
    assert after["OVERALL_ACCURACY"] > before["OVERALL_ACCURACY"]


def test_qgis_process_smooth_uncertainty_and_suggestions(qgis_process, probabilities, tmp_path):
    rc, result, text = qgis_process.run("eolulc:smooth", {"INPUT": probabilities / "probs.tif",
                                                          "OUTPUT": tmp_path / "smooth.tif"})
    assert rc == 0, text
    assert (tmp_path / "smooth.qml").is_file() and result["results"]["CHANGED_PIXELS"] >= 0
    rc, result, text = qgis_process.run("eolulc:uncertainty", {"INPUT": probabilities / "probs.tif",
                                                               "OUTPUT": tmp_path / "entropy.tif"})
    assert rc == 0, text
    assert (tmp_path / "entropy.qml").is_file()
    rc, result, text = qgis_process.run("eolulc:suggestsamples", {"INPUT": probabilities / "probs.tif",
                                                                  "NUMBER": 12, "OUTPUT": tmp_path / "s.gpkg"})
    assert rc == 0, text
    assert result["results"]["POINTS"] == 12 and (tmp_path / "s.gpkg").is_file()
