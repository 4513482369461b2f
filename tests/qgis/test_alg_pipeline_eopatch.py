"""Sinergise's EOPatches through the toolbox: eolulc:importeopatch (six bands, CLM, LULC) ->
eolulc:lulcpipeline with the patch's CLM as the given cloud mask (CLOUD_MASK_SOURCE=1), through
processing.run and qgis_process.bin (the README's second route)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from slovenia_patch import write_slovenia_patch  # noqa: E402


@pytest.fixture(scope="module")
def patch(tmp_path_factory, eopatch_dir, reference_scenes) -> Path:
    return write_slovenia_patch(eopatch_dir, reference_scenes, tmp_path_factory.mktemp("slovenia") / "eopatch-0")


def _import(patch: Path, out: Path) -> dict:
    return {"INPUT": str(patch), "DATA_FEATURES": "BANDS", "MASK_FEATURE": "CLM", "TIMELESS_FEATURE": "LULC",
            "OUTPUT": str(out / "bands.tif"), "OUTPUT_MASK": str(out / "clm.tif"),
            "OUTPUT_TIMELESS": str(out / "lulc.tif")}


def _pipeline(out: Path, eopatch_dir: Path) -> dict:
    return {"INPUT": str(out / "bands.tif"), "CLOUD_MASK_SOURCE": 1, "CLOUD_MASK": str(out / "clm.tif"),
            "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"), "CLASS_FIELD": "LULC_ID",
            "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 8, "OUTPUT": str(out / "map.tif"),
            "OUTPUT_MODEL": str(out / "model.json")}


def test_eopatch_import_then_pipeline_with_its_clm(run_alg, patch, eopatch_dir, tmp_path):
    from eolulc.core.timestack import read_info

    run_alg("eolulc:importeopatch", _import(patch, tmp_path))
    assert read_info(str(tmp_path / "bands.tif")).bands == ("B02", "B03", "B04", "B08", "B11", "B12")
    result = run_alg("eolulc:lulcpipeline", _pipeline(tmp_path, eopatch_dir))
    assert 0.3 <= result["OVERALL_ACCURACY"] <= 1.0
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["metadata"]["pipeline"]["cloud_mask_source"] == "given"
    assert any(name.endswith(" NDVI") for name in model["metadata"]["feature_names"])  # indices from the bands


def test_qgis_process_eopatch_route(qgis_process, patch, eopatch_dir, tmp_path):
    rc, _, text = qgis_process.run("eolulc:importeopatch", _import(patch, tmp_path))
    assert rc == 0, text
    rc, result, text = qgis_process.run("eolulc:lulcpipeline", _pipeline(tmp_path, eopatch_dir))
    assert rc == 0, text
    assert 0.3 <= result["results"]["OVERALL_ACCURACY"] <= 1.0 and (tmp_path / "map.qml").is_file()


def test_ndvi_eopatch_through_the_pipeline(run_alg, eopatch_dir, tmp_path):
    """The real TestEOPatch holds NDVI (and cloud probabilities) but no bands: imported with its
    defaults (NDVI alone), the pipeline runs on it with BANDS=NDVI and no index, or with the
    defaults (the stack is then its own features); an index it lacks bands for is refused naming
    INDICES."""
    from qgis.core import QgsProcessingException

    from eolulc.core.timestack import read_info

    run_alg("eolulc:importeopatch", {"INPUT": str(eopatch_dir), "MASK_FEATURE": "CLM",
                                     "OUTPUT": str(tmp_path / "ndvi.tif"), "OUTPUT_MASK": str(tmp_path / "clm.tif")})
    assert read_info(str(tmp_path / "ndvi.tif")).bands == ("NDVI",)
    params = {"INPUT": str(tmp_path / "ndvi.tif"), "CLOUD_MASK_SOURCE": 1, "CLOUD_MASK": str(tmp_path / "clm.tif"),
              "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"), "CLASS_FIELD": "LULC_ID",
              "BANDS": "NDVI", "INDICES": [], "OUTPUT": str(tmp_path / "map.tif"),
              "OUTPUT_MODEL": str(tmp_path / "model.json")}
    result = run_alg("eolulc:lulcpipeline", params)
    assert result["OVERALL_ACCURACY"] >= 0.9
    model = json.loads((tmp_path / "model.json").read_text())
    assert {name.split(" ")[-1] for name in model["metadata"]["feature_names"]} == {"NDVI"}
    # with the defaults and the given mask, the NDVI stack is its own feature stack (as in 'experiment')
    defaults = run_alg("eolulc:lulcpipeline", {key: value for key, value in params.items() if key not in (
        "BANDS", "INDICES")} | {"OUTPUT": str(tmp_path / "map1.tif"), "OUTPUT_MODEL": str(tmp_path / "model1.json")})
    assert defaults["OVERALL_ACCURACY"] == result["OVERALL_ACCURACY"]
    # a band stack that lacks one band of the defaults is refused, not taken as its own features
    from eolulc.core.timestack import StackInfo, StackWriter, open_stack

    with open_stack(str(tmp_path / "ndvi.tif")) as stack:
        info, ndvi = stack.info, stack.read()
    bands = StackInfo(grid=info.grid, dates=info.dates, bands=("B02", "B03", "B04", "B08", "B12"), dtype="float32",
                      nodata=float("nan"))
    with StackWriter(str(tmp_path / "bands.tif"), bands) as writer:
        writer.write(np.repeat(ndvi, 5, axis=-1))
    with pytest.raises(QgsProcessingException, match=r"\(BANDS\).*lacks the band\(s\) B11"):
        run_alg("eolulc:lulcpipeline", {key: value for key, value in params.items() if key not in ("BANDS", "INDICES")}
                | {"INPUT": str(tmp_path / "bands.tif"), "OUTPUT": str(tmp_path / "map3.tif"),
                   "OUTPUT_MODEL": str(tmp_path / "model3.json")})
    with pytest.raises(QgsProcessingException, match=r"\(INDICES\).*B03, B08.*choose no index"):
        run_alg("eolulc:lulcpipeline", {**params, "INDICES": [1], "OUTPUT": str(tmp_path / "map2.tif"),
                                        "OUTPUT_MODEL": str(tmp_path / "model2.json")})
