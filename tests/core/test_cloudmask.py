"""s2cloudless cloud masking on the real L1C scenes: exact probabilities, masks, block independence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import SCENE_FRAMES, write_scene_stack

from eolulc.core.blocks import iter_blocks
from eolulc.core.cloudmask import TAG_VALID_FRACTION, CloudDetector
from eolulc.core.eopatch import read_eopatch
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.sentinel2 import L1C_BANDS
from eolulc.core.timestack import StackInfo, StackWriter, open_stack


def _read(path: Path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        return stack.read()[..., 0]


@pytest.fixture(scope="module")
def expected(eopatch_dir: Path):
    frames = list(SCENE_FRAMES)
    clp = np.load(eopatch_dir / "data/CLP_S2C.npy")[frames, ..., 0]
    clm = np.load(eopatch_dir / "mask/CLM.npy")[frames, ..., 0]
    return clp, clm


@pytest.mark.parametrize("stack", ["scene_stack", "scene_stack_dn"])
def test_10m_probabilities_equal_s2cloudless_and_mask_matches_clm(stack, request, expected, tmp_path):
    clp, clm = expected
    logs: list[str] = []
    result = CloudDetector(processing_resolution=None).run(
        request.getfixturevalue(stack), tmp_path / "p.tif", tmp_path / "m.tif", Progress(on_log=logs.append)
    )
    np.testing.assert_allclose(_read(tmp_path / "p.tif"), clp, rtol=0, atol=1e-6)
    mask = _read(tmp_path / "m.tif")
    assert (mask == clm).mean() >= 0.995
    assert result.factor == 1
    assert any("scale 0.0001" in line for line in logs) == (stack == "scene_stack_dn")
    with rasterio.open(tmp_path / "m.tif") as ds:
        fractions = json.loads(ds.tags()[TAG_VALID_FRACTION])
    np.testing.assert_allclose(fractions, (mask == 0).mean(axis=(1, 2)), atol=1e-6)


def _dn_stack_without_metadata(path: Path, eopatch: Path, scenes: np.ndarray, shift: int = 0) -> Path:
    patch = read_eopatch(eopatch)
    dates = tuple(patch.timestamps[f] for f in SCENE_FRAMES)
    info = StackInfo(patch.grid(101, 100), dates, L1C_BANDS, "uint16", nodata=0)
    with StackWriter(str(path), info) as writer:
        writer.write((np.round(scenes.astype(np.float64) * 10000) + shift).astype(np.uint16))
    return path


def test_digital_numbers_without_metadata_are_detected(eopatch_dir, reference_scenes, expected, tmp_path):
    stack = _dn_stack_without_metadata(tmp_path / "dn.tif", eopatch_dir, reference_scenes)
    logs: list[str] = []
    CloudDetector(processing_resolution=None).run(stack, tmp_path / "p.tif", None, Progress(on_log=logs.append))
    assert any("digital numbers / 10000" in line for line in logs)
    np.testing.assert_allclose(_read(tmp_path / "p.tif"), expected[0], rtol=0, atol=1e-6)



def test_virtual_raster_of_all_band_files_is_the_stack(eopatch_dir, reference_scenes, expected, tmp_path):
    """One file per band and date, as in a SAFE's IMG_DATA (``T33TVM_<time>_B04.tif``), in one
    VRT with each file in its own band (QGIS's *Build Virtual Raster*): dates and bands come from
    the files' names, the probabilities are s2cloudless's."""
    from osgeo import gdal

    patch = read_eopatch(eopatch_dir)
    grid = patch.grid(101, 100)
    files = []
    for t, frame in enumerate(SCENE_FRAMES):
        time = patch.timestamps[frame].strftime("%Y%m%dT%H%M%S")
        for b, band in enumerate(L1C_BANDS):
            path = tmp_path / f"T33TVM_{time}_{band}.tif"
            with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=1, dtype="uint16",
                               crs=grid.crs_wkt, transform=rasterio.Affine(*grid.transform)) as ds:
                ds.write(np.round(reference_scenes[t, ..., b].astype(np.float64) * 10000).astype(np.uint16), 1)
            files.append(str(path))
    gdal.BuildVRT(str(tmp_path / "all.vrt"), sorted(files), separate=True).FlushCache()
    CloudDetector(processing_resolution=None).run(tmp_path / "all.vrt", tmp_path / "p.tif")
    by_time = sorted(range(len(SCENE_FRAMES)), key=lambda t: patch.timestamps[SCENE_FRAMES[t]])  # name order
    with open_stack(str(tmp_path / "p.tif")) as stack:
        assert list(stack.info.dates) == [patch.timestamps[SCENE_FRAMES[t]] for t in by_time]
    np.testing.assert_allclose(_read(tmp_path / "p.tif"), expected[0][by_time], rtol=0, atol=1e-6)


def test_baseline_offset_chosen_by_the_user(eopatch_dir, reference_scenes, expected, tmp_path):
    stack = _dn_stack_without_metadata(tmp_path / "dn.tif", eopatch_dir, reference_scenes, shift=1000)
    CloudDetector(processing_resolution=None, value_scale="dn_offset").run(stack, tmp_path / "p.tif")
    np.testing.assert_allclose(_read(tmp_path / "p.tif"), expected[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("resolution", [None, 40])
def test_identical_for_any_block_size(scene_stack, tmp_path, resolution):
    CloudDetector(processing_resolution=resolution).run(scene_stack, tmp_path / "p1.tif", tmp_path / "m1.tif")
    # a budget that forces a dozen small blocks with their halos
    CloudDetector(processing_resolution=resolution, budget_bytes=2_000_000).run(
        scene_stack, tmp_path / "p2.tif", tmp_path / "m2.tif"
    )
    np.testing.assert_array_equal(_read(tmp_path / "p1.tif"), _read(tmp_path / "p2.tif"))
    np.testing.assert_array_equal(_read(tmp_path / "m1.tif"), _read(tmp_path / "m2.tif"))


@pytest.mark.parametrize(("resolution", "average_over", "dilation", "budget"), [
    (40, 4, 2, None), (40, 4, 2, 1_000_000), (20, 4, 2, 1_000_000), (80, 4, 2, 1_000_000), (160, 12, 4, 1_000_000)])
def test_coarse_grid_by_date_groups_equals_blocks_with_halos(monkeypatch, eopatch_dir, reference_scenes, tmp_path,
                                                              resolution, average_over, dilation, budget):
    """The whole raster's coarse grid a group of dates at a time (blocks read once, no halo) gives
    the probabilities, masks and fractions of blocks read with their halos, bit for bit: factors
    whose ring starts in either half of a cell, a ring of whole cells, one block or many."""
    scenes = reference_scenes.copy()
    scenes[1, 20:30, 40:60, :] = np.nan  # a hole across cells
    scenes[3, :, 97:, 2] = np.nan  # one band missing along the edge
    stack = write_scene_stack(tmp_path / "holes.tif", eopatch_dir, scenes)
    detector = CloudDetector(processing_resolution=resolution, average_over=average_over, dilation_size=dilation,
                             budget_bytes=budget)
    factor = resolution // 10
    with open_stack(str(stack)) as reader:
        groups = detector.date_groups(reader.info, 10, factor)
    assert groups is not None and sorted(d for g in groups.dates for d in g) == list(range(5))
    blocks = list(iter_blocks(101, 100, groups.block_bytes_per_pixel, groups.block_budget, multiple_of=factor))
    assert (len(blocks) > 1) == (budget is not None)
    by_groups = detector.run(stack, tmp_path / "p1.tif", tmp_path / "m1.tif")
    monkeypatch.setattr(CloudDetector, "date_groups", lambda *args: None)
    by_blocks = detector.run(stack, tmp_path / "p2.tif", tmp_path / "m2.tif")
    np.testing.assert_array_equal(_read(tmp_path / "p1.tif"), _read(tmp_path / "p2.tif"))
    np.testing.assert_array_equal(_read(tmp_path / "m1.tif"), _read(tmp_path / "m2.tif"))
    assert by_groups.valid_fraction == by_blocks.valid_fraction
    assert by_groups.cloud_fraction == by_blocks.cloud_fraction
    assert (_read(tmp_path / "m1.tif")[1, 20:30, 40:60] == 255).all()


def test_coarse_processing_agrees_with_10m(scene_stack, expected, tmp_path):
    CloudDetector(processing_resolution=None).run(scene_stack, None, tmp_path / "m10.tif")
    result = CloudDetector(processing_resolution=40).run(scene_stack, tmp_path / "p40.tif", tmp_path / "m40.tif")
    assert result.factor == 4
    assert (_read(tmp_path / "m40.tif") == _read(tmp_path / "m10.tif")).mean() >= 0.99
    assert (_read(tmp_path / "m40.tif") == expected[1]).mean() >= 0.99
    assert np.isfinite(_read(tmp_path / "p40.tif")).all()


def test_nodata_pixels_stay_nodata(eopatch_dir, reference_scenes, tmp_path):
    scenes = reference_scenes.copy()
    scenes[1, 20:30, 40:60, :] = np.nan
    stack = write_scene_stack(tmp_path / "holes.tif", eopatch_dir, scenes)
    CloudDetector(processing_resolution=None).run(stack, tmp_path / "p.tif", tmp_path / "m.tif")
    assert np.isnan(_read(tmp_path / "p.tif")[1, 20:30, 40:60]).all()
    mask = _read(tmp_path / "m.tif")
    assert (mask[1, 20:30, 40:60] == 255).all() and (mask[0] != 255).all()


def test_missing_bands_are_listed(eopatch_dir, reference_scenes, tmp_path):
    patch = read_eopatch(eopatch_dir)
    keep = [b for b in L1C_BANDS if b not in ("B10", "B8A")]
    info = StackInfo(patch.grid(101, 100), tuple(patch.timestamps[:5]), tuple(keep), "float32")
    with StackWriter(str(tmp_path / "s.tif"), info) as writer:
        writer.write(reference_scenes[..., [L1C_BANDS.index(b) for b in keep]])
    with pytest.raises(ValueError, match="lacks the band\\(s\\) B8A, B10"):
        CloudDetector().run(tmp_path / "s.tif", None, tmp_path / "out" / "m.tif")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_raster_without_dates_is_refused(reference_scenes, tmp_path):
    path = tmp_path / "plain.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=101, count=13, dtype="float32") as ds:
        ds.write(reference_scenes[0].transpose(2, 0, 1))
    with pytest.raises(ValueError, match="not a time stack"):
        CloudDetector().run(path, None, tmp_path / "m.tif")


def test_cancel_leaves_nothing(scene_stack, tmp_path):
    out = tmp_path / "out"
    calls: list[float] = []
    progress = Progress(on_progress=calls.append, is_canceled=lambda: bool(calls))
    with pytest.raises(Cancelled):
        CloudDetector(budget_bytes=2_000_000).run(scene_stack, out / "p.tif", out / "m.tif", progress)
    assert calls and not list(out.iterdir())


@pytest.mark.usefixtures("numba_kernels")
@pytest.mark.parametrize("nodata", [0.0, None, 7.0, 0.5, -1.0])
def test_compiled_cell_sums_equal_numpy(monkeypatch, reference_scenes, nodata):
    """The one-pass compiled validity and cell sums of digital numbers equal the numpy path, for
    cells cut by the block's edge and nodata values the integers hold or cannot hold."""
    from eolulc.core import coarsegrid

    dn = np.round(np.asarray(reference_scenes)[..., :10] * 10000).astype(np.uint16)[:, :93, :77]
    dn[:, 5:9, 10:30, 3] = 0
    dn[1, 40:50, :, :] = 7
    compiled = coarsegrid.valid_pixels_and_cells(dn, nodata, 16)
    with monkeypatch.context() as patch:
        patch.setattr(coarsegrid, "kernels", lambda: None)
        expected = coarsegrid.valid_pixels_and_cells(dn, nodata, 16)
    np.testing.assert_array_equal(compiled[0], expected[0])
    for ours, theirs in zip(compiled[1], expected[1]):
        np.testing.assert_array_equal(ours, theirs)
    assert compiled[0].all() == (nodata not in (0.0, 7.0))


@pytest.mark.usefixtures("numba_kernels")
@pytest.mark.parametrize("window", [(0, 0, 70, 53), (32, 16, 40, 61), (90, 64, 27, 36)])
def test_compiled_upsampling_equals_numpy(monkeypatch, window):
    """The one-pass compiled bilinear upsampling gives numpy's float32 values bit for bit, NaN
    where no neighbouring cell has a value, for windows inside and at the raster's edges."""
    from eolulc.core import coarsegrid
    from eolulc.core.blocks import Block

    grid = type("Grid", (), {"height": 117, "width": 100})()
    factor = 8
    row, col, height, width = window
    block = Block(0, 1, row, col, height, width, row, col, height, width)
    cells = np.random.default_rng(1).random((3, 15, 13)).astype(np.float32)
    cells[0, 2:4, 3:5] = np.nan
    cells[1] = np.nan
    cells[2, :, 6] = np.nan
    first = row // factor, col // factor
    coarse = cells[:, first[0]:, first[1]:]
    compiled = coarsegrid.upsample(coarse, factor, block, grid, first)
    with monkeypatch.context() as patch:
        patch.setattr(coarsegrid, "kernels", lambda: None)
        expected = coarsegrid.upsample(coarse, factor, block, grid, first)
    np.testing.assert_array_equal(compiled, expected)
    assert np.isnan(compiled[1]).all() and np.isfinite(compiled[2]).all()


@pytest.mark.parametrize("factor", [2, 4, 6, 8, 16])
@pytest.mark.parametrize("ring", [0, 3, 6, 16])
def test_a_window_upsampled_from_its_cells_equals_the_whole_raster(factor, ring):
    """The cells the date-group path hands to the upsampling (``cells_around`` a block grown by
    its ring) give each pixel of the window the value the whole raster's upsampling gives it."""
    from eolulc.core import coarsegrid
    from eolulc.core.blocks import Block

    grid = type("Grid", (), {"height": 97, "width": 83})()
    n_cells = -(-97 // factor), -(-83 // factor)
    cells = np.random.default_rng(factor).random((2,) + n_cells).astype(np.float32)
    whole = Block(0, 1, 0, 0, 97, 83, 0, 0, 97, 83)
    everywhere = coarsegrid.upsample(cells, factor, whole, grid, (0, 0))
    for row, col in [(0, 0), (factor * 3, factor * 2), (factor * (n_cells[0] - 2), factor * (n_cells[1] - 1))]:
        block = Block(0, 1, row, col, min(2 * factor, 97 - row), min(3 * factor, 83 - col), row, col, 0, 0)
        window = block.grown(ring, grid.height, grid.width)
        rows, cols = coarsegrid.cells_around(window, factor, n_cells)
        values = coarsegrid.upsample(cells[:, rows, cols], factor, window, grid, (rows.start, cols.start))
        expected = everywhere[:, window.read_row:window.read_row + window.read_height,
                              window.read_col:window.read_col + window.read_width]
        np.testing.assert_array_equal(values, expected)
