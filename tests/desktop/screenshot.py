"""Run inside the QGIS desktop (``qgis --code``): once the map canvas has rendered, save a
screenshot of the main window and of the canvas, then leave (QGIS 3.22 can crash while
quitting under Xvfb, so the process exits directly)."""

import os

from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

TARGET = os.environ["EOLULC_SCREENSHOT"]
_state = {"done": False}


def _grab() -> None:
    if _state["done"]:
        return
    _state["done"] = True
    iface.mainWindow().grab().save(TARGET)
    iface.mapCanvas().grab().save(TARGET.replace(".png", "_canvas.png"))
    os._exit(0)


iface.mapCanvas().mapCanvasRefreshed.connect(lambda: QTimer.singleShot(1500, _grab))
QTimer.singleShot(60000, _grab)
