"""Run inside the QGIS desktop (``qgis --code``): what a user does with the plugin, step by step,
with a screenshot of each. The Processing toolbox with the EO LULC provider expanded, the
``lulcpipeline`` dialog filled in, then Run in that dialog (QGIS's own task and result loading)
and the canvas once the results are drawn. What was seen goes to a JSON file beside the
screenshots (``EOLULC_TOUR``: the folder; ``EOLULC_TOUR_PARAMS``: the dialog's parameters as
JSON). QGIS 3.22 can crash while quitting under Xvfb, so the process exits directly."""

import json
import os

from qgis.core import QgsApplication, QgsLayerTreeGroup, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QAbstractItemView, QApplication
from qgis.utils import iface, plugins

import processing

FOLDER = os.environ["EOLULC_TOUR"]
PARAMS = json.loads(os.environ["EOLULC_TOUR_PARAMS"])
seen = {"steps": []}
state = {}


def _save(name, widget):
    path = os.path.join(FOLDER, name)
    widget.grab().save(path)
    seen["steps"].append(name)


def _finish(reason):
    seen["end"] = reason
    with open(os.path.join(FOLDER, "tour.json"), "w") as handle:
        json.dump(seen, handle, indent=1)
    os._exit(0)


def _rows(model, parent, depth=0):
    """The toolbox tree's texts under ``parent``, indented by depth, with expansion."""
    tree = state["tree"]
    rows = []
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        rows.append("  " * depth + str(model.data(index)) + (" [+]" if tree.isExpanded(index) else ""))
        if tree.isExpanded(index):
            rows.extend(_rows(model, index, depth + 1))
    return rows


def toolbox():
    box = plugins["processing"].toolbox
    box.show()
    box.raise_()
    iface.mainWindow().resizeDocks([box], [460], Qt.Orientation.Horizontal)  # the names unclipped
    tree = state["tree"] = box.algorithmTree
    model = tree.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if model.data(index) == "EO LULC":
            tree.expandRecursively(index)
            tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)
    QTimer.singleShot(1500, lambda: (_toolbox_seen(box, model), dialog()))


def _toolbox_seen(box, model):
    seen["toolbox"] = _rows(model, model.index(-1, -1))
    _save("toolbox.png", iface.mainWindow())


def dialog():
    dlg = state["dialog"] = processing.createAlgorithmDialog("eolulc:lulcpipeline", PARAMS)
    dlg.resize(1000, 800)
    dlg.show()
    QTimer.singleShot(2000, run)


def run():
    dlg = state["dialog"]
    _save("pipeline_dialog.png", dlg)
    dlg.algorithmFinished.connect(finished)
    QTimer.singleShot(0, dlg.runAlgorithm)
    QTimer.singleShot(500, watch_modal)


def watch_modal():
    """A message box (a refused parameter, say) would wait for a click forever: record it, leave."""
    modal = QApplication.activeModalWidget()
    if modal is not None and modal is not state["dialog"]:
        _save("unexpected_dialog.png", modal)
        seen["modal"] = getattr(modal, "text", lambda: "")()
        _finish("a message box appeared")
    QTimer.singleShot(500, watch_modal)


def finished(ok, results):
    seen["ok"] = bool(ok)
    seen["results"] = {k: str(v) for k, v in results.items()}
    state["dialog"].close()
    QTimer.singleShot(1000, look)


def look():
    root = QgsProject.instance().layerTreeRoot()
    groups = [node for node in root.children() if isinstance(node, QgsLayerTreeGroup)]
    seen["groups"] = [g.name() for g in groups]
    model = iface.layerTreeView().layerTreeModel()
    seen["tree"] = [
        {"name": node.name(), "visible": node.isVisible(), "source": node.layer().source(),
         "raster": isinstance(node.layer(), QgsRasterLayer),
         "legend": [str(row.data(Qt.ItemDataRole.DisplayRole)) for row in model.layerLegendNodes(node)]}
        for group in groups[:1] for node in group.findLayers()
    ]
    layers = [node.layer() for group in groups[:1] for node in group.findLayers()]
    if layers:
        canvas = iface.mapCanvas()
        canvas.setDestinationCrs(layers[0].crs())
        canvas.setExtent(layers[0].extent())
        canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(1500, shoot))
        canvas.refresh()
    else:
        _finish("no layers loaded")


def shoot():
    if state.get("shot"):
        return
    state["shot"] = True
    _save("canvas_after_run.png", iface.mapCanvas())
    _save("desktop_after_run.png", iface.mainWindow())
    _finish("done")


def start():
    if state.get("started"):
        return
    state["started"] = True
    seen["provider"] = QgsApplication.processingRegistry().providerById("eolulc") is not None
    QTimer.singleShot(500, toolbox)


QTimer.singleShot(3000, start)
QTimer.singleShot(280000, lambda: _finish("timed out"))
