"""An L2A product folder through the toolbox: eolulc:importsafe -> eolulc:experiment with the
imported SCL mask as CLOUD_MASK (no s2cloudless, features still computed from the bands); without
the mask s2cloudless on the L2A stack is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import import_l2a_series  # noqa: E402

ALG = "eolulc:experiment"


@pytest.fixture(scope="module")
def l2a_import(tmp_path_factory, reference_scenes, scene_stack, qgis_app):
    """The five real scenes as zipped L2A products, imported with their SCL mask."""
    return import_l2a_series(tmp_path_factory.mktemp("l2a_products"), tmp_path_factory.mktemp("l2a_import"),
                             reference_scenes, scene_stack)


def _params(stack: Path, eopatch_dir: Path, out: Path, **extra) -> dict:
    return {"INPUT": str(stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
            "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "EXPERIMENT": 1, "INTERVALS": "16", "SEEDS": 1,
            "PARALLEL_VARIANTS": 1, "OUTPUT_HTML": str(out / "experiment.html"),
            "OUTPUT_CSV": str(out / "experiment.csv"), "OUTPUT_JSON": str(out / "experiment.json"),
            "OUTPUT": str(out / "best.tif"), **extra}


def test_l2a_import_then_experiment_with_the_scl_mask(run_alg, l2a_import, eopatch_dir, tmp_path):
    from eolulc.core.timestack import open_stack, read_info

    stack, mask = l2a_import
    assert read_info(str(stack)).tags["EOLULC_S2_LEVEL"] == "L2A"
    result = run_alg(ALG, _params(stack, eopatch_dir, tmp_path, CLOUD_MASK=str(mask)))
    assert result["BEST_VARIANT"] == "16-day interval"
    assert 0.3 <= result["BEST_OVERALL_ACCURACY"] <= 1.0
    layer = QgsRasterLayer(str(tmp_path / "best.tif"), "best")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    with open_stack(str(tmp_path / "best.tif")) as classes:
        mapped = classes.read()[0, ..., 0]
    grid = read_info(str(stack)).grid
    assert mapped.shape == (grid.height, grid.width) and len(np.unique(mapped)) > 2
    assert "<svg" in (tmp_path / "experiment.html").read_text()
    document = json.loads((tmp_path / "experiment.json").read_text())
    shared = document["shared_steps"]
    # the given mask replaced s2cloudless, but the features (bands and indices) were computed
    assert shared["prepared"] == {"cloud_mask": str(mask)} and shared["cloud_mask_s"] == 0.0
    assert shared["features_s"] > 0.0
    n_dates = document["runs"][0]["n_dates"]
    assert document["runs"][0]["n_features"] > 6 * n_dates  # more than the raw default bands: indices too


def test_s2cloudless_on_l2a_is_refused(run_alg, l2a_import, eopatch_dir, tmp_path):
    stack, _ = l2a_import
    with pytest.raises(QgsProcessingException, match=r"\(CLOUD_MASK\).*L2A.*OUTPUT_MASK.*SAFE.*as CLOUD_MASK"):
        run_alg(ALG, _params(stack, eopatch_dir, tmp_path / "refused"))
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
