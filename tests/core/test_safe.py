"""Sentinel-2 SAFE import on products written like the real ones (tests/safe_products.py), with
the real L1C reflectance of REFERENCE_SCENES.npy inside the L1C products."""

from __future__ import annotations

import json
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import dns_from_reflectance, native, write_product  # noqa: E402

from eolulc.core.cloudmask import TAG_VALID_FRACTION  # noqa: E402
from eolulc.core.progress import Cancelled, Progress  # noqa: E402
from eolulc.core.safe import find_products, read_product  # noqa: E402
from eolulc.core.safe_import import group_by_day, import_safe, scan_products, target_grid  # noqa: E402
from eolulc.core.sentinel2 import radiometry_from_scale  # noqa: E402
from eolulc.core.timestack import open_stack  # noqa: E402

JUNE = datetime(2023, 6, 14, 10, 15, 59)
OLD = datetime(2021, 6, 14, 10, 15, 59)
SIZE = 60


@pytest.fixture(scope="module")
def l1c(tmp_path_factory, reference_scenes):
    """Two real L1C scenes: one zipped at baseline 05.09 (offset -1000), one folder at 03.01 (none)."""
    root = tmp_path_factory.mktemp("l1c")
    new = write_product(root, "L1C", dns_from_reflectance(reference_scenes[0, :SIZE, :SIZE], add_offset=-1000),
                        JUNE, baseline="05.09", zipped=True)
    old = write_product(root, "L1C", dns_from_reflectance(reference_scenes[2, :SIZE, :SIZE]), OLD, baseline="03.01")
    return root, new, old


def _run(paths, tmp_path, resolution=10, bounds=None, crs=None, **kwargs):
    products = scan_products(paths)
    grid = target_grid(group_by_day(products), resolution, crs, bounds)
    result = import_safe(products, tmp_path / "stack.tif", grid, **kwargs)
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        return result, stack.info, stack.read()


def _reflectance(info, data, band):
    b = info.band_index(band)
    return radiometry_from_scale(info.scales[b], info.offsets[b]).apply(data[..., b])


def test_metadata_comes_from_the_xml(l1c):
    _, new, old = l1c
    product = read_product(new.path)
    assert (product.level, product.baseline, product.quantification) == ("L1C", "05.09", 10000.0)
    assert product.sensing_time.replace(microsecond=0) == JUNE
    assert set(product.offsets.values()) == {-1000.0} and len(product.offsets) == 13
    granule, = product.granules
    assert (granule.tile, granule.crs) == ("33TVM", "EPSG:32633")
    assert granule.bounds == (499980.0, 5200020.0 - 600, 499980.0 + 600, 5200020.0)
    assert granule.bands["B04"].startswith("/vsizip/") and granule.bands["B04"].endswith("_B04.jp2")
    assert read_product(old.path).offsets == {}
    assert product.reflectance_of("B04", 1234) == pytest.approx(0.0234)


