"""core.scenes on real Sentinel-2 scenes written as per-date GeoTIFFs (no QGIS)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_bounds

from eolulc.core.filedates import date_from_name, date_from_tags
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.scenes import TAG_DUPLICATES, build_time_stack, find_rasters, make_grid, scan_scenes
from eolulc.core.sentinel2 import L1C_BANDS, S2CLOUDLESS_BANDS
from eolulc.core.timestack import open_stack

CRS = "EPSG:32633"
FRAMES = [2, 1, 4, 3, 0]  # scene i of REFERENCE_SCENES.npy is TestEOPatch frame FRAMES[i]


def eopatch_georef(eopatch_dir: Path, height: int, width: int):
    ring = json.loads((eopatch_dir / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return from_bounds(min(xs), min(ys), max(xs), max(ys), width, height)


def scene_dates(eopatch_dir: Path) -> list[datetime]:
    stamps = json.loads((eopatch_dir / "timestamps.json").read_text())
    return [datetime.fromisoformat(stamps[f]) for f in FRAMES]


def write_raster(path: Path, data: np.ndarray, transform, crs=CRS, nodata=None, tags=None, scales=None,
                 descriptions=None) -> Path:
    """``data`` is (height, width, bands)."""
    height, width, count = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                       crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(np.moveaxis(data, -1, 0))
        if tags:
            ds.update_tags(**tags)
        if scales:
            ds.scales = scales
        if descriptions:
            for i, text in enumerate(descriptions):
                ds.set_band_description(i + 1, text)
    return path


def compact(d: datetime) -> str:
    return d.strftime("%Y%m%dT%H%M%S")


def name_styles(dates: list[datetime]) -> list[str]:
    """One naming style per scene: S2 product name, compact date-time, compact date, dashes, underscores."""
    d = dates
    return [
        f"S2A_MSIL1C_{compact(d[0])}_N0204_R122_T33TVM_{compact(d[0])}.tif",
        f"{compact(d[1])}.tif",
        f"scene_{d[2]:%Y%m%d}.tif",
        f"{d[3]:%Y-%m-%d}_toa.tiff",
        f"L1C_{d[4]:%Y_%m_%d}.tif",
    ]


def name_dates(dates: list[datetime]) -> list[datetime]:
    """The dates the names of :func:`name_styles` carry (names without a time give midnight)."""
    return [dates[0], dates[1], datetime(dates[2].year, dates[2].month, dates[2].day),
            datetime(dates[3].year, dates[3].month, dates[3].day),
            datetime(dates[4].year, dates[4].month, dates[4].day)]


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory, eopatch_dir, reference_scenes):
    folder = tmp_path_factory.mktemp("scenes")
    dates = scene_dates(eopatch_dir)
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    for i, name in enumerate(name_styles(dates)):
        write_raster(folder / name, reference_scenes[i], transform)
    return folder


@pytest.mark.parametrize(
    "name, expected",
    [
        ("S2A_MSIL1C_20170314T100021_N0204_R122_T33TVM_20170315T120000.SAFE.tif", datetime(2017, 3, 14, 10, 0, 21)),
        ("S2A_OPER_PRD_MSIL1C_PDMC_20160522T140000_R122_V20160521T100032_20160521T100032.tif",
         datetime(2016, 5, 21, 10, 0, 32)),
        ("T33TVM_20170314T100021_B04.jp2", datetime(2017, 3, 14, 10, 0, 21)),
        ("20170314T100021.tif", datetime(2017, 3, 14, 10, 0, 21)),
        ("20170314.tif", datetime(2017, 3, 14)),
        ("ndvi_2017-03-14.tif", datetime(2017, 3, 14)),
        ("2017_03_14.tif", datetime(2017, 3, 14)),
        ("LC08_L1TP_190028_20170314_20170316_01_T1.tif", datetime(2017, 3, 14)),
        ("T33TVM_N0204_R122.tif", None),  # tile id, baseline and orbit are not dates
        ("20171314.tif", None),  # month 13
        ("2017-02-30.tif", None),  # no 30 February
        ("123456789.tif", None),  # a digit run longer than a date
        ("scene_final.tif", None),
    ],
)
def test_date_from_name_accepts_known_patterns_and_rejects_other_digits(name, expected):
    assert date_from_name(name) == expected


def test_date_from_tags_reads_known_metadata_items():
    assert date_from_tags({"TIFFTAG_DATETIME": "2017:03:14 10:00:21"})[0] == datetime(2017, 3, 14, 10, 0, 21)
    assert date_from_tags({"DATATAKE_1_DATATAKE_SENSING_START": "2017-03-14T10:00:21.026Z"}) == (
        datetime(2017, 3, 14, 10, 0, 21), "DATATAKE_1_DATATAKE_SENSING_START")
    assert date_from_tags({"AREA_OR_POINT": "Area"}) is None


def test_stack_from_reference_scenes_has_sorted_dates_s2_bands_and_exact_values(
    scene_folder, tmp_path, eopatch_dir, reference_scenes
):
    files = find_rasters(scene_folder)
    assert len(files) == 5
    scenes = scan_scenes(files)
    out = tmp_path / "stack.tif"
    info = build_time_stack(scenes, out)

    expected_dates = name_dates(scene_dates(eopatch_dir))
    order = np.argsort(expected_dates, kind="stable")
    with open_stack(str(out)) as stack:
        assert list(stack.info.dates) == sorted(expected_dates)
        assert stack.info.bands == L1C_BANDS
        assert stack.info.dtype == "float32"
        assert stack.info.nodata is None  # nothing declared, nothing resampled: every value is data
        assert stack.info.grid.same_as(scenes[0].grid)
        np.testing.assert_array_equal(stack.read(), reference_scenes[order])
        assert json.loads(stack.info.tags["EOLULC_SOURCE_FILES"]) == [scenes[i].name for i in range(5)]
    assert info.n_dates == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


def test_shuffled_order_and_other_names_give_identical_stack(scene_folder, tmp_path, eopatch_dir):
    files = find_rasters(scene_folder)
    first = tmp_path / "a.tif"
    build_time_stack(scan_scenes(files), first)

    renamed = tmp_path / "renamed"
    renamed.mkdir()
    dates = scene_dates(eopatch_dir)
    # other names carrying the same date-times, listed in reverse order
    shuffled = [
        shutil.copy(scene_folder / name, renamed / f"other_{4 - i}_{compact(d)}.tif")
        for i, (name, d) in enumerate(zip(name_styles(dates), name_dates(dates)))
    ][::-1]
    second = tmp_path / "b.tif"
    build_time_stack(scan_scenes(shuffled), second, budget_bytes=20_000)  # many blocks, too
    third = tmp_path / "c.tif"
    build_time_stack(scan_scenes(list(reversed(files))), third)

    with open_stack(str(first)) as a, open_stack(str(second)) as b, open_stack(str(third)) as c:
        assert a.info.dates == b.info.dates == c.info.dates
        assert a.info.bands == b.info.bands == c.info.bands
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.read(), c.read())
        assert a.info.tags == c.info.tags
    assert first.read_bytes() == third.read_bytes()


def test_files_on_other_grids_are_resampled_onto_the_first_grid(tmp_path, eopatch_dir, reference_scenes):
    dates = scene_dates(eopatch_dir)
    h, w = reference_scenes.shape[1:3]
    base = eopatch_georef(eopatch_dir, h, w)
    write_raster(tmp_path / "2015-07-01.tif", reference_scenes[0], base)  # earliest: defines the grid
    # 20 m: every other pixel of scene 1, same origin
    coarse = rasterio.Affine(base.a * 2, 0, base.c, 0, base.e * 2, base.f)
    write_raster(tmp_path / f"{compact(dates[1])}.tif", reference_scenes[1][::2, ::2], coarse)
    # shifted 3 pixels east
    shifted = rasterio.Affine(base.a, 0, base.c + 3 * base.a, 0, base.e, base.f)
    write_raster(tmp_path / f"{compact(dates[2])}.tif", reference_scenes[2], shifted)
    # another CRS: scene 3 warped (nearest, 5 m) to ETRS89-LAEA
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    dst_t, dst_w, dst_h = calculate_default_transform(CRS, "EPSG:3035", w, h, *rasterio.transform.array_bounds(
        h, w, base), resolution=5.0)
    warped = np.full((13, dst_h, dst_w), np.nan, dtype="float32")
    reproject(np.moveaxis(reference_scenes[3], -1, 0), warped, src_transform=base, src_crs=CRS,
              dst_transform=dst_t, dst_crs="EPSG:3035", resampling=Resampling.nearest, dst_nodata=np.nan)
    write_raster(tmp_path / f"{compact(dates[3])}.tif", np.moveaxis(warped, 0, -1), dst_t, crs="EPSG:3035",
                 nodata=float("nan"))

    files = find_rasters(tmp_path)
    out = tmp_path / "out" / "stack.tif"
    logs: list[str] = []
    scenes = scan_scenes(files)
    build_time_stack(scenes, out, budget_bytes=30_000, progress=Progress(on_log=logs.append))
    assert any("Resampled" in line for line in logs)
    with open_stack(str(out)) as stack:
        info = stack.info
        data = stack.read()
    assert (info.grid.width, info.grid.height) == (w, h)
    assert np.allclose(info.grid.transform, tuple(base)[:6])
    assert np.isnan(info.nodata)
    t_of = {d: i for i, d in enumerate(info.dates)}
    np.testing.assert_array_equal(data[0], reference_scenes[0])
    # 20 m, nearest: each 10 m pixel takes its 20 m parent
    twenty = data[t_of[dates[1]]]
    np.testing.assert_array_equal(twenty, reference_scenes[1][::2, ::2].repeat(2, 0).repeat(2, 1)[:h, :w])
    # shifted: the 3 western columns are not covered -> nodata
    east = data[t_of[dates[2]]]
    assert np.isnan(east[:, :3]).all()
    np.testing.assert_array_equal(east[:, 3:], reference_scenes[2][:, :-3])
    # other CRS, round trip through a 5 m grid: nearly every interior pixel is its original value
    laea = data[t_of[dates[3]]][5:-5, 5:-5]
    same = np.isclose(laea, reference_scenes[3][5:-5, 5:-5])
    assert same.mean() > 0.95


def test_target_grid_from_resolution_and_crs(scene_folder):
    reference = scan_scenes(find_rasters(scene_folder))[0].grid
    coarse = make_grid(reference, resolution=20.0)
    assert (coarse.width, coarse.height) == (50, 51)
    assert coarse.resolution == (20.0, 20.0)
    assert make_grid(reference) is reference
    lonlat = make_grid(reference, crs="EPSG:4326")
    assert "4326" in lonlat.crs_wkt or "WGS 84" in lonlat.crs_wkt
    assert lonlat.resolution[0] < 0.001


def test_target_grid_resampling_average_to_20m(scene_folder, tmp_path, reference_scenes, eopatch_dir):
    scenes = scan_scenes(find_rasters(scene_folder))
    grid = make_grid(scenes[0].grid, resolution=20.0)
    out = tmp_path / "s20.tif"
    build_time_stack(scenes, out, grid, resampling="average")
    with open_stack(str(out)) as stack:
        assert (stack.info.grid.width, stack.info.grid.height) == (50, 51)
        data = stack.read()
    assert np.isfinite(data[:, :50, :, :]).mean() > 0.95
    # the mean reflectance of each date barely changes with averaging
    order = np.argsort(name_dates(scene_dates(eopatch_dir)), kind="stable")
    assert np.allclose(np.nanmean(data, axis=(1, 2)), reference_scenes[order].mean(axis=(1, 2)), atol=0.01)


def test_date_from_metadata_when_name_has_none(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    write_raster(tmp_path / "first.tif", reference_scenes[0], transform,
                 tags={"ACQUISITIONDATETIME": "2017-03-14T10:00:21Z"})
    write_raster(tmp_path / "second.tif", reference_scenes[1], transform,
                 tags={"TIFFTAG_DATETIME": "2017:03:24 10:05:00"})
    scenes = scan_scenes(find_rasters(tmp_path))
    assert [s.date for s in scenes] == [datetime(2017, 3, 14, 10, 0, 21), datetime(2017, 3, 24, 10, 5)]
    assert scenes[0].date_source == "metadata ACQUISITIONDATETIME"


def test_single_date_stack_gives_its_date_and_bands(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    stack = tmp_path / "first.tif"
    build_time_stack(scan_scenes([write_raster(tmp_path / "20170314T100021.tif", reference_scenes[0], transform)]),
                     stack)
    (tmp_path / "20170314T100021.tif").unlink()
    scene = scan_scenes([stack])[0]
    assert scene.date == datetime(2017, 3, 14, 10, 0, 21)
    assert scene.date_source == "EO LULC stack metadata"
    assert scene.bands == L1C_BANDS


def test_files_without_dates_are_listed_in_the_error(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    write_raster(tmp_path / "T33TVM_N0204_R122.tif", reference_scenes[0], transform)
    write_raster(tmp_path / "scene_b.tif", reference_scenes[1], transform)
    write_raster(tmp_path / "20170314.tif", reference_scenes[2], transform)
    with pytest.raises(ValueError, match="no acquisition date") as error:
        scan_scenes(find_rasters(tmp_path))
    message = str(error.value)
    assert "T33TVM_N0204_R122.tif" in message and "scene_b.tif" in message and "20170314.tif" not in message
    assert "2017-03-14" in message and "ACQUISITIONDATETIME" in message


def test_non_raster_file_is_named(tmp_path, scene_folder):
    for path in find_rasters(scene_folder):
        shutil.copy(path, tmp_path)
    (tmp_path / "20170320_notes.tif").write_text("not a raster")
    with pytest.raises(ValueError, match=r"'20170320_notes\.tif' is not a raster"):
        scan_scenes(find_rasters(tmp_path))


def test_band_mismatch_names_the_odd_file(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    write_raster(tmp_path / "20170314.tif", reference_scenes[0], transform)
    write_raster(tmp_path / "20170324.tif", reference_scenes[1][..., :12], transform)
    with pytest.raises(ValueError, match=r"'20170324\.tif' has bands band_1.*'20170314\.tif' has B01"):
        scan_scenes(find_rasters(tmp_path))


def test_bands_named_by_other_software_are_the_same_bands(tmp_path, reference_scenes, eopatch_dir):
    """One date exported by SNAP (B2, B8a, ...), the next with ESA's names: the same bands."""
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    snap = [band if band == "B8A" else f"B{int(band[1:])}" for band in L1C_BANDS]
    snap[L1C_BANDS.index("B8A")] = "B8a"
    write_raster(tmp_path / "20170314.tif", reference_scenes[0], transform, descriptions=L1C_BANDS)
    write_raster(tmp_path / "20170324.tif", reference_scenes[1], transform, descriptions=snap)
    scenes = scan_scenes(find_rasters(tmp_path))
    assert [s.bands for s in scenes] == [L1C_BANDS, tuple(snap)]
    build_time_stack(scenes, tmp_path / "stack.tif")
    with open_stack(str(tmp_path / "stack.tif")) as stack:
        assert stack.info.bands == L1C_BANDS and stack.info.n_dates == 2


