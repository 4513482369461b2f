"""Features on the real L1C scenes: bands as reflectance, indices, statistics, block independence."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eolulc.core.features import (
    TAG_FEATURES,
    FeatureReader,
    FeatureSpec,
    Index,
    compute_features,
    normalized_difference,
    parse_custom_indices,
    preset_indices,
    resolve_bands,
)
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.sentinel2 import L1C_BANDS, find_bands, normalise_band_name
from eolulc.core.timestack import StackInfo, StackWriter, open_stack, read_info

ALL_STATS = ("mean", "std", "min", "max", "p10", "p25", "p50", "p75", "p90")


def _band(scenes: np.ndarray, name: str) -> np.ndarray:
    return scenes[..., L1C_BANDS.index(name)].astype(np.float64)


def _nd(scenes: np.ndarray, a: str, b: str) -> np.ndarray:
    x, y = _band(scenes, a), _band(scenes, b)
    return (x - y) / (x + y)


def _read(path: Path):
    with open_stack(str(path)) as stack:
        return stack.info, stack.read()


@pytest.fixture(scope="module")
def default_features(scene_stack, tmp_path_factory):
    path = tmp_path_factory.mktemp("features") / "f.tif"
    compute_features(scene_stack, path, FeatureSpec())
    return _read(path)


def test_default_bands_and_indices_equal_numpy(default_features, scene_stack, reference_scenes):
    info, data = default_features
    assert info.bands == ("B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NDBI")
    assert info.dates == read_info(str(scene_stack)).dates and data.dtype == np.float32
    for i, name in enumerate(info.bands[:6]):
        np.testing.assert_array_equal(data[..., i], reference_scenes[..., L1C_BANDS.index(name)])
    np.testing.assert_allclose(data[..., 6], _nd(reference_scenes, "B08", "B04"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(data[..., 7], _nd(reference_scenes, "B03", "B08"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(data[..., 8], _nd(reference_scenes, "B11", "B08"), rtol=0, atol=1e-6)
    described = json.loads(info.tags[TAG_FEATURES])
    assert described["indices"]["NDVI"] == {"a": "B08", "b": "B04", "formula": "(B08 - B04) / (B08 + B04)"}


def test_digital_numbers_give_the_same_features(default_features, scene_stack_dn, tmp_path):
    logs: list[str] = []
    compute_features(scene_stack_dn, tmp_path / "f.tif", FeatureSpec(), Progress(on_log=logs.append))
    info, data = _read(tmp_path / "f.tif")
    assert info.bands == default_features[0].bands
    np.testing.assert_allclose(data, default_features[1], rtol=0, atol=1e-6)
    assert any("scale 0.0001" in line for line in logs)


@pytest.mark.parametrize("offset, year", [(0, None), (1000, 2023)])
def test_digital_numbers_without_metadata_are_judged_as_the_cloud_mask_does(default_features, scene_stack,
                                                                              reference_scenes, offset, year, tmp_path):
    """Files written without a scale (as most users' exports are): digital numbers are found, and
    under processing baseline 04.00 (dates from 2022-01-25, B10 never below 1000) the offset too,
    so features are reflectance and NDVI is not distorted by the offset."""
    source = read_info(str(scene_stack))
    dates = source.dates if year is None else tuple(d.replace(year=year) for d in source.dates)
    data = np.round(reference_scenes.astype(np.float64) * 10000).astype(np.uint16) + np.uint16(offset)
    stack = tmp_path / "dn.tif"
    with StackWriter(str(stack), StackInfo(source.grid, dates, L1C_BANDS, "uint16", nodata=0)) as writer:
        writer.write(data)
    logs: list[str] = []
    compute_features(stack, tmp_path / "f.tif", FeatureSpec(), Progress(on_log=logs.append))
    _, features = _read(tmp_path / "f.tif")
    np.testing.assert_allclose(features, default_features[1], rtol=0, atol=1e-6)
    assert any(("offset" in line) == bool(offset) and "digital numbers" in line for line in logs if "Values" in line)
    with FeatureReader(stack, FeatureSpec()) as reader:  # the pipeline's features, computed as read
        np.testing.assert_array_equal(reader.read(), features)


def test_other_bands_are_never_rescaled(reference_scenes, scene_stack, tmp_path):
    """A band that is no Sentinel-2 band keeps its values, however large (elevation, here)."""
    info = read_info(str(scene_stack))
    stack = tmp_path / "dem.tif"
    values = (reference_scenes[..., :1] * 0 + 812.5).astype(np.float32)
    with StackWriter(str(stack), StackInfo(info.grid, info.dates, ("DEM",), "float32", nodata=float("nan"))) as writer:
        writer.write(values)
    compute_features(stack, tmp_path / "f.tif", FeatureSpec(bands=("DEM",), indices=()))
    np.testing.assert_array_equal(_read(tmp_path / "f.tif")[1], values)


def test_custom_indices_and_case_insensitive_names(scene_stack, reference_scenes, tmp_path):
    spec = FeatureSpec(bands=("b4", "B8a"), indices=parse_custom_indices("NDRE = B8A, B5;\n MY=B11 B12"))
    compute_features(scene_stack, tmp_path / "f.tif", spec)
    info, data = _read(tmp_path / "f.tif")
    assert info.bands == ("B04", "B8A", "NDRE", "MY")
    np.testing.assert_allclose(data[..., 2], _nd(reference_scenes, "B8A", "B05"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(data[..., 3], _nd(reference_scenes, "B11", "B12"), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "name, key",
    [
        ("B4", "B04"), ("b04", "B04"), ("B04", "B04"), (" B4 ", "B04"), ("B04 (Red)", "B04"),
        ("B4, central wavelength 665 nm", "B04"), ("B2", "B02"), ("B12", "B12"), ("B8A", "B8A"), ("b8a", "B8A"),
        ("B8a, central wavelength 865 nm", "B8A"), ("B08", "B08"), ("B8", "B08"),
        ("B04_mean", "B04_MEAN"), ("ndvi", "NDVI"), ("B100", "B100"), ("B02_10m", "B02"), ("B8A_20m", "B8A"),
        ("B04_10m_mean", "B04_10M_MEAN"), ("blue", "B02"), ("Red", "B04"), ("nir", "B08"), ("nir08", "B8A"),
        ("nir09", "B09"), ("swir16", "B11"), ("swir22", "B12"), ("nir (B08)", "B08"), ("rededge", "REDEDGE"),
        ("Red Edge", "RED EDGE"), ("NIR median", "NIR MEDIAN"), ("red, 8-bit", "B04"),
    ],
)
def test_band_name_variants(name, key):
    assert normalise_band_name(name) == key


def test_band_names_match_in_every_spelling_and_b8a_is_not_b08():
    described = ["B2, central wavelength 490 nm", "B04 (Red)", "b8", "B8a, central wavelength 865 nm"]
    assert find_bands(described, ["B02", "B4", "B08", "B8A"]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="lacks the band.s. B8A"):
        find_bands(["B08"], ["B8A"])
    with pytest.raises(ValueError, match="lacks the band.s. B08"):
        find_bands(["B8A"], ["B08"])
    with pytest.raises(ValueError, match="'Red', 'B04_10m' all read as B04"):
        find_bands(["Red", "Red Edge", "B04_10m"], ["B04"])
    with pytest.raises(ValueError, match="'Red', 'B04_10m' all read as B04"):
        resolve_bands(["Red", "Red Edge", "B04_10m"], ["B4"])
    with pytest.raises(ValueError, match="given twice"):
        FeatureSpec(bands=("B4", "B04"), indices=())


def test_bands_described_as_gdal_and_snap_write_them(default_features, reference_scenes, tmp_path):
    """GDAL's SENTINEL2 driver and SNAP describe bands as "B4, central wavelength 665 nm": the
    default features find every band they need in such a raster, with the same values."""
    path = tmp_path / "snap.tif"
    wavelengths = (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)
    with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=13, dtype="float32",
                       transform=rasterio.transform.from_origin(0, 1010, 10, 10)) as ds:
        ds.write(reference_scenes[0].transpose(2, 0, 1))
        for i, (band, nm) in enumerate(zip(L1C_BANDS, wavelengths)):
            short = band if band == "B8A" else f"B{int(band[1:])}"
            ds.set_band_description(i + 1, f"{short}, central wavelength {nm} nm")
    compute_features(path, tmp_path / "f.tif", FeatureSpec())
    info, data = _read(tmp_path / "f.tif")
    assert info.bands[:6] == ("B2, central wavelength 490 nm", "B3, central wavelength 560 nm",
                              "B4, central wavelength 665 nm", "B8, central wavelength 842 nm",
                              "B11, central wavelength 1610 nm", "B12, central wavelength 2190 nm")
    np.testing.assert_array_equal(data[0], default_features[1][0])


def test_stack_named_by_common_names_band_by_band(scene_stack_dn, tmp_path):
    """A multi-date stack as xarray tools write it: all dates of one band, then the next, named
    ``blue_2017-03-14``, digital numbers without scale metadata. Same features as our stack."""
    from eolulc.core.sentinel2 import COMMON_NAMES

    with open_stack(str(scene_stack_dn)) as stack:
        info, values = stack.info, stack.read()
    path = tmp_path / "xarray.tif"
    with rasterio.open(path, "w", driver="GTiff", width=info.grid.width, height=info.grid.height,
                       count=info.count, dtype="uint16", nodata=0, crs=info.grid.crs_wkt,
                       transform=rasterio.Affine(*info.grid.transform)) as ds:
        layer = 1
        for b, band in enumerate(info.bands):
            for t, date in enumerate(info.dates):
                ds.write(values[t, ..., b], layer)
                ds.set_band_description(layer, f"{COMMON_NAMES[band]}_{date:%Y-%m-%d}")
                layer += 1
    compute_features(scene_stack_dn, tmp_path / "ours.tif", FeatureSpec())
    compute_features(path, tmp_path / "theirs.tif", FeatureSpec())
    (ours_info, ours), (theirs_info, theirs) = _read(tmp_path / "ours.tif"), _read(tmp_path / "theirs.tif")
    assert [d.date() for d in theirs_info.dates] == [d.date() for d in ours_info.dates]
    assert theirs_info.bands == ours_info.bands
    np.testing.assert_array_equal(theirs, ours)


def test_undefined_values_are_nan_never_inf(eopatch_dir, tmp_path):
    from eolulc.core.eopatch import read_eopatch

    grid = read_eopatch(eopatch_dir).grid(101, 100)
    # uint16 DN, nodata 0: B04 = B08 = 0 is nodata; with an offset a + b == 0 for a valid pixel
    data = np.full((2, 101, 100, 2), 1500, np.uint16)
    data[0, :10, :, :] = 0          # nodata in both bands
    data[0, 10:20, :, 0] = 0        # nodata in B08 only
    data[1, :5, :, :] = 1000        # reflectance 0 in both with the -1000 offset: 0 / 0
    data[1, 5:10, :, 0] = 900       # B08 = -0.01, B04 = 0.01: a + b == 0 with a - b != 0
    data[1, 5:10, :, 1] = 1100
    info = StackInfo(grid, (None, None), ("B08", "B04"), "uint16", nodata=0, scales=(1e-4, 1e-4),
                     offsets=(-0.1, -0.1))
    with StackWriter(str(tmp_path / "in.tif"), info) as writer:
        writer.write(data)
    compute_features(tmp_path / "in.tif", tmp_path / "f.tif",
                     FeatureSpec(bands=("B08",), indices=preset_indices(["NDVI"])))
    out_info, out = _read(tmp_path / "f.tif")
    assert not np.isinf(out).any()
    ndvi = out[..., 1]
    assert np.isnan(ndvi[0, :20]).all() and np.isnan(ndvi[1, :10]).all()
    assert np.isnan(out[0, :20, :, 0]).all() and not np.isnan(out[0, 20:, :, 0]).any()
    np.testing.assert_allclose(out[1, 20:, :, 0], 0.05, atol=1e-7)
    np.testing.assert_array_equal(ndvi[1, 20:], 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(normalized_difference(np.zeros(3, np.float32), np.zeros(3, np.float32))).all()


def test_indices_are_eolearns_float32_values(reference_scenes):
    """eo-learn's NormalizedDifferenceIndexTask works in float32 on the float32 bands, with
    ``undefined_value`` (NaN) where the result is not finite: the indices equal that bit for bit
    (a float64 quotient rounded to float32 differs in the last bit on about 4 in 10 pixels of the real scenes)."""
    a = reference_scenes[..., L1C_BANDS.index("B08")].astype(np.float32)
    b = reference_scenes[..., L1C_BANDS.index("B04")].astype(np.float32)
    b.ravel()[:5] = -a.ravel()[:5]  # a zero denominator: not finite -> NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (a - b + 0) / (a + b + 0)
    expected[~np.isfinite(expected)] = np.nan
    actual = normalized_difference(a, b)
    assert actual.dtype == np.float32 and np.isnan(actual.ravel()[:5]).all()
    np.testing.assert_array_equal(actual, expected)


def test_statistics_equal_numpy(default_features, scene_stack, tmp_path):
    # nodata on some dates of some pixels, and one pixel with no data at all
    info, per_date = default_features
    holes = per_date.astype(np.float64)
    rng = np.random.default_rng(0)
    holes[rng.random(holes.shape[:3]) < 0.3] = np.nan
    holes[:, 0, 0] = np.nan
    path = tmp_path / "holes.tif"
    with StackWriter(str(path), info.evolve(tags={})) as writer:
        writer.write(holes.astype(np.float32))
    names = info.bands
    spec = FeatureSpec(bands=names, indices=(), statistics=ALL_STATS)
    result = compute_features(path, tmp_path / "s.tif", spec)
    out_info, out = _read(tmp_path / "s.tif")
    assert out_info.dates == (None,) and out.shape == (1, 101, 100, len(names) * 9)
    assert out_info.bands[:3] == ("B02_mean", "B02_std", "B02_min") and "NDVI_p90" in out_info.bands
    assert result.names == out_info.bands
    # numpy's nanpercentile goes pixel by pixel: compare a 30 x 30 corner (NaN holes included)
    crop = holes[:, :30, :30]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        percentiles = np.nanpercentile(crop, [10, 25, 50, 75, 90], axis=0)
        expected = {
            "mean": np.nanmean(crop, axis=0), "std": np.nanstd(crop, axis=0),
            "min": np.nanmin(crop, axis=0), "max": np.nanmax(crop, axis=0),
            **{f"p{q}": percentiles[i] for i, q in enumerate((10, 25, 50, 75, 90))},
        }
        mean = np.nanmean(holes, axis=0)
    for f, name in enumerate(names):
        for s, stat in enumerate(ALL_STATS):
            np.testing.assert_allclose(out[0, :30, :30, f * 9 + s], expected[stat][..., f], rtol=0, atol=1e-6,
                                       err_msg=f"{name}_{stat}")
        np.testing.assert_allclose(out[0, ..., f * 9], mean[..., f], rtol=0, atol=1e-6)
    assert np.isnan(out[0, 0, 0]).all()


def test_identical_for_any_block_size(scene_stack, tmp_path):
    spec = FeatureSpec(statistics=("mean", "p50"))
    compute_features(scene_stack, tmp_path / "a.tif", spec)
    compute_features(scene_stack, tmp_path / "b.tif", FeatureSpec())
    # a budget that forces many small blocks
    compute_features(scene_stack, tmp_path / "c.tif", spec, budget_bytes=50_000)
    compute_features(scene_stack, tmp_path / "d.tif", FeatureSpec(), budget_bytes=50_000)
    np.testing.assert_array_equal(_read(tmp_path / "a.tif")[1], _read(tmp_path / "c.tif")[1])
    np.testing.assert_array_equal(_read(tmp_path / "b.tif")[1], _read(tmp_path / "d.tif")[1])


def test_undated_raster_is_one_undated_date(reference_scenes, tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=13, dtype="float32") as ds:
        ds.write(reference_scenes[0].transpose(2, 0, 1))
        for i, band in enumerate(L1C_BANDS):
            ds.set_band_description(i + 1, band)
    compute_features(path, tmp_path / "f.tif", FeatureSpec())
    info, data = _read(tmp_path / "f.tif")
    assert info.dates == (None,) and info.bands[-3:] == ("NDVI", "NDWI", "NDBI")
    np.testing.assert_allclose(data[0, ..., 6], _nd(reference_scenes[:1], "B08", "B04")[0], atol=1e-6)


@pytest.mark.parametrize(
    "make, text",
    [
        (lambda: FeatureSpec(bands=(), indices=()), "no features chosen"),
        (lambda: FeatureSpec(statistics=("median",)), "unknown statistic(s) median"),
        (lambda: FeatureSpec(indices=preset_indices(["NDVI"]) + (Index("ndvi", "B03", "B04"),)), "given twice"),
        (lambda: parse_custom_indices("NDRE B8A,B05"), "is not a normalized difference"),
        (lambda: parse_custom_indices("NDRE=B8A"), "is not a normalized difference"),
        (lambda: parse_custom_indices("1X=B8A,B05"), "is not a normalized difference"),
        (lambda: parse_custom_indices("X=B05,b5"), "uses band B05 twice"),
        (lambda: preset_indices(["EVI"]), "unknown index 'EVI'"),
    ],
)
def test_bad_specifications(make, text):
    with pytest.raises(ValueError) as error:
        make()
    assert text in str(error.value)


def test_missing_bands_are_listed_and_nothing_written(scene_stack, tmp_path):
    with pytest.raises(ValueError) as error:
        compute_features(scene_stack, tmp_path / "f.tif",
                         FeatureSpec(bands=("B04", "B13", "VV"), indices=()))
    assert "lacks the band(s) B13, VV" in str(error.value) and "B01, B02" in str(error.value)
    with pytest.raises(ValueError, match="lacks the band.s. B14 needed for X"):
        compute_features(scene_stack, tmp_path / "f.tif", FeatureSpec(indices=parse_custom_indices("X=B14,B04")))
    assert not list(tmp_path.iterdir())


def test_cancel_leaves_no_output(scene_stack, tmp_path):
    calls = []
    progress = Progress(on_progress=calls.append, is_canceled=lambda: len(calls) > 0)
    with pytest.raises(Cancelled):
        compute_features(scene_stack, tmp_path / "f.tif", FeatureSpec(), progress, budget_bytes=50_000)
    assert calls and not list(tmp_path.iterdir())


@pytest.mark.usefixtures("numba_kernels")
@pytest.mark.parametrize("nodata", [0.0, None, 7.0, 0.5, -1.0])
@pytest.mark.parametrize("layout", ["planes", "picked pixels"])
def test_compiled_features_of_digital_numbers_equal_numpy(monkeypatch, reference_scenes, nodata, layout):
    """The one-pass compiled reflectance and indices of digital numbers equal the numpy path bit
    for bit: the processing-baseline offset, nodata values the integers hold or cannot hold,
    indices of bands that sum to 0 (NaN), and the pixel-picked layout of the training rows."""
    from eolulc.core import features

    dn = np.round(np.asarray(reference_scenes)[:, :37, :29] * 10000).astype(np.uint16) + 1000
    dn[:, 3:6, 4:9, 7] = dn[:, 3:6, 4:9, 3] = 1000  # B08 = B04 = 0 after the offset: NDVI 0 / 0
    dn[:, 7:9, 4:9, 7], dn[:, 7:9, 4:9, 3] = 1500, 500  # B08 = -B04: NDVI 0.1 / 0
    dn[1, 10:12] = 7
    info = StackInfo(None, (None,) * dn.shape[0], L1C_BANDS, "uint16", scales=(1e-4,) * 13,
                     offsets=(-0.1,) * 13)
    plan = features.plan_features(info, FeatureSpec(indices=preset_indices(("NDVI", "NDWI", "NDBI"))))
    raw = dn[..., list(plan.read)]
    if layout == "picked pixels":  # (t, pixels, 1, k), as the training rows are read
        raw = raw.reshape(raw.shape[0], -1, raw.shape[-1])[:, ::3, None, :]
    compiled = features.per_date_features(raw, plan, nodata)
    with monkeypatch.context() as patch:
        patch.setattr(features, "kernels", lambda: None)
        expected = features.per_date_features(raw, plan, nodata)
    np.testing.assert_array_equal(compiled, expected)
    assert np.isnan(compiled[..., 6]).any()  # NDVI where B08 + B04 = 0


def test_prepared_feature_stacks_hold_no_sentinel2_band():
    """One rule for lulcpipeline and experiment: a stack is its own features only when it holds no
    Sentinel-2 band (an EOPatch's NDVI), not when a band stack lacks one band (L2A without B11)."""
    from datetime import datetime

    from eolulc.core.features import FeatureSpec, is_prepared_feature_stack
    from eolulc.core.timestack import Grid, StackInfo

    def stack(*bands: str) -> StackInfo:
        return StackInfo(grid=Grid(width=4, height=4, crs_wkt=None, transform=(10.0, 0.0, 0.0, 0.0, -10.0, 0.0)),
                         dates=(datetime(2020, 1, 1),), bands=bands, dtype="float32", nodata=float("nan"))

    spec = FeatureSpec()
    assert is_prepared_feature_stack(stack("NDVI"), spec)
    assert is_prepared_feature_stack(stack("NDVI", "NDWI"), spec)
    assert not is_prepared_feature_stack(stack("B02", "B03", "B04", "B08", "B12"), spec)  # L2A without B11
    assert not is_prepared_feature_stack(stack("B02", "B03", "B04", "B08", "B11", "B12"), spec)
