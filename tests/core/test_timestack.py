"""The time-stack format, block walking and all-or-nothing outputs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from eolulc.core.atomic import atomic_outputs
from eolulc.core.blocks import block_shape, iter_blocks
from eolulc.core.filedates import date_and_band, split_description
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.timestack import Grid, StackInfo, StackWriter, open_stack

GRID = Grid(width=300, height=270, crs_wkt=CRS.from_epsg(32633).to_wkt(),
            transform=(10.0, 0.0, 465180.0, 0.0, -10.0, 5080250.0))
DATES = (datetime(2017, 3, 14, 10, 0, 21), datetime(2017, 4, 3, 10, 6, 1), datetime(2017, 4, 3, 10, 6, 1))
BANDS = ("B02", "B04", "B08")


def _write(path: Path, data: np.ndarray, info: StackInfo, budget: int | None = None) -> None:
    with atomic_outputs([path]) as (temp,), StackWriter(str(temp), info) as writer:
        for block in iter_blocks(info.grid.height, info.grid.width, data.shape[0] * data.shape[3] * 2, budget,
                                 align=16):
            r, c, h, w = block.window
            writer.write(data[:, r:r + h, c:c + w], block.window)


def test_round_trip_with_metadata(tmp_path: Path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 10000, (3, 270, 300, 3)).astype(np.uint16)
    info = StackInfo(GRID, DATES, BANDS, "uint16", nodata=0, scales=(1e-4,) * 3, offsets=(-0.1,) * 3,
                     tags={"EOLULC_NOTE": "x"})
    path = tmp_path / "stack.tif"
    _write(path, data, info, budget=3 * 3 * 2 * 64 * 64)
    with open_stack(str(path)) as stack:
        assert stack.info.dates == DATES and stack.info.bands == BANDS
        assert stack.info.scales == (1e-4,) * 3 and stack.info.offsets == (-0.1,) * 3
        assert stack.info.nodata == 0 and stack.info.tags["EOLULC_NOTE"] == "x"
        assert stack.info.grid.same_as(GRID)
        np.testing.assert_array_equal(stack.read(), data)
        np.testing.assert_array_equal(stack.read((7, 11, 50, 40), dates=[2, 0], bands=[1]),
                                      data[[2, 0], 7:57, 11:51][..., [1]])
    with rasterio.open(path) as ds:
        assert ds.descriptions[4] == "2017-04-03T10:06:01 B04"
        assert ds.tags(5) == {"DATE": "2017-04-03T10:06:01", "BAND": "B04"}
        assert ds.profile["tiled"] and ds.compression is not None
        assert ds.scales[8] == pytest.approx(1e-4)


def test_plain_raster_is_single_undated_date(tmp_path: Path):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=2, dtype="float32") as ds:
        ds.write(np.ones((2, 3, 4), np.float32))
        ds.set_band_description(1, "red")
    with open_stack(str(path)) as stack:
        assert stack.info.dates == (None,) and not stack.info.is_dated
        assert stack.info.bands == ("red", "band_2")
        assert stack.read().shape == (1, 3, 4, 2)


def test_stack_from_other_tool_recovered_from_descriptions(tmp_path: Path):
    path = tmp_path / "other.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=4, dtype="uint8") as ds:
        for i, text in enumerate(["2017-01-01 B04", "2017-01-01 B08", "2017-02-01 B04", "2017-02-01 B08"]):
            ds.set_band_description(i + 1, text)
    with open_stack(str(path)) as stack:
        assert stack.info.dates == (datetime(2017, 1, 1), datetime(2017, 2, 1))
        assert stack.info.bands == ("B04", "B08")


def _described(path: Path, descriptions: list[str], data: np.ndarray) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=len(descriptions), dtype=data.dtype.name) as ds:
        ds.write(data)
        for i, text in enumerate(descriptions):
            ds.set_band_description(i + 1, text)


@pytest.mark.parametrize("text, date, band", [
    ("20170314T100021_20170314T100316_T33TWM_B4", datetime(2017, 3, 14, 10, 0, 21), "B04"),  # Earth Engine
    ("B8A_2017-03-14", datetime(2017, 3, 14), "B8A"),
    ("nir 20170314", datetime(2017, 3, 14), "B08"),
    ("T33TWM_20170314T100021_B02_10m", datetime(2017, 3, 14, 10, 0, 21), "B02"),
    ("NDVI_20170314", datetime(2017, 3, 14), "NDVI"),
    ("20170314T100021_T33TWM_NDVI_mean", datetime(2017, 3, 14, 10, 0, 21), "NDVI_mean"),
    ("2017-03-14 B4, central wavelength 665 nm", datetime(2017, 3, 14), "B4, central wavelength 665 nm"),
])
def test_date_and_band_written_by_other_tools(text, date, band):
    assert date_and_band(text) == (date, band)


@pytest.mark.parametrize("text", ["B04", "band_3", "NDVI", "20171399_B04", ""])
def test_no_date_no_time_stack_band(text):
    assert date_and_band(text) is None


def test_earth_engine_stack_is_a_time_stack(tmp_path: Path):
    """``toBands()`` of an image collection: each date's bands in turn, named after the image."""
    data = np.arange(6 * 3 * 4, dtype=np.uint16).reshape(6, 3, 4)
    names = [f"{day}T100021_{day}T100316_T33TWM_{band}" for day in ("20170314", "20170403", "20170513")
             for band in ("B4", "B8")]
    _described(tmp_path / "gee.tif", names, data)
    with open_stack(str(tmp_path / "gee.tif")) as stack:
        assert stack.info.dates == tuple(datetime(2017, m, d, 10, 0, 21) for m, d in ((3, 14), (4, 3), (5, 13)))
        assert stack.info.bands == ("B04", "B08") and not stack.info.band_major
        np.testing.assert_array_equal(stack.read()[2, ..., 1], data[5])


