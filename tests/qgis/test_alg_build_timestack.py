"""eolulc:buildtimestack through real QGIS: processing.run in-process and qgis_process.bin."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_bounds

from eolulc.core.sentinel2 import L1C_BANDS
from eolulc.core.timestack import open_stack

ALG = "eolulc:buildtimestack"
FRAMES = [2, 1, 4, 3, 0]  # scene i of REFERENCE_SCENES.npy is TestEOPatch frame FRAMES[i]


def write_raster(path: Path, data: np.ndarray, transform, crs: str = "EPSG:32633") -> Path:
    """``data`` is (height, width, bands); no band descriptions, like a plain download."""
    height, width, count = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                       crs=crs, transform=transform) as ds:
        ds.write(np.moveaxis(data, -1, 0))
    return path


@pytest.fixture(scope="module")
def scenes_info(eopatch_dir, reference_scenes):
    """(transform, dates of scenes 0..4) of the reference scenes."""
    ring = json.loads((eopatch_dir / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    transform = from_bounds(min(xs), min(ys), max(xs), max(ys), reference_scenes.shape[2], reference_scenes.shape[1])
    stamps = json.loads((eopatch_dir / "timestamps.json").read_text())
    return transform, [datetime.fromisoformat(stamps[f]) for f in FRAMES]


def product_name(d: datetime) -> str:
    c = d.strftime("%Y%m%dT%H%M%S")
    return f"S2B_MSIL1C_{c}_N0204_R122_T33TVM_{c}.tif"


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory, scenes_info, reference_scenes) -> Path:
    """The 5 scenes as Sentinel-2-product-named GeoTIFFs (full date-times)."""
    transform, dates = scenes_info
    folder = tmp_path_factory.mktemp("s2_scenes")
    for i, d in enumerate(dates):
        write_raster(folder / product_name(d), reference_scenes[i], transform)
    return folder


def expected(scenes_info, reference_scenes):
    dates = scenes_info[1]
    order = np.argsort(dates, kind="stable")
    return [dates[i] for i in order], reference_scenes[order]


def all_files(folder: Path) -> list[str]:
    """Every entry of a folder, hidden ``.part`` files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.qgis
def test_processing_run_folder_gives_sorted_five_date_stack(run_alg, scene_folder, scenes_info, reference_scenes,
                                                            tmp_path):
    out = tmp_path / "stack.tif"
    result = run_alg(ALG, {"INPUT_FOLDER": str(scene_folder), "OUTPUT": str(out)})
    assert result["DATES"] == 5
    dates, values = expected(scenes_info, reference_scenes)
    with open_stack(str(out)) as stack:
        assert list(stack.info.dates) == dates
        assert stack.info.bands == L1C_BANDS
        np.testing.assert_array_equal(stack.read(), values)
    assert all_files(tmp_path) == ["stack.tif"]


@pytest.mark.qgis
def test_processing_run_layers_in_other_order_give_identical_stack(run_alg, scene_folder, tmp_path):
    files = sorted(str(p) for p in scene_folder.iterdir())
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    run_alg(ALG, {"LAYERS": files, "OUTPUT": str(first)})
    run_alg(ALG, {"LAYERS": [files[i] for i in (3, 0, 4, 2, 1)], "OUTPUT": str(second)})
    with open_stack(str(first)) as a, open_stack(str(second)) as b:
        assert a.info == b.info
        np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.qgis
def test_processing_run_target_resolution_resamples_onto_20m(run_alg, scene_folder, tmp_path):
    out = tmp_path / "s20.tif"
    run_alg(ALG, {"INPUT_FOLDER": str(scene_folder), "TARGET_RESOLUTION": 20.0, "RESAMPLING": 3, "OUTPUT": str(out)})
    with open_stack(str(out)) as stack:
        assert (stack.info.grid.width, stack.info.grid.height) == (50, 51)
        assert stack.info.grid.resolution == (20.0, 20.0)
        assert stack.info.n_dates == 5


