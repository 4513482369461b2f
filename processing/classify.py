"""``eolulc:classify``: a trained model applied to feature stacks, block by block."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .compat import raster_layers_type
from .styling import result_group_name, style_when_loaded


class ClassifyAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "classify"
    DISPLAY_NAME = "Classify with LULC model"
    GROUP_ID = "classification"
    GROUP = "Classification"
    DESCRIPTION = (
        "Applies a model from 'Train LULC classifier' to feature stacks built the same way as for training "
        "(same stacks, order, dates and bands; a clear error says what differs). Writes a byte class raster "
        "in the model's class ids, styled with the model's legend (sidecar .qml), and optionally the "
        "confidence: the probability of the chosen class, 0-100. Works block by block in bounded memory."
    )
    REQUIRES = ("numpy", "rasterio", "lightgbm")

    FEATURES = "FEATURES"
    MODEL = "MODEL"
    OUTPUT = "OUTPUT"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"
    PROBABILITIES_FLOAT = "PROBABILITIES_FLOAT"

    def initAlgorithm(self, config=None):
        self.add(
            QgsProcessingParameterMultipleLayers(
                self.FEATURES, self.tr("Feature stacks"), layerType=raster_layers_type()
            ),
            "The feature stacks, in the same order as for training, on one grid.",
        )
        self.add(
            QgsProcessingParameterFile(self.MODEL, self.tr("Model file"),
                                       fileFilter="EO LULC model (*.json);;All files (*)"),
            "A model file written by 'Train LULC classifier' (JSON with LightGBM's text model; pickles are refused).",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Classification")),
            "Class raster in the model's class ids (byte; nodata where the features have none), styled with the "
            "model's legend.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT_CONFIDENCE, self.tr("Confidence"), optional=True,
                                                    createByDefault=False),
            "Probability of the chosen class in percent (0-100, nodata 255).",
        )
        add_probability_parameters(self)

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.classify import classify
        from ..core.model import load_model

        sources = self.raster_sources(parameters, self.FEATURES, context, "choose the feature stacks")
        with self.about(self.MODEL):
            model = load_model(self.parameterAsFile(parameters, self.MODEL, context))
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        confidence = self.output_path(parameters, self.OUTPUT_CONFIDENCE, context)
        probabilities = self.output_path(parameters, self.OUTPUT_PROBABILITIES, context)
        as_float = self.parameterAsBoolean(parameters, self.PROBABILITIES_FLOAT, context)
        with self.about(self.FEATURES):
            result = classify(sources, model, output, confidence, progress, output_probabilities=probabilities,
                              probabilities_float=as_float)
        legend = model.legend
        total = sum(result.class_pixels.values()) or 1
        for class_id, pixels in sorted(result.class_pixels.items()):
            feedback.pushInfo(f"{class_id} {legend.name(class_id)}: {pixels} px ({100 * pixels / total:.1f} %)")
        # loaded like the pipeline's results (also when the shipped model runs this step): the map on
        # top in a group of its own, the confidence below it, unchecked
        group = result_group_name()
        style_when_loaded(context, output, group=group, order=0, name=self.tr("Land-cover map"))
        style_when_loaded(context, confidence, group=group, order=1, styled=False, visible=False,
                          name=self.tr("Confidence"))
        style_when_loaded(context, probabilities, group=group, order=2, visible=False,
                          name=self.tr("Class probabilities"))
        outputs = {self.OUTPUT: output}
        if confidence:
            outputs[self.OUTPUT_CONFIDENCE] = confidence
        if probabilities:
            outputs[self.OUTPUT_PROBABILITIES] = probabilities
        return outputs


def add_probability_parameters(algorithm) -> None:
    """OUTPUT_PROBABILITIES and PROBABILITIES_FLOAT (classify and the pipeline)."""
    algorithm.add(
        QgsProcessingParameterRasterDestination("OUTPUT_PROBABILITIES", algorithm.tr("Class probabilities"),
                                                optional=True, createByDefault=False),
        "One band per class (named by the legend): the probability of each class, in percent (0-100, nodata "
        "255) unless PROBABILITIES_FLOAT. The input of 'Smooth class probabilities', 'Uncertainty' and "
        "'Suggest where to label next'.",
    )
    algorithm.add(
        QgsProcessingParameterBoolean("PROBABILITIES_FLOAT", algorithm.tr("Probabilities as float (0-1)"),
                                      defaultValue=False, optional=True),
        "Write the probabilities as float32 from 0 to 1 (four times the size of the default percent bytes).",
        advanced=True,
    )
