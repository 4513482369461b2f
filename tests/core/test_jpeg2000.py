"""OpenJPEG's partial decoding (core/jpeg2000.py) gives GDAL's pixels: windows across tiles, the
layers of a quality mask, zip members (stored and deflated), raw codestreams; and it steps aside
(None, so GDAL reads and names the damage) for what it does not decode."""

from __future__ import annotations

import sys
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import L2A_BANDS, dns_from_reflectance, write_product  # noqa: E402

from eolulc.core import jpeg2000  # noqa: E402
from eolulc.core.jpeg2000 import decode_window  # noqa: E402
from eolulc.core.safe_import import group_by_day, import_safe, scan_products, target_grid  # noqa: E402
from eolulc.core.timestack import open_stack  # noqa: E402

#: windows (row, col, height, width) of a 300 x 520 px image of 128 px tiles
WINDOWS = [(0, 0, 300, 520), (100, 120, 150, 200), (127, 127, 2, 2), (299, 519, 1, 1), (5, 300, 290, 219)]


def _write(path: Path, data: np.ndarray, driver: str = "JP2OpenJPEG", **options) -> None:
    from osgeo import gdal

    layers = data if data.ndim == 3 else data[None]
    gdal_type = gdal.GDT_Byte if data.dtype == np.uint8 else gdal.GDT_UInt16
    mem = gdal.GetDriverByName("MEM").Create("", layers.shape[2], layers.shape[1], layers.shape[0], gdal_type)
    mem.SetGeoTransform((499980, 10, 0, 5200020, 0, -10))
    for i, layer in enumerate(layers, start=1):
        mem.GetRasterBand(i).WriteArray(layer)
    settings = {"REVERSIBLE": "YES", "QUALITY": "100", "YCC": "NO", "BLOCKXSIZE": "128", "BLOCKYSIZE": "128"}
    creation = [f"{key}={value}" for key, value in {**settings, **options}.items()]
    assert gdal.GetDriverByName(driver).CreateCopy(str(path), mem, options=creation) is not None
    aux = Path(str(path) + ".aux.xml")
    if aux.exists():
        aux.unlink()


@pytest.fixture(scope="module")
def band(tmp_path_factory, reference_scenes) -> Path:
    """Real L1C reflectance as digital numbers, 300 x 520 px in 128 px tiles."""
    values = np.tile(reference_scenes[0, :, :, 3], (3, 6))[:300, :520]
    path = tmp_path_factory.mktemp("jp2") / "T33TVM_20230614T101559_B04_10m.jp2"
    _write(path, np.clip(values * 10000 + 1000, 1, 65535).astype(np.uint16))
    return path


def _gdal(path, window, layers=None) -> np.ndarray:
    row, col, height, width = window
    with rasterio.open(path) as ds:
        return ds.read(layers, window=Window(col, row, width, height))


def test_openjpeg_is_found_on_this_platform():
    # the import's speed depends on it (Debian 12 ships OpenJPEG 2.5); elsewhere GDAL reads
    assert jpeg2000.available()


@pytest.mark.parametrize("window", WINDOWS)
def test_windows_across_tiles_equal_gdals(band, window):
    got = decode_window(str(band), *window)
    assert got is not None
    np.testing.assert_array_equal(got, _gdal(band, window))


def test_quality_mask_layers_equal_gdals(tmp_path):
    rng = np.random.default_rng(3)
    layers = (rng.random((8, 300, 520)) < 0.01).astype(np.uint8)
    layers[5, 200:260, 10:400] = 1  # a block of no data across tiles
    path = tmp_path / "MSK_QUALIT_B04.jp2"
    _write(path, layers, NBITS=1)
    for window in WINDOWS:
        got = decode_window(str(path), *window, components=[2, 5, 7])
        np.testing.assert_array_equal(got, _gdal(path, window, [3, 6, 8]))
    np.testing.assert_array_equal(decode_window(str(path), 0, 0, 300, 520, components=[7]), layers[7:8])


def test_components_in_the_order_asked(tmp_path):
    layers = np.arange(3 * 40 * 50, dtype=np.uint16).reshape(3, 40, 50) % 4000
    path = tmp_path / "three.jp2"
    _write(path, layers)
    np.testing.assert_array_equal(decode_window(str(path), 3, 4, 30, 40, components=[2, 0]),
                                  _gdal(path, (3, 4, 30, 40), [3, 1]))


