"""L2A products through the batch pipeline: eolulc:importsafe -> eolulc:batchpipeline with the
imported SCL mask as the given cloud mask (CLOUD_MASK_SOURCE=1), as one large stack cut into
windows (processing.run) and as a folder of tiles with cloud_mask.tif (qgis_process.bin);
s2cloudless on an L2A stack is refused unless forced."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import import_l2a_series  # noqa: E402

ALG = "eolulc:batchpipeline"


@pytest.fixture(scope="module")
def l2a_tile(tmp_path_factory, reference_scenes, scene_stack, scene_reference, qgis_app) -> Path:
    """The five real scenes as zipped L2A products, imported with their SCL mask into one tile
    folder (l2a.tif, cloud_mask.tif) with the reference rasterized on the same grid."""
    import rasterio

    from eolulc.core.timestack import read_info

    folder = tmp_path_factory.mktemp("l2a_tiles")
    (folder / "t0").mkdir()
    stack, mask = import_l2a_series(tmp_path_factory.mktemp("l2a_products"), folder / "t0", reference_scenes,
                                    scene_stack)
    stack.rename(folder / "t0" / "l2a.tif")
    mask.rename(folder / "t0" / "cloud_mask.tif")
    grid = read_info(str(folder / "t0" / "l2a.tif")).grid
    classes = scene_reference.classes[:grid.height, :grid.width]  # the products start on the stack's corner
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1, "dtype": "uint16",
               "crs": grid.crs_wkt, "transform": rasterio.Affine(*grid.transform[:6]), "nodata": 0}
    with rasterio.open(folder / "t0" / "reference.tif", "w", **profile) as out:
        out.write(classes.astype(np.uint16), 1)
    return folder


def _outputs(out: Path) -> dict:
    return {"WORKERS": 1, "INTERVAL_DAYS": 8, "SAMPLES": 2000, "OUTPUT_FOLDER": str(out / "work"),
            "OUTPUT_MOSAIC": str(out / "map.vrt"), "OUTPUT_REPORT": str(out / "report.html")}


def test_large_l2a_stack_with_its_scl_mask_in_windows(run_alg, l2a_tile, tmp_path):
    """Windows of 48 px of the 97 px L2A stack, each cut from the SCL mask (no s2cloudless, no halo);
    the last row and column are 1 px wide, the corner a single pixel, and all are mapped."""
    import rasterio

    from eolulc.core.timestack import open_stack

    tile = l2a_tile / "t0"
    result = run_alg(ALG, {"INPUT_STACK": str(tile / "l2a.tif"), "REFERENCE": str(tile / "reference.tif"),
                           "TILE_SIZE": 48, "CLOUD_MASK_SOURCE": 1, "CLOUD_MASK": str(tile / "cloud_mask.tif"),
                           **_outputs(tmp_path)})
    assert result["TILES"] == 9 and result["FAILED_TILES"] == ""  # 3 x 3 windows, the corner 1 x 1 px
    assert 0.3 <= result["OVERALL_ACCURACY"] <= 1.0
    with open_stack(str(tile / "cloud_mask.tif")) as given:
        whole = given.read()[..., 0]
    with open_stack(str(tmp_path / "work" / "tiles" / "r00c01" / "cloud_mask.tif")) as window:
        assert np.array_equal(window.read()[..., 0], whole[:, :48, 48:96])  # the given mask, cut, not detected
    # the fixture's SCL clouds (high probability) over the first rows of the second date only
    assert (whole[1, 1:8, :-1] == 1).all() and not (whole[0] == 1).any()
    with rasterio.open(result["OUTPUT_MOSAIC"]) as ds:
        assert (ds.width, ds.height) == (97, 97)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["pipeline"]["cloud_mask_source"] == "given"


def test_s2cloudless_on_l2a_tiles_is_refused_unless_forced(run_alg, l2a_tile, tmp_path):
    tile = l2a_tile / "t0"
    large = {"INPUT_STACK": str(tile / "l2a.tif"), "REFERENCE": str(tile / "reference.tif"), "TILE_SIZE": 64}
    with pytest.raises(QgsProcessingException, match="CLOUD_MASK_SOURCE.*L2A.*FORCE_S2CLOUDLESS"):
        run_alg(ALG, {**large, **_outputs(tmp_path / "a")})
    with pytest.raises(QgsProcessingException, match="CLOUD_MASK_SOURCE.*L2A.*FORCE_S2CLOUDLESS"):
        run_alg(ALG, {"INPUT_FOLDER": str(l2a_tile), **_outputs(tmp_path / "b")})
    with pytest.raises(QgsProcessingException, match="CLOUD_MASK.*large stack and CLOUD_MASK_SOURCE"):
        # a given mask with the s2cloudless source is not silently ignored
        run_alg(ALG, {**large, "CLOUD_MASK": str(tile / "cloud_mask.tif"), **_outputs(tmp_path / "c")})
    with pytest.raises(QgsProcessingException, match="CLOUD_MASK.*give the large stack's mask"):
        run_alg(ALG, {**large, "CLOUD_MASK_SOURCE": 1, **_outputs(tmp_path / "d")})
    for name in "abcd":
        assert not (tmp_path / name / "work" / "tiles").exists()  # refused before any tile started


def test_folder_tile_without_its_mask_is_named(run_alg, l2a_tile, tmp_path):
    import shutil

    folder = tmp_path / "tiles"
    shutil.copytree(l2a_tile, folder)
    (folder / "t0" / "cloud_mask.tif").unlink()
    with pytest.raises(QgsProcessingException, match="INPUT_FOLDER.*t0 have no cloud_mask.tif"):
        run_alg(ALG, {"INPUT_FOLDER": str(folder), "CLOUD_MASK_SOURCE": 1, **_outputs(tmp_path)})


def test_qgis_process_batch_on_l2a_tiles_with_their_scl_masks(qgis_process, l2a_tile, tmp_path):
    rc, result, text = qgis_process.run(ALG, {"INPUT_FOLDER": l2a_tile, "CLOUD_MASK_SOURCE": 1,
                                              **_outputs(tmp_path)})
    assert rc == 0, text
    assert result["results"]["TILES"] == 1 and result["results"]["FAILED_TILES"] == ""
    assert 0.3 <= result["results"]["OVERALL_ACCURACY"] <= 1.0
    # the tile used its cloud_mask.tif: no s2cloudless mask was written in its folder
    assert not (tmp_path / "work" / "tiles" / "t0" / "cloud_mask.tif").exists()
    assert (tmp_path / "map.vrt").is_file() and (tmp_path / "map.qml").is_file()
