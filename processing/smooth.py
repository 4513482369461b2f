"""``eolulc:smooth``: Bayesian spatial smoothing of class probabilities (sits's method) into a
smoothed class map, with an optional minimum mapping unit."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .styling import result_group_name, style_when_loaded

INPUT = "INPUT"
WINDOW_SIZE = "WINDOW_SIZE"
NEIGHBOURHOOD_FRACTION = "NEIGHBOURHOOD_FRACTION"
SMOOTHNESS = "SMOOTHNESS"
MIN_MAPPING_UNIT = "MIN_MAPPING_UNIT"


def add_smoothing_parameters(algorithm, advanced: bool = False) -> None:
    """WINDOW_SIZE, NEIGHBOURHOOD_FRACTION, SMOOTHNESS and MIN_MAPPING_UNIT (smooth and the pipeline)."""
    from ..core.smoothing import DEFAULT_FRACTION, DEFAULT_WINDOW, MAX_MAPPING_UNIT, MAX_WINDOW

    integer = QgsProcessingParameterNumber.Type.Integer
    double = QgsProcessingParameterNumber.Type.Double
    algorithm.add(
        QgsProcessingParameterNumber(WINDOW_SIZE, algorithm.tr("Window size (pixels, odd)"), type=integer,
                                     defaultValue=DEFAULT_WINDOW, minValue=3, maxValue=MAX_WINDOW),
        "Side of the square neighbourhood whose probabilities form each pixel's prior. 5 by default (sits uses "
        "9, which lost accuracy on 10 m pixels of real data, bench/README.md). Larger windows remove more speckle "
        "and also more small fields.", advanced=advanced)
    algorithm.add(
        QgsProcessingParameterNumber(NEIGHBOURHOOD_FRACTION, algorithm.tr("Neighbourhood fraction"), type=double,
                                     defaultValue=DEFAULT_FRACTION, minValue=0.01, maxValue=1.0),
        "Share of the window's pixels, those with the highest probability of the class, that estimate the "
        "prior's mean and variance (0.5 as in sits): borders between classes stay sharp.", advanced=advanced)
    algorithm.add(
        QgsProcessingParameterString(SMOOTHNESS, algorithm.tr("Smoothness (one value, or one per class)"),
                                     defaultValue="20"),
        "Variance of the classifier's log-odds (20 as in sits): higher values trust the neighbourhood more and "
        "smooth more. One number for all classes or a comma-separated list in the probability stack's band "
        "order.", advanced=advanced)
    algorithm.add(
        QgsProcessingParameterNumber(MIN_MAPPING_UNIT, algorithm.tr("Minimum mapping unit (pixels)"), type=integer,
                                     defaultValue=0, minValue=0, maxValue=MAX_MAPPING_UNIT),
        "Regions of the class map smaller than this many pixels (4-connected) are merged into their largest "
        "neighbour (GDAL's sieve). 0: none.", advanced=advanced)


def smoothing_settings(algorithm, parameters: dict[str, Any], context: QgsProcessingContext, n_classes: int | None):
    from ..core.smoothing import SmoothSettings, parse_smoothness

    with algorithm.about(SMOOTHNESS):
        smoothness = parse_smoothness(algorithm.parameterAsString(parameters, SMOOTHNESS, context))
    settings = SmoothSettings(
        window_size=algorithm.parameterAsInt(parameters, WINDOW_SIZE, context),
        neighbourhood_fraction=algorithm.parameterAsDouble(parameters, NEIGHBOURHOOD_FRACTION, context),
        smoothness=smoothness,
        min_mapping_unit=algorithm.parameterAsInt(parameters, MIN_MAPPING_UNIT, context))
    with algorithm.about(WINDOW_SIZE if settings.window_size % 2 == 0 else SMOOTHNESS):
        settings.validate(n_classes)
    return settings


class SmoothAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "smooth"
    DISPLAY_NAME = "Smooth class probabilities"
    GROUP_ID = "postclassification"
    GROUP = "Post-classification"
    DESCRIPTION = (
        "Bayesian spatial smoothing of a class-probability stack, as sits_smooth of the R package sits: for each "
        "class the log-odds of a pixel is pulled towards the mean of the most probable part of its neighbourhood, "
        "the more so where the neighbourhood agrees; speckle disappears and class borders stay sharp. Writes the "
        "smoothed class map (styled with the classes' legend) and optionally the smoothed probabilities and the "
        "confidence. Optional minimum mapping unit. Block by block in bounded memory; the result does not "
        "depend on the block size."
    )
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterRasterLayer(INPUT, self.tr("Class probabilities")),
                 "A probability stack: OUTPUT_PROBABILITIES of 'Classify with LULC model' or of the pipeline.")
        add_smoothing_parameters(self)
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Smoothed classification")),
                 "The class of the highest smoothed probability, in the model's class ids, styled with its legend.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_PROBABILITIES, self.tr("Smoothed probabilities"),
                                                         optional=True, createByDefault=False),
                 "The smoothed probability of each class (same type as the input). Each class is its own estimate, "
                 "as in sits: they need not sum to 1.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_CONFIDENCE, self.tr("Smoothed confidence"),
                                                         optional=True, createByDefault=False),
                 "The largest smoothed probability in percent (0-100, nodata 255).")
        self.addOutput(QgsProcessingOutputNumber("CHANGED_PIXELS", self.tr("Pixels whose class changed")))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.probstack import describe_probabilities
        from ..core.smoothing import smooth_stack

        source = self.raster_source(parameters, INPUT, context, "choose a class-probability stack")
        with self.about(INPUT):
            stack = describe_probabilities(source)
        settings = smoothing_settings(self, parameters, context, len(stack.class_ids))
        output = self.required_output(parameters, self.OUTPUT, context)
        probabilities = self.output_path(parameters, self.OUTPUT_PROBABILITIES, context)
        confidence = self.output_path(parameters, self.OUTPUT_CONFIDENCE, context)
        with self.about(INPUT):
            result = smooth_stack(source, output, probabilities, confidence, settings, progress)
        total = sum(result.class_pixels.values()) or 1
        feedback.pushInfo(f"Smoothing changed the class of {result.changed_pixels} of {total} pixels "
                          f"({100 * result.changed_pixels / total:.1f} %).")
        for class_id, pixels in sorted(result.class_pixels.items()):
            feedback.pushInfo(f"{class_id} {stack.legend.name(class_id)}: {pixels} px ({100 * pixels / total:.1f} %)")
        group = result_group_name()
        style_when_loaded(context, output, group=group, order=0, name=self.tr("Smoothed land-cover map"))
        style_when_loaded(context, probabilities, group=group, order=1, visible=False,
                          name=self.tr("Smoothed probabilities"))
        style_when_loaded(context, confidence, group=group, order=2, visible=False, name=self.tr("Smoothed confidence"))
        outputs = {self.OUTPUT: output, "CHANGED_PIXELS": result.changed_pixels}
        if probabilities:
            outputs[self.OUTPUT_PROBABILITIES] = probabilities
        if confidence:
            outputs[self.OUTPUT_CONFIDENCE] = confidence
        return outputs
