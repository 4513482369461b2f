"""What the layer tree shows after a run from the toolbox: the outputs go through QGIS's own
post-processing (``handleAlgorithmResults``, what the algorithm dialog calls), into a project.
The land-cover map must be the top visible layer of its group, the reference right below it
unchecked, and a run of the shipped model must load grouped and named like the pipeline's."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
    QgsLayerTreeModel,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
)


def _run_and_load(algorithm: str, parameters: dict, project: QgsProject) -> dict:
    """Run as the algorithm dialog does: outputs loaded into ``project`` on completion, then
    QGIS's post-processing (which calls the layer post-processors) against that project."""
    from processing.gui.Postprocessing import handleAlgorithmResults

    import processing

    context = QgsProcessingContext()
    context.setProject(project)
    feedback = QgsProcessingFeedback()
    loaded = []

    def finish(alg, ctx, fb):
        loaded.append(handleAlgorithmResults(alg, ctx, fb, True, parameters))

    results = processing.run(algorithm, parameters, onFinish=finish, feedback=feedback, context=context)
    assert loaded == [True]
    return results


def _only_group(project: QgsProject) -> QgsLayerTreeGroup:
    root = project.layerTreeRoot()
    groups = [node for node in root.children() if isinstance(node, QgsLayerTreeGroup)]
    assert len(groups) == 1 and groups[0].name().startswith("EO LULC "), [n.name() for n in root.children()]
    assert not root.findLayers() or all(node.parent() is groups[0] for node in root.findLayers())
    return groups[0]


def _legend_rows(project: QgsProject, node) -> list[str]:
    model = QgsLayerTreeModel(project.layerTreeRoot())
    return [legend_node.data(0) for legend_node in model.layerLegendNodes(node)]


def _load(tmp_path: Path, project: QgsProject, name: str) -> QgsProcessingOutputLayerDefinition:
    return QgsProcessingOutputLayerDefinition(str(tmp_path / name), project)


def test_pipeline_results_load_map_on_top(qgis_app, scene_stack, eopatch_dir, tmp_path):
    project = QgsProject()
    # file names chosen so that QGIS (which loads by path) handles the agreement first and the map
    # after the reference: the group must still come out in the pipeline's order
    _run_and_load("eolulc:lulcpipeline", {
        "INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
        "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 8,
        "OUTPUT": _load(tmp_path, project, "c_map.tif"),
        "OUTPUT_REFERENCE": _load(tmp_path, project, "b_reference.tif"),
        "OUTPUT_AGREEMENT": _load(tmp_path, project, "a_agreement.tif"),
        "OUTPUT_CONFIDENCE": _load(tmp_path, project, "d_confidence.tif"),
        "OUTPUT_MODEL": str(tmp_path / "model.json"), "OUTPUT_REPORT": str(tmp_path / "report.html"),
    }, project)
    try:
        group = _only_group(project)
        nodes = group.findLayers()
        assert [n.layer().name() for n in nodes] == [
            "Land-cover map", "Reference map", "Agreement with the reference", "Confidence"]
        assert [n.itemVisibilityChecked() for n in nodes] == [True, False, False, False]
        top = next(n for n in nodes if n.isVisible())
        assert Path(top.layer().source()).name == "c_map.tif"
        assert top.layer().renderer().type() == "paletted"
        assert nodes[1].layer().renderer().type() == "paletted"
        rows = _legend_rows(project, top)
        assert "forest" in rows and not any(str(row).startswith("Band 1") for row in rows), rows
    finally:
        project.removeAllMapLayers()


def test_model_results_load_like_the_pipeline(qgis_app, scene_stack, eopatch_dir, tmp_path):
    project = QgsProject()
    _run_and_load("eolulc:lulcchain", {
        "INPUT": str(scene_stack), "REFERENCE": str(eopatch_dir / "vector_timeless/LULC.gpkg"),
        "CLASS_FIELD": "LULC_ID", "NAME_FIELD": "LULC_NAME", "INTERVAL_DAYS": 16,
        # "a_" so that QGIS handles the confidence first
        "smooth:classification": _load(tmp_path, project, "b_classification.tif"),
        "smooth:confidence": _load(tmp_path, project, "a_confidence.tif"),
        "train:model": str(tmp_path / "model.json"), "train:test_report": str(tmp_path / "test.html"),
        "accuracy:accuracy_report": str(tmp_path / "accuracy.html"),
    }, project)
    try:
        group = _only_group(project)
        nodes = group.findLayers()
        # the chain's map comes from its smoothing step, as the pipeline's does by default
        assert [n.layer().name() for n in nodes] == ["Smoothed land-cover map", "Smoothed confidence"]
        assert [n.itemVisibilityChecked() for n in nodes] == [True, False]
        assert Path(nodes[0].layer().source()).name == "b_classification.tif"
        assert nodes[0].layer().renderer().type() == "paletted"
    finally:
        project.removeAllMapLayers()
