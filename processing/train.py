"""``eolulc:train``: a LightGBM land-cover classifier from feature stacks and a reference map."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .compat import field_types, raster_layers_type
from .points import labelled_points, point_layer_types
from .reference import (
    add_legend_parameter,
    add_reference_parameters,
    add_score_outputs,
    describe_scores,
    legend_from_parameters,
    reference_on_grid,
    score_results,
)
from .training import (
    ALL,
    BLOCK_SIZE,
    CLASS_SAMPLES,
    CLASS_WEIGHT,
    DEEP,
    EARLY_STOPPING,
    FEATURE_FRACTION,
    LEARNING_RATE,
    N_ESTIMATORS,
    NUM_LEAVES,
    SEED,
    add_training_parameters,
    train_settings,
)

#: Training parameters in the Advanced group.
ADVANCED = (CLASS_SAMPLES, BLOCK_SIZE, N_ESTIMATORS, LEARNING_RATE, NUM_LEAVES, FEATURE_FRACTION, EARLY_STOPPING,
            CLASS_WEIGHT, SEED, *DEEP)


class TrainAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "train"
    DISPLAY_NAME = "Train LULC classifier"
    GROUP_ID = "classification"
    GROUP = "Classification"
    DESCRIPTION = (
        "Trains a LightGBM classifier (or a TempCNN / L-TAE temporal network) on feature stacks (every band of "
        "every date is one feature) against a "
        "reference map. The reference is eroded per class, labelled pixels are split into training and test "
        "parts spatially (blocks or whole polygons, so neighbouring pixels never sit on both sides), training "
        "pixels are sampled, and the test part gets an accuracy report with feature importances. The model "
        "file is LightGBM's text format (a network: numeric arrays) with JSON metadata (never a pickle)."
    )
    REQUIRES = ("numpy", "rasterio", "lightgbm", "scipy")

    FEATURES = "FEATURES"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_REPORT_JSON = "OUTPUT_REPORT_JSON"
    LABELLED_POINTS = "LABELLED_POINTS"
    LABEL_FIELD = "LABEL_FIELD"

    def initAlgorithm(self, config=None):
        self.add(
            QgsProcessingParameterMultipleLayers(
                self.FEATURES, self.tr("Feature stacks"), layerType=raster_layers_type()
            ),
            "One or more time stacks on the same grid (e.g. interpolated bands and indices). Every band of every "
            "date is one feature, named like '2017-03-14 NDVI'. Classify needs the same stacks, in the same order.",
        )
        add_reference_parameters(self)
        add_legend_parameter(self, " stored in the model")
        self.add(
            QgsProcessingParameterFeatureSource(self.LABELLED_POINTS, self.tr("Labelled points (additional)"),
                                                types=point_layer_types(), optional=True),
            "Points labelled besides the reference, e.g. those of 'Suggest where to label next' once their label "
            "field is filled: each trains the pixel it falls in (not eroded, not sampled), except in or next to "
            "the held-out test part. Points with an empty label are ignored.",
        )
        self.add(
            QgsProcessingParameterField(self.LABEL_FIELD, self.tr("Label field of the points"),
                                        defaultValue="label", parentLayerParameterName=self.LABELLED_POINTS,
                                        type=field_types()[1], optional=True),
            "The field holding the points' integer class ids ('label' in suggested samples); a text field "
            "holding whole numbers such as '3' works too.",
        )
        add_training_parameters(self, ALL, advanced=ADVANCED)
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, self.tr("Model file"),
                                                  fileFilter="EO LULC model (*.json)"),
            "The trained model: LightGBM's text format and the metadata Classify checks its inputs against.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_REPORT, self.tr("Test report (HTML)"),
                                                  fileFilter="HTML files (*.html)", optional=True),
            "Accuracy on the test part, per-class figures, confusion matrix and feature importances.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_REPORT_JSON, self.tr("Test report (JSON)"),
                                                  fileFilter="JSON files (*.json)", optional=True,
                                                  createByDefault=False),
            "The same figures as JSON.",
        )
        add_score_outputs(self, "Test ")

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.report import importance_html, write_report
        from ..core.sampling import check_known_classes
        from ..core.train import train_model

        paths = self.raster_sources(parameters, self.FEATURES, context, "choose at least one feature stack")
        grid = self.stack_info(paths[0], self.FEATURES).grid
        reference = reference_on_grid(self, parameters, context, grid, progress)
        legend = legend_from_parameters(self, parameters, context, reference.class_ids, progress)
        settings = train_settings(self, parameters, context, ALL)
        with self.about(CLASS_SAMPLES):
            check_known_classes(settings.class_counts(), reference.class_ids)
        points = labelled_points(self, parameters, context, self.LABELLED_POINTS, self.LABEL_FIELD, grid)
        model_path = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        report_path = self.output_path(parameters, self.OUTPUT_REPORT, context)
        json_path = self.output_path(parameters, self.OUTPUT_REPORT_JSON, context)
        with self.about(self.FEATURES):
            result = train_model(paths, reference, legend, settings, progress, points=points)
        for note in result.notes:
            feedback.pushInfo(note)
        report = result.report
        feedback.pushInfo(describe_scores(report, self.tr("Test split")))
        result.model.save(model_path)
        if report_path or json_path:
            write_report(report_path, json_path, report, self.tr("EO LULC training: test-split accuracy"),
                         notes=result.notes, extra_sections=[(self.tr("Feature importance"),
                                                              importance_html(result.importances))])
        outputs = {self.OUTPUT_MODEL: model_path, **score_results(report)}
        if report_path:
            outputs[self.OUTPUT_REPORT] = report_path
        if json_path:
            outputs[self.OUTPUT_REPORT_JSON] = json_path
        return outputs
