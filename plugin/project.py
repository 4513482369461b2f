"""A QGIS project that shows a LULC result: the map and the reference side by side.

The project holds one layer group (classification, reference, agreement, confidence, each
styled by its sidecar ``.qml``), opens zoomed to the data, and has a print layout with the
classification and the reference side by side, each with its legend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from qgis.core import (
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsLegendRenderer,
    QgsLegendStyle,
    QgsMapThemeCollection,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsReferencedRectangle,
    QgsUnitTypes,
)

from ..processing.styling import show_class_names_only

#: The print layout's name, its margins and its two maps' place on the A4 landscape page (mm).
LAYOUT_NAME = "Map and reference side by side"
MARGIN = 10.0
MAP_TOP = 20.0
MAP_HEIGHT = 120.0


def write_result_project(
    path: str | Path, layers: Sequence[tuple[str | Path, str]], group: str = "EO LULC result",
    title: str = "EO LULC: land-cover map and reference",
) -> Path:
    """Write a ``.qgz`` with ``layers`` ((file, name), first on top and the only one checked) in
    ``group``. The first two layers are shown side by side in the print layout (map | reference)."""
    project = QgsProject()
    project.setTitle(title)
    root = project.layerTreeRoot()
    node = root.addGroup(group)
    loaded = []
    for file, name in layers:
        layer = QgsRasterLayer(str(file), name)
        if not layer.isValid():
            raise ValueError(f"cannot open '{file}' as a raster")
        project.addMapLayer(layer, False)
        tree_node = node.addLayer(layer)
        # only the map is checked: the others are a click away, below it
        tree_node.setItemVisibilityChecked(not loaded)
        tree_node.setExpanded(not loaded)
        show_class_names_only(tree_node)
        loaded.append(layer)
    first = loaded[0]
    project.setCrs(first.crs())
    extent = first.extent()
    for layer in loaded[1:]:
        extent.combineExtentWith(layer.extent())
    project.viewSettings().setDefaultViewExtent(QgsReferencedRectangle(extent, first.crs()))
    if len(loaded) >= 2:
        _side_by_side_layout(project, loaded[0], loaded[1], extent, title)
    path = Path(path)
    if not project.write(str(path)):
        raise ValueError(f"cannot write the project '{path}': {project.error()}")
    project.clear()
    return path


def _side_by_side_layout(project: QgsProject, left: QgsRasterLayer, right: QgsRasterLayer, extent, title: str) -> None:
    """A print layout on an A4 landscape page: two maps (themes showing one layer each) with their
    legends below them, in columns so that every class fits on the page."""
    themes = project.mapThemeCollection()
    for layer in (left, right):
        record = QgsMapThemeCollection.MapThemeRecord()
        record.setLayerRecords([QgsMapThemeCollection.MapThemeLayerRecord(layer)])
        themes.insert(layer.name(), record)
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.setName(LAYOUT_NAME)
    mm = QgsUnitTypes.LayoutUnit.LayoutMillimeters
    page = layout.renderContext().measurementConverter().convert(layout.pageCollection().page(0).pageSize(), mm)
    heading = QgsLayoutItemLabel(layout)
    heading.setText(title)
    heading.setFont(_font(heading.font(), 16))
    layout.addLayoutItem(heading)
    heading.attemptMove(QgsLayoutPoint(MARGIN, 6, mm))
    heading.attemptResize(QgsLayoutSize(page.width() - 2 * MARGIN, 10, mm))
    width = (page.width() - 3 * MARGIN) / 2
    for index, layer in enumerate((left, right)):
        x = MARGIN + index * (width + MARGIN)
        item = QgsLayoutItemMap(layout)
        layout.addLayoutItem(item)
        item.setCrs(layer.crs())
        item.attemptMove(QgsLayoutPoint(x, MAP_TOP, mm))
        # a new map item's extent is empty: sizing it scales that 0 x 0 extent (a NaN height in the
        # saved project, a blank frame); setExtent then gives it a real one (and the item its
        # aspect ratio), so size it again and fit the data
        item.attemptResize(QgsLayoutSize(width, MAP_HEIGHT, mm))
        item.setExtent(extent)
        item.attemptResize(QgsLayoutSize(width, MAP_HEIGHT, mm))
        item.zoomToExtent(extent)
        item.setLayers([layer])
        item.setKeepLayerSet(True)
        item.setFollowVisibilityPreset(True)
        item.setFollowVisibilityPresetName(layer.name())
        item.setFrameEnabled(True)
        legend = QgsLayoutItemLegend(layout)
        layout.addLayoutItem(legend)
        legend.setTitle(layer.name())
        legend.setLinkedMap(item)
        legend.setAutoUpdateModel(False)
        root = legend.model().rootGroup()
        root.clear()
        node = root.addLayer(layer)
        # the legend's title already names the layer; its rows are the class names only
        QgsLegendRenderer.setNodeLegendStyle(node, QgsLegendStyle.Style.Hidden)
        show_class_names_only(node)
        legend.model().refreshLayerLegend(node)
        legend.setColumnCount(2)
        legend.setSplitLayer(True)
        legend.setEqualColumnWidth(True)
        legend.attemptMove(QgsLayoutPoint(x, MAP_TOP + MAP_HEIGHT + 4, mm))
        legend.adjustBoxSize()
    project.layoutManager().addLayout(layout)


def _font(font, size: float):
    font.setPointSizeF(size)
    return font