def test_band_by_band_stack_reads_each_date_band(tmp_path: Path):
    """All dates of one band, then the next (xarray's ``band, time`` flattened): read as dates x
    bands; written again by EO LULC, date by date."""
    data = np.arange(6 * 3 * 4, dtype=np.uint16).reshape(6, 3, 4)
    names = [f"{band}_{day}" for band in ("blue", "red") for day in ("2017-03-14", "2017-04-03", "2017-05-13")]
    _described(tmp_path / "bandwise.tif", names, data)
    with open_stack(str(tmp_path / "bandwise.tif")) as stack:
        info = stack.info
        assert info.band_major and info.bands == ("B02", "B04") and info.n_dates == 3
        values = stack.read()
        np.testing.assert_array_equal(values[1, ..., 0], data[1])  # blue, 2017-04-03
        np.testing.assert_array_equal(values[1, ..., 1], data[4])  # red, 2017-04-03
        np.testing.assert_array_equal(stack.read(dates=[2], bands=[1])[0, ..., 0], data[5])
    with StackWriter(str(tmp_path / "ours.tif"), info) as writer:
        for t in (2, 0, 1):  # date by date, as the steps write
            writer.write(values[[t]], dates=[t])
    with rasterio.open(tmp_path / "ours.tif") as ds:
        assert ds.descriptions[:3] == ("2017-03-14T00:00:00 B02", "2017-03-14T00:00:00 B04",
                                       "2017-04-03T00:00:00 B02")
        np.testing.assert_array_equal(ds.read(3), data[1])  # 2017-04-03 blue
    with open_stack(str(tmp_path / "ours.tif")) as ours:
        assert not ours.info.band_major and ours.info.dates == info.dates
        np.testing.assert_array_equal(ours.read(), values)


def test_band_by_band_scales_follow_their_band(tmp_path: Path):
    data = np.ones((4, 3, 4), np.uint16)
    path = tmp_path / "scaled.tif"
    _described(path, ["B04_20170314", "B04_20170403", "B08_20170314", "B08_20170403"], data)
    with rasterio.open(path, "r+") as ds:
        ds.scales = (1e-4, 1e-4, 2e-4, 2e-4)
        ds.offsets = (0.0, 0.0, -0.1, -0.1)
    with open_stack(str(path)) as stack:
        assert stack.info.band_major
        assert stack.info.scales == pytest.approx((1e-4, 2e-4)) and stack.info.offsets == (0.0, -0.1)


@pytest.mark.parametrize("descriptions, dates, bands", [
    (["SRTM 2000-02-11"], (None,), ("SRTM 2000-02-11",)),  # one date somewhere: a band of its own
    (["LULC_20180601"], (None,), ("LULC_20180601",)),
    (["NDVI (nir-red) 20170314", "NDWI (green-nir) 20170314", "NDVI (nir-red) 20170403",
      "NDWI (green-nir) 20170403"], (datetime(2017, 3, 14), datetime(2017, 4, 3)),
     ("NDVI (nir-red)", "NDWI (green-nir)")),  # the words in an index's name are no bands
    (["20230101_B02", "20230101_B03"], (datetime(2023, 1, 1),), ("B02", "B03")),  # one date, Sentinel-2 bands
    (["LC08_044034_20170314_SR_B5", "LC08_044034_20170330_SR_B5"], (datetime(2017, 3, 14), datetime(2017, 3, 30)),
     ("LC08_044034_SR_B5",)),  # Landsat's B5 is no Sentinel-2 B05
])
def test_dated_names_that_are_not_sentinel2_bands(tmp_path: Path, descriptions, dates, bands):
    _described(tmp_path / "x.tif", descriptions, np.zeros((len(descriptions), 2, 2), np.uint8))
    with open_stack(str(tmp_path / "x.tif")) as stack:
        assert stack.info.dates == dates and stack.info.bands == bands


