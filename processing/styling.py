"""Class rasters arrive styled when the toolbox loads them: a layer post-processor applies the
sidecar ``.qml`` (which also styles them in ``qgis_process`` and modeler runs, where QGIS finds
it next to the file). Never ``addMapLayer`` inside ``processAlgorithm``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingContext, QgsProcessingLayerPostProcessorInterface

# sip frees a post-processor that only C++ holds: keep the Python objects alive here
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


class SidecarStyle(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, qml: Path) -> None:
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if layer is not None and self.qml.is_file():
            layer.loadNamedStyle(str(self.qml))
            layer.triggerRepaint()


def style_when_loaded(context: QgsProcessingContext, output: str) -> None:
    """Apply ``<output>.qml`` to the layer the toolbox loads for ``output``."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    processor = SidecarStyle(Path(output).with_suffix(".qml"))
    _KEEP.append(processor)
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
