"""The synthetic L1C generator: real s2cloudless finds the planted clouds, the classes are
learnable from their NDVI time series, and generation is deterministic and window-independent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eolulc.core.cloudmask import CloudDetector, disk
from eolulc.core.sentinel2 import L1C_BANDS
from eolulc.core.timestack import open_stack
from eolulc.demo.synthetic import (
    ARTIFICIAL,
    BARELAND,
    CLASSES,
    CLOUD,
    CULTIVATED,
    FOREST,
    GRASSLAND,
    SHADOW,
    SHRUBLAND,
    WATER,
    WETLAND,
    SyntheticScene,
    cloud_spectra,
)

#: Seed 1 at 200 x 200 x 12 has clear dates, opaque clouds from 12 to 71 % cover, cirrus on
#: three dates (one of them without other clouds) and snow on two winter dates.
CLOUDY = SyntheticScene(height=200, width=200, n_dates=12, seed=1)


def _read(path: Path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        return stack.read()


@pytest.fixture(scope="module")
def cloudy(tmp_path_factory):
    """The cloudy scene on disk and s2cloudless's probabilities at 10 m (one model run)."""
    folder = tmp_path_factory.mktemp("synthetic")
    outputs = CLOUDY.write(folder)
    CloudDetector(processing_resolution=None).run(outputs.l1c, output_probability=folder / "clp.tif")
    return outputs, _read(folder / "clp.tif")[..., 0], _read(outputs.cloud_mask)[..., 0]


def test_outputs_are_l1c_digital_numbers_with_reference_and_planted_mask(cloudy):
    outputs, _, planted = cloudy
    with open_stack(str(outputs.l1c)) as stack:
        info = stack.info
    assert info.bands == L1C_BANDS and info.dtype == "uint16" and info.nodata == 0
    assert info.scales == (1e-4,) * 13
    assert info.grid.crs_wkt and "32633" in rasterio.crs.CRS.from_wkt(info.grid.crs_wkt).to_string()
    dates = info.dates
    assert len(dates) == 12 and list(dates) == sorted(dates) and {d.year for d in dates} == {2019}
    gaps = {(b.date() - a.date()).days for a, b in zip(dates, dates[1:])}
    assert all(g % 5 == 0 for g in gaps) and len(gaps) > 2  # 5-day revisits, some skipped
    reference = _read(outputs.reference)[0, ..., 0]
    present = set(np.unique(reference).tolist())
    assert {CULTIVATED, FOREST, GRASSLAND, WATER, ARTIFICIAL} <= present <= set(CLASSES) | {0}
    assert set(np.unique(planted).tolist()) == {0, CLOUD, SHADOW}
    cover = (planted == CLOUD).mean(axis=(1, 2))
    assert (cover == 0).sum() >= 2 and cover.max() > 0.5  # clear dates and mostly cloudy ones
    np.testing.assert_allclose(outputs.cloud_fraction, cover)


def test_s2cloudless_finds_planted_clouds(cloudy):
    """Per pixel (threshold 0.4 on the probability, no averaging, no dilation) the check is about
    the spectra: >= 90 % of planted opaque and cirrus cloud pixels found, <= 5 % of clear ones
    flagged. With s2cloudless's default post-processing (average over 4 px, dilate by 2 px) the
    mask also grows over clear pixels next to clouds, by design: there detection must hold as
    well, and clear pixels more than 6 px from a planted cloud must stay <= 5 % flagged.
    Shadows are neither cloud nor clear."""
    import cv2

    _, probability, planted = cloudy
    cloud, clear = planted == CLOUD, planted == 0
    per_pixel = probability > 0.4
    detected, flagged = per_pixel[cloud].mean(), per_pixel[clear].mean()
    print(f"per pixel: {detected:.2%} of planted cloud pixels found, {flagged:.2%} of clear pixels flagged")
    assert detected >= 0.90 and flagged <= 0.05

    defaults = CloudDetector(processing_resolution=None)
    mask = defaults.mask_from_probabilities(probability) == 1
    near = np.stack([cv2.dilate(c.astype(np.uint8), disk(6)) for c in cloud]).astype(bool)
    far = clear & ~near
    print(f"average_over=4, dilation_size=2: {mask[cloud].mean():.2%} found, {mask[clear].mean():.2%} of clear "
          f"pixels flagged, {mask[far].mean():.2%} of those more than 6 px from a cloud")
    assert mask[cloud].mean() >= 0.90 and mask[far].mean() <= 0.05


