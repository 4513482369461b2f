"""An L2A product folder through the toolbox: eolulc:importsafe -> eolulc:lulcpipeline with the
imported SCL mask as the given cloud mask (CLOUD_MASK_SOURCE=1); s2cloudless on it is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import import_l2a_series  # noqa: E402


@pytest.fixture(scope="module")
def l2a_import(tmp_path_factory, reference_scenes, scene_stack, qgis_app):
    """The five real scenes as zipped L2A products on the reference's grid, imported with their
    SCL mask (clouds over the first rows of the second date)."""
    return import_l2a_series(tmp_path_factory.mktemp("l2a_products"), tmp_path_factory.mktemp("l2a_import"),
                             reference_scenes, scene_stack)


def _params(stack: Path, eopatch_dir: Path, out: Path, **extra) -> dict:
    return {"INPUT": str(stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
            "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 8,
            "OUTPUT": str(out / "map.tif"), "OUTPUT_MODEL": str(out / "model.json"), **extra}


def test_l2a_import_then_pipeline_with_the_scl_mask(run_alg, l2a_import, eopatch_dir, tmp_path):
    from eolulc.core.timestack import open_stack, read_info

    stack, mask = l2a_import
    assert read_info(str(stack)).tags["EOLULC_S2_LEVEL"] == "L2A"
    result = run_alg("eolulc:lulcpipeline", _params(stack, eopatch_dir, tmp_path, CLOUD_MASK_SOURCE=1,
                                                    CLOUD_MASK=str(mask)))
    assert 0.3 <= result["OVERALL_ACCURACY"] <= 1.0 and "KAPPA" in result
    with open_stack(result["OUTPUT"]) as classes:
        mapped = classes.read()[0, ..., 0]
    grid = read_info(str(stack)).grid
    assert mapped.shape == (grid.height, grid.width) and len(np.unique(mapped)) > 2
    assert "OUTPUT_CLOUD_MASK" not in result
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["metadata"]["pipeline"]["cloud_mask_source"] == "given"


def test_s2cloudless_on_l2a_is_refused_unless_forced(run_alg, l2a_import, eopatch_dir, tmp_path):
    stack, mask = l2a_import
    with pytest.raises(QgsProcessingException, match="CLOUD_MASK_SOURCE.*L2A.*FORCE_S2CLOUDLESS"):
        run_alg("eolulc:lulcpipeline", _params(stack, eopatch_dir, tmp_path / "refused"))
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    with pytest.raises(QgsProcessingException, match="CLOUD_MASK_SOURCE"):
        # a given mask with the s2cloudless source is not silently ignored
        run_alg("eolulc:lulcpipeline", _params(stack, eopatch_dir, tmp_path / "ignored", CLOUD_MASK=str(mask)))
