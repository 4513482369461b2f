"""The enums QGIS moved between versions, in one place.

QGIS 3.36 (and QGIS 4) moved Processing's enums into ``Qgis`` as scoped enums
(``Qgis.ProcessingSourceType``, ``Qgis.ProcessingParameterFlag``,
``Qgis.ProcessingFieldParameterDataType``); older 3.x releases have them on
``QgsProcessing``, ``QgsProcessingParameterDefinition`` and ``QgsProcessingParameterField``. The
algorithms ask here, so the version test is written once and goes when 3.34 support does.
"""

from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterField,
)


def advanced_flag():
    """The "advanced parameter" flag: ``Qgis.ProcessingParameterFlag`` from 3.36 (and QGIS 4),
    the scoped enum of ``QgsProcessingParameterDefinition`` before."""
    scoped = getattr(Qgis, "ProcessingParameterFlag", None)
    if scoped is not None:
        return scoped.Advanced
    return QgsProcessingParameterDefinition.Flag.FlagAdvanced


def raster_layers_type():
    """``Qgis.ProcessingSourceType.Raster`` (3.36+, QGIS 4) or ``QgsProcessing.SourceType.TypeRaster``."""
    scoped = getattr(Qgis, "ProcessingSourceType", None)
    return scoped.Raster if scoped is not None else QgsProcessing.SourceType.TypeRaster


def file_type():
    """``Qgis.ProcessingSourceType.File`` (3.36+, QGIS 4) or ``QgsProcessing.SourceType.TypeFile``."""
    scoped = getattr(Qgis, "ProcessingSourceType", None)
    return scoped.File if scoped is not None else QgsProcessing.SourceType.TypeFile


def raster_and_polygon_types() -> list:
    """Raster and polygon layer types: ``Qgis.ProcessingSourceType`` from 3.36 (and QGIS 4),
    ``QgsProcessing.SourceType`` before."""
    scoped = getattr(Qgis, "ProcessingSourceType", None)
    if scoped is not None:
        return [scoped.Raster, scoped.VectorPolygon]
    return [QgsProcessing.SourceType.TypeRaster, QgsProcessing.SourceType.TypeVectorPolygon]


def field_types() -> tuple:
    """The (numeric, any) field data types of a field parameter."""
    scoped = getattr(Qgis, "ProcessingFieldParameterDataType", None)
    if scoped is not None:
        return scoped.Numeric, scoped.Any
    return QgsProcessingParameterField.DataType.Numeric, QgsProcessingParameterField.DataType.Any
