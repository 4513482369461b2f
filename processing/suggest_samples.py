"""``eolulc:suggestsamples``: points at the most uncertain places of a classification, spread out
and stratified by predicted class, for the user to label and give back to training."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .points import point_wkb_type, suggestion_fields
from .uncertainty import METHODS


class SuggestSamplesAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "suggestsamples"
    DISPLAY_NAME = "Suggest where to label next"
    GROUP_ID = "postclassification"
    GROUP = "Post-classification"
    DESCRIPTION = (
        "Active learning, as sits_uncertainty_sampling: points at the pixels the classifier is least sure of, "
        "no two closer than a minimum distance and shared equally between the predicted classes. Each point "
        "carries the predicted class, its probability, the uncertainty and an empty 'label' field: type the "
        "true class id where you know it, leave it empty where you don't, and give the layer to 'Train LULC "
        "classifier' (LABELLED_POINTS) next to the reference. Retrain, classify, repeat."
    )
    INPUT = "INPUT"
    NUMBER = "NUMBER"
    MIN_DISTANCE = "MIN_DISTANCE"
    METHOD = "METHOD"
    MIN_UNCERTAINTY = "MIN_UNCERTAINTY"
    SEED = "SEED"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):
        from ..core.suggest import MAX_DISTANCE, MAX_POINTS

        integer = QgsProcessingParameterNumber.Type.Integer
        double = QgsProcessingParameterNumber.Type.Double
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Class probabilities")),
                 "A probability stack (OUTPUT_PROBABILITIES of classification; the smoothed one of 'Smooth class "
                 "probabilities' is better, as in sits: isolated noisy pixels are not worth a label).")
        self.add(QgsProcessingParameterNumber(self.NUMBER, self.tr("Number of points"), type=integer,
                                              defaultValue=100, minValue=1, maxValue=MAX_POINTS),
                 "How many points to suggest (fewer when not enough pixels are uncertain and far enough apart).")
        self.add(QgsProcessingParameterNumber(self.MIN_DISTANCE, self.tr("Minimum distance (pixels)"), type=double,
                                              defaultValue=10, minValue=0, maxValue=MAX_DISTANCE),
                 "No two points closer than this many pixels (times the pixel size in map units): neighbouring "
                 "pixels would teach the classifier the same thing twice.")
        self.add(QgsProcessingParameterEnum(self.METHOD, self.tr("Uncertainty measure"),
                                            options=[self.tr(label) for _, label in METHODS], defaultValue=0),
                 "The measure that ranks the pixels (see 'Uncertainty of the classification').")
        self.add(QgsProcessingParameterNumber(self.MIN_UNCERTAINTY, self.tr("Minimum uncertainty (0-1)"), type=double,
                                              defaultValue=0.0, minValue=0.0, maxValue=1.0),
                 "Pixels less uncertain than this are never suggested.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.SEED, self.tr("Seed"), type=integer, defaultValue=0, minValue=0,
                                              maxValue=2 ** 31 - 1),
                 "Breaks ties between equally uncertain pixels.", advanced=True)
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Suggested samples")),
                 "Points with class_id and class_name (predicted), probability, uncertainty and an empty integer "
                 "'label' for your class id.")
        self.addOutput(QgsProcessingOutputNumber("POINTS", self.tr("Number of points suggested")))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.suggest import suggest_samples

        source = self.raster_source(parameters, self.INPUT, context, "choose a class-probability stack")
        info = self.stack_info(source, self.INPUT)
        measure = self.option_key(parameters, self.METHOD, context, METHODS)
        with self.about(self.INPUT):
            suggestions = suggest_samples(
                source, n=self.parameterAsInt(parameters, self.NUMBER, context),
                min_distance=self.parameterAsDouble(parameters, self.MIN_DISTANCE, context), measure=measure,
                min_uncertainty=self.parameterAsDouble(parameters, self.MIN_UNCERTAINTY, context),
                seed=self.parameterAsInt(parameters, self.SEED, context), progress=progress)
        crs = QgsCoordinateReferenceSystem.fromWkt(info.grid.crs_wkt) if info.grid.crs_wkt else \
            QgsCoordinateReferenceSystem()
        fields = suggestion_fields()
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, point_wkb_type(), crs)
        if sink is None:
            raise self.parameter_error(self.OUTPUT, self.tr("cannot create the output layer"))
        for item in suggestions:
            feature = QgsFeature(fields)
            feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(item.x, item.y)))
            feature.setAttributes([item.class_id, item.class_name, item.probability, item.uncertainty, None])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        classes = sorted({(s.class_id, s.class_name) for s in suggestions})
        feedback.pushInfo(f"{len(suggestions)} points suggested, predicted classes: "
                          + ", ".join(f"{name} ({sum(s.class_id == c for s in suggestions)})" for c, name in classes))
        return {self.OUTPUT: dest_id, "POINTS": len(suggestions)}
