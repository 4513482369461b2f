"""Continuous styles written without QGIS: a sidecar ``.qml`` with a colour ramp for rasters of
values (probabilities, confidence, uncertainty), loaded with the layer however it is opened."""

from __future__ import annotations

from pathlib import Path

from .style import MIN_MAX_ORIGIN, qml_document

#: Viridis at five stops: readable in colour-blind vision and in grey print.
VIRIDIS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")
#: Low uncertainty pale, high dark red: where to look first stands out.
HEAT = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")


def ramp_qml(minimum: float, maximum: float, colours: tuple[str, ...] = VIRIDIS, band: int = 1,
             label: str = "") -> str:
    """A QML document with a single-band pseudocolour renderer (interpolated ramp)."""
    steps = len(colours) - 1
    items = "\n".join(
        f'            <item alpha="255" value="{minimum + (maximum - minimum) * i / steps:g}" color="{colour}" '
        f'label="{minimum + (maximum - minimum) * i / steps:g}{label}"/>'
        for i, colour in enumerate(colours))
    return qml_document(
        f"""    <rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" alphaBand="-1"
                    nodataColor=""
                    classificationMin="{minimum:g}" classificationMax="{maximum:g}">
      <rasterTransparency/>
{MIN_MAX_ORIGIN}      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0"
                         minimumValue="{minimum:g}" maximumValue="{maximum:g}">
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
""")


def write_ramp_qml(raster_path: str | Path, minimum: float, maximum: float, colours: tuple[str, ...] = VIRIDIS,
                   label: str = "") -> Path:
    """``<raster>.qml`` with a continuous ramp from ``minimum`` to ``maximum`` (band 1)."""
    qml = Path(raster_path).with_suffix(".qml")
    qml.write_text(ramp_qml(minimum, maximum, colours, label=label), encoding="utf-8")
    return qml
