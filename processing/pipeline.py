"""``eolulc:lulcpipeline``: Sentinel-2 time stack (L1C, or L2A with its mask) + reference -> styled
land-cover map and report."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from ..core import limits
from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .classify import add_probability_parameters
from .cloud_source import CLOUD_MASK, CLOUD_MASK_SOURCE, add_cloud_mask_source, cloud_mask_source
from .features import INDICES, add_indices_parameter, chosen_indices
from .reference import (
    add_legend_parameter,
    add_reference_parameters,
    add_score_outputs,
    describe_scores,
    legend_from_parameters,
    reference_on_grid,
    score_results,
)
from .smooth import add_smoothing_parameters, smoothing_settings
from .styling import result_group_name, style_when_loaded
from .training import (
    CLASSIFIER,
    DEEP,
    SAMPLES,
    SEED,
    SPLIT,
    TEST_FRACTION,
    add_training_parameters,
    train_settings,
)

#: The training parameters the pipeline exposes, in their order; all but the split are advanced.
TRAINING = (SPLIT, TEST_FRACTION, SAMPLES, SEED, CLASSIFIER, *DEEP)


class LulcPipelineAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "lulcpipeline"
    DISPLAY_NAME = "LULC pipeline (Sentinel-2 time stack to land-cover map)"
    GROUP_ID = "pipeline"
    GROUP = "Pipeline"
    DESCRIPTION = (
        "The whole eo-learn LULC workflow in one step: the cloud mask (s2cloudless on an L1C stack, or a given "
        "mask stack such as an L2A import's SCL mask or an EOPatch's CLM), bands and indices per date, "
        "cloudy-scene filtering and temporal interpolation onto a regular date grid, LightGBM training with a "
        "spatial train/test split, classification with Bayesian smoothing of the class probabilities (on by "
        "default, as sits) and an accuracy report on the held-out part (with area-adjusted estimates). The "
        "switches of Sinergise's experiments are exposed: scene filtering on/off, "
        "cloud mask used in interpolation on/off, interval days. From the toolbox the classification, the "
        "reference, the confidence and the agreement layer arrive styled in one layer group."
    )
    REQUIRES = ("numpy", "rasterio", "lightgbm", "scipy", "cv2", "s2cloudless")

    INPUT = "INPUT"
    CLOUD_MASK_SOURCE = CLOUD_MASK_SOURCE
    CLOUD_MASK = CLOUD_MASK
    SCENE_FILTER = "SCENE_FILTER"
    MIN_VALID_FRACTION = "MIN_VALID_FRACTION"
    CLOUD_MASK_IN_INTERPOLATION = "CLOUD_MASK_IN_INTERPOLATION"
    INTERVAL_DAYS = "INTERVAL_DAYS"
    START = "START"
    END = "END"
    PROCESSING_RESOLUTION = "PROCESSING_RESOLUTION"
    BANDS = "BANDS"
    INDICES = INDICES
    OUTPUT = "OUTPUT"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    OUTPUT_REFERENCE = "OUTPUT_REFERENCE"
    OUTPUT_AGREEMENT = "OUTPUT_AGREEMENT"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_CLOUD_MASK = "OUTPUT_CLOUD_MASK"
    OUTPUT_FEATURES = "OUTPUT_FEATURES"
    OUTPUT_INTERPOLATED = "OUTPUT_INTERPOLATED"
    SMOOTHING = "SMOOTHING"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"
    PROBABILITIES_FLOAT = "PROBABILITIES_FLOAT"

    #: outputs a command line may leave out (written to temporary files then)
    SECONDARY = {"OUTPUT_CONFIDENCE": "confidence.tif", "OUTPUT_REFERENCE": "reference.tif",
                 "OUTPUT_AGREEMENT": "agreement.tif", "OUTPUT_MODEL": "model.json", "OUTPUT_REPORT": "report.html"}

    def initAlgorithm(self, config=None):
        from ..core.features import DEFAULT_BANDS
        from ..core.pipeline import PipelineSettings

        defaults = PipelineSettings()

        integer = QgsProcessingParameterNumber.Type.Integer
        double = QgsProcessingParameterNumber.Type.Double
        self.add(
            QgsProcessingParameterRasterLayer(
                self.INPUT, self.tr("Sentinel-2 time stack (L1C, or L2A with a cloud-mask stack)")),
            "A time stack with the 13 L1C bands (or at least the s2cloudless bands and those the features use), "
            "e.g. from 'Build time stack from per-date rasters'. Reflectance or digital numbers. An L2A stack "
            "(e.g. from 'Import Sentinel-2 products (SAFE)') goes with a given cloud-mask stack.",
        )
        add_cloud_mask_source(
            self, QgsProcessingParameterRasterLayer(self.CLOUD_MASK, self.tr("Cloud-mask stack"), optional=True),
            "With 'given mask stack': a mask on the input's grid and dates, 0 clear, anything else cloudy or "
            "nodata, e.g. the SCL mask (OUTPUT_MASK) of 'Import Sentinel-2 products (SAFE)' or the CLM stack of "
            "'Import EOPatch'.",
        )
        add_reference_parameters(self)
        add_legend_parameter(self)
        self.add(
            QgsProcessingParameterBoolean(self.SCENE_FILTER, self.tr("Filter cloudy scenes"),
                                          defaultValue=defaults.scene_filter),
            "Drop dates whose clear fraction is not above the minimum before interpolating (eo-learn's "
            "cloudy-scene filtering).",
        )
        self.add(
            QgsProcessingParameterNumber(self.MIN_VALID_FRACTION, self.tr("Minimum clear fraction"), type=double,
                                         defaultValue=defaults.min_valid_fraction, minValue=0.0, maxValue=1.0),
            "A date is kept when more than this share of its pixels is clear (0.8 as in the eo-learn example).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterBoolean(self.CLOUD_MASK_IN_INTERPOLATION,
                                          self.tr("Use the cloud mask in interpolation"),
                                          defaultValue=defaults.cloud_mask_in_interpolation),
            "Treat cloudy pixels as missing when interpolating (off: only nodata is missing, the seed's 'no "
            "cloud masking' case).",
        )
        self.add(
            QgsProcessingParameterNumber(self.INTERVAL_DAYS, self.tr("Interval (days)"), type=integer,
                                         defaultValue=defaults.interval_days, minValue=1,
                                         maxValue=limits.MAX_INTERVAL_DAYS),
            "Spacing of the regular date grid the features are interpolated onto.",
        )
        self.add(
            QgsProcessingParameterString(self.START, self.tr("Grid start (YYYY-MM-DD)"), optional=True),
            "First date of the grid; empty: the first acquisition's day.", advanced=True,
        )
        self.add(
            QgsProcessingParameterString(self.END, self.tr("Grid end (YYYY-MM-DD)"), optional=True),
            "Grid dates stay before this day; empty: the day after the last acquisition.", advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(self.PROCESSING_RESOLUTION, self.tr("Cloud mask processing resolution (m)"),
                                         type=double, defaultValue=defaults.processing_resolution, minValue=0.0,
                                         maxValue=limits.MAX_PROCESSING_RESOLUTION),
            "Resolution the s2cloudless model runs at (see 'Cloud mask'); 10 or 0 = the stack's own.", advanced=True,
        )
        self.add(
            QgsProcessingParameterString(self.BANDS, self.tr("Bands used as features"),
                                         defaultValue=",".join(DEFAULT_BANDS)),
            "Bands kept as features next to the indices (eo-learn's example uses these six). With a given "
            "cloud-mask stack, a stack without Sentinel-2 bands (e.g. an EOPatch's NDVI) is taken as its own "
            "features while this and the indices keep their defaults; or name its bands here, with no index.",
            advanced=True,
        )
        add_indices_parameter(self, advanced=True)
        add_training_parameters(self, TRAINING, advanced=TRAINING[1:])
        self.add(
            QgsProcessingParameterBoolean(self.SMOOTHING, self.tr("Smooth the class probabilities (Bayesian)"),
                                          defaultValue=defaults.smoothing),
            "Bayesian spatial smoothing of the class probabilities before the map is made (as 'Smooth class "
            "probabilities' and sits_smooth); the report's accuracy is then the smoothed map's. On by default: it "
            "gained accuracy on every honest spatial split of real data (bench/README.md). Its settings are in the "
            "Advanced group.",
        )
        add_smoothing_parameters(self, advanced=True)
        outputs = (
            (self.OUTPUT, "Land-cover map", "The classification, styled with the legend."),
            (self.OUTPUT_CONFIDENCE, "Confidence", "Probability of the chosen class, 0-100."),
            (self.OUTPUT_REFERENCE, "Reference map", "The reference on the map's grid (rasterized polygons), styled."),
            (self.OUTPUT_AGREEMENT, "Agreement with the reference",
             "1 where the map equals the reference, 2 where it differs, nodata without reference."),
            (self.OUTPUT_CLOUD_MASK, "Cloud mask", "The cloud-mask stack (intermediate)."),
            (self.OUTPUT_FEATURES, "Features per date", "Bands and indices per acquisition date (intermediate)."),
            (self.OUTPUT_INTERPOLATED, "Interpolated features",
             "Features on the regular date grid (intermediate; without a file they are classified block by block "
             "and never written, which is faster)."),
        )
        for name, label, help_text in outputs:
            intermediate = name in (self.OUTPUT_CLOUD_MASK, self.OUTPUT_FEATURES, self.OUTPUT_INTERPOLATED)
            self.add(QgsProcessingParameterRasterDestination(name, self.tr(label), optional=name != self.OUTPUT,
                                                             createByDefault=not intermediate),
                     help_text + (" Not kept unless a file is given." if intermediate else "")
                     + (" Optional: a temporary file when not given." if name in self.SECONDARY else ""))
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, self.tr("Model file"),
                                                  fileFilter="EO LULC model (*.json)", optional=True,
                                                  createByDefault=True),
            "The trained model (reusable with 'Classify with LULC model'). Optional: a temporary file when "
            "not given.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_REPORT, self.tr("Accuracy report (HTML)"),
                                                  fileFilter="HTML files (*.html)", optional=True,
                                                  createByDefault=True),
            "Accuracy on the held-out test part, area-adjusted estimates, settings and feature importances. "
            "Optional: a temporary file when not given.",
        )
        add_probability_parameters(self)
        add_score_outputs(self, "Test ")

    def choice_problem(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """No band and no index (said before the run, not as QGIS's "Incorrect parameter value")."""
        from ..core.features import DEFAULT_BANDS, parse_band_list

        if parse_band_list(self.parameterAsString(parameters, self.BANDS, context)) or \
                self.parameterAsEnums(parameters, self.INDICES, context):
            return None
        return self.tr("{}: empty, and no index is chosen; name the bands used as features, separated by commas "
                       "(the default: {})").format(self.parameter_label(self.BANDS), ",".join(DEFAULT_BANDS))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.features import FeatureSpec, is_prepared_feature_stack, parse_band_list, resolve_bands
        from ..core.pipeline import GIVEN_MASK, PipelineOutputs, PipelineSettings, check_cloud_mask_source, run_pipeline

        source = self.raster_source(parameters, self.INPUT, context, "choose the Sentinel-2 time stack")
        info = self.stack_info(source, self.INPUT)
        mask_source, force_s2cloudless = cloud_mask_source(self, parameters, context)
        given_mask = self.raster_source(parameters, self.CLOUD_MASK, context)
        reference = reference_on_grid(self, parameters, context, info.grid, progress)
        legend = legend_from_parameters(self, parameters, context, reference.class_ids, progress)
        indices = chosen_indices(self, parameters, context)
        with self.about(self.BANDS):
            features = FeatureSpec(bands=parse_band_list(self.parameterAsString(parameters, self.BANDS, context)),
                                   indices=indices)
            if mask_source == GIVEN_MASK and features == FeatureSpec() and is_prepared_feature_stack(info, features):
                # as 'experiment': with a given mask, a stack without Sentinel-2 bands is a prepared
                # feature stack (an EOPatch's NDVI), used as it is; a band stack that lacks a band of
                # the defaults (an L2A stack without B11) is refused below, naming what is missing
                features, indices = FeatureSpec(bands=tuple(info.bands), indices=()), ()
                feedback.pushWarning(self.tr("The stack has none of the default features' bands: its own bands ({}) "
                                          "are the features, as they are.").format(", ".join(info.bands)))
            resolve_bands(info.bands, features.bands)
        with self.about(self.INDICES):
            for index in indices:
                resolve_bands(info.bands, [index.a, index.b], f"the index {index.name}; choose no index for a "
                              "stack without these bands")
        settings = PipelineSettings(
            scene_filter=self.parameterAsBoolean(parameters, self.SCENE_FILTER, context),
            min_valid_fraction=self.parameterAsDouble(parameters, self.MIN_VALID_FRACTION, context),
            cloud_mask_in_interpolation=self.parameterAsBoolean(parameters, self.CLOUD_MASK_IN_INTERPOLATION, context),
            interval_days=self.parameterAsInt(parameters, self.INTERVAL_DAYS, context),
            start=self.parameterAsString(parameters, self.START, context).strip() or None,
            end=self.parameterAsString(parameters, self.END, context).strip() or None,
            processing_resolution=self.parameterAsDouble(parameters, self.PROCESSING_RESOLUTION, context) or None,
            cloud_mask_source=mask_source,
            force_s2cloudless=force_s2cloudless,
            features=features,
            train=train_settings(self, parameters, context, TRAINING),
            smoothing=self.parameterAsBoolean(parameters, self.SMOOTHING, context),
        )
        if settings.smoothing:
            settings.smooth = smoothing_settings(self, parameters, context, None)
        with self.about(self.CLOUD_MASK if mask_source == GIVEN_MASK and given_mask else self.CLOUD_MASK_SOURCE):
            check_cloud_mask_source(info, settings, given_mask)
        rasters = {self.OUTPUT: self.required_output(parameters, self.OUTPUT, context)}
        rasters.update({name: self.parameterAsOutputLayer(parameters, name, context) for name in (
            self.OUTPUT_CONFIDENCE, self.OUTPUT_REFERENCE, self.OUTPUT_AGREEMENT)})
        kept = {}
        for name in (self.OUTPUT_CLOUD_MASK, self.OUTPUT_FEATURES, self.OUTPUT_INTERPOLATED):
            path = self.parameterAsOutputLayer(parameters, name, context)
            if path:
                kept[name] = path
        rasters.update(kept)
        if given_mask and self.OUTPUT_CLOUD_MASK in kept:
            feedback.pushWarning(self.tr("The cloud mask is the given CLOUD_MASK stack: OUTPUT_CLOUD_MASK is not "
                                         "written."))
            del kept[self.OUTPUT_CLOUD_MASK]
        # the cloud mask is read back by the interpolation: a temporary file when not kept
        rasters.setdefault(self.OUTPUT_CLOUD_MASK, QgsProcessingUtils.generateTempFilename("output_cloud_mask.tif"))
        files = {name: self.parameterAsFileOutput(parameters, name, context)
                 for name in (self.OUTPUT_MODEL, self.OUTPUT_REPORT)}
        # secondary products not asked for (e.g. on a qgis_process command line) go to temporary files
        for products in (rasters, files):
            for name, path in products.items():
                if not path and name in self.SECONDARY:
                    products[name] = QgsProcessingUtils.generateTempFilename(self.SECONDARY[name])
        outputs = PipelineOutputs(
            cloud_mask=rasters[self.OUTPUT_CLOUD_MASK],
            # not asked for: the features are computed for the kept dates while interpolating, and
            # the interpolated blocks are classified as they are made
            features=kept.get(self.OUTPUT_FEATURES),
            interpolated=kept.get(self.OUTPUT_INTERPOLATED), model=files[self.OUTPUT_MODEL],
            classification=rasters[self.OUTPUT], confidence=rasters[self.OUTPUT_CONFIDENCE],
            reference=rasters[self.OUTPUT_REFERENCE], agreement=rasters[self.OUTPUT_AGREEMENT],
            report=files[self.OUTPUT_REPORT],
            probabilities=self.output_path(parameters, self.OUTPUT_PROBABILITIES, context),
            probabilities_float=self.parameterAsBoolean(parameters, self.PROBABILITIES_FLOAT, context),
        )
        with self.about(self.INPUT):
            result = run_pipeline(source, reference, legend, outputs, settings, progress, cloud_mask=given_mask)
        report = result.report
        feedback.pushInfo(describe_scores(report, self.tr("Test split")))
        # the map on top and the only one checked; the reference right below it to compare with
        group = result_group_name()
        for order, name in enumerate((self.OUTPUT, self.OUTPUT_REFERENCE, self.OUTPUT_AGREEMENT,
                                      self.OUTPUT_CONFIDENCE)):
            style_when_loaded(context, rasters[name], group=group, order=order,
                              styled=name != self.OUTPUT_CONFIDENCE, visible=name == self.OUTPUT)
        if outputs.probabilities:
            style_when_loaded(context, outputs.probabilities, group=group, order=4, visible=False,
                              name=self.tr("Class probabilities"))
            rasters[self.OUTPUT_PROBABILITIES] = outputs.probabilities
        shown = {name: path for name, path in rasters.items() if name != self.OUTPUT_CLOUD_MASK or name in kept}
        return {**shown, **files, **score_results(report)}
