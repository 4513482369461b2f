"""EO LULC: Sentinel-2 time series to land-use / land-cover maps, in the QGIS Processing toolbox.

Importing this package (QGIS or a worker process) only makes the plugin's own package folder
visible; QGIS is imported by ``classFactory``, never here, so ``core`` stays QGIS-free.
"""

from __future__ import annotations

from .plugin.dependencies import activate as _activate_dependencies

_activate_dependencies()


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """QGIS entry point."""
    from .plugin.plugin import EoLulcPlugin

    return EoLulcPlugin(iface)
