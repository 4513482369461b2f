"""What the algorithms that compare maps with a reference share: the reference map parameters (a
class raster, or polygons with a class field and optionally a name field, brought onto the
features' grid), the legend parameter, and the accuracy outputs."""

from __future__ import annotations

import json
from typing import Any, Iterable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingContext,
    QgsProcessingOutputNumber,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterMapLayer,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ..core.gdalerrors import is_raster_file
from ..core.legend import Legend, default_legend, read_legend
from ..core.progress import Progress, ensure_progress
from ..core.reference import (
    Reference,
    class_id_from_value,
    rasterize_polygons,
    read_reference_raster,
    require_named_layer,
)
from ..core.timestack import Grid
from .compat import field_types, raster_and_polygon_types

REFERENCE = "REFERENCE"
CLASS_FIELD = "CLASS_FIELD"
NAME_FIELD = "NAME_FIELD"
LEGEND = "LEGEND"
#: (output id, key in an accuracy report, label)
SCORES = (("OVERALL_ACCURACY", "overall_accuracy", "overall accuracy"),
          ("F1_WEIGHTED", "f1_weighted", "weighted F1"),
          ("KAPPA", "kappa", "Cohen's kappa"))


#: The class field's label: optional for a raster reference, so the dialog says when it is needed.
CLASS_FIELD_LABEL = "Class field (required for polygons)"


def reference_problem(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
    """The dialog's message, checked before the run instead of failing once it has started, when
    the reference is a file of several layers that names none, or a polygon layer without its
    class field."""
    if algorithm.parameterDefinition(REFERENCE) is None or algorithm.parameterDefinition(CLASS_FIELD) is None:
        return None
    given = parameters.get(REFERENCE)
    if not given or (isinstance(given, str) and is_raster_file(given)):
        return None
    if isinstance(given, str):
        try:
            require_named_layer(given)
        except ValueError as error:
            return f"{algorithm.parameter_label(REFERENCE)}: {error}"
    if algorithm.parameterAsString(parameters, CLASS_FIELD, context):
        return None
    if not isinstance(algorithm.parameterAsLayer(parameters, REFERENCE, context), QgsVectorLayer):
        return None
    return algorithm.tr("{}: a polygon reference needs its class field: choose the one holding integer class ids "
                        "(e.g. LULC_ID)").format(algorithm.parameter_label(CLASS_FIELD))


def add_reference_parameters(algorithm, description: str = "Reference land cover") -> None:
    _, any_type = field_types()
    algorithm.add(
        QgsProcessingParameterMapLayer(REFERENCE, algorithm.tr(description), types=raster_and_polygon_types()),
        "The reference map: a class raster (integer class ids, 0 = no data) or polygons with a class "
        "field. Polygons are rasterized onto the features' grid (pixel centres); a raster on another "
        "grid or CRS is resampled with nearest neighbour. A file of several layers (a GeoPackage) needs the "
        "layer named: file.gpkg|layername=LULC.",
    )
    algorithm.add(
        QgsProcessingParameterField(CLASS_FIELD, algorithm.tr(CLASS_FIELD_LABEL),
                                    parentLayerParameterName=REFERENCE, type=any_type, optional=True),
        "For a polygon reference (required then): the field holding the integer class id (e.g. LULC_ID): a "
        "number field, or a text field holding whole numbers such as '3'. Not used with a raster reference.",
    )
    algorithm.add(
        QgsProcessingParameterField(NAME_FIELD, algorithm.tr("Class name field (polygons)"),
                                    parentLayerParameterName=REFERENCE, type=any_type, optional=True),
        "For a polygon reference, optional: the field holding class names (e.g. LULC_NAME); they name the "
        "classes in the model, the legend and the reports.",
    )


def reference_on_grid(algorithm, parameters: dict[str, Any], context: QgsProcessingContext, grid: Grid,
                      progress: Progress | None = None) -> Reference:
    """Read the reference parameters onto ``grid``; errors name the parameter to fix, warnings go
    to ``progress``."""
    given = parameters.get(REFERENCE)
    if isinstance(given, str) and is_raster_file(given):
        # read as it is: loading it as a QGIS layer would leave a .aux.xml beside the user's file
        with algorithm.about(REFERENCE):
            return read_reference_raster(given, grid, progress=progress)
    if isinstance(given, str):
        with algorithm.about(REFERENCE):
            require_named_layer(given)
    layer = algorithm.parameterAsLayer(parameters, REFERENCE, context)
    if layer is None:
        raise algorithm.parameter_error(REFERENCE, algorithm.tr("choose a reference raster or polygon layer"))
    if isinstance(layer, QgsRasterLayer):
        with algorithm.about(REFERENCE):
            return read_reference_raster(layer.source(), grid, progress=progress)
    if not isinstance(layer, QgsVectorLayer):
        raise algorithm.parameter_error(REFERENCE, algorithm.tr("the reference must be a raster or a polygon layer"))
    class_field = algorithm.parameterAsString(parameters, CLASS_FIELD, context)
    if not class_field:
        raise algorithm.parameter_error(CLASS_FIELD, algorithm.tr("a polygon reference needs its class field"))
    name_field = algorithm.parameterAsString(parameters, NAME_FIELD, context) or None
    fields = layer.fields()
    for name, parameter in ((class_field, CLASS_FIELD), (name_field, NAME_FIELD)):
        if name and fields.indexOf(name) < 0:
            raise algorithm.parameter_error(parameter, algorithm.tr("the layer has no field '{}'").format(name))
    target = QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt) if grid.crs_wkt else layer.crs()
    transform = QgsCoordinateTransform(layer.crs(), target, context.transformContext())
    shapes = []
    names: dict[int, str] = {}
    for feature in layer.getFeatures():
        value = feature[class_field]
        if value is None or (hasattr(value, "isNull") and value.isNull()) or str(value).strip() == "":
            continue  # an unlabelled polygon (a text field left empty), as NULL
        with algorithm.about(CLASS_FIELD):
            class_id = class_id_from_value(value, class_field)
        geometry = feature.geometry()
        if geometry is None or geometry.isEmpty():
            continue
        geometry.transform(transform)
        shapes.append((json.loads(geometry.asJson()), class_id))
        if name_field:
            label = feature[name_field]
            if label is not None and str(label) not in ("", "NULL"):
                names.setdefault(class_id, str(label))
    with algorithm.about(REFERENCE):
        return rasterize_polygons(shapes, grid, names)


