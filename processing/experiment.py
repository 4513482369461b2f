"""``eolulc:experiment``: Sinergise's cloud-handling and resampling studies on the user's data."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .reference import add_legend_parameter, add_reference_parameters, legend_from_parameters, reference_on_grid
from .styling import style_when_loaded
from .training import DEEP, add_training_parameters, train_settings

#: (key, label) of the EXPERIMENT options, in their order.
EXPERIMENTS = (("cloud", "Cloud handling (scene filter on/off x cloud mask on/off)"),
               ("interval", "Resampling interval"),
               ("both", "Both"))


class ExperimentAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "experiment"
    DISPLAY_NAME = "LULC experiment (cloud handling and resampling interval)"
    GROUP_ID = "pipeline"
    GROUP = "Pipeline"
    DESCRIPTION = (
        "Reproduces the two studies Sinergise published with eo-learn on your data: the 2 x 2 grid of "
        "cloudy-scene filtering on/off x cloud mask used in interpolation on/off (16-day grid), and the pipeline "
        "at several interpolation intervals (cloud filter and mask on). Every variant is the 'LULC pipeline' with "
        "default settings except the switches, repeated over several seeds (each seed fixes the spatial split, the "
        "samples and LightGBM for all variants), so the report gives mean ± std and paired comparisons and says in "
        "words whether cloud handling changes accuracy beyond the seed-to-seed noise and what halving the interval "
        "costs and gains. Optional extra factors: cloud-mask processing resolutions and classifiers (each value "
        "multiplies the variants). The cloud mask and features are computed once and shared; variants run in "
        "parallel worker processes as far as the CPUs and the memory allow; a failed variant is reported and the "
        "others go on. The report also shows, per variant, how its confusion matrix differs from the baseline's. "
        "Only the best variant is classified."
    )
    REQUIRES = ("numpy", "rasterio", "lightgbm", "scipy", "cv2", "s2cloudless")

    INPUT = "INPUT"
    CLOUD_MASK = "CLOUD_MASK"
    EXPERIMENT = "EXPERIMENT"
    INTERVALS = "INTERVALS"
    SEEDS = "SEEDS"
    PROCESSING_RESOLUTIONS = "PROCESSING_RESOLUTIONS"
    CLASSIFIERS = "CLASSIFIERS"
    PARALLEL_VARIANTS = "PARALLEL_VARIANTS"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT_JSON = "OUTPUT_JSON"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):
        self.add(
            QgsProcessingParameterRasterLayer(
                self.INPUT, self.tr("Sentinel-2 time stack (L1C, or L2A with a cloud-mask stack)")),
            "A time stack with the 13 L1C bands, as for 'LULC pipeline'; an L2A band stack (e.g. from 'Import "
            "Sentinel-2 products (SAFE)') with its SCL mask as the cloud mask below; or, with a cloud mask, a "
            "prepared per-date feature stack (e.g. NDVI from 'Import eo-learn EOPatch').",
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.CLOUD_MASK, self.tr("Cloud-mask stack (skips s2cloudless)"),
                                              optional=True),
            "A cloud mask on the input's dates (0 clear, anything else cloudy or nodata): the SCL mask (OUTPUT_MASK) "
            "of 'Import Sentinel-2 products (SAFE)' for an L2A stack, or CLM from 'Import eo-learn EOPatch'. The "
            "cloud-mask step is then skipped (no processing resolutions to compare); the features are still "
            "computed when the input has the bands they need, else the input is used as prepared features. Empty: "
            "s2cloudless makes the mask from an L1C stack (an L2A stack is refused: its model was trained on L1C).",
        )
        add_reference_parameters(self)
        add_legend_parameter(self)
        self.add(
            QgsProcessingParameterEnum(self.EXPERIMENT, self.tr("Experiment"),
                                       options=[self.tr(label) for _, label in EXPERIMENTS], defaultValue=0),
            "Cloud handling: 4 variants on a 16-day grid. Resampling interval: one variant per interval. "
            "Both: the union (the shared variant runs once).",
        )
        self.add(
            QgsProcessingParameterString(self.INTERVALS, self.tr("Intervals (days)"), defaultValue="8,16,32"),
            "Comma-separated intervals for the resampling experiment; each is compared with its double.",
        )
        self.add(
            QgsProcessingParameterNumber(self.SEEDS, self.tr("Seeds"), type=QgsProcessingParameterNumber.Type.Integer,
                                         defaultValue=3, minValue=1, maxValue=50),
            "Repetitions with seeds 42, 43, ... (42 is the default seed of 'LULC pipeline'): each gives every "
            "variant the same split and samples. Two or more are needed to tell a difference from noise.",
        )
        self.add(
            QgsProcessingParameterString(self.PROCESSING_RESOLUTIONS, self.tr("Cloud mask processing resolutions (m)"),
                                         defaultValue="", optional=True),
            "Extra factor: comma-separated resolutions the cloud mask is computed at, e.g. 160,40. Several values "
            "repeat every variant that uses the cloud mask once per resolution (names end in ', cloud mask at 40 m') "
            "and compare each with the first. Empty: the pipeline's default (160 m).",
        )
        self.add(
            QgsProcessingParameterString(self.CLASSIFIERS, self.tr("Classifiers"), defaultValue="gbdt"),
            "Extra factor: gbdt (LightGBM gradient boosting, the pipeline's default), rf (LightGBM's random "
            "forest), tempcnn and ltae (temporal deep networks; need PyTorch), comma-separated, e.g. "
            "gbdt,tempcnn,ltae. Several repeat every variant once per classifier (names end in ', rf') and "
            "compare each with the first.",
        )
        self.add(
            QgsProcessingParameterNumber(self.PARALLEL_VARIANTS, self.tr("Variants in parallel"),
                                         type=QgsProcessingParameterNumber.Type.Integer, defaultValue=0, minValue=0,
                                         maxValue=256),
            "0: automatic, as many worker processes as the CPUs allow and the available memory holds, each "
            "budgeted at the block budget (EOLULC_BLOCK_BUDGET_MB) plus its training arrays and interpreter. 1: one "
            "after the other in this process. Each worker gets CPUs / workers LightGBM threads; the accuracies do "
            "not depend on it.",
            advanced=True,
        )
        add_training_parameters(self, DEEP, advanced=DEEP)
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_HTML, self.tr("Experiment report (HTML)"),
                                                  fileFilter="HTML files (*.html)"),
            "Tables (mean ± std per variant, paired comparisons, every run), the accuracy-vs-time plot and the "
            "conclusions in words.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_CSV, self.tr("Numbers per run (CSV)"),
                                                  fileFilter="CSV files (*.csv)"),
            "One row per variant and seed: accuracy, features, seconds, peak memory, error.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_JSON, self.tr("All numbers (JSON)"),
                                                  fileFilter="JSON files (*.json)", optional=True,
                                                  createByDefault=False),
            "Runs, per-variant summaries, comparisons and conclusions.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Best variant's land-cover map")),
            "The classification of the variant with the highest mean overall accuracy (ties: higher weighted F1, "
            "then fewer features, then the earlier variant), with its first seed's model, styled with the legend.",
        )
        self.addOutput(QgsProcessingOutputString("BEST_VARIANT", self.tr("Best variant")))
        self.addOutput(QgsProcessingOutputNumber("BEST_OVERALL_ACCURACY", self.tr("Best mean overall accuracy")))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core import variants as study
        from ..core.experiment import ExperimentSettings, check_cloud_mask, run_experiment
        from ..core.pipeline import PipelineSettings

        source = self.raster_source(parameters, self.INPUT, context, "choose the Sentinel-2 time stack")
        info = self.stack_info(source, self.INPUT)
        cloud_mask = self.raster_source(parameters, self.CLOUD_MASK, context)
        if cloud_mask is not None:
            self.stack_info(cloud_mask, self.CLOUD_MASK)
        with self.about(self.INTERVALS):
            intervals = study.parse_intervals(self.parameterAsString(parameters, self.INTERVALS, context))
        with self.about(self.PROCESSING_RESOLUTIONS):
            resolutions = study.parse_resolutions(
                self.parameterAsString(parameters, self.PROCESSING_RESOLUTIONS, context))
        with self.about(self.CLASSIFIERS):
            classifiers = study.parse_classifiers(self.parameterAsString(parameters, self.CLASSIFIERS, context))
        if cloud_mask is not None and len(resolutions or ()) > 1:
            raise self.parameter_error(self.PROCESSING_RESOLUTIONS, self.tr(
                "a given cloud mask has no processing resolution: leave it empty, or give an L1C stack "
                "without the cloud mask"))
        kind = self.option_key(parameters, self.EXPERIMENT, context, EXPERIMENTS)
        # the deep classifiers' settings hold for every variant that uses one
        base = PipelineSettings(train=train_settings(self, parameters, context, DEEP))
        variants = []
        if kind in ("cloud", "both"):
            variants += study.cloud_variants()
        if kind in ("interval", "both"):
            # filter and mask on at 16 days is also the cloud study's baseline: run it once
            variants += [v for v in study.interval_variants(intervals)
                         if not (kind == "both" and v.changes["interval_days"] == base.interval_days)]
        variants = study.with_factors(variants, base, resolutions, classifiers)
        with self.about(self.CLOUD_MASK):
            check_cloud_mask(info, [v.settings(base) for v in variants], cloud_mask)
        # 42 first: the first seed's numbers equal 'LULC pipeline' with its default seed
        seeds = list(range(base.train.seed, base.train.seed + self.parameterAsInt(parameters, self.SEEDS, context)))
        reference = reference_on_grid(self, parameters, context, info.grid, progress)
        legend = legend_from_parameters(self, parameters, context, reference.class_ids, progress)
        files = {name: self.required_output(parameters, name, context) for name in (self.OUTPUT_HTML, self.OUTPUT_CSV)}
        files[self.OUTPUT_JSON] = self.output_path(parameters, self.OUTPUT_JSON, context)
        output = self.required_output(parameters, self.OUTPUT, context)
        workers = self.parameterAsInt(parameters, self.PARALLEL_VARIANTS, context)
        folder = tempfile.mkdtemp(prefix="experiment_", dir=QgsProcessingUtils.tempFolder())
        try:
            with self.about(self.INPUT):
                result = run_experiment(source, reference, legend, variants, seeds, folder, ExperimentSettings(
                    base=base, html_path=files[self.OUTPUT_HTML], csv_path=files[self.OUTPUT_CSV],
                    json_path=files[self.OUTPUT_JSON] or None, classification=output,
                    title=f"EO LULC experiment: {dict(EXPERIMENTS)[kind].lower()}", workers=workers,
                    cloud_mask=cloud_mask), progress)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        for sentence in result.sentences:
            feedback.pushInfo(sentence)
        best = next(s for s in result.summary if s["variant"] == result.best)
        style_when_loaded(context, output)
        out = {self.OUTPUT: output, self.OUTPUT_HTML: files[self.OUTPUT_HTML], self.OUTPUT_CSV: files[self.OUTPUT_CSV],
               "BEST_VARIANT": result.best, "BEST_OVERALL_ACCURACY": best["overall_accuracy_mean"]}
        if files[self.OUTPUT_JSON]:
            out[self.OUTPUT_JSON] = files[self.OUTPUT_JSON]
        return out
