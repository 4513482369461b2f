"""Core checks of bad input: damaged files named in one line, sizes refused before allocating,
features without information refused or warned about."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eolulc.core.accuracy import assess, warning_notes
from eolulc.core.cloudmask import CloudDetector, check_radius
from eolulc.core.gdalerrors import DamagedFileError
from eolulc.core.legend import read_legend
from eolulc.core.progress import Progress
from eolulc.core.reference import class_id_from_value, read_reference_raster, require_named_layer
from eolulc.core.timestack import Grid, StackInfo, StackWriter, open_stack
from eolulc.core.train import TrainSettings, constant_columns, erode, parse_erosion

GRID = Grid(64, 48, None, (10.0, 0.0, 0.0, 0.0, -10.0, 0.0))


def _stack(path: Path, dates: int = 6) -> Path:
    from datetime import datetime, timedelta

    info = StackInfo(GRID, tuple(datetime(2020, 1, 1) + timedelta(days=10 * t) for t in range(dates)),
                     ("NDVI",), "float32", nodata=float("nan"))
    with StackWriter(str(path), info) as writer:
        writer.write(np.random.default_rng(0).random((dates, 48, 64, 1), np.float32))
    return path


def test_truncated_stack_names_file_date_band_and_window(tmp_path: Path, capfd):
    data = _stack(tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with open_stack(str(tmp_path / "cut.tif")) as stack, pytest.raises(DamagedFileError) as error:
        stack.read()
    message = str(error.value)
    assert "cut.tif' is damaged or incomplete" in message and "date 2020-" in message and "band NDVI" in message
    assert "rows 0-48, columns 0-64" in message and "\n" not in message
    assert "TIFFFillTile" not in capfd.readouterr().err  # GDAL's own lines are silenced


def test_empty_and_missing_files_say_so(tmp_path: Path):
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(DamagedFileError, match=r"empty file \(0 bytes\)"):
        open_stack(str(tmp_path / "empty.tif"))
    with pytest.raises(DamagedFileError, match="does not exist"):
        open_stack(str(tmp_path / "nothing.tif"))


def test_cloud_disks_are_bounded_and_must_fit_the_raster():
    with pytest.raises(ValueError, match="average_over = 1e\\+06 is outside 0..100"):
        CloudDetector(average_over=1_000_000)
    with pytest.raises(ValueError, match="dilation_size"):
        CloudDetector(dilation_size=-1)
    check_radius("average_over", 63, GRID)
    with pytest.raises(ValueError, match="wider than the raster \\(64 x 48 px\\)"):
        check_radius("average_over", 64, GRID)


def test_erosion_is_bounded_and_must_leave_pixels():
    with pytest.raises(ValueError, match="erosion radius = 1000"):
        parse_erosion("1000")
    with pytest.raises(ValueError, match="wider than the reference"):
        erode(np.ones((10, 12), np.int32), "12")
    assert erode(np.ones((10, 12), np.int32), "11").shape == (10, 12)


@pytest.mark.parametrize("change, text", [
    ({"samples": 10**12}, "training samples"), ({"samples": 5}, "training samples"),
    ({"num_leaves": 10**6}, "leaves"), ({"n_estimators": 0}, "boosting rounds"),
    ({"seed": -1}, "seed"), ({"block_size": 10**9}, "block size"),
])
def test_train_settings_are_bounded(change, text):
    with pytest.raises(ValueError, match=text):
        TrainSettings(**change).validate()


def test_constant_columns_include_all_nan_and_rounding_noise():
    rows = np.array([[1.0, 5.0, np.nan, 0.3], [2.0, 5.0 + 1e-9, np.nan, 0.3], [3.0, 5.0, np.nan, np.nan]],
                    np.float32)
    assert constant_columns(rows).tolist() == [False, True, True, True]


def test_warning_notes_for_chance_level_and_missing_classes():
    legend = read_legend(None)
    truth = np.array([2] * 70 + [3] * 30)
    always_forest = assess(truth, np.full(100, 2), legend)
    notes = warning_notes(always_forest, [2, 3])
    assert any("kappa is 0.000" in n for n in notes)
    assert any("never predicts class(es) 3" in n for n in notes)
    good = assess(truth, truth, legend)
    assert warning_notes(good, [2, 3]) == []


@pytest.mark.parametrize("value, class_id", [(3, 3), (np.int64(3), 3), (3.0, 3), ("3", 3), (" 12 ", 12), ("0", 0)])
def test_class_ids_from_numbers_and_text_holding_numbers(value, class_id):
    assert class_id_from_value(value, "LULC_ID") == class_id


@pytest.mark.parametrize("value", ["forest", "3.5", "", "3 4", 3.5, float("nan"), True])
def test_class_ids_that_are_not_integers_name_the_field(value):
    with pytest.raises(ValueError, match="the field 'CODE' holds .* not an integer class id"):
        class_id_from_value(value, "CODE")


def test_a_file_of_several_layers_needs_the_layer_named(eopatch_dir, tmp_path):
    from osgeo import ogr

    one = str(eopatch_dir / "vector_timeless" / "LULC.gpkg")
    require_named_layer(one)  # a single layer is no question
    two = str(tmp_path / "two.gpkg")
    source = ogr.Open(one)
    target = ogr.GetDriverByName("GPKG").CreateDataSource(two)
    for name in ("fields", "forest_2017"):
        target.CopyLayer(source.GetLayer(), name)
    del target, source
    with pytest.raises(ValueError) as error:
        require_named_layer(two)
    assert "'two.gpkg' holds 2 layers (fields, forest_2017)" in str(error.value)
    assert f"{two}|layername=fields" in str(error.value)
    require_named_layer(f"{two}|layername=forest_2017")


def test_zeros_in_a_reference_with_another_nodata_are_dropped_with_a_warning(eopatch_dir, tmp_path):
    """A reference that declares nodata 255 and also holds 0: 0 is no reference all the same, and
    the user is told how many pixels that drops."""
    import rasterio

    from eolulc.core.eopatch import read_eopatch

    lulc = np.load(eopatch_dir / "mask_timeless" / "LULC.npy")[..., 0].astype(np.uint8)
    lulc[:10] = 255
    grid = read_eopatch(eopatch_dir).grid(*lulc.shape)
    zeros = int((lulc == 0).sum())
    assert zeros > 0
    for nodata, warned in ((255, True), (0, False), (None, False)):
        path = tmp_path / f"reference_{nodata}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="uint8",
                           crs=grid.crs_wkt, transform=rasterio.Affine(*grid.transform), nodata=nodata) as ds:
            ds.write(lulc, 1)
        warnings: list[str] = []
        reference = read_reference_raster(str(path), grid, progress=Progress(on_warning=warnings.append))
        assert (reference.classes == 0).sum() == zeros + (lulc == 255).sum() * (nodata == 255)
        if warned:
            assert len(warnings) == 1 and f"declares nodata 255 but also holds {zeros} pixel(s) of 0" in warnings[0]
        else:
            assert warnings == []
