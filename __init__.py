"""EO LULC: Sentinel-2 time series to land-use / land-cover maps, in the QGIS Processing toolbox.

Importing this package (QGIS or a worker process) only makes the plugin's own package folder
visible; QGIS is imported by ``classFactory``, never here, so ``core`` stays QGIS-free.
"""

from __future__ import annotations

import os as _os

if __package__:
    # (pytest may import this file on its own, as "__init__", when the clone's folder name is no
    # valid package name: then there is no package to activate)
    from .plugin.dependencies import activate as _activate_dependencies

    _activate_dependencies()
# LightGBM's OpenMP threads spin while they wait; on a busy machine (QGIS rendering, other
# processes) that made training 4x slower with 2 threads than with 1. Passive waiting costs
# nothing measurable when the machine is idle. Must be set before LightGBM is loaded.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def classFactory(iface):  # QGIS's name
    """QGIS entry point."""
    from .plugin.plugin import EoLulcPlugin

    return EoLulcPlugin(iface)