def test_cirrus_alone_is_found(cloudy):
    """Date 1 holds cirrus and no other cloud: its elevated B10 and haze are what s2cloudless sees."""
    outputs, probability, planted = cloudy
    weather = CLOUDY._weather
    (dates,) = np.nonzero((weather["cirrus"] > 0) & (weather["cover"] == 0))
    assert len(dates) >= 1
    l1c = _read(outputs.l1c)
    for t in dates:
        cirrus = planted[t] == CLOUD
        assert cirrus.mean() > 0.05
        b10 = l1c[t, ..., L1C_BANDS.index("B10")]
        assert np.median(b10[cirrus]) > 5 * np.median(b10[planted[t] == 0])
        assert (probability[t][cirrus] > 0.4).mean() >= 0.9


def test_classes_are_learnable_from_ndvi_time_series():
    import lightgbm

    scene = SyntheticScene(height=160, width=160, n_dates=24, seed=1, clouds=False)
    l1c, planted, reference = scene.block()
    assert not planted.any()
    x = l1c.astype(np.float32) / 10000
    red, nir = x[..., L1C_BANDS.index("B04")], x[..., L1C_BANDS.index("B08")]
    ndvi = (nir - red) / (nir + red)
    doy = scene.day_of_year
    summer = (doy >= 150) & (doy <= 240)
    spring = (doy >= 120) & (doy <= 165)
    late = (doy >= 230) & (doy <= 300)

    def mean(cls, dates):
        return float(ndvi[dates][:, reference == cls].mean())

    assert mean(FOREST, summer) > 0.65  # green all summer
    assert mean(WATER, np.ones_like(summer)) < 0  # dark in NIR
    assert mean(CULTIVATED, spring) > mean(CULTIVATED, late) + 0.2  # green-up, then harvest
    assert mean(GRASSLAND, spring) > mean(GRASSLAND, doy < 60) + 0.3
    # a spatial split: learn on the "black" 32 x 32 px tiles of a checkerboard, predict the others
    features = np.concatenate([ndvi, x[..., [1, 2, 3, 11]].mean(axis=0).transpose(2, 0, 1)])
    rows, cols = np.indices(reference.shape)
    train = (rows // 32 + cols // 32) % 2 == 0
    left, right = features[:, train].T, features[:, ~train].T
    y_left, y_right = reference[train], reference[~train]
    classes = np.unique(y_left)
    labels = np.searchsorted(classes, y_left)
    parameters = {"objective": "multiclass", "num_class": len(classes), "num_leaves": 15, "verbose": -1,
                  "seed": 0, "num_threads": 1}
    booster = lightgbm.train(parameters, lightgbm.Dataset(left, labels), num_boost_round=40)
    predicted = classes[booster.predict(right).argmax(axis=1)]
    accuracy = float((predicted == y_right).mean())
    print(f"overall accuracy on the held-out tiles: {accuracy:.3f}")
    assert accuracy >= 0.9


def test_same_seed_same_files_and_windows_equal_the_whole(tmp_path):
    scene = SyntheticScene(height=70, width=90, n_dates=5, seed=7)
    first = scene.write(tmp_path / "a", polygons=True)
    # a tiny budget: small windows, not aligned to anything
    second = SyntheticScene(height=70, width=90, n_dates=5, seed=7).write(tmp_path / "b", budget_bytes=150_000)
    whole_l1c, whole_planted, whole_reference = scene.block()
    for name in ("l1c", "reference", "cloud_mask"):
        a, b = getattr(first, name), getattr(second, name)
        np.testing.assert_array_equal(_read(a), _read(b))
        with rasterio.open(a) as ra, rasterio.open(b) as rb:
            assert ra.tags() == rb.tags() and ra.descriptions == rb.descriptions
    np.testing.assert_array_equal(_read(first.l1c), whole_l1c)
    np.testing.assert_array_equal(_read(first.cloud_mask)[..., 0], whole_planted)
    np.testing.assert_array_equal(_read(first.reference)[0, ..., 0], whole_reference)
    window = (13, 29, 31, 17)
    part = scene.block(window)[0]
    np.testing.assert_array_equal(part, whole_l1c[:, 13:44, 29:46])
    other = SyntheticScene(height=70, width=90, n_dates=5, seed=8).block()[0]
    assert not np.array_equal(other, whole_l1c)
    # polygons carry the reference's classes
    from osgeo import ogr

    source = ogr.Open(str(first.polygons))
    layer = source.GetLayer(0)
    ids = {feature.GetField("LULC_ID") for feature in layer}
    assert ids == set(np.unique(whole_reference).tolist()) - {0}


def test_float_reflectance_and_builtin_cloud_spectra():
    mean, components, source = cloud_spectra(None)
    assert source == "built-in cloud spectra" and components.shape == (3, 13)
    assert mean[L1C_BANDS.index("B04")] > 0.2  # opaque clouds are bright
    scene = SyntheticScene(height=40, width=50, n_dates=3, seed=3, digital_numbers=False, reference_scenes=None)
    l1c, _, _ = scene.block()
    dn = SyntheticScene(height=40, width=50, n_dates=3, seed=3, reference_scenes=None).block()[0]
    assert l1c.dtype == np.float32 and 0 < l1c.min() and l1c.max() < 2
    np.testing.assert_allclose(l1c, dn / 10000, atol=0.00006)
    with pytest.raises(ValueError, match="n_dates"):
        SyntheticScene(n_dates=0)


def test_real_cloud_spectra_match_the_builtin_ones(data_dir):
    mean, components, source = cloud_spectra(data_dir / "REFERENCE_SCENES.npy")
    assert "real cloudy pixels" in source
    builtin_mean, builtin_components, _ = cloud_spectra(None)
    np.testing.assert_allclose(mean, builtin_mean, atol=1e-3)
    np.testing.assert_allclose(components, builtin_components, atol=2e-3)


# ---------------------------------------------------------------- the realistic (demo) scene
def _nearest_centroid_confusion(scene: SyntheticScene) -> dict[tuple[int, int], float]:
    """Share of each true class's pixels whose NDVI year is nearest another class's mean year."""
    l1c = scene.block()[0].astype(np.float32)
    ndvi = (l1c[..., 7] - l1c[..., 3]) / (l1c[..., 7] + l1c[..., 3])
    profiles = ndvi.reshape(len(ndvi), -1).T
    labels = scene.truth().ravel()
    ids = np.unique(labels)
    centroids = np.stack([profiles[labels == i].mean(axis=0) for i in ids])
    nearest = ids[np.argmin(((profiles[:, None, :] - centroids[None]) ** 2).sum(axis=-1), axis=1)]
    return {(int(a), int(b)): float(((labels == a) & (nearest == b)).sum() / (labels == a).sum())
            for a in ids for b in ids if a != b}


def test_realistic_scene_is_reproducible_and_windows_equal_the_whole():
    scene = SyntheticScene(height=90, width=110, n_dates=5, seed=8, realistic=True)
    whole_l1c, _, whole_reference = scene.block()
    again = SyntheticScene(height=90, width=110, n_dates=5, seed=8, realistic=True).block()
    np.testing.assert_array_equal(again[0], whole_l1c)
    np.testing.assert_array_equal(again[2], whole_reference)
    window = (13, 21, 40, 57)  # the point spread reaches across the window's edges
    part_l1c, _, part_reference = scene.block(window)
    np.testing.assert_array_equal(part_l1c, whole_l1c[:, 13:53, 21:78])
    np.testing.assert_array_equal(part_reference, whole_reference[13:53, 21:78])
    np.testing.assert_array_equal(scene.truth(window), scene.truth()[13:53, 21:78])
    classic = SyntheticScene(height=90, width=110, n_dates=5, seed=8).block()[0]
    assert np.mean(classic != whole_l1c) > 0.5
    assert "realistic=True" in scene.stack_info().tags["EOLULC_SYNTHETIC"]


def test_realistic_reference_has_plausible_mistakes():
    scene = SyntheticScene(height=200, width=200, n_dates=2, seed=1, realistic=True)
    truth, reference = scene.truth(), scene.reference()
    wrong = truth != reference
    print(f"reference differs from the truth on {wrong.mean():.2%} of the pixels")
    assert 0.02 < wrong.mean() < 0.15
    plausible = {(CULTIVATED, GRASSLAND), (GRASSLAND, CULTIVATED), (SHRUBLAND, FOREST), (FOREST, SHRUBLAND),
                 (FOREST, BARELAND), (SHRUBLAND, GRASSLAND), (GRASSLAND, SHRUBLAND), (WETLAND, GRASSLAND),
                 (GRASSLAND, WETLAND), (WATER, WETLAND), (WETLAND, WATER), (BARELAND, CULTIVATED),
                 (CULTIVATED, BARELAND), (ARTIFICIAL, BARELAND), (BARELAND, ARTIFICIAL)}
    pairs = set(zip(reference[wrong].tolist(), truth[wrong].tolist()))
    assert pairs <= plausible, pairs - plausible
    assert len(pairs) >= 3  # wrong labels and outdated ones of several kinds
    assert {WETLAND, WATER, FOREST, SHRUBLAND, GRASSLAND, CULTIVATED} <= set(np.unique(truth).tolist())
    classic = SyntheticScene(height=200, width=200, n_dates=2, seed=1)
    np.testing.assert_array_equal(classic.truth(), classic.reference())


def test_realistic_pixels_mix_across_boundaries_and_classes_overlap():
    """Along a boundary the SWIR (20 m) contrast between the two sides is well below the
    contrast two pixels further in (mixed pixels); NDVI years of grassland and cultivated land,
    and of shrubland and forest, overlap more than on the classic scene."""
    results = {}
    for realistic in (False, True):
        scene = SyntheticScene(height=120, width=120, n_dates=12, seed=4, clouds=False, realistic=realistic)
        swir = scene.block()[0][..., 11].astype(np.float32)
        truth = scene.truth()
        c = np.arange(2, truth.shape[1] - 3)
        left, right = truth[:, c], truth[:, c + 1]
        edge = (left != right) & (truth[:, c - 1] == left) & (truth[:, c - 2] == left) & (
            truth[:, c + 2] == right) & (truth[:, c + 3] == right)
        near = np.abs(swir[:, :, c] - swir[:, :, c + 1])[:, edge].mean()
        far = np.abs(swir[:, :, c - 2] - swir[:, :, c + 3])[:, edge].mean()
        confusion = _nearest_centroid_confusion(scene)
        results[realistic] = (near / far, confusion[GRASSLAND, CULTIVATED] + confusion[CULTIVATED, GRASSLAND],
                              confusion[SHRUBLAND, FOREST] + confusion[FOREST, SHRUBLAND])
    print(results)
    assert results[False][0] > 0.95 and results[True][0] < 0.6
    assert results[True][1] > results[False][1] + 0.05
    assert results[True][2] > results[False][2] + 0.05


def test_default_pipeline_is_not_near_perfect_on_the_realistic_scene(tmp_path):
    """The demo's point: on the realistic scene the held-out accuracy is that of real mapping."""
    from eolulc.core.legend import read_legend
    from eolulc.core.pipeline import default_outputs, run_pipeline
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.timestack import read_info

    data = SyntheticScene(height=128, width=128, n_dates=12, seed=3, realistic=True).write(tmp_path / "data")
    reference = read_reference_raster(str(data.reference), read_info(str(data.l1c)).grid)
    result = run_pipeline(str(data.l1c), reference, read_legend(), default_outputs(tmp_path / "run"))
    oa = result.report["overall_accuracy"]
    print(f"held-out OA {oa:.3f}")
    assert 0.75 < oa < 0.97
