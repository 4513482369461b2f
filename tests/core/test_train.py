"""Training, the model file and classification on the real TestEOPatch (NDVI on a 16-day grid)."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest

from eolulc.core.classify import classify
from eolulc.core.eopatch import import_eopatch
from eolulc.core.features import FeatureSpec, compute_features
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.legend import read_legend
from eolulc.core.model import load_model
from eolulc.core.reference import Reference, rasterize_polygons, read_reference_raster
from eolulc.core.timestack import StackWriter, open_stack, read_info
from eolulc.core.train import MIN_ROUNDS, PATIENCE, TrainSettings, erode, fit_booster, train_model


@pytest.fixture(scope="module")
def patch_stacks(eopatch_dir, tmp_path_factory):
    """NDVI interpolated onto a 16-day grid over 2016 (cloud-masked, scene filter 0.8), the raw
    68-date NDVI, and the LULC reference raster."""
    folder = tmp_path_factory.mktemp("train")
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    return folder


@pytest.fixture(scope="module")
def reference(patch_stacks) -> Reference:
    return read_reference_raster(str(patch_stacks / "lulc.tif"), read_info(str(patch_stacks / "ndvi16.tif")).grid)


@pytest.fixture(scope="module")
def trained(patch_stacks, reference):
    return train_model([str(patch_stacks / "ndvi16.tif")], reference, read_legend(), TrainSettings(threads=1))


def test_spatial_split_model_is_accurate_and_lean(trained):
    report = trained.report
    assert report["overall_accuracy"] >= 0.9 and report["f1_weighted"] >= 0.9
    assert report["split"] == "blocks" and any("Spatial split" in note for note in trained.notes)
    parameters = trained.model.metadata["parameters"]
    # early stopping kept a lean model, but not one below the floor (it stopped at 23-45 rounds before)
    assert MIN_ROUNDS <= parameters["trees_kept"] < 500
    assert trained.model.feature_names[0] == "2016-01-01 NDVI"
    assert set(trained.model.class_ids) <= {1, 2, 3, 4, 8}
    assert report["feature_importance"][0]["gain_share"] > 0


def test_early_stopping_keeps_the_floor_or_the_best_round_beyond_it():
    """On easy data the validation loss turns long before MIN_ROUNDS: the model keeps MIN_ROUNDS
    rounds and training stops soon after them, not at the maximum; fewer asked for, all kept."""
    from eolulc.core.progress import Progress

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6))
    y = np.where(x[:, 0] + 0.5 * rng.normal(size=3000) > 0, 2, 1)
    for rounds, expected in ((40, 40), (500, MIN_ROUNDS)):
        reports: list[float] = []
        booster, parameters = fit_booster(x, y, [1, 2], [f"b{i}" for i in range(6)],
                                          TrainSettings(n_estimators=rounds, threads=1), rng,
                                          Progress(on_progress=reports.append))
        assert booster.num_trees() // 2 == parameters["trees_kept"] == expected  # two classes: two trees a round
        assert len(reports) <= max(rounds, MIN_ROUNDS + PATIENCE)  # rounds trained


def test_model_file_round_trip_and_classification_equals_lightgbm(trained, patch_stacks, tmp_path):
    path = tmp_path / "model.json"
    trained.model.save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "eolulc-model" and document["lightgbm"].startswith("tree")
    model = load_model(path)
    assert model.metadata["legend"] == trained.model.metadata["legend"]
    result = classify([str(patch_stacks / "ndvi16.tif")], model, tmp_path / "map.tif", tmp_path / "conf.tif",
                      budget_bytes=200_000)
    with open_stack(str(patch_stacks / "ndvi16.tif")) as stack:
        data = stack.read()
    rows = data.transpose(1, 2, 0, 3).reshape(-1, data.shape[0] * data.shape[3])
    exact = model.ensemble(1).booster.predict(rows)
    expected = np.asarray(model.class_ids)[exact.argmax(axis=1)]
    with open_stack(str(tmp_path / "map.tif")) as stack:
        labels = stack.read()[0, ..., 0].ravel()
    valid = ~np.all(np.isnan(rows), axis=1)
    np.testing.assert_array_equal(labels[valid], expected[valid])
    assert (labels[~valid] == result.nodata).all()
    with open_stack(str(tmp_path / "conf.tif")) as stack:
        confidence = stack.read()[0, ..., 0].ravel()
    assert confidence[valid].min() >= 20 and confidence[valid].max() <= 100
    # the confidence is the rounded probability of the chosen class, as LightGBM computes it
    np.testing.assert_array_equal(confidence[valid], np.round(100 * exact.max(axis=1))[valid].astype(np.uint8))
    qml = (tmp_path / "map.qml").read_text()
    assert 'color="#054907"' in qml and "forest" in qml


def test_random_forest_predictions_equal_lightgbm(patch_stacks, reference, tmp_path):
    result = train_model([str(patch_stacks / "ndvi16.tif")], reference, read_legend(),
                         TrainSettings(classifier="rf", n_estimators=40, threads=1))
    result.model.save(tmp_path / "rf.json")
    model = load_model(tmp_path / "rf.json")
    classify([str(patch_stacks / "ndvi16.tif")], model, tmp_path / "rf.tif")
    with open_stack(str(patch_stacks / "ndvi16.tif")) as stack:
        data = stack.read()
    rows = data.transpose(1, 2, 0, 3).reshape(-1, data.shape[0] * data.shape[3])
    expected = model.ensemble(1).booster.predict(rows)
    from eolulc.core.model import predict_probabilities

    np.testing.assert_allclose(predict_probabilities(model.ensemble(2), rows), expected, atol=1e-9)
    assert result.report["overall_accuracy"] >= 0.85


def test_polygon_reference_and_polygon_split(patch_stacks, eopatch_dir):
    from osgeo import ogr

    grid = read_info(str(patch_stacks / "ndvi16.tif")).grid
    source = ogr.Open(str(eopatch_dir / "vector_timeless/LULC.gpkg"))
    layer = source.GetLayer(0)
    shapes, names = [], {}
    for feature in layer:
        shapes.append((json.loads(feature.GetGeometryRef().ExportToJson()), feature.GetField("LULC_ID")))
        names[feature.GetField("LULC_ID")] = feature.GetField("LULC_NAME")
    reference = rasterize_polygons(shapes, grid, names)
    raster = np.load(eopatch_dir / "mask_timeless/LULC.npy")[..., 0]
    labelled = (reference.classes > 0) & (raster > 0)
    assert (reference.classes[labelled] == raster[labelled]).mean() > 0.95
    result = train_model([str(patch_stacks / "ndvi16.tif")], reference, read_legend(),
                         TrainSettings(split="polygons", threads=1))
    assert result.report["overall_accuracy"] >= 0.85
    assert any("polygon" in note for note in result.notes)
    legend_names = {c["id"]: c["name"] for c in result.model.metadata["legend"]}
    assert legend_names[2] == names[2]


def test_random_split_warns(patch_stacks, reference):
    result = train_model([str(patch_stacks / "ndvi16.tif")], reference, read_legend(),
                         TrainSettings(split="random", samples=2000, threads=1))
    assert any("optimistic" in note for note in result.notes)


def test_erosion_per_class():
    classes = np.zeros((9, 9), np.uint16)
    classes[1:8, 1:8] = 2
    classes[3:6, 3:6] = 8
    eroded = erode(classes, "1, 8:0")
    assert (eroded[3:6, 3:6] == 8).all()  # class 8 not eroded
    assert eroded[1, 1] == 0 and eroded[2, 2] == 2
    untouched_edge = np.full((4, 4), 3, np.uint16)
    assert (erode(untouched_edge, "1") == 3).all()  # the map's edge does not erode


@pytest.mark.parametrize("spec", ["1", "2", "3, 2:0, 5:1", "4"])
def test_erosion_equals_a_binary_erosion_per_class(spec):
    """One pass per radius gives what scipy's binary erosion of each class (the map's edge not
    eroding) gives, also on a strip narrower than the radius."""
    from scipy.ndimage import binary_erosion

    from eolulc.core.train import erosion_disk, parse_erosion

    rng = np.random.default_rng(3)
    default, per_class = parse_erosion(spec)
    for shape in ((60, 70), (3, 40)):
        # blobs of 7 classes and some unlabelled pixels
        classes = np.kron(rng.integers(0, 8, (shape[0] // 3 + 1, shape[1] // 5 + 1)), np.ones((3, 5), int))
        classes = classes[:shape[0], :shape[1]].astype(np.uint16)
        expected = classes.copy()
        for class_id in range(1, 8):
            radius = per_class.get(class_id, default)
            if radius:
                member = classes == class_id
                expected[member & ~binary_erosion(member, erosion_disk(radius), border_value=1)] = 0
        np.testing.assert_array_equal(erode(classes, spec), expected)


def test_model_files_that_are_not_models(tmp_path, trained):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="pickle"):
        load_model(pickled)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="not an EO LULC model"):
        load_model(other)
    trained.model.save(tmp_path / "m.json")
    broken = json.loads((tmp_path / "m.json").read_text())
    broken["lightgbm"] = "tree\nthis is not a model"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="cannot be read"):
        load_model(tmp_path / "broken.json")


def test_features_that_do_not_match_the_model(trained, patch_stacks, tmp_path):
    with pytest.raises(ValueError, match="the model 2[0-9]: missing 2016-01-01"):
        classify([str(patch_stacks / "ndvi.tif")], trained.model, tmp_path / "x.tif")
    assert not list(tmp_path.iterdir())


def _renamed(source, path, bands):
    """A copy of the stack ``source`` whose bands carry other names (same dates and values)."""
    with open_stack(str(source)) as stack:
        info, data = stack.info, stack.read()
    with StackWriter(str(path), replace(info, bands=tuple(bands))) as writer:
        writer.write(data)
    return str(path)


def test_model_matches_bands_named_by_other_software(scene_stack, scene_reference, tmp_path):
    """A model trained on ESA's names (B02, B8A) classifies features whose bands SNAP or GDAL named
    (B2, "B8a, central wavelength 865 nm"): the same bands, so the same map."""
    features = tmp_path / "esa.tif"
    compute_features(scene_stack, features, FeatureSpec(bands=("B02", "B8A"), indices=()))
    model = train_model([str(features)], scene_reference, read_legend(), TrainSettings(threads=1)).model
    snap = _renamed(features, tmp_path / "snap.tif", ("B2", "B8a, central wavelength 865 nm"))
    classify([str(features)], model, tmp_path / "esa_map.tif")
    classify([snap], model, tmp_path / "snap_map.tif")
    with open_stack(str(tmp_path / "esa_map.tif")) as esa, open_stack(str(tmp_path / "snap_map.tif")) as other:
        np.testing.assert_array_equal(esa.read(), other.read())
    wrong = _renamed(features, tmp_path / "wrong.tif", ("B2", "B08"))
    with pytest.raises(ValueError, match="has bands B2, B08; the model needs B02, B8A"):
        classify([wrong], model, tmp_path / "wrong_map.tif")


def test_reference_without_overlap_and_single_class(patch_stacks, reference):
    grid = read_info(str(patch_stacks / "ndvi16.tif")).grid
    far_away = [({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]}, 2)]
    with pytest.raises(ValueError, match="no class pixels"):
        rasterize_polygons(far_away, grid)
    single = Reference(classes=np.where(reference.classes > 0, 2, 0).astype(np.uint16))
    with pytest.raises(ValueError, match="two or more"):
        train_model([str(patch_stacks / "ndvi16.tif")], single, read_legend(), TrainSettings(threads=1))


def test_class_with_one_pixel_and_absent_ids(patch_stacks, reference):
    classes = reference.classes.copy()
    classes[50, 50] = 7  # a class with a single pixel (tundra, absent elsewhere)
    result = train_model([str(patch_stacks / "ndvi16.tif")], Reference(classes=classes), read_legend(),
                         TrainSettings(erosion="1, 7:0", threads=1))
    assert result.report["overall_accuracy"] >= 0.85
    # the one pixel cannot be both trained and tested: it is either unreliable or test-only
    assert any("fewer than 5 training pixels" in n or "only in the test part" in n for n in result.notes)


def test_all_nodata_features(patch_stacks, reference, trained, tmp_path):
    import rasterio

    empty = tmp_path / "empty.tif"
    with rasterio.open(patch_stacks / "ndvi16.tif") as source:
        profile = source.profile
        with rasterio.open(empty, "w", **profile) as target:
            target.update_tags(**source.tags())
            for band in range(1, source.count + 1):
                target.set_band_description(band, source.descriptions[band - 1])
            target.write(np.full((source.count, source.height, source.width), np.nan, np.float32))
    with pytest.raises(ValueError, match="only nodata"):
        train_model([str(empty)], reference, read_legend(), TrainSettings(threads=1))
    with pytest.raises(ValueError, match="only nodata"):
        classify([str(empty)], trained.model, tmp_path / "out" / "map.tif")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("budget", [None, 64 * 1024])
def test_sampled_rows_equal_the_whole_table(patch_stacks, budget):
    """gather_rows reads only the tiles with sampled pixels and converts only those: the rows are
    the whole table's, in the order asked, for scattered, clustered and repeated-edge pixels, with
    blocks smaller than the raster too."""
    from eolulc.core.featureset import FeatureSet
    from eolulc.core.progress import ensure_progress
    from eolulc.core.train import gather_rows

    with FeatureSet([str(patch_stacks / "ndvi16.tif")]) as features:
        grid = features.grid
        table = features.read_rows((0, 0, grid.height, grid.width))
        rng = np.random.default_rng(0)
        corner = (np.arange(20)[:, None] * grid.width + np.arange(15)[None, :]).ravel()
        for flat in (rng.permutation(table.shape[0])[:700], np.sort(corner), np.array([table.shape[0] - 1, 0]),
                     np.zeros(0, np.int64)):
            rows = gather_rows(features, flat, ensure_progress(None), budget)
            np.testing.assert_array_equal(rows, table[flat])


def test_pixel_windows_touch_only_occupied_tiles():
    from eolulc.core.featureset import pixel_windows

    rows = np.array([0, 3, 9, 9, 2, 30, 31])
    cols = np.array([0, 7, 1, 12, 40, 5, 6])
    seen = np.zeros(rows.size, int)
    windows = []
    for positions, (row, col, height, width), local in pixel_windows(rows, cols, 8):
        seen[positions] += 1
        windows.append((row, col, height, width))
        np.testing.assert_array_equal(local, (rows[positions] - row) * width + cols[positions] - col)
    assert (seen == 1).all()
    # 8 px tiles: strip 0 holds tiles 0 and 5 (apart: two windows), strip 1 tiles 0 and 1 (adjacent:
    # one window), strip 3 tile 0; each window trimmed to its pixels
    assert sorted(windows) == [(0, 0, 4, 8), (2, 40, 1, 1), (9, 1, 1, 12), (30, 5, 2, 2)]