def _bad_folder(kind: str, folder: Path, scene_folder: Path, reference_scenes, transform) -> Path:
    folder.mkdir()
    if kind == "no dates":
        write_raster(folder / "scene_a.tif", reference_scenes[0], transform)
        write_raster(folder / "scene_b.tif", reference_scenes[1], transform)
    elif kind == "non-raster":
        for path in scene_folder.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        (folder / "20170320_readme.tif").write_text("not a raster")
    elif kind == "band mismatch":
        write_raster(folder / "20170314.tif", reference_scenes[0], transform)
        write_raster(folder / "20170324.tif", reference_scenes[1][..., :12], transform)
    elif kind == "empty":
        (folder / "notes.txt").write_text("nothing to stack")
    return folder


@pytest.mark.qgis
@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "does not exist"),
        ("empty", "no file .* matches the file filter"),
        ("no dates", r"no acquisition date found for 2 file\(s\): scene_a\.tif, scene_b\.tif"),
        ("non-raster", r"'20170320_readme\.tif' is not a raster"),
        ("band mismatch", r"'20170324\.tif' has bands band_1"),
    ],
)
def test_processing_run_bad_folder_names_parameter_and_leaves_no_output(
    run_alg, kind, message, tmp_path, scene_folder, scenes_info, reference_scenes
):
    from qgis.core import QgsProcessingException

    folder = tmp_path / "in"
    if kind != "missing":
        _bad_folder(kind, folder, scene_folder, reference_scenes, scenes_info[0])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QgsProcessingException, match=message) as error:
        run_alg(ALG, {"INPUT_FOLDER": str(folder), "OUTPUT": str(out_dir / "stack.tif")})
    assert "(INPUT_FOLDER)" in str(error.value)
    assert all_files(out_dir) == []


@pytest.mark.qgis
def test_processing_run_without_folder_or_layers_says_what_to_give(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"\(INPUT_FOLDER\).*folder of per-date rasters.*layers"):
        run_alg(ALG, {"OUTPUT": str(tmp_path / "stack.tif")})
    assert all_files(tmp_path) == []


@pytest.mark.qgis
def test_processing_run_layers_band_mismatch_names_layers(run_alg, tmp_path, scenes_info, reference_scenes):
    from qgis.core import QgsProcessingException

    folder = _bad_folder("band mismatch", tmp_path / "in", tmp_path, reference_scenes, scenes_info[0])
    out_dir = tmp_path / "out"
    with pytest.raises(QgsProcessingException, match=r"\(LAYERS\).*20170324\.tif"):
        run_alg(ALG, {"LAYERS": [str(p) for p in sorted(folder.iterdir())], "OUTPUT": str(out_dir / "s.tif")})
    assert all_files(out_dir) == []


@pytest.mark.qgis
def test_processing_run_cancel_from_progress_leaves_no_output(run_alg, scene_folder, tmp_path, monkeypatch):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    monkeypatch.setenv("EOLULC_BLOCK_BUDGET_MB", "0.05")  # many small blocks
    feedback = QgsProcessingFeedback()
    seen: list[float] = []

    def on_progress(value: float) -> None:
        seen.append(value)
        if value > 10:  # past the scan, inside the block loop
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QgsProcessingException, match="[Cc]anceled"):
        run_alg(ALG, {"INPUT_FOLDER": str(scene_folder), "OUTPUT": str(out_dir / "stack.tif")}, feedback=feedback)
    assert seen and max(seen) < 100
    assert all_files(out_dir) == []


