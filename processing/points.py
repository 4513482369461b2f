"""Point layers in and out: the suggested samples' fields (written through a feature sink) and
labelled points read onto a grid for training. The types QGIS moved between versions are asked
here (``Qgis.WkbType`` and ``QMetaType`` field types from 3.30/3.38 and in QGIS 4)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingContext,
)

from ..core.reference import class_id_from_value


def point_layer_types() -> list:
    """Point vector layers as a parameter's source type (3.36+ scoped enum, or the old one)."""
    scoped = getattr(Qgis, "ProcessingSourceType", None)
    return [scoped.VectorPoint] if scoped is not None else [QgsProcessing.SourceType.TypeVectorPoint]


def point_wkb_type():
    scoped = getattr(Qgis, "WkbType", None)
    if scoped is not None:
        return scoped.Point
    from qgis.core import QgsWkbTypes

    return QgsWkbTypes.Point


def _field(name: str, kind: str) -> QgsField:
    if Qgis.QGIS_VERSION_INT >= 33800:
        from qgis.PyQt.QtCore import QMetaType

        types = {"int": QMetaType.Type.Int, "string": QMetaType.Type.QString, "double": QMetaType.Type.Double}
    else:
        from qgis.PyQt.QtCore import QVariant

        types = {"int": QVariant.Int, "string": QVariant.String, "double": QVariant.Double}
    return QgsField(name, types[kind])


def suggestion_fields() -> QgsFields:
    """class_id, class_name, probability, uncertainty and the empty label (core.suggest.FIELDS)."""
    fields = QgsFields()
    for name, kind in (("class_id", "int"), ("class_name", "string"), ("probability", "double"),
                       ("uncertainty", "double"), ("label", "int")):
        fields.append(_field(name, kind))
    return fields


def labelled_points(algorithm, parameters: dict[str, Any], context: QgsProcessingContext, layer_name: str,
                    field_name: str, grid):
    """The labelled points of parameter ``layer_name`` (label field ``field_name``) on ``grid``, or
    None when no layer is given; errors name the parameter."""
    from ..core.suggest import LabelledPoints

    source = algorithm.parameterAsSource(parameters, layer_name, context)
    if source is None:
        return None
    field = algorithm.parameterAsString(parameters, field_name, context) or "label"
    if source.fields().indexOf(field) < 0:
        raise algorithm.parameter_error(field_name, algorithm.tr("the point layer has no field '{}'").format(field))
    target = QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt) if grid.crs_wkt else source.sourceCrs()
    transform = QgsCoordinateTransform(source.sourceCrs(), target, context.transformContext())
    xs, ys, labels = [], [], []
    for feature in source.getFeatures():
        geometry = feature.geometry()
        if geometry is None or geometry.isEmpty():
            continue
        value = feature[field]
        if value is None or (hasattr(value, "isNull") and value.isNull()) or str(value).strip() in ("", "NULL"):
            label = None
        else:
            with algorithm.about(field_name):
                label = class_id_from_value(value, field)
        geometry.transform(transform)
        for point in geometry.asMultiPoint() if geometry.isMultipart() else [geometry.asPoint()]:
            xs.append(point.x())
            ys.append(point.y())
            labels.append(label)
    with algorithm.about(layer_name):
        return LabelledPoints.from_xy(grid, xs, ys, labels)
