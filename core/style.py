"""QGIS styles written without QGIS: a sidecar ``.qml`` next to every class raster, so the
legend's colours appear however the file is opened (toolbox, modeler, ``qgis_process``, a
project made later)."""

from __future__ import annotations

from html import escape
from pathlib import Path

from .legend import Legend

#: QGIS's default min/max settings, which every renderer element carries.
MIN_MAX_ORIGIN = """      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
"""
_HEADER = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="Symbology">
  <pipe>
"""
_FOOTER = """    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation colorizeOn="0" saturation="0" grayscaleMode="0" invertColors="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def qml_document(renderer: str) -> str:
    """A raster style document around one ``<rasterrenderer>`` element (``renderer``).

    The rest of the pipe (brightness, hue, resampling) is QGIS's default, written once here for
    every style the plugin writes without QGIS.
    """
    return _HEADER + renderer + _FOOTER


def paletted_qml(legend: Legend, band: int = 1, nodata: float | None = None) -> str:
    """A QML document with a paletted (unique values) renderer of the legend's classes."""
    entries = "\n".join(
        f'        <paletteEntry value="{c.id}" color="{c.colour}" alpha="255" label="{escape(c.name, quote=True)}"/>'
        for c in legend
        if nodata is None or c.id != nodata
    )
    return qml_document(f"""    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
{MIN_MAX_ORIGIN}      <colorPalette>
{entries}
      </colorPalette>
      <colorramp type="randomcolors" name="[source]"/>
    </rasterrenderer>
""")


def write_sidecar_qml(raster_path: str | Path, legend: Legend, nodata: float | None = None) -> Path:
    """``<raster>.qml`` beside the raster (QGIS loads it automatically with the layer)."""
    raster = Path(raster_path)
    qml = raster.with_suffix(".qml")
    qml.write_text(paletted_qml(legend, nodata=nodata), encoding="utf-8")
    return qml
