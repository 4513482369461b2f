"""The probability output of classification, suggested samples, and the active-learning loop on the
real TestEOPatch (NDVI on the 16-day grid): labels from the reference map at the suggested points
raise the held-out accuracy of a model started from a small sample."""

from __future__ import annotations

import numpy as np
import pytest

from eolulc.core.classify import classify
from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.legend import read_legend
from eolulc.core.probstack import describe_probabilities
from eolulc.core.reference import read_reference_raster
from eolulc.core.suggest import LabelledPoints, suggest_samples, write_suggestions
from eolulc.core.timestack import open_stack, read_info
from eolulc.core.train import TrainSettings, train_model
from eolulc.core.uncertainty import uncertainty


@pytest.fixture(scope="module")
def patch(eopatch_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("suggest")
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    grid = read_info(str(folder / "ndvi16.tif")).grid
    return folder, read_reference_raster(str(folder / "lulc.tif"), grid)


def _probabilities(folder, model, name: str, as_float: bool = False):
    classify([str(folder / "ndvi16.tif")], model, folder / f"{name}_map.tif",
             output_probabilities=folder / f"{name}_p.tif", probabilities_float=as_float, budget_bytes=300_000)
    return folder / f"{name}_p.tif"


def test_probabilities_are_lightgbm_s_and_suggestions_are_spread_and_stratified(patch):
    folder, reference = patch
    model = train_model([str(folder / "ndvi16.tif")], reference, read_legend(), TrainSettings(threads=1)).model
    path = _probabilities(folder, model, "full", as_float=True)
    stack = describe_probabilities(path)
    assert stack.class_ids == tuple(model.class_ids) and stack.info.bands[0] == model.legend.name(model.class_ids[0])
    with open_stack(str(folder / "ndvi16.tif")) as features:
        data = features.read()
    rows = data.transpose(1, 2, 0, 3).reshape(-1, data.shape[0] * data.shape[3])
    exact = model.ensemble(1).booster.predict(rows)
    with open_stack(str(path)) as reader:
        stored = stack.decode(reader.read()).reshape(-1, len(stack.class_ids))
    valid = ~np.all(np.isnan(rows), axis=1)
    np.testing.assert_allclose(stored[valid], exact[valid], atol=1e-5)
    byte_path = _probabilities(folder, model, "byte")
    with open_stack(str(byte_path)) as reader:
        assert reader.info.dtype == "uint8" and reader.read().max() == 100
    assert "singlebandpseudocolor" in byte_path.with_suffix(".qml").read_text()

    suggestions = suggest_samples(path, n=20, min_distance=6, seed=1)
    assert len(suggestions) == 20
    points = np.array([(s.row, s.col) for s in suggestions])
    distances = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    assert distances[~np.eye(len(points), dtype=bool)].min() >= 6
    assert len({s.class_id for s in suggestions}) >= 3  # stratified: not only the commonest class
    all_uncertainty = uncertainty(stored[valid], "entropy")
    assert np.median([s.uncertainty for s in suggestions]) > np.quantile(all_uncertainty, 0.9)
    # the same points whatever the block size
    again = suggest_samples(path, n=20, min_distance=6, seed=1, budget_bytes=40_000)
    assert again == suggestions
    layer = write_suggestions(folder / "suggestions.gpkg", suggestions, read_info(str(path)).grid.crs_wkt)
    from osgeo import ogr

    source = ogr.Open(str(layer))
    feature = source.GetLayer().GetNextFeature()
    assert feature.GetField("label") is None and feature.GetField("class_name") == suggestions[0].class_name


def test_two_rounds_of_labelling_suggested_points_raise_the_accuracy(patch):
    folder, reference = patch
    features = [str(folder / "ndvi16.tif")]
    grid = read_info(features[0]).grid
    gains = []
    for seed in (0, 1):
        settings = TrainSettings(threads=1, seed=seed, samples=40)
        result = train_model(features, reference, read_legend(), settings)
        scores = [result.report["overall_accuracy"]]
        xs, ys, labels = [], [], []
        for round_ in range(2):
            path = _probabilities(folder, result.model, f"round{seed}{round_}")
            for point in suggest_samples(path, n=30, min_distance=4, seed=round_):
                xs.append(point.x)
                ys.append(point.y)
                labels.append(int(reference.classes[point.row, point.col]) or None)  # the "user" labels
            result = train_model(features, reference, read_legend(), settings,
                                 points=LabelledPoints.from_xy(grid, xs, ys, labels))
            scores.append(result.report["overall_accuracy"])
            assert any("labelled point(s) added" in note for note in result.notes)
        # the held-out test part is the same in every round (same reference and seed)
        assert scores[1] > scores[0] and scores[2] > scores[0] + 0.05, scores
        gains.append(scores[2] - scores[0])
    assert np.mean(gains) > 0.08