def test_missing_folder_and_no_matching_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_rasters(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no file .* matches the file filter"):
        find_rasters(tmp_path)
    with pytest.raises(ValueError, match="no input rasters"):
        scan_scenes([])


def test_uint16_ten_band_files_get_s2cloudless_names_nodata_and_scale(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    ten = [L1C_BANDS.index(b) for b in S2CLOUDLESS_BANDS]
    for i, day in enumerate(("20170314", "20170324")):
        dn = np.round(reference_scenes[i][..., ten] * 10000).astype("uint16")
        dn[:2, :2] = 0
        write_raster(tmp_path / f"{day}.tif", dn, transform, nodata=0, scales=[0.0001] * 10)
    out = tmp_path / "out" / "dn.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path)), out)
    with open_stack(str(out)) as stack:
        assert stack.info.bands == S2CLOUDLESS_BANDS
        assert stack.info.dtype == "uint16"
        assert stack.info.nodata == 0
        assert stack.info.scales == (0.0001,) * 10
        data = stack.read()
    np.testing.assert_allclose(data[0, 2:, 2:] * 0.0001, reference_scenes[0][2:, 2:][..., ten], atol=5e-5)


def test_digital_numbers_without_declared_nodata_get_zero(tmp_path, reference_scenes, eopatch_dir):
    """Exports often drop the products' nodata: the swath edge's 0 DNs must not count as data."""
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    for i, day in enumerate(("20170314", "20170324")):
        dn = np.round(reference_scenes[i] * 10000).astype("uint16")
        dn[:, :30] = 0  # outside the swath
        write_raster(tmp_path / f"{day}.tif", dn, transform)
    logs: list[str] = []
    out = tmp_path / "out" / "dn.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path), Progress(on_log=logs.append)), out)
    with open_stack(str(out)) as stack:
        assert stack.info.nodata == 0
    assert any("no-data digital number" in line for line in logs)
    # float reflectance keeps no nodata of its own: 0.0 can be a value there
    (tmp_path / "f").mkdir()
    write_raster(tmp_path / "f" / "20170314.tif", reference_scenes[0], transform)
    build_time_stack(scan_scenes(find_rasters(tmp_path / "f")), tmp_path / "f.tif")
    with open_stack(str(tmp_path / "f.tif")) as stack:
        assert stack.info.nodata is None


def test_digital_numbers_across_baseline_0400_become_one_reflectance_scale(tmp_path, reference_scenes, eopatch_dir):
    """A season across 2022-01-25 exported without scale metadata: the later files' +1000 offset
    (B10 never below 1000) is removed per file, so every date is reflectance on one scale."""
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    days = ("20211214", "20220113", "20220207", "20220304")
    for i, day in enumerate(days):
        dn = np.round(reference_scenes[i] * 10000).astype("uint16") + np.uint16(1000 if day >= "20220125" else 0)
        dn[:3, :3] = 0
        write_raster(tmp_path / f"{day}.tif", dn, transform)
    logs: list[str] = []
    out = tmp_path / "out" / "season.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path), Progress(on_log=logs.append)), out)
    with open_stack(str(out)) as stack:
        assert stack.info.dtype == "float32" and not stack.info.has_scaling
        data = stack.read()
    assert np.isnan(data[:, :3, :3]).all()
    np.testing.assert_allclose(data[:, 3:, 3:], reference_scenes[:4, 3:, 3:], atol=6e-5)
    assert any("2 file(s) from 2022-01-25" in line and "offset" in line for line in logs)


def _band_files(folder: Path, scenes: np.ndarray, transform, names: dict[str, str], bands=("B02", "B03", "B04",
                                                                                          "B8A")) -> None:
    """One uint16 file per band and date: ``names`` maps a date's key to its name pattern."""
    for i, pattern in enumerate(names.values()):
        for band in bands:
            data = scenes[i][..., L1C_BANDS.index(band):L1C_BANDS.index(band) + 1]
            if band == "B8A":  # a 20 m band: half the pixels, as in a SAFE
                data = data[::2, ::2]
            dn = np.round(data * 10000).astype("uint16")
            step = 2 if band == "B8A" else 1
            write_raster(folder / pattern.format(band=band), dn, transform * transform.scale(step, step))


@pytest.mark.parametrize("names", [
    {"a": "T33TVM_20170314T100021_{band}_10m.tif", "b": "T33TVM_20170324T100031_{band}_10m.tif"},  # IMG_DATA
    {"a": "2017-03-14-00_00_2017-03-14-23_59_Sentinel-2_L1C_{band}_(Raw).tiff",  # Copernicus Browser
     "b": "2017-03-24-00_00_2017-03-24-23_59_Sentinel-2_L1C_{band}_(Raw).tiff"},
])
def test_one_file_per_band_makes_one_date_per_acquisition(tmp_path, reference_scenes, eopatch_dir, names):
    """Files of one band each are put together per acquisition (a VRT in GDAL's memory, nothing
    written beside them); the 20 m band is repeated onto the 10 m pixels."""
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    scenes = reference_scenes[:, :100]  # 20 m pixels cover 10 m pairs exactly, as in a tile
    _band_files(tmp_path, scenes, transform, names)
    write_raster(tmp_path / names["a"].format(band="SCL").replace("_10m", "_20m"),
                 np.ones((50, 50, 1), np.uint8), transform * transform.scale(2, 2))
    before = sorted(p.name for p in tmp_path.iterdir())
    logs: list[str] = []
    out = tmp_path / "out" / "stack.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path), Progress(on_log=logs.append)), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["out"])
    assert any("8 files make 2 acquisition(s) of the bands B02, B03, B04, B8A" in line for line in logs)
    assert any("Left out of the stack, not reflectance bands" in line and "_SCL_" in line for line in logs)
    with open_stack(str(out)) as stack:
        assert stack.info.bands == ("B02", "B03", "B04", "B8A")
        assert [d.date() for d in stack.info.dates] == [datetime(2017, 3, 14).date(), datetime(2017, 3, 24).date()]
        assert (stack.info.grid.width, stack.info.grid.height) == (100, 100)
        assert stack.info.grid.resolution == pytest.approx((abs(transform.a), abs(transform.e)))
        values = stack.read()
    dn = np.round(scenes[:2] * 10000)
    np.testing.assert_array_equal(values[..., :3], dn[..., [1, 2, 3]])
    np.testing.assert_array_equal(values[:, ::2, ::2, 3], dn[:, ::2, ::2, L1C_BANDS.index("B8A")])
    np.testing.assert_array_equal(values[:, 1::2, 1::2, 3], dn[:, ::2, ::2, L1C_BANDS.index("B8A")])


def test_band_files_missing_a_band_are_refused(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    _band_files(tmp_path, reference_scenes, transform, {"a": "T33TVM_20170314T100021_{band}.tif",
                                                        "b": "T33TVM_20170324T100031_{band}.tif"}, ("B02", "B04"))
    (tmp_path / "T33TVM_20170324T100031_B04.tif").unlink()
    with pytest.raises(ValueError, match=r"same bands \(B02, B04\).*T33TVM_20170324T100031 lacks B04"):
        scan_scenes(find_rasters(tmp_path))
    write_raster(tmp_path / "T33TVM_20170324T100031_B04.tif", np.ones((101, 100, 1), np.uint16), transform)
    write_raster(tmp_path / "20170314_mask.tif", np.ones((101, 100, 1), np.uint16), transform)
    with pytest.raises(ValueError, match=r"'20170314_mask.tif' name\(s\) no band"):
        scan_scenes(find_rasters(tmp_path))



def test_l2a_resolution_folders_in_one_folder(tmp_path, reference_scenes, eopatch_dir):
    """An L2A's R10m and R20m flattened into one folder: B02 at 10 and 20 m (the 10 m kept), B05
    and B8A at 20 m only; TCI (3 bands), AOT and SCL left out and said so."""
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    scenes = reference_scenes[:, :100]
    for i, stamp in enumerate(("20230314T100021", "20230324T100031")):
        for band, res in (("B02", 10), ("B02", 20), ("B05", 20), ("B8A", 20), ("SCL", 20), ("AOT", 10)):
            step = res // 10
            data = scenes[i][::step, ::step, L1C_BANDS.index(band) if band in L1C_BANDS else 0][..., None]
            write_raster(tmp_path / f"T33TVM_{stamp}_{band}_{res}m.tif", np.round(data * 10000).astype("uint16"),
                         transform * transform.scale(step, step))
        write_raster(tmp_path / f"T33TVM_{stamp}_TCI_10m.tif", np.ones((100, 100, 3), np.uint8), transform)
    logs: list[str] = []
    out = tmp_path / "out" / "stack.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path), Progress(on_log=logs.append)), out)
    assert any("Left out of the stack, not reflectance bands: T33TVM_20230314T100021_AOT_10m.tif" in line
               for line in logs)
    assert any("the finest kept, 2 coarser file(s) left out (T33TVM_20230314T100021_B02_20m.tif" in line
               for line in logs)
    with open_stack(str(out)) as stack:
        assert stack.info.bands == ("B02", "B05", "B8A") and stack.info.n_dates == 2
        assert stack.info.grid.resolution == pytest.approx((abs(transform.a), abs(transform.e)))
        values = stack.read()
    np.testing.assert_array_equal(values[..., 0], np.round(scenes[:2, ..., 1] * 10000))


def test_band_files_of_two_tiles_stay_apart_and_one_crs_is_needed(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    dn = np.round(reference_scenes[0][..., 1:2] * 10000).astype("uint16")
    for tile in ("T33TVM", "T33TWM"):
        for band in ("B02", "B04"):
            write_raster(tmp_path / f"{tile}_20230314T100021_{band}.tif", dn, transform)
    scenes = scan_scenes(find_rasters(tmp_path))
    assert [s.name for s in scenes] == ["T33TVM_20230314T100021.vrt", "T33TWM_20230314T100021.vrt"]
    assert all(s.bands == ("B02", "B04") for s in scenes)
    write_raster(tmp_path / "T33TWM_20230314T100021_B04.tif", dn, transform, crs="EPSG:32634")
    with pytest.raises(ValueError, match=r"T33TWM_20230314T100021 cannot be put together .*one CRS .*EPSG:32634"):
        scan_scenes(find_rasters(tmp_path))


@pytest.mark.parametrize("name, band, rest", [
    ("T33TWM_20230101T100319_B8A_20m.jp2", "B8A", "T33TWM_20230101T100319__20m"),
    ("2023-06-15-00_00_2023-06-15-23_59_Sentinel-2_L2A_B04_(Raw).tiff", "B04",
     "2023-06-15-00_00_2023-06-15-23_59_Sentinel-2_L2A__(Raw)"),
    ("S2B_20230101_red.tif", "B04", "S2B_20230101_"),
    ("nir_20230101.tif", "B08", "_20230101"),
    ("20170314_NDVI_Red_River.tif", None, "20170314_NDVI_Red_River"),  # a river, not a band
    ("LC08_L2SP_044034_20170314_20200905_02_T1_SR_B5.TIF", None, "LC08_L2SP_044034_20170314_20200905_02_T1_SR_B5"),
])
def test_band_named_in_a_file_name(name, band, rest):
    from eolulc.core.sentinel2 import band_token, without_band_token

    assert band_token(name) == band and without_band_token(name) == rest


def test_virtual_rasters_of_band_files_follow_the_advice(tmp_path, reference_scenes, eopatch_dir):
    """The refusal's advice taken: one VRT per date from the band files (each in its own band).
    Their bands are named after the files, in the VRT's order, so the stack has B02..B8A."""
    from osgeo import gdal

    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    bands = ("B02", "B03", "B04", "B8A")
    (tmp_path / "bands").mkdir()
    (tmp_path / "dates").mkdir()
    for i, day in enumerate(("20170314T100021", "20170324T100031")):
        files = []
        for band in bands:
            dn = np.round(reference_scenes[i][..., L1C_BANDS.index(band):L1C_BANDS.index(band) + 1] * 10000)
            files.append(str(tmp_path / "bands" / f"T33TVM_{day}_{band}_10m.tif"))
            write_raster(Path(files[-1]), dn.astype("uint16"), transform)
        gdal.BuildVRT(str(tmp_path / "dates" / f"date{i}.vrt"), files, separate=True).FlushCache()
    out = tmp_path / "stack.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path / "dates", "*.vrt")), out)
    with open_stack(str(out)) as stack:
        assert stack.info.bands == bands
        assert stack.info.dates == (datetime(2017, 3, 14, 10, 0, 21), datetime(2017, 3, 24, 10, 0, 31))
        values = stack.read()
    expected = reference_scenes[:2][..., [L1C_BANDS.index(b) for b in bands]]
    np.testing.assert_allclose(values.astype(np.float64) / (10000 if values.dtype.kind == "u" else 1),
                               expected, atol=6e-5)


def test_digital_numbers_and_reflectance_mixed_are_refused(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    write_raster(tmp_path / "20170314.tif", np.round(reference_scenes[0] * 10000).astype("uint16"), transform)
    write_raster(tmp_path / "20170324.tif", reference_scenes[1], transform)
    with pytest.raises(ValueError, match=r"'20170314\.tif' holds integers .*'20170324\.tif' floating-point"):
        scan_scenes(find_rasters(tmp_path))


def test_different_scales_give_physical_float_values(tmp_path, reference_scenes, eopatch_dir):
    transform = eopatch_georef(eopatch_dir, *reference_scenes.shape[1:3])
    dn = np.round(reference_scenes[0] * 10000).astype("uint16")
    write_raster(tmp_path / "20170314.tif", dn, transform, nodata=0, scales=[0.0001] * 13)
    write_raster(tmp_path / "20170324.tif", (dn // 2).astype("uint16"), transform, nodata=0, scales=[0.0002] * 13)
    out = tmp_path / "out.tif"
    build_time_stack(scan_scenes(find_rasters(tmp_path)), out)
    with open_stack(str(out)) as stack:
        assert stack.info.dtype == "float32" and not stack.info.has_scaling
        data = stack.read()
    np.testing.assert_allclose(data[0], reference_scenes[0], atol=6e-5)
    np.testing.assert_allclose(data[1], reference_scenes[0], atol=2e-4)


def test_duplicate_dates_are_kept_logged_and_tagged(tmp_path, scene_folder):
    files = find_rasters(scene_folder)
    twin = tmp_path / f"copy_{Path(files[0]).name}"
    shutil.copy(files[0], twin)
    logs: list[str] = []
    out = tmp_path / "out" / "dup.tif"
    build_time_stack(scan_scenes([*files, twin]), out, progress=Progress(on_log=logs.append))
    with open_stack(str(out)) as stack:
        assert stack.info.n_dates == 6
        assert json.loads(stack.info.tags[TAG_DUPLICATES])
    assert any("more than once" in line for line in logs)


def test_cancel_leaves_no_output(tmp_path, scene_folder):
    scenes = scan_scenes(find_rasters(scene_folder))
    calls = {"n": 0}

    def canceled() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    out = tmp_path / "out" / "stack.tif"
    with pytest.raises(Cancelled):
        build_time_stack(scenes, out, budget_bytes=20_000, progress=Progress(is_canceled=canceled))
    assert list((tmp_path / "out").iterdir()) == []
