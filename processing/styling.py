"""Class rasters arrive styled when the toolbox loads them: a layer post-processor applies the
sidecar ``.qml`` (which also styles them in ``qgis_process`` and modeler runs, where QGIS finds
it next to the file) and can gather a run's layers in one layer group. Never ``addMapLayer``
inside ``processAlgorithm``."""

from __future__ import annotations

from datetime import datetime
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


#: Layer-tree property holding a result layer's rank within its group (0 on top).
ORDER_PROPERTY = "eolulc/order"


class SidecarStyle(QgsProcessingLayerPostProcessorInterface):
    """Applies ``qml`` to the loaded layer and, with ``group``, moves it into that layer group
    (created at the top of the layer tree when missing) at rank ``order``, checked when ``visible``,
    renamed to ``name`` when given.

    QGIS loads a run's layers in no fixed order (by file path), so the rank is kept on the layer
    tree node and each layer goes above the ones of a higher rank already in the group."""

    def __init__(self, qml: Path | None, group: str | None = None, order: int = 0, visible: bool = True,
                 name: str | None = None) -> None:
        super().__init__()
        self.qml = qml
        self.group = group
        self.order = order
        self.visible = visible
        self.name = name

    def postProcessLayer(self, layer, context, feedback):
        if layer is None:
            return
        if self.qml is not None and self.qml.is_file():
            layer.loadNamedStyle(str(self.qml))
            layer.triggerRepaint()
        if self.name:
            layer.setName(self.name)
        project = context.project()
        if project is None:
            return
        root = project.layerTreeRoot()
        node = root.findLayer(layer.id())
        if node is None:
            return
        if self.group:
            group = root.findGroup(self.group) or root.insertGroup(0, self.group)
            # The desktop inserts a new layer at its current insertion point, which can be inside
            # this group: place the clone before the first result of a higher rank, ignoring unranked
            # nodes (the node being moved among them), then remove the original.
            children = group.children()
            position = next((i for i, child in enumerate(children)
                             if child.customProperty(ORDER_PROPERTY) is not None
                             and int(child.customProperty(ORDER_PROPERTY)) > self.order), len(children))
            clone = node.clone()
            self.prepare(clone)
            group.insertChildNode(position, clone)
            node.parent().removeChildNode(node)
        else:
            self.prepare(node)
        # the desktop's layer tree model built this layer's legend rows already: rebuild them
        layer.legend().itemsChanged.emit()

    def prepare(self, node: QgsLayerTreeLayer) -> None:
        """Rank, visibility and legend rows, set before the node enters the tree where possible so
        that the desktop's layer tree model builds the legend with them."""
        node.setCustomProperty(ORDER_PROPERTY, self.order)
        node.setItemVisibilityChecked(self.visible)
        node.setExpanded(self.visible)
        show_class_names_only(node)


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
                      styled: bool = True, visible: bool = True, name: str | None = None) -> None:
    """Apply ``<output>.qml`` (when ``styled``) to the layer the toolbox (or a model run) loads for
    ``output``; optionally put it into ``group`` at rank ``order``, unchecked unless ``visible``,
    named ``name``."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    processor = SidecarStyle(Path(output).with_suffix(".qml") if styled else None, group, order, visible, name)
    _KEEP.append(processor)
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)


def result_group_name() -> str:
    """The layer group one run's results load into, e.g. "EO LULC 2024-05-01 14:03"."""
    return "EO LULC {}".format(datetime.now().strftime("%Y-%m-%d %H:%M"))
