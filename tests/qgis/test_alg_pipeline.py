"""eolulc:lulcpipeline on the real L1C scenes and reference, through processing.run and qgis_process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer

from eolulc.core.timestack import open_stack

ALG = "eolulc:lulcpipeline"


def _params(scene_stack: Path, eopatch_dir: Path, out: Path, **extra) -> dict:
    params = {"INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
              "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 8,
              "OUTPUT": str(out / "map.tif"), "OUTPUT_REFERENCE": str(out / "reference.tif"),
              "OUTPUT_AGREEMENT": str(out / "agreement.tif"), "OUTPUT_CONFIDENCE": str(out / "confidence.tif"),
              "OUTPUT_MODEL": str(out / "model.json"), "OUTPUT_REPORT": str(out / "report.html")}
    params.update(extra)
    return params


def test_pipeline_products(run_alg, scene_stack, eopatch_dir, tmp_path):
    result = run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path))
    assert 0.5 <= result["OVERALL_ACCURACY"] <= 1.0
    for name in ("map", "reference", "agreement"):
        layer = QgsRasterLayer(str(tmp_path / f"{name}.tif"), name)
        assert layer.isValid() and layer.renderer().type() == "paletted", name
    model = json.loads((tmp_path / "model.json").read_text())
    assert model["metadata"]["pipeline"]["interval_days"] == 8
    assert model["metadata"]["pipeline"]["scene_filter"] is True
    # smoothing is on by default, with the 5 px window (bench/train_quality.py)
    assert model["metadata"]["pipeline"]["smoothing"]["window_size"] == 5
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and "held-out" in html and "Spatial smoothing" in html
    with open_stack(str(tmp_path / "agreement.tif")) as stack:
        agreement = stack.read()[0, ..., 0]
    with open_stack(str(tmp_path / "map.tif")) as a, open_stack(str(tmp_path / "reference.tif")) as r:
        mapped, reference = a.read()[0, ..., 0], r.read()[0, ..., 0]
    has_ref = reference > 0
    np.testing.assert_array_equal(agreement[has_ref] == 1, mapped[has_ref] == reference[has_ref])
    assert (agreement[~has_ref] == 0).all()
    assert "OUTPUT_INTERPOLATED" not in result  # intermediate products not asked for are not kept


def test_switches_change_the_interpolation(run_alg, scene_stack, eopatch_dir, tmp_path):
    on = run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path / "on",
                              OUTPUT_INTERPOLATED=str(tmp_path / "on.tif")))
    off = run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path / "off", SCENE_FILTER=False,
                               CLOUD_MASK_IN_INTERPOLATION=False, OUTPUT_INTERPOLATED=str(tmp_path / "off.tif")))
    with open_stack(on["OUTPUT_INTERPOLATED"]) as a, open_stack(off["OUTPUT_INTERPOLATED"]) as b:
        assert not np.array_equal(a.read(), b.read(), equal_nan=True)


def test_group_post_processor_styles_and_groups(qgis_app, tmp_path, scene_stack, eopatch_dir, run_alg):
    from qgis.core import QgsProcessingContext

    from eolulc.processing.styling import SidecarStyle

    run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path))
    project = QgsProject()
    context = QgsProcessingContext()
    context.setProject(project)
    layer = QgsRasterLayer(str(tmp_path / "map.tif"), "map")
    project.addMapLayer(layer)
    SidecarStyle(tmp_path / "map.qml", group="EO LULC test").postProcessLayer(layer, context, None)
    group = project.layerTreeRoot().findGroup("EO LULC test")
    assert group is not None and [n.layerId() for n in group.findLayers()] == [layer.id()]
    assert layer.renderer().type() == "paletted"
    project.removeAllMapLayers()


def test_bad_reference_field(run_alg, scene_stack, eopatch_dir, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"\(CLASS_FIELD\)"):
        run_alg(ALG, _params(scene_stack, eopatch_dir, tmp_path / "out", CLASS_FIELD="nope"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_qgis_process_pipeline(qgis_process, scene_stack, eopatch_dir, tmp_path):
    params = _params(scene_stack, eopatch_dir, tmp_path)
    rc, result, text = qgis_process.run(ALG, params)
    assert rc == 0, text
    assert (tmp_path / "map.qml").is_file() and (tmp_path / "report.html").is_file()
    assert result["results"]["OVERALL_ACCURACY"] > 0.5


def test_dialog_says_a_polygon_reference_needs_its_class_field(qgis_app, scene_stack, eopatch_dir, tmp_path):
    """The check the dialog runs before the run: a polygon reference without a class field is
    refused with what to choose; the label says when the field is needed."""
    from qgis.core import QgsApplication, QgsProcessingContext

    algorithm = QgsApplication.processingRegistry().algorithmById(ALG)
    assert "required for polygons" in algorithm.parameterDefinition("CLASS_FIELD").description()
    params = _params(scene_stack, eopatch_dir, tmp_path)
    context = QgsProcessingContext()
    assert algorithm.checkParameterValues(params, context)[0]
    del params["CLASS_FIELD"]
    ok, message = algorithm.checkParameterValues(params, context)
    assert not ok and "(CLASS_FIELD)" in message and "polygon reference needs" in message, message
