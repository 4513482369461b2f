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
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.timestack import Grid, StackInfo, StackWriter, open_stack, split_description

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