def add_legend_parameter(algorithm, where: str = "") -> None:
    algorithm.add(
        QgsProcessingParameterFile(LEGEND, algorithm.tr("Legend"), optional=True,
                                   fileFilter="Legend (*.csv *.txt *.clr);;All files (*)"),
        "Class names and colours (CSV id,name,colour or a QGIS colour-map export)" + where + ". Empty: the "
        "shipped legend of the reference's coding (eo-learn Slovenia for ids 1-10, ESA WorldCover for its codes "
        "10, 20, ... 100), else 'class N'; names from the reference's name field take precedence.",
    )


def legend_from_parameters(algorithm, parameters: dict[str, Any], context: QgsProcessingContext,
                           class_ids: Iterable[int] | None = None, progress: Progress | None = None) -> Legend:
    """The LEGEND file; without one, the shipped legend of the reference's ``class_ids`` coding
    (:func:`~..core.legend.default_legend`, said in the log), or eo-learn's where they are unknown."""
    path = algorithm.parameterAsFile(parameters, LEGEND, context)
    if path or class_ids is None:
        with algorithm.about(LEGEND):
            return read_legend(path or None)
    legend, which = default_legend(class_ids)
    ensure_progress(progress).log(f"Legend: {which}.")
    return legend


def add_score_outputs(algorithm, prefix: str = "") -> None:
    """Number outputs of the accuracy figures, so models can chain on them."""
    for output, _, label in SCORES:
        algorithm.addOutput(QgsProcessingOutputNumber(output, algorithm.tr(prefix + label)))


def score_results(report: dict) -> dict[str, Any]:
    return {output: report[key] for output, key, _ in SCORES}


def describe_scores(report: dict, where: str) -> str:
    figures = ", ".join(f"{label} {'n/a' if report[key] is None else format(report[key], '.3f')}"
                        for _, key, label in SCORES)
    return f"{where}: {figures}"