def test_a_colour_transform_is_left_to_gdal(tmp_path):
    # OpenJPEG skips the multi-component transform when components are selected: wrong values
    rgb = (np.arange(3 * 40 * 50).reshape(3, 40, 50) % 251).astype(np.uint8)
    path = tmp_path / "rgb.jp2"
    _write(path, rgb, YCC="YES")
    assert decode_window(str(path), 0, 0, 40, 50) is None
    assert decode_window(str(path), 0, 0, 40, 50, components=[1]) is None


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_members_through_gdal_virtual_files(band, tmp_path, compression):
    archive = tmp_path / "S2B_MSIL2A_20230614T101559_N0509_R065_T33TVM_20230614T141613.SAFE.zip"
    with zipfile.ZipFile(archive, "w", compression) as zipped:
        zipped.write(band, "S2B.SAFE/GRANULE/G/IMG_DATA/R10m/" + band.name)
    path = f"/vsizip/{archive}/S2B.SAFE/GRANULE/G/IMG_DATA/R10m/{band.name}"
    np.testing.assert_array_equal(decode_window(path, *WINDOWS[1]), _gdal(band, WINDOWS[1]))


def test_raw_codestream(tmp_path, band):
    with rasterio.open(band) as ds:
        values = ds.read(1)
    path = tmp_path / "band.j2k"
    _write(path, values, CODEC="J2K")
    np.testing.assert_array_equal(decode_window(str(path), *WINDOWS[1])[0], values[100:250, 120:320])


def test_what_it_does_not_decode_is_left_to_gdal(band, tmp_path, monkeypatch):
    data = band.read_bytes()
    truncated = tmp_path / "truncated.jp2"
    truncated.write_bytes(data[: len(data) // 2])
    other = tmp_path / "other.jp2"
    other.write_bytes(b"not a JPEG 2000 file")
    assert decode_window(str(truncated), *WINDOWS[0]) is None
    assert decode_window(str(other), *WINDOWS[0]) is None
    assert decode_window(str(tmp_path / "missing.jp2"), *WINDOWS[0]) is None
    assert decode_window(str(band), 200, 400, 101, 10) is None  # beyond the image
    assert decode_window(str(band), *WINDOWS[1], components=[1]) is None  # no such component
    monkeypatch.setenv("EOLULC_JPEG2000", "gdal")
    assert decode_window(str(band), *WINDOWS[1]) is None


def test_import_is_the_same_with_either_decoder(tmp_path, reference_scenes, monkeypatch):
    """A product with quality-mask defects imported on a window inside it: OpenJPEG's partial
    decoding and GDAL's whole tiles give the same stack, bit for bit."""
    dns = dns_from_reflectance(np.tile(reference_scenes[1], (3, 3, 1))[:240, :240], L2A_BANDS, -1000)
    defects = [("B04", "NODATA", (30, 60, 10, 200)), ("B11", "SATURATED", (100, 140, 100, 180))]
    product = write_product(tmp_path, "L2A", dns, datetime(2023, 6, 14, 10, 15, 59), zipped=True,
                            scl=np.full((120, 120), 4, np.uint8), defects=defects).path
    products = scan_products([product])
    bounds = (499980 + 330, 5200020 - 2010, 499980 + 1950, 5200020 - 170)  # not on 20 m or 60 m pixels
    grid = target_grid(group_by_day(products), 10, "EPSG:32633", bounds)
    decoded = []

    def spy(*args, **kwargs):
        out = decode_window(*args, **kwargs)
        decoded.append((args[0].rsplit("/", 1)[-1], out is not None))
        return out

    from eolulc.core import safe_granule

    monkeypatch.setattr(safe_granule, "decode_window", spy)
    monkeypatch.setattr(jpeg2000, "decode_window", spy)
    stacks = []
    for decoder in ("openjpeg", "gdal"):
        monkeypatch.setenv("EOLULC_JPEG2000", decoder)
        result = import_safe(products, tmp_path / f"{decoder}.tif", grid)
        with open_stack(str(tmp_path / f"{decoder}.tif")) as stack:
            stacks.append(stack.read())
        assert result.defective_pixels > 0
    np.testing.assert_array_equal(stacks[0], stacks[1])
    # OpenJPEG decoded every band, SCL and quality mask in the first run, nothing in the second
    opened = {name for name, _ in decoded}
    assert len(opened) == 2 * len(L2A_BANDS) + 1 and any(n.startswith("MSK_QUALIT") for n in opened)
    assert [ok for _, ok in decoded] == [True] * (len(decoded) // 2) + [False] * (len(decoded) // 2)
