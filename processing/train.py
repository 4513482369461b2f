"""``eolulc:train``: a LightGBM land-cover classifier from feature stacks and a reference map."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core import limits
from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .reference import (
    add_legend_parameter,
    add_reference_parameters,
    add_score_outputs,
    describe_scores,
    legend_from_parameters,
    reference_on_grid,
    score_results,
)

SPLIT_OPTIONS = (("blocks", "Spatial blocks"), ("polygons", "By polygon"),
                 ("random", "Random pixels (overstates accuracy)"))
SAMPLING_OPTIONS = (("proportional", "Proportional to class frequency"), ("balanced", "Balanced (equal per class)"))
CLASSIFIER_OPTIONS = (("gbdt", "LightGBM gradient boosting"), ("rf", "LightGBM random forest"))
WEIGHT_OPTIONS = (("none", "None"), ("balanced", "Balanced (inverse class frequency)"))


def raster_layers_type():
    """``Qgis.ProcessingSourceType.Raster`` (3.36+, QGIS 4) or ``QgsProcessing.SourceType.TypeRaster``."""
    scoped = getattr(Qgis, "ProcessingSourceType", None)
    return scoped.Raster if scoped is not None else QgsProcessing.SourceType.TypeRaster


class TrainAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "train"
    DISPLAY_NAME = "Train LULC classifier"
    GROUP_ID = "classification"
    GROUP = "Classification"
    DESCRIPTION = (
        "Trains a LightGBM classifier on feature stacks (every band of every date is one feature) against a "
        "reference map. The reference is eroded per class, labelled pixels are split into training and test "
        "parts spatially (blocks or whole polygons, so neighbouring pixels never sit on both sides), training "
        "pixels are sampled, and the test part gets an accuracy report with feature importances. The model "
        "file is LightGBM's text format with JSON metadata (never a pickle)."
    )
    REQUIRES = ("numpy", "rasterio", "lightgbm", "scipy")

    FEATURES = "FEATURES"
    EROSION = "EROSION"
    SAMPLES = "SAMPLES"
    SAMPLING = "SAMPLING"
    SPLIT = "SPLIT"
    BLOCK_SIZE = "BLOCK_SIZE"
    TEST_FRACTION = "TEST_FRACTION"
    CLASSIFIER = "CLASSIFIER"
    N_ESTIMATORS = "N_ESTIMATORS"
    LEARNING_RATE = "LEARNING_RATE"
    NUM_LEAVES = "NUM_LEAVES"
    FEATURE_FRACTION = "FEATURE_FRACTION"
    EARLY_STOPPING = "EARLY_STOPPING"
    CLASS_WEIGHT = "CLASS_WEIGHT"
    SEED = "SEED"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_REPORT_JSON = "OUTPUT_REPORT_JSON"

    def initAlgorithm(self, config=None):  # noqa: N802
        integer = QgsProcessingParameterNumber.Type.Integer
        double = QgsProcessingParameterNumber.Type.Double
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
            QgsProcessingParameterString(self.EROSION, self.tr("Erosion radius (pixels)"), defaultValue="1"),
            "Each reference class is shrunk by this radius before sampling, so mixed pixels at class borders are "
            "not trusted (eo-learn erodes by 1). Per class: '1, 8:0, 3:2' erodes by 1, class 8 not at all and "
            "class 3 by 2.",
        )
        self.add(
            QgsProcessingParameterNumber(self.SAMPLES, self.tr("Training pixels"), type=integer,
                                         defaultValue=20000, minValue=10,
                                         maxValue=limits.MAX_SAMPLES),
            "How many training pixels to sample from the training part (all of them when there are fewer).",
        )
        self.add(
            QgsProcessingParameterEnum(self.SAMPLING, self.tr("Sampling"),
                                       options=[self.tr(label) for _, label in SAMPLING_OPTIONS], defaultValue=0),
            "Proportional keeps the classes' shares (as eo-learn's example); balanced takes the same number per "
            "class (helps rare classes, at some cost in overall accuracy).",
        )
        self.add(
            QgsProcessingParameterEnum(self.SPLIT, self.tr("Train/test split"),
                                       options=[self.tr(label) for _, label in SPLIT_OPTIONS], defaultValue=0),
            "Spatial blocks (default) hold out whole square blocks; by polygon holds out whole reference polygons; "
            "random pixels puts neighbours on both sides and overstates accuracy (the report says so). Training "
            "pixels touching test pixels are left out.",
        )
        self.add(
            QgsProcessingParameterNumber(self.TEST_FRACTION, self.tr("Test fraction"), type=double,
                                         defaultValue=0.25, minValue=0.01, maxValue=0.9),
            "Share of the labelled pixels held out for the accuracy report.",
        )
        self.add(
            QgsProcessingParameterNumber(self.BLOCK_SIZE, self.tr("Split block size (pixels, 0 = automatic)"),
                                         type=integer, defaultValue=0, minValue=0,
                                         maxValue=limits.MAX_BLOCK_SIZE),
            "Side of the spatial split's blocks; automatic makes 40 or more blocks of 8 to 64 pixels.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(self.CLASSIFIER, self.tr("Classifier"),
                                       options=[self.tr(label) for _, label in CLASSIFIER_OPTIONS], defaultValue=0),
            "LightGBM gradient boosting (default) or LightGBM's random forest mode.",
        )
        self.add(
            QgsProcessingParameterNumber(self.N_ESTIMATORS, self.tr("Maximum boosting rounds"), type=integer,
                                         defaultValue=500, minValue=1,
                                         maxValue=limits.MAX_TREES),
            "Upper bound of trees per class. With early stopping the model keeps only the rounds that still "
            "improved a validation part of the training pixels.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(self.LEARNING_RATE, self.tr("Learning rate"), type=double,
                                         defaultValue=0.1, minValue=0.0001, maxValue=1.0),
            "LightGBM's learning rate (0.1 as LightGBM's default).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(self.NUM_LEAVES, self.tr("Leaves per tree"), type=integer,
                                         defaultValue=15, minValue=2,
                                         maxValue=limits.MAX_LEAVES),
            "LightGBM's num_leaves. 15 (LightGBM's default is 31): the same accuracy on the real "
            "TestEOPatch (bench/train_quality.py), smaller trees that fit and predict faster.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(self.FEATURE_FRACTION, self.tr("Share of features per tree"), type=double,
                                         defaultValue=0.5, minValue=0.01, maxValue=1.0),
            "LightGBM's feature_fraction for boosting: each tree may split on this share of the features, "
            "drawn anew per tree. Dates and bands are redundant, so 0.5 keeps the accuracy (TestEOPatch) and "
            "fits about a third faster; 1 uses every feature. Random forests always use 0.7.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(self.EARLY_STOPPING, self.tr("Early stopping"), defaultValue=True),
            "Stop adding trees when 10 % of the training pixels, held out for validation, stop improving for 25 "
            "rounds: a leaner, faster model of the same accuracy. Off: exactly the maximum rounds.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(self.CLASS_WEIGHT, self.tr("Class weighting"),
                                       options=[self.tr(label) for _, label in WEIGHT_OPTIONS], defaultValue=0),
            "Balanced weights training pixels by inverse class frequency.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"), type=integer, defaultValue=42,
                                         minValue=0, maxValue=limits.MAX_SEED),
            "Seed of the split, the sampling and LightGBM: the same inputs and seed give the same model.",
            advanced=True,
        )
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

    def execute(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
        progress: Progress,
    ) -> dict[str, Any]:
        from ..core.report import importance_html, write_report
        from ..core.timestack import read_info
        from ..core.train import TrainSettings, parse_erosion, train_model

        paths = self.raster_sources(parameters, self.FEATURES, context)
        if not paths:
            raise self.parameter_error(self.FEATURES, self.tr("choose at least one feature stack"))
        with self.about(self.FEATURES):
            grid = read_info(paths[0]).grid
        reference = reference_on_grid(self, parameters, context, grid)
        legend = legend_from_parameters(self, parameters, context)
        erosion = self.parameterAsString(parameters, self.EROSION, context)
        with self.about(self.EROSION):
            parse_erosion(erosion)
        settings = TrainSettings(
            samples=self.parameterAsInt(parameters, self.SAMPLES, context),
            sampling=SAMPLING_OPTIONS[self.parameterAsEnum(parameters, self.SAMPLING, context)][0],
            split=SPLIT_OPTIONS[self.parameterAsEnum(parameters, self.SPLIT, context)][0],
            test_fraction=self.parameterAsDouble(parameters, self.TEST_FRACTION, context),
            block_size=self.parameterAsInt(parameters, self.BLOCK_SIZE, context),
            erosion=erosion,
            classifier=CLASSIFIER_OPTIONS[self.parameterAsEnum(parameters, self.CLASSIFIER, context)][0],
            n_estimators=self.parameterAsInt(parameters, self.N_ESTIMATORS, context),
            learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            num_leaves=self.parameterAsInt(parameters, self.NUM_LEAVES, context),
            feature_fraction=self.parameterAsDouble(parameters, self.FEATURE_FRACTION, context),
            early_stopping=self.parameterAsBoolean(parameters, self.EARLY_STOPPING, context),
            class_weight=WEIGHT_OPTIONS[self.parameterAsEnum(parameters, self.CLASS_WEIGHT, context)][0],
            seed=self.parameterAsInt(parameters, self.SEED, context),
        )
        with self.about(self.SPLIT):
            settings.validate()
        model_path = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        report_path = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        json_path = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT_JSON, context) or None
        with self.about(self.FEATURES):
            result = train_model(paths, reference, legend, settings, progress)
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