@pytest.mark.cli
def test_qgis_process_json_run_builds_stack_with_dates(qgis_process, scene_folder, scenes_info, tmp_path):
    out = tmp_path / "cli_stack.tif"
    rc, result, text = qgis_process.run(ALG, {"INPUT_FOLDER": str(scene_folder), "OUTPUT": str(out)})
    assert rc == 0, text
    assert result is not None, text
    assert Path(result["results"]["OUTPUT"]) == out
    assert int(result["results"]["DATES"]) == 5
    with open_stack(str(out)) as stack:
        assert list(stack.info.dates) == sorted(scenes_info[1])
        assert stack.info.bands == L1C_BANDS


@pytest.mark.qgis
def test_processing_run_target_crs_and_extent_crop_the_stack(run_alg, scene_folder, scenes_info, reference_scenes,
                                                             tmp_path):
    transform = scenes_info[0]
    left, top = transform.c, transform.f
    right, bottom = left + 50 * transform.a, top + 40 * transform.e
    out = tmp_path / "crop.tif"
    run_alg(ALG, {
        "INPUT_FOLDER": str(scene_folder),
        "TARGET_CRS": "EPSG:32633",
        "TARGET_EXTENT": f"{left},{right},{bottom},{top} [EPSG:32633]",
        "OUTPUT": str(out),
    })
    _, values = expected(scenes_info, reference_scenes)
    with open_stack(str(out)) as stack:
        assert (stack.info.grid.width, stack.info.grid.height) == (50, 40)
        data = stack.read()
    np.testing.assert_array_equal(data, values[:, :40, :50])  # same CRS and pixel size: a plain crop


@pytest.mark.cli
def test_qgis_process_puts_band_files_together(qgis_process, scenes_info, reference_scenes, tmp_path):
    """An unzipped SAFE's IMG_DATA: one JPEG 2000 file per band and date, all 13 bands (10, 20 and
    60 m as in the product): one stack date per acquisition, the bands in ESA's order, the 10 m
    bands' values as given."""
    from osgeo import gdal

    transform, dates = scenes_info
    folder = tmp_path / "IMG_DATA"
    folder.mkdir()
    size = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B01": 60, "B09": 60, "B10": 60}
    scenes = reference_scenes[:2, :96, :96]  # whole 60 m pixels
    for i in range(2):
        stamp = dates[i].strftime("%Y%m%dT%H%M%S")
        for b, band in enumerate(L1C_BANDS):
            step = size.get(band, 20) // 10
            dn = np.round(scenes[i, ::step, ::step, b:b + 1] * 10000).astype(np.uint16)
            tif = write_raster(tmp_path / "x.tif", dn, transform * transform.scale(step, step))
            gdal.Translate(str(folder / f"T33TVM_{stamp}_{band}.jp2"), str(tif), format="JP2OpenJPEG",
                           creationOptions=["QUALITY=100", "REVERSIBLE=YES"])
        tci = write_raster(tmp_path / "tci.tif", np.ones((96, 96, 3), np.uint8), transform)
        gdal.Translate(str(folder / f"T33TVM_{stamp}_TCI.jp2"), str(tci), format="JP2OpenJPEG")  # true colour
    before = sorted(p.name for p in folder.iterdir())
    out = tmp_path / "stack.tif"
    rc, result, text = qgis_process.run(ALG, {"INPUT_FOLDER": str(folder), "OUTPUT": str(out)})
    assert rc == 0, text
    assert "26 files make 2 acquisition(s)" in text and "not reflectance bands" in text and "_TCI.jp2" in text
    assert sorted(p.name for p in folder.iterdir()) == before
    with open_stack(str(out)) as stack:
        assert stack.info.bands == L1C_BANDS
        assert list(stack.info.dates) == sorted(dates[:2])
        assert (stack.info.grid.width, stack.info.grid.height) == (96, 96)
        values = stack.read()
    order = np.argsort(dates[:2])
    dn = np.round(scenes[order] * 10000)
    for band in ("B02", "B03", "B04", "B08"):
        np.testing.assert_array_equal(values[..., L1C_BANDS.index(band)], dn[..., L1C_BANDS.index(band)])