def test_l1c_values_are_the_dns_converted_with_the_metadata(l1c, tmp_path, reference_scenes):
    root, new, old = l1c
    result, info, data = _run(find_products(root), tmp_path)
    assert info.dates == (OLD, JUNE) and info.n_bands == 13 and info.dtype == "uint16" and info.nodata == 0
    assert info.tags["EOLULC_S2_LEVEL"] == "L1C"
    # one offset per band for both baselines: the 03.01 product's DNs are raised by 1000
    assert info.scales[3] == pytest.approx(1e-4) and info.offsets[3] == pytest.approx(-0.1)
    for band in ("B02", "B03", "B04", "B08"):
        b = info.band_index(band)
        np.testing.assert_array_equal(data[1, ..., b], new.dns[band])
        np.testing.assert_array_equal(data[0, ..., b], old.dns[band].astype(int) + 1000)
    # true reflectance of both baselines = the real scenes (to the DN rounding)
    np.testing.assert_allclose(_reflectance(info, data, "B04")[1], reference_scenes[0, :SIZE, :SIZE, 3], atol=5.1e-5)
    np.testing.assert_allclose(_reflectance(info, data, "B08")[0], reference_scenes[2, :SIZE, :SIZE, 7], atol=5.1e-5)
    # 20 m and 60 m bands are exact on their own grids
    _, info20, data20 = _run([new.path], tmp_path, resolution=20)
    np.testing.assert_array_equal(data20[0, ..., info20.band_index("B11")], new.dns["B11"])
    _, info60, data60 = _run([new.path], tmp_path, resolution=60)
    np.testing.assert_array_equal(data60[0, ..., info60.band_index("B10")], new.dns["B10"])
    assert (data60.shape[1], data60.shape[2]) == (SIZE // 6, SIZE // 6)


def test_coarse_bands_are_bilinear_on_the_10m_grid(l1c, tmp_path):
    from osgeo import gdal

    _, new, _ = l1c
    _, info, data = _run([new.path], tmp_path)
    path = read_product(new.path).granules[0].bands["B05"]
    warped = gdal.Warp("", path, format="MEM", xRes=10, yRes=10, resampleAlg="bilinear",
                       outputBounds=(499980, 5200020 - 600, 499980 + 600, 5200020)).ReadAsArray()
    ours = data[0, ..., info.band_index("B05")].astype(int)
    assert np.abs(ours[2:-2, 2:-2] - warped[2:-2, 2:-2].astype(int)).max() <= 1
    assert len(np.unique(ours)) > len(np.unique(new.dns["B05"]))  # interpolated, not blocky


def test_only_the_extent_window_is_read(l1c, tmp_path):
    _, new, _ = l1c
    full, _, whole = _run([new.path], tmp_path, bands=["B04"])
    x0, y0 = 499980 + 200, 5200020 - 400
    part, info, window = _run([new.path], tmp_path / "w", bands=["B04"], bounds=(x0, y0, x0 + 150, y0 + 100),
                              crs="EPSG:32633")
    assert window.shape == (1, 10, 15, 1)
    np.testing.assert_array_equal(window[0, ..., 0], whole[0, 30:40, 20:35, 0])
    assert info.grid.transform[2] == x0 and info.grid.transform[5] == y0 + 100
    assert full.source_pixels == SIZE * SIZE
    assert part.source_pixels <= (10 + 4) * (15 + 4) < full.source_pixels / 10


def _scl(size: int) -> np.ndarray:
    """SCL at 20 m: vegetation (4) with a stripe of each class."""
    scl = np.full((size, size), 4, np.uint8)
    for i, cls in enumerate(range(12)):
        scl[i * 2: i * 2 + 2, :10] = cls
    return scl


@pytest.fixture(scope="module")
def l2a(tmp_path_factory, reference_scenes):
    root = tmp_path_factory.mktemp("l2a")
    from safe_products import L2A_BANDS

    dns = dns_from_reflectance(reference_scenes[3, :SIZE, :SIZE], bands=L2A_BANDS, add_offset=-1000)
    return root, write_product(root, "L2A", dns, JUNE, zipped=True, scl=_scl(SIZE // 2))


def test_l2a_scl_mask_and_nodata(l2a, tmp_path):
    root, product = l2a
    result, info, data = _run([product.path], tmp_path, output_mask=tmp_path / "clm.tif",
                              output_scl=tmp_path / "scl.tif")
    assert info.n_bands == 12 and "B10" not in info.bands and info.offsets[0] == pytest.approx(-0.1)
    scl20 = _scl(SIZE // 2)
    scl10 = np.repeat(np.repeat(scl20, 2, 0), 2, 1)
    with open_stack(str(tmp_path / "scl.tif")) as stack:
        np.testing.assert_array_equal(stack.read()[0, ..., 0], scl10)
    with open_stack(str(tmp_path / "clm.tif")) as stack:
        mask = stack.read()[0, ..., 0]
        tags = stack.info.tags
    expected = np.where(np.isin(scl10, (0, 1)), 255, np.isin(scl10, (3, 8, 9, 10)).astype(np.uint8))
    np.testing.assert_array_equal(mask, expected)
    assert json.loads(tags[TAG_VALID_FRACTION]) == [pytest.approx(np.mean(expected == 0), abs=1e-6)]
    # SCL 0 and 1 are nodata in every band; elsewhere the DNs as written
    b4 = info.band_index("B04")
    assert (data[0][np.isin(scl10, (0, 1))] == 0).all()
    np.testing.assert_array_equal(data[0, 8:, :, b4], product.dns["B04"][8:])


def test_scl_classes_and_dilation(l2a, tmp_path):
    _, product = l2a
    _run([product.path], tmp_path, output_mask=tmp_path / "clm.tif", cloud_classes=(9,), dilation=2)
    with open_stack(str(tmp_path / "clm.tif")) as stack:
        mask = stack.read()[0, ..., 0]
    # class 9 lies in rows 36-39 (10 m), columns 0-19; dilated by 2 px
    assert mask[36:40, :20].all() and mask[34, 5] == 1 and mask[41, 5] == 1 and mask[42, 5] == 0
    assert mask[37, 21] == 1 and mask[37, 22] == 0
    assert mask[20, 5] == 0  # class 10 is no longer cloud


def test_two_tiles_of_one_day_are_one_date(tmp_path, reference_scenes):
    scene = reference_scenes[4]
    left = write_product(tmp_path, "L1C", dns_from_reflectance(scene[:SIZE, :SIZE]), OLD, baseline="02.04")
    right = write_product(tmp_path, "L1C", dns_from_reflectance(scene[:SIZE, 40:40 + SIZE]), OLD.replace(minute=16),
                          baseline="02.04", tile="33TWM", ulx=499980 + 400, zipped=True)
    result, info, data = _run([left.path, right.path], tmp_path / "o", bounds=(499980, 5199420, 499980 + 1000, 5200020),
                              crs="EPSG:32633")
    assert info.n_dates == 1 and result.products == [[left.name, right.name]]
    np.testing.assert_array_equal(data[0, :, :SIZE, 3], left.dns["B04"])
    np.testing.assert_array_equal(data[0, :, SIZE:, 3], right.dns["B04"][:, 20:])
    assert (data[0, :, :, 3] > 0).all()


def test_neighbouring_utm_zone_is_reprojected(l1c, tmp_path):
    from rasterio.warp import transform_bounds

    _, new, _ = l1c
    box = transform_bounds("EPSG:32633", "EPSG:32632", 499980, 5199420, 500580, 5200020)
    ulx, uly = np.floor(box[0] / 60) * 60 - 120, np.ceil(box[3] / 60) * 60 + 120
    side = int(np.ceil(max(box[2] - ulx, uly - box[1]) / 60) * 6 + 12)
    dns = {band: np.full((side * 10 // r, side * 10 // r), 1500 + i, np.uint16)
           for i, (band, r) in enumerate(zip(new.dns, (60, 10, 10, 10, 20, 20, 20, 10, 20, 60, 60, 20, 20)))}
    west = write_product(tmp_path, "L1C", dns, JUNE.replace(day=17), baseline="05.09", tile="32TQR", epsg=32632,
                         ulx=ulx, uly=uly)
    _, info, data = _run([new.path, west.path], tmp_path / "o")
    assert info.n_dates == 2 and "32633" in info.grid.crs_wkt and data.shape[1:3] == (SIZE, SIZE)
    for b in range(13):
        assert (data[1, ..., b] == 1500 + b).all()


def test_bad_inputs(l1c, l2a, tmp_path):
    root, new, old = l1c
    other = tmp_path / "notes.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with pytest.raises(ValueError, match="'notes.zip' is not a Sentinel-2 product"):
        read_product(other)
    truncated = tmp_path / new.path.name
    truncated.write_bytes(new.path.read_bytes()[: new.path.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged or incomplete .*download it again"):
        read_product(truncated)
    missing = write_product(tmp_path, "L1C", new.dns, JUNE, leave_out=("B8A",))
    with pytest.raises(ValueError, match="lacks the band file.* of B8A"):
        read_product(missing.path)
    with pytest.raises(ValueError, match="mix processing levels: 2 L1C and 1 L2A"):
        scan_products([new.path, old.path, l2a[1].path])
    with pytest.raises(ValueError, match="no product's footprint meets the extent"):
        _run([new.path], tmp_path, bounds=(600000, 5000000, 601000, 5001000), crs="EPSG:32633")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no Sentinel-2 product"):
        find_products(empty)
    with pytest.raises(ValueError, match="need L2A products"):
        _run([new.path], tmp_path, output_mask=tmp_path / "m.tif")
    assert not (tmp_path / "stack.tif").exists() and not (tmp_path / "m.tif").exists()


def test_cancel_leaves_nothing(l1c, tmp_path):
    _, new, _ = l1c
    products = scan_products([new.path])
    grid = target_grid(group_by_day(products), 10)
    with pytest.raises(Cancelled):
        import_safe(products, tmp_path / "stack.tif", grid, progress=Progress(is_canceled=lambda: True))
    assert list(tmp_path.iterdir()) == []


def test_native_helper_is_a_block_mean():
    assert native(np.arange(16.0).reshape(4, 4), 20).tolist() == [[2.5, 4.5], [10.5, 12.5]]


def test_small_budget_reads_strips_with_the_same_values(l2a, tmp_path):
    """A budget too small for the window: blocks and decoded strips give the stacks of one read
    (resampled bands within 1 DN: GDAL's warper rounds differently at block edges, as before the
    strips), and each source row is decoded about once, not once per block."""
    _, product = l2a
    whole, info, data = _run([product.path], tmp_path / "whole", output_mask=tmp_path / "whole.tif", dilation=2)
    small, _, strips = _run([product.path], tmp_path / "small", output_mask=tmp_path / "small.tif", dilation=2,
                            budget_bytes=120_000)
    assert np.abs(strips.astype(int) - data).max() <= 1 and np.mean(strips != data) < 0.01
    for band in ("B02", "B03", "B04", "B08"):  # on the grid already: copied exactly
        np.testing.assert_array_equal(strips[..., info.band_index(band)], data[..., info.band_index(band)])
    with open_stack(str(tmp_path / "whole.tif")) as a, open_stack(str(tmp_path / "small.tif")) as b:
        np.testing.assert_array_equal(b.read(), a.read())
    assert whole.source_pixels < small.source_pixels < 1.15 * whole.source_pixels


@pytest.mark.parametrize("method, resolution", [("bilinear", 10), ("nearest", 10), ("average", 40), ("average", 30)])
def test_resampling_on_read_gives_the_warpers_values(reference_scenes, method, resolution):
    """The fast path for the 20 m bands (GDAL's resampling on read over the decoded array, seen as
    a MEM dataset) gives exactly the warper's values on real reflectance, so the import's values
    do not depend on which path a band takes."""
    from rasterio.crs import CRS
    from rasterio.enums import Resampling
    from rasterio.transform import Affine
    from rasterio.warp import reproject

    from eolulc.core.safe_granule import resample_on_read

    data = dns_from_reflectance(reference_scenes[1], ("B05",))["B05"]  # 50 x 50 px at 20 m
    src_transform = Affine(20, 0, 499980, 0, -20, 5200020)
    # inside the source, starting half a 20 m pixel off its edges at 10 m
    shift = 10 if resolution == 10 else 0
    dst_transform = Affine(resolution, 0, 499980 + 80 + shift, 0, -resolution, 5200020 - 80 - shift)
    side = (50 * 20 - 200) // resolution
    fast = np.zeros((side, side), np.uint16)
    assert resample_on_read(data, src_transform, fast, dst_transform, Resampling[method])
    warped = np.zeros_like(fast)
    crs = CRS.from_epsg(32633)
    reproject(data, warped, src_transform=src_transform, src_crs=crs, src_nodata=0, dst_transform=dst_transform,
              dst_crs=crs, dst_nodata=0, resampling=Resampling[method])
    np.testing.assert_array_equal(fast, warped)
    assert len(np.unique(fast)) > 100
