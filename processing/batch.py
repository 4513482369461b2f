"""``eolulc:batchpipeline``: a folder of tiles (L1C stack + reference, or EOPatches), or one large
stack split into tiles -> one model trained on samples pooled from all tiles, every tile
classified, a styled VRT mosaic and one accuracy report; on local processes or on a Dask cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..core import limits
from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .cloud_source import CLOUD_MASK, CLOUD_MASK_SOURCE, add_cloud_mask_source, cloud_mask_source
from .reference import (
    LEGEND,
    add_legend_parameter,
    add_score_outputs,
    describe_scores,
    legend_from_parameters,
    score_results,
)
from .styling import style_when_loaded
from .training import CLASSIFIER, DEEP, SAMPLES, SEED, add_training_parameters, train_settings

#: The training parameters of the pooled model (advanced).
TRAINING = (SAMPLES, SEED, CLASSIFIER, *DEEP)


class BatchPipelineAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "batchpipeline"
    DISPLAY_NAME = "LULC pipeline over many tiles (local processes or Dask cluster)"
    GROUP_ID = "pipeline"
    GROUP = "Pipeline"
    DESCRIPTION = (
        "The LULC pipeline over many tiles, in parallel. Tiles are the subfolders of a folder (l1c.tif and "
        "reference.tif, or an eo-learn EOPatch), pairs <name>_l1c.tif and <name>_reference.tif in it, or windows "
        "of one large stack (Large time stack, Reference, Tile size). Per tile, in parallel: cloud mask "
        "(s2cloudless, or a given mask stack such as an L2A product's SCL mask), "
        "features and interpolation onto one date grid shared by all tiles, and a spatial train/test split; then "
        "one LightGBM model trained on samples pooled from all tiles; then every tile classified in parallel, "
        "a VRT mosaic styled with the legend and one accuracy report over the held-out pixels of all tiles. A tile "
        "too small for a train/test split of its own, or without reference pixels, is still classified (its "
        "labelled pixels train only; the log and the report name it). A failing tile is retried once, then "
        "reported, and the others finish. Running again with the same output "
        "folder skips the tiles already prepared (resume). Give a Dask scheduler address to run on a cluster."
    )
    REQUIRES = ("numpy", "rasterio", "lightgbm", "scipy", "cv2", "s2cloudless", "joblib")

    INPUT_FOLDER = "INPUT_FOLDER"
    INPUT_STACK = "INPUT_STACK"
    REFERENCE = "REFERENCE"
    TILE_SIZE = "TILE_SIZE"
    CLOUD_MASK_SOURCE = CLOUD_MASK_SOURCE
    CLOUD_MASK = CLOUD_MASK
    EOPATCH_FEATURES = "EOPATCH_FEATURES"
    SCHEDULER = "SCHEDULER"
    WORKERS = "WORKERS"
    INTERVAL_DAYS = "INTERVAL_DAYS"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_MOSAIC = "OUTPUT_MOSAIC"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    FAILED_TILES = "FAILED_TILES"
    TILES = "TILES"

    def initAlgorithm(self, config=None):
        from ..core.pipeline import PipelineSettings

        integer = QgsProcessingParameterNumber.Type.Integer
        self.add(
            QgsProcessingParameterFile(self.INPUT_FOLDER, self.tr("Folder of tiles"),
                                       behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True),
            "One subfolder per tile holding l1c.tif (the L1C time stack; or l2a.tif, an L2A stack, with "
            "cloud_mask.tif, its SCL mask) and reference.tif (its reference classes), or an eo-learn EOPatch "
            "(bbox.geojson, data/, mask/, mask_timeless/LULC), or pairs "
            "<name>_l1c.tif and <name>_reference.tif. All tiles in one CRS and pixel size. Leave empty to split "
            "one large stack instead.",
        )
        self.add(
            QgsProcessingParameterFile(self.INPUT_STACK, self.tr("Large time stack (instead of a folder)"),
                                       optional=True, fileFilter="GeoTIFF (*.tif *.tiff);;All files (*)"),
            "One time stack (L1C, or L2A with CLOUD_MASK) too large for one run, split into tiles of Tile "
            "size pixels. Each tile's cloud mask reads a halo around it and the scene filter decides over the "
            "whole stack, so the map equals the LULC pipeline's on the whole stack with the same model.",
        )
        self.add(
            QgsProcessingParameterFile(self.REFERENCE, self.tr("Reference of the large stack"), optional=True,
                                       fileFilter="GeoTIFF (*.tif *.tiff);;All files (*)"),
            "Class raster (0 = no data) for the large stack; needed with Large time stack.",
        )
        self.add(
            QgsProcessingParameterNumber(self.TILE_SIZE, self.tr("Tile size (pixels)"),
                                         type=QgsProcessingParameterNumber.Type.Integer, defaultValue=1000,
                                         minValue=16, maxValue=limits.MAX_TILE_SIZE),
            "Side of the tiles a large stack is split into, rounded up to whole cells of the cloud mask's "
            "processing grid (16 px for 160 m on 10 m pixels).",
        )
        add_cloud_mask_source(
            self, QgsProcessingParameterFile(self.CLOUD_MASK, self.tr("Cloud-mask stack of the large stack"),
                                             optional=True, fileFilter="GeoTIFF (*.tif *.tiff);;All files (*)"),
            "With 'given mask stack' and a large stack: its mask on the same grid and dates (0 clear, anything else "
            "cloudy or nodata), e.g. the SCL mask (OUTPUT_MASK) of 'Import Sentinel-2 products (SAFE)'; the "
            "windows cut it as they cut the stack.",
            "With a folder of tiles, each tile's mask is cloud_mask.tif beside its stack (<name>_cloud_mask.tif "
            "for pairs) and an EOPatch's is its mask/CLM.",
        )
        self.add(
            QgsProcessingParameterString(self.EOPATCH_FEATURES, self.tr("EOPatch data features"), optional=True),
            "EOPatches without L1C bands (data/BANDS-S2-L1C): the comma-separated temporal data features "
            "the model learns from, interpolated with mask/CLM as the cloud mask (no cloud detection). Empty: "
            "all data features except cloud probabilities (CLP...).", advanced=True,
        )
        add_legend_parameter(self)
        self.add(
            QgsProcessingParameterString(self.SCHEDULER, self.tr("Dask scheduler address"), optional=True),
            "Empty: local processes on this machine. tcp://host:8786: run the tiles on that dask.distributed "
            "cluster (every worker needs this plugin and its dependencies importable, and the tile and output "
            "folders at the same paths).",
        )
        self.add(
            QgsProcessingParameterNumber(self.WORKERS, self.tr("Local worker processes"), type=integer,
                                         defaultValue=2, minValue=0, maxValue=limits.MAX_WORKERS),
            "Tiles processed at the same time on this machine; 0 = as many as the CPUs and the available memory "
            "allow. Ignored on a Dask cluster (its workers are used).",
        )
        self.add(
            QgsProcessingParameterNumber(self.INTERVAL_DAYS, self.tr("Interval (days)"), type=integer,
                                         defaultValue=PipelineSettings().interval_days, minValue=1,
                                         maxValue=limits.MAX_INTERVAL_DAYS),
            "Spacing of the date grid all tiles are interpolated onto.",
        )
        add_training_parameters(self, TRAINING, advanced=TRAINING)
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Working folder")),
            "Per-tile products (tiles/<name>/) and the model. Run again with the same folder to resume.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_MOSAIC, self.tr("Land-cover mosaic (VRT)"),
                                                  fileFilter="GDAL virtual raster (*.vrt)"),
            "The tile maps as one virtual raster, styled with the legend.",
        )
        self.add(
            QgsProcessingParameterFileDestination(self.OUTPUT_REPORT, self.tr("Accuracy report (HTML)"),
                                                  fileFilter="HTML files (*.html)"),
            "One accuracy report over the held-out pixels of all tiles (a JSON copy is written beside it).",
        )
        self.addOutput(QgsProcessingOutputString(self.OUTPUT_MODEL, self.tr("Model file")))
        self.addOutput(QgsProcessingOutputNumber(self.TILES, self.tr("Tiles classified")))
        self.addOutput(QgsProcessingOutputString(self.FAILED_TILES, self.tr("Failed tiles")))
        add_score_outputs(self, "Test ")

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.batch import run_batch
        from ..core.pipeline import PipelineSettings
        from ..core.tiles import check_tile_masks

        # without a LEGEND file the core picks the shipped legend of the tiles' references' coding
        legend = legend_from_parameters(self, parameters, context) if self.parameterAsFile(
            parameters, LEGEND, context) else None
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None
        mask_source, force_s2cloudless = cloud_mask_source(self, parameters, context)
        settings = PipelineSettings(
            interval_days=self.parameterAsInt(parameters, self.INTERVAL_DAYS, context),
            cloud_mask_source=mask_source, force_s2cloudless=force_s2cloudless,
            train=train_settings(self, parameters, context, TRAINING),
        )
        tiles = self._tiles(parameters, context, settings)
        given_mask = self.parameterAsFile(parameters, self.CLOUD_MASK, context)
        with self.about(self.CLOUD_MASK if given_mask else self.CLOUD_MASK_SOURCE):
            check_tile_masks(tiles, settings)
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        mosaic = self.parameterAsFileOutput(parameters, self.OUTPUT_MOSAIC, context)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        if not folder:
            raise self.parameter_error(self.OUTPUT_FOLDER, self.tr("give a folder"))
        Path(folder).mkdir(parents=True, exist_ok=True)
        feedback.pushInfo(self.tr("{} tile(s) found.").format(len(tiles)))
        source = self.INPUT_FOLDER if tiles[0].kind != "window" else self.INPUT_STACK
        with self.about(self.SCHEDULER if scheduler else source):
            result = run_batch(tiles, folder, legend, settings, executor="dask" if scheduler else "local",
                               workers=self.parameterAsInt(parameters, self.WORKERS, context), scheduler=scheduler,
                               progress=progress, mosaic=mosaic or None, report=report or None)
        for failure in result.failed:
            feedback.reportError(self.tr("Tile {} failed ({}, {} attempts): {}").format(
                failure.name, failure.phase, failure.attempts, failure.message), fatalError=False)
        feedback.pushInfo(describe_scores(result.report_data, self.tr("Held-out pixels of all tiles")))
        style_when_loaded(context, result.mosaic)
        return {self.OUTPUT_FOLDER: folder, self.OUTPUT_MOSAIC: result.mosaic, self.OUTPUT_REPORT: result.report,
                self.OUTPUT_MODEL: result.model, self.TILES: len(result.tiles),
                self.FAILED_TILES: ", ".join(f.name for f in result.failed), **score_results(result.report_data)}

    def _tiles(self, parameters: dict[str, Any], context: QgsProcessingContext, settings) -> list:
        """The tiles of the folder, or the windows of the large stack; exactly one of them."""
        from ..core.pipeline import GIVEN_MASK
        from ..core.tiles import discover_tiles, split_stack

        folder = self.parameterAsFile(parameters, self.INPUT_FOLDER, context)
        stack = self.parameterAsFile(parameters, self.INPUT_STACK, context)
        mask = self.parameterAsFile(parameters, self.CLOUD_MASK, context) or None
        given = settings.cloud_mask_source == GIVEN_MASK
        if mask and not (stack and given):
            raise self.parameter_error(self.CLOUD_MASK, self.tr(
                "a cloud-mask stack goes with a large stack and CLOUD_MASK_SOURCE 'given mask stack' (tiles in a "
                "folder bring theirs as cloud_mask.tif); set both, or leave CLOUD_MASK empty"))
        if stack and given and not mask:
            raise self.parameter_error(self.CLOUD_MASK, self.tr(
                "CLOUD_MASK_SOURCE is 'given mask stack': give the large stack's mask stack (e.g. the SCL mask of "
                "'Import Sentinel-2 products (SAFE)'), or choose s2cloudless"))
        if folder and stack:
            raise self.parameter_error(self.INPUT_STACK, self.tr(
                "give either a folder of tiles or a large stack, not both; clear one of them"))
        if stack:
            reference = self.parameterAsFile(parameters, self.REFERENCE, context)
            if not reference:
                raise self.parameter_error(self.REFERENCE, self.tr("give the large stack's reference class raster"))
            with self.about(self.INPUT_STACK):
                return split_stack(stack, reference, self.parameterAsInt(parameters, self.TILE_SIZE, context), settings,
                                   cloud_mask=mask)
        if not folder:
            raise self.parameter_error(self.INPUT_FOLDER, self.tr(
                "give a folder of tiles (or a large L1C stack and its reference)"))
        names = [n.strip() for n in self.parameterAsString(parameters, self.EOPATCH_FEATURES, context).split(",")
                 if n.strip()]
        with self.about(self.INPUT_FOLDER):
            return discover_tiles(folder, names, given_masks=given)
