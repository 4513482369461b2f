"""Which files a run reads and which it writes, so that no output ever replaces an input.

An output that resolves to an input (after relative paths, symlinks and, on case-insensitive file
systems, case) would be written over the user's data once the run succeeds; two outputs on one
path would overwrite each other. Both are refused before any work, naming both parameters.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
    QgsProperty,
    QgsProviderRegistry,
)

TEMPORARY = "TEMPORARY_OUTPUT"


def layer_file(layer: QgsMapLayer | None) -> str | None:
    """The file behind a layer (``path|layername=x`` and provider URIs decoded), or None."""
    if layer is None:
        return None
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or layer.source().split("|")[0]
    return path or None


def plain_files(value: Any) -> list[str] | None:
    """A path or list of paths given as text, all existing files; None for anything else."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if items and all(isinstance(v, str) and os.path.isfile(v) for v in items):
        return list(items)
    return None


LAYER_PARAMETERS = (QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorLayer,
                    QgsProcessingParameterMapLayer, QgsProcessingParameterMultipleLayers)


def is_layer_parameter(definition: QgsProcessingParameterDefinition) -> bool:
    return isinstance(definition, LAYER_PARAMETERS)


def raster_sources(algorithm, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str]:
    """What GDAL should open for a raster (or multiple-layer) parameter. A file given as text is used
    as it is: loading it as a QGIS layer would compute statistics and leave a ``.aux.xml`` beside the
    user's file. A layer of the project gives its source."""
    files = plain_files(parameters.get(name))
    if files is not None:
        return files
    if isinstance(algorithm.parameterDefinition(name), QgsProcessingParameterMultipleLayers):
        return [layer.source() for layer in algorithm.parameterAsLayerList(parameters, name, context)]
    layer = algorithm.parameterAsLayer(parameters, name, context)
    return [layer.source()] if layer is not None else []


def _same(first: str, second: str) -> bool:
    """Same file or folder: one real path, or (case-insensitive systems, hard links) one inode."""
    if os.path.normcase(os.path.realpath(first)) == os.path.normcase(os.path.realpath(second)):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _replaces(output: str, source: str) -> bool:
    """Writing ``output`` would replace ``source``, or a file already inside the folder ``source``
    (an EOPatch's arrays, a folder of tiles)."""
    if _same(output, source):
        return True
    if not os.path.isdir(source) or not os.path.isfile(output):
        return False
    inside = os.path.normcase(os.path.realpath(output))
    folder = os.path.join(os.path.normcase(os.path.realpath(source)), "")
    return inside.startswith(folder)


def _raw_destination(value: Any, context: QgsProcessingContext) -> str:
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value = value.valueAsString(context.expressionContext())
    return "" if value is None else str(value)


def output_paths(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> Iterator[tuple[str, str]]:
    """(parameter name, file) of every output given as a file path (temporary outputs are new files)."""
    for definition in algorithm.parameterDefinitions():
        if not definition.isDestination():
            continue
        raw = _raw_destination(parameters.get(definition.name()), context).strip()
        if not raw or raw == TEMPORARY or raw.startswith("memory:"):
            continue
        if isinstance(definition, QgsProcessingParameterRasterDestination):
            path = algorithm.parameterAsOutputLayer(parameters, definition.name(), context)
        elif isinstance(definition, (QgsProcessingParameterFileDestination, QgsProcessingParameterFolderDestination)):
            path = algorithm.parameterAsFileOutput(parameters, definition.name(), context)
        else:
            path = raw
        if path:
            yield definition.name(), os.path.abspath(path)


def _input_files(algorithm, definition: QgsProcessingParameterDefinition, parameters: dict[str, Any],
                 context: QgsProcessingContext) -> list[str]:
    name = definition.name()
    if parameters.get(name) is None:
        return []
    files = plain_files(parameters[name])
    if files is not None:
        return files
    if isinstance(definition, (QgsProcessingParameterRasterLayer, QgsProcessingParameterVectorLayer,
                               QgsProcessingParameterMapLayer)):
        return [p for p in [layer_file(algorithm.parameterAsLayer(parameters, name, context))] if p]
    if isinstance(definition, QgsProcessingParameterMultipleLayers):
        layers = algorithm.parameterAsLayerList(parameters, name, context)
        if layers:
            return [p for p in map(layer_file, layers) if p]
        return [str(p) for p in algorithm.parameterAsFileList(parameters, name, context)]
    if isinstance(definition, QgsProcessingParameterFile):
        path = algorithm.parameterAsFile(parameters, name, context)
        return [path] if path else []
    return []


def input_paths(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> Iterator[tuple[str, str]]:
    """(parameter name, file or folder) of every input that exists on disk."""
    for definition in algorithm.parameterDefinitions():
        if definition.isDestination():
            continue
        for path in _input_files(algorithm, definition, parameters, context):
            if os.path.exists(path):
                yield definition.name(), os.path.abspath(path)


def _layer_values(value: Any) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v.split("|")[0] for v in values if isinstance(v, str) and v.strip()]


def unreadable_input(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
    """A message naming the parameter when a layer given as a file path is missing, empty or not
    something GDAL reads (QGIS would only say "not found"); None when all are readable."""
    from ..core.gdalerrors import unreadable

    for definition in algorithm.parameterDefinitions():
        if definition.isDestination() or not is_layer_parameter(definition):
            continue
        for value in _layer_values(parameters.get(definition.name())):
            if context.project() is not None and context.project().mapLayer(value) is not None:
                continue  # a layer id of the project
            if not os.path.exists(value) and os.sep not in value and "/" not in value:
                continue  # a layer name QGIS may resolve in the project
            problem = unreadable(value)
            if problem:
                return f"{algorithm.parameter_label(definition.name())}: {problem}"
    return None


def overwrite_conflict(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
    """A message naming both parameters when an output is an input or another output, else None."""
    outputs = list(output_paths(algorithm, parameters, context))
    inputs = list(input_paths(algorithm, parameters, context)) if outputs else []
    for name, path in outputs:
        for input_name, input_path in inputs:
            if _replaces(path, input_path):
                return (f"{algorithm.parameter_label(name)} would replace {algorithm.parameter_label(input_name)} "
                        f"or a file in it ({path}): an output may never replace an input; choose another path")
    for index, (name, path) in enumerate(outputs):
        for other_name, other_path in outputs[index + 1:]:
            if _same(path, other_path):
                return (f"{algorithm.parameter_label(name)} and {algorithm.parameter_label(other_name)} are the same "
                        f"file ({path}); give each output its own path")
    return None
