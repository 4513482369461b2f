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
    QgsMapThemeCollection,
    QgsPrintLayout,
    QgsProject,
    QgsRasterLayer,
    QgsReferencedRectangle,
    QgsUnitTypes,
)


def write_result_project(
    path: str | Path, layers: Sequence[tuple[str | Path, str]], group: str = "EO LULC result",
    title: str = "EO LULC: land-cover map and reference",
) -> Path:
    """Write a ``.qgz`` with ``layers`` ((file, name), first on top) in ``group``. The first two
    layers are shown side by side in the print layout (map | reference)."""
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
        node.addLayer(layer)
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
    """A print layout: two maps (themes showing one layer each) with their legends."""
    themes = project.mapThemeCollection()
    for layer in (left, right):
        record = QgsMapThemeCollection.MapThemeRecord()
        record.setLayerRecords([QgsMapThemeCollection.MapThemeLayerRecord(layer)])
        themes.insert(layer.name(), record)
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    layout.setName("Map and reference side by side")
    mm = QgsUnitTypes.LayoutUnit.LayoutMillimeters
    heading = QgsLayoutItemLabel(layout)
    heading.setText(title)
    layout.addLayoutItem(heading)
    heading.attemptMove(QgsLayoutPoint(10, 6, mm))
    heading.attemptResize(QgsLayoutSize(277, 10, mm))
    for index, layer in enumerate((left, right)):
        x = 10 + index * 140
        item = QgsLayoutItemMap(layout)
        item.attemptMove(QgsLayoutPoint(x, 20, mm))
        item.attemptResize(QgsLayoutSize(135, 135, mm))
        item.setLayers([layer])
        item.setKeepLayerSet(True)
        item.setFollowVisibilityPreset(True)
        item.setFollowVisibilityPresetName(layer.name())
        item.setCrs(layer.crs())
        item.zoomToExtent(extent)
        layout.addLayoutItem(item)
        legend = QgsLayoutItemLegend(layout)
        legend.setTitle(layer.name())
        legend.setLinkedMap(item)
        legend.setAutoUpdateModel(False)
        legend.model().rootGroup().clear()
        legend.model().rootGroup().addLayer(layer)
        layout.addLayoutItem(legend)
        legend.attemptMove(QgsLayoutPoint(x, 158, mm))
    project.layoutManager().addLayout(layout)