def test_virtual_raster_of_files_named_by_date_is_a_time_stack(tmp_path: Path):
    from osgeo import gdal

    files = []
    for day in ("20230101", "20230111", "20230121"):
        files.append(str(tmp_path / f"NDVI_{day}.tif"))
        with rasterio.open(files[-1], "w", driver="GTiff", width=4, height=3, count=1, dtype="float32",
                           crs=CRS.from_epsg(32633), transform=rasterio.Affine(10, 0, 0, 0, -10, 30)) as ds:
            ds.write(np.full((1, 3, 4), int(day[-2:]), np.float32))
    gdal.BuildVRT(str(tmp_path / "ndvi.vrt"), files, separate=True).FlushCache()
    with open_stack(str(tmp_path / "ndvi.vrt")) as stack:
        assert stack.info.bands == ("NDVI",) and stack.info.n_dates == 3
        assert stack.read()[:, 0, 0, 0].tolist() == [1, 11, 21]


def test_virtual_raster_of_band_files_is_a_time_stack(tmp_path: Path):
    """QGIS's *Build Virtual Raster* (each file in its own band) over SAFE band files: GDAL writes
    no descriptions, the files' names give each band's date and band."""
    from osgeo import gdal

    files = []
    for day, value in (("20230101T100319", 1), ("20230111T100321", 2)):
        for band in ("B02", "B03", "B04", "B08"):
            path = tmp_path / f"T33TWM_{day}_{band}_10m.tif"
            data = np.full((1, 3, 4), value * 100 + int(band[1:]), np.uint16)
            with rasterio.open(path, "w", driver="GTiff", width=4, height=3, count=1, dtype="uint16",
                               crs=CRS.from_epsg(32633), transform=rasterio.Affine(10, 0, 0, 0, -10, 30)) as ds:
                ds.write(data)
            files.append(str(path))
    vrt = tmp_path / "stack.vrt"
    gdal.BuildVRT(str(vrt), files, separate=True).FlushCache()
    with open_stack(str(vrt)) as stack:
        assert stack.info.dates == (datetime(2023, 1, 1, 10, 3, 19), datetime(2023, 1, 11, 10, 3, 21))
        assert stack.info.bands == ("B02", "B03", "B04", "B08")
        np.testing.assert_array_equal(stack.read()[1, 0, 0], [202, 203, 204, 208])


def test_split_description():
    assert split_description("2017-03-14T10:00:21 B04") == (datetime(2017, 3, 14, 10, 0, 21), "B04")
    assert split_description("B04") is None


def test_unreadable_file_is_a_value_error(tmp_path: Path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(ValueError, match="bad.tif' is not a raster GDAL can read"):
        open_stack(str(bad))


def test_blocks_cover_raster_once_and_respect_budget():
    budget = 200 * 1024
    seen = np.zeros((1000, 700), int)
    blocks = list(iter_blocks(1000, 700, 100, budget, halo=3))
    for block in blocks:
        seen[block.row:block.row + block.height, block.col:block.col + block.width] += 1
        assert block.read_height * block.read_width * 100 <= budget
        rows, cols = block.inner
        assert rows.stop - rows.start == block.height and cols.stop - cols.start == block.width
    assert (seen == 1).all() and len(blocks) == blocks[0].count
    assert block_shape(10, 10, 1, 10**9) == (10, 10)
    assert block_shape(5000, 5000, 4, 1) == (1, 1)


def test_blocks_check_cancel_and_report_progress():
    reported: list[float] = []
    progress = Progress(on_progress=reported.append, is_canceled=lambda: len(reported) >= 2)
    with pytest.raises(Cancelled):
        for _ in iter_blocks(100, 100, 1000, 1000 * 100, progress=progress):
            pass
    assert len(reported) == 2 and 0 < reported[0] < reported[1] < 1


def test_atomic_outputs_all_or_nothing(tmp_path: Path):
    kept = tmp_path / "kept.tif"
    kept.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_outputs([kept, tmp_path / "b.tif"]) as temps:
            for temp in temps:
                temp.write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.tif"] and kept.read_text() == "old"
    with atomic_outputs([kept, None, tmp_path / "sub" / "b.tif"]) as temps:
        assert temps[1] is None
        temps[0].write_text("new")
        temps[2].write_text("b")
    assert kept.read_text() == "new" and (tmp_path / "sub" / "b.tif").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.tif", "sub"]
