"""``eolulc:uncertainty``: entropy, margin or least-confidence map of a class-probability stack."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .styling import style_when_loaded

#: METHOD's options (key, label), in their order.
METHODS = (("entropy", "Entropy (normalised)"), ("margin", "Margin: 1 - (best - second best)"),
           ("least", "Least confidence: 1 - best"))


class UncertaintyAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "uncertainty"
    DISPLAY_NAME = "Uncertainty of the classification"
    GROUP_ID = "postclassification"
    GROUP = "Post-classification"
    DESCRIPTION = (
        "How unsure the classifier is at each pixel, from its class probabilities (as sits_uncertainty): "
        "entropy, margin between the two most probable classes, or least confidence. Every measure runs from 0 "
        "(certain) to 1 (no idea): percent (0-100) for a byte probability stack, 0-1 for a float one. Styled "
        "with a continuous ramp; high values are where the map deserves a second look and where new labels "
        "help most ('Suggest where to label next')."
    )
    INPUT = "INPUT"
    METHOD = "METHOD"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Class probabilities")),
                 "A probability stack: OUTPUT_PROBABILITIES of 'Classify with LULC model' or of the pipeline, or "
                 "the smoothed probabilities of 'Smooth class probabilities'.")
        self.add(QgsProcessingParameterEnum(self.METHOD, self.tr("Measure"),
                                            options=[self.tr(label) for _, label in METHODS], defaultValue=0),
                 "Entropy: Shannon entropy over all classes divided by its largest value. Margin: 1 minus the "
                 "difference of the two highest probabilities (a close race between two classes). Least "
                 "confidence: 1 minus the highest probability.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Uncertainty")),
                 "The uncertainty map, styled with a continuous ramp (pale: certain, dark red: uncertain).")
        self.addOutput(QgsProcessingOutputNumber("MEAN_UNCERTAINTY", self.tr("Mean uncertainty (0-1)")))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.uncertainty import MEASURE_LABELS, uncertainty_map

        source = self.raster_source(parameters, self.INPUT, context, "choose a class-probability stack")
        measure = self.option_key(parameters, self.METHOD, context, METHODS)
        output = self.required_output(parameters, self.OUTPUT, context)
        with self.about(self.INPUT):
            summary = uncertainty_map(source, output, measure, progress)
        if summary["mean"] is not None:
            feedback.pushInfo(f"{MEASURE_LABELS[measure]}: mean {summary['mean']:.3f}, "
                              f"{100 * summary['share_above_half']:.1f} % of the pixels above 0.5.")
        style_when_loaded(context, output, name=self.tr("Uncertainty ({})").format(measure))
        return {self.OUTPUT: output, "MEAN_UNCERTAINTY": summary["mean"]}
