"""EOPatch import on the real TestEOPatch, and its bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from eolulc.core.eopatch import import_eopatch, read_eopatch
from eolulc.core.progress import Cancelled, Progress
from eolulc.core.timestack import open_stack


def _copy_patch(src: Path, dst: Path, features: tuple[str, ...] = ("data/NDVI.npy", "mask/CLM.npy")) -> Path:
    """A small writable EOPatch (a few real features), for breaking it on purpose."""
    dst.mkdir()
    for name in ("bbox.geojson", "timestamps.json", *features):
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, dst / name)
    return dst


def test_import_real_patch_equals_arrays(eopatch_dir: Path, tmp_path: Path):
    out = {k: tmp_path / f"{k}.tif" for k in ("ndvi", "clm", "lulc")}
    import_eopatch(eopatch_dir, ["NDVI"], out["ndvi"], "CLM", out["clm"], "LULC", out["lulc"])
    timestamps = json.loads((eopatch_dir / "timestamps.json").read_text())

    for key, feature in (("ndvi", "data/NDVI"), ("clm", "mask/CLM")):
        with open_stack(str(out[key])) as stack:
            info = stack.info
            assert info.n_dates == 68 and info.n_bands == 1
            assert [d.isoformat() for d in info.dates] == timestamps
            np.testing.assert_array_equal(stack.read(), np.load(eopatch_dir / f"{feature}.npy"))
    with open_stack(str(out["lulc"])) as stack:
        assert stack.info.n_dates == 1 and not stack.info.is_dated
        np.testing.assert_array_equal(stack.read()[0], np.load(eopatch_dir / "mask_timeless/LULC.npy"))

    with rasterio.open(out["ndvi"]) as ds:
        assert ds.crs == CRS.from_epsg(32633)
        assert ds.descriptions[0] == f"{timestamps[0]} NDVI"
        assert ds.res == pytest.approx((10.0, 10.0), abs=0.01)
        bounds = json.loads((eopatch_dir / "bbox.geojson").read_text())["coordinates"][0]
        xs, ys = [p[0] for p in bounds], [p[1] for p in bounds]
        assert tuple(ds.bounds) == pytest.approx((min(xs), min(ys), max(xs), max(ys)))
        assert np.isnan(ds.nodata)
    with rasterio.open(out["clm"]) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255


def test_all_data_features_and_is_data_nodata(eopatch_dir: Path, tmp_path: Path):
    patch = _copy_patch(eopatch_dir, tmp_path / "patch", ("data/NDVI.npy", "data/CLP.npy", "mask/CLM.npy"))
    is_data = np.ones((68, 101, 100, 1), np.uint8)
    is_data[3, 10:20, 30:40] = 0
    (patch / "mask" / "IS_DATA.npy").parent.mkdir(exist_ok=True)
    np.save(patch / "mask" / "IS_DATA.npy", is_data)
    out = tmp_path / "data.tif"
    logged = []
    import_eopatch(patch, (), out, progress=Progress(on_log=logged.append))
    with open_stack(str(out)) as stack:  # cloud probabilities are not observations: left out
        assert stack.info.bands == ("NDVI",)
        data = stack.read()
    assert any("Left out of the data stack: CLP" in line for line in logged)
    ndvi = np.load(eopatch_dir / "data/NDVI.npy")[..., 0]
    assert np.isnan(data[3, 10:20, 30:40]).all()
    valid = is_data[..., 0] == 1
    np.testing.assert_array_equal(data[..., 0][valid], ndvi[valid])
    logged.clear()
    import_eopatch(patch, ("CLP", "NDVI"), out, progress=Progress(on_log=logged.append))  # named, they are imported
    assert not any("Left out" in line for line in logged)
    with open_stack(str(out)) as stack:
        assert stack.info.bands == ("CLP", "NDVI")
    (patch / "data" / "NDVI.npy").unlink()
    import_eopatch(patch, (), out)  # cloud probabilities alone: imported rather than nothing
    with open_stack(str(out)) as stack:
        assert stack.info.bands == ("CLP",)


def test_block_size_does_not_change_output(eopatch_dir: Path, tmp_path: Path):
    whole, blocks = tmp_path / "whole.tif", tmp_path / "blocks.tif"
    import_eopatch(eopatch_dir, ["NDVI"], whole)
    import_eopatch(eopatch_dir, ["NDVI"], blocks, budget_bytes=68 * 9 * 17 * 13)
    with open_stack(str(whole)) as a, open_stack(str(blocks)) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_cancel_leaves_nothing(eopatch_dir: Path, tmp_path: Path):
    calls = []
    progress = Progress(is_canceled=lambda: len(calls) > 2, on_progress=calls.append)
    with pytest.raises(Cancelled):
        import_eopatch(eopatch_dir, ["NDVI"], tmp_path / "a.tif", "CLM", tmp_path / "b.tif",
                       budget_bytes=68 * 9 * 20 * 20, progress=progress)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_folder", "does not exist"),
        ("missing_bbox", "no bbox.geojson"),
        ("only_pickles", "never reads pickles"),
        ("unreadable_array", "cannot read the array data/NDVI"),
        ("mismatched_shapes", "different sizes"),
        ("wrong_frame_count", "timestamps.json lists 68"),
        ("unknown_feature", "no data feature 'NOPE'; available: data/NDVI"),
    ],
)
def test_bad_eopatch(eopatch_dir: Path, tmp_path: Path, breakage: str, message: str):
    patch = _copy_patch(eopatch_dir, tmp_path / "patch")
    features = ["NDVI"]
    if breakage == "missing_folder":
        patch = tmp_path / "nowhere"
    elif breakage == "missing_bbox":
        (patch / "bbox.geojson").unlink()
    elif breakage == "only_pickles":
        (patch / "bbox.geojson").unlink()
        (patch / "bbox.pkl").write_bytes(b"\x80\x04N.")
    elif breakage == "unreadable_array":
        (patch / "data/NDVI.npy").write_bytes(b"this is not an array")
    elif breakage == "mismatched_shapes":
        np.save(patch / "mask/CLM.npy", np.zeros((68, 50, 50, 1), np.uint8))
    elif breakage == "wrong_frame_count":
        np.save(patch / "data/NDVI.npy", np.zeros((10, 101, 100, 1), np.float32))
    elif breakage == "unknown_feature":
        features = ["NOPE"]
    outputs = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        import_eopatch(patch, features, outputs / "data.tif", "CLM", outputs / "clm.tif")
    assert not outputs.exists() or list(outputs.iterdir()) == []


def test_read_eopatch_lists_features(eopatch_dir: Path):
    patch = read_eopatch(eopatch_dir)
    assert {"data/NDVI", "mask/CLM", "mask_timeless/LULC", "data_timeless/DEM"} <= set(patch.features)
    assert len(patch.timestamps) == 68
