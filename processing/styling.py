"""Class rasters arrive styled when the toolbox loads them: a layer post-processor applies the
sidecar ``.qml`` (which also styles them in ``qgis_process`` and modeler runs, where QGIS finds
it next to the file) and can gather a run's layers in one layer group. Never ``addMapLayer``
inside ``processAlgorithm``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsLayerTreeLayer,
    QgsMapLayerLegendUtils,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsSimpleLegendNode,
)

# sip frees a post-processor that only C++ holds: keep the Python objects alive here
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


class SidecarStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies ``qml`` to the loaded layer and, with ``group``, moves it into that layer group
    (created at the top of the layer tree when missing) at position ``order``."""

    def __init__(self, qml: Path | None, group: str | None = None, order: int = 0) -> None:
        super().__init__()
        self.qml = qml
        self.group = group
        self.order = order

    def postProcessLayer(self, layer, context, feedback):
        if layer is None:
            return
        if self.qml is not None and self.qml.is_file():
            layer.loadNamedStyle(str(self.qml))
            layer.triggerRepaint()
        project = context.project()
        if self.group and project is not None:
            root = project.layerTreeRoot()
            node = root.findLayer(layer.id())
            if node is None:
                return
            group = root.findGroup(self.group) or root.insertGroup(0, self.group)
            clone = node.clone()
            group.insertChildNode(min(self.order, len(group.children())), clone)
            node.parent().removeChildNode(node)


def show_class_names_only(node: QgsLayerTreeLayer) -> None:
    """Legend rows of a class raster: the class names, without the band header ("Band 1: class
    (Gray)") that QGIS puts first. Only paletted layers change; the order lives in the layer tree."""
    layer = node.layer()
    if layer is None or not isinstance(layer.renderer(), QgsPalettedRasterRenderer):
        return
    nodes = layer.legend().createLayerTreeModelLegendNodes(node)
    rows = [i for i, legend_node in enumerate(nodes) if not isinstance(legend_node, QgsSimpleLegendNode)]
    if rows and len(rows) < len(nodes):
        QgsMapLayerLegendUtils.setLegendNodeOrder(node, rows)


def style_when_loaded(context: QgsProcessingContext, output: str, group: str | None = None, order: int = 0,
                      styled: bool = True) -> None:
    """Apply ``<output>.qml`` (when ``styled``) to the layer the toolbox loads for ``output`` and
    optionally put it into ``group``."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    processor = SidecarStyle(Path(output).with_suffix(".qml") if styled else None, group, order)
    _KEEP.append(processor)
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
