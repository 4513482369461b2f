"""Run inside the QGIS desktop (``qgis --code``): once the map canvas has rendered, save a
screenshot of the main window and of the canvas, then leave (QGIS 3.22 can crash while
quitting under Xvfb, so the process exits directly)."""

import json
import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

TARGET = os.environ["EOLULC_SCREENSHOT"]
_state = {"done": False}


def _grab() -> None:
    if _state["done"]:
        return
    _state["done"] = True
    # what the plugin's initGui added (the plugin is enabled in the profile)
    seen = {
        "provider": QgsApplication.processingRegistry().providerById("eolulc") is not None,
        "plugin_menus": [action.text() for action in iface.pluginMenu().actions()],
        "eolulc_actions": [a.text() for action in iface.pluginMenu().actions() if action.menu() is not None
                           and "EO LULC" in action.text() for a in action.menu().actions()],
    }
    with open(TARGET.replace(".png", ".json"), "w") as handle:
        json.dump(seen, handle)
    iface.mainWindow().grab().save(TARGET)
    iface.mapCanvas().grab().save(TARGET.replace(".png", "_canvas.png"))
    os._exit(0)


iface.mapCanvas().mapCanvasRefreshed.connect(lambda: QTimer.singleShot(1500, _grab))
QTimer.singleShot(60000, _grab)
