"""``eolulc:buildtimestack``: a folder (or list of layers) of per-date rasters -> one time stack."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.filedates import NAME_PATTERNS_HELP
from ..core.progress import Progress
from ..core.scenes import (
    DEFAULT_FILTER,
    RESAMPLING_METHODS,
    build_time_stack,
    find_rasters,
    make_grid,
    scan_scenes,
)
from .base import EoLulcAlgorithm
from .compat import raster_layers_type


class BuildTimeStackAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "buildtimestack"
    DISPLAY_NAME = "Build time stack from per-date rasters"
    GROUP_ID = "import"
    GROUP = "Import"
    DESCRIPTION = (
        "Turns a folder (or a list of layers) of per-date rasters, one acquisition per file, into one "
        "EO LULC time stack, the input of every other EO LULC step. Each file's date is read from its "
        f"name ({NAME_PATTERNS_HELP}) or else from its acquisition-date metadata; dates are sorted, so "
        "the order of the files does not matter. Files on another grid (resolution, extent or CRS) are "
        "resampled onto the first file's grid or onto the target grid you give. Sentinel-2 digital "
        "numbers that declare no nodata take 0 (the products' no-data number); without scale metadata, "
        "files from 2022-01-25 whose values carry baseline 04.00's +1000 offset are converted with it "
        "when earlier files do not. A file holds every band of one date, or one band each: files named "
        "by their band (a SAFE's IMG_DATA 'T33TWM_20230101T100319_B04_10m.jp2', the Copernicus Browser's "
        "'..._Sentinel-2_L2A_B04_(Raw).tiff', '..._red.tif') are put together per acquisition, coarser "
        "bands repeated onto the finest pixels; a product's other files (TCI, AOT, WVP, SCL) are left out, "
        "and of a band given at several resolutions (an L2A's R10m, R20m, R60m) the finest is kept."
    )

    INPUT_FOLDER = "INPUT_FOLDER"
    FILE_FILTER = "FILE_FILTER"
    LAYERS = "LAYERS"
    TARGET_CRS = "TARGET_CRS"
    TARGET_EXTENT = "TARGET_EXTENT"
    TARGET_RESOLUTION = "TARGET_RESOLUTION"
    RESAMPLING = "RESAMPLING"
    OUTPUT = "OUTPUT"
    DATES = "DATES"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add(
            QgsProcessingParameterFile(self.INPUT_FOLDER, self.tr("Folder of per-date rasters"),
                                       behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True),
            "Folder holding one raster per acquisition date, or one per band and date named by the band "
            "(sub-folders are not searched). "
            "Give this or the input layers, or both.",
        )
        self.add(
            QgsProcessingParameterString(self.FILE_FILTER, self.tr("File filter"), defaultValue=DEFAULT_FILTER),
            "Which files of the folder to use: globs separated by ';' (case-insensitive), "
            "e.g. '*_B*.tif' or 'S2*.jp2'. Hidden files are skipped.",
        )
        self.add(
            QgsProcessingParameterMultipleLayers(self.LAYERS, self.tr("Input raster layers"),
                                                 layerType=raster_layers_type(), optional=True),
            "Per-date raster layers, one acquisition each, in any order (they are sorted by date). "
            "Give these or a folder, or both.",
        )
        self.add(
            QgsProcessingParameterCrs(self.TARGET_CRS, self.tr("Target CRS"), optional=True),
            "CRS of the output stack. Empty: the CRS of the earliest file.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterExtent(self.TARGET_EXTENT, self.tr("Target extent"), optional=True),
            "Extent of the output stack. Empty: the extent of the earliest file. Pixels that a file "
            "does not cover are nodata.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(
                self.TARGET_RESOLUTION,
                self.tr("Target resolution (pixel size in target CRS units)"),
                type=QgsProcessingParameterNumber.Type.Double,
                optional=True,
                minValue=0.0,
                maxValue=1e7,
            ),
            "Pixel size of the output stack. Empty: the pixel size of the earliest file.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.RESAMPLING,
                self.tr("Resampling"),
                options=list(RESAMPLING_METHODS),
                defaultValue=0,
            ),
            "How files on another grid are resampled: nearest keeps the original values (best for "
            "masks and classes), bilinear/cubic smooth, average suits coarser targets.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Time stack")),
            "The time stack GeoTIFF (dates x bands, with dates and band names in its metadata). "
            "Do not write it into the input folder.",
        )
        self.addOutput(QgsProcessingOutputNumber(self.DATES, self.tr("Number of dates")))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        folder = self.parameterAsFile(parameters, self.INPUT_FOLDER, context)
        layers = self.parameterAsLayerList(parameters, self.LAYERS, context)
        if not folder and not layers:
            raise self.parameter_error(
                self.INPUT_FOLDER, self.tr("give a folder of per-date rasters or a list of input raster layers")
            )
        paths: list[str] = []
        if folder:
            with self.about(self.INPUT_FOLDER):
                file_filter = self.parameterAsString(parameters, self.FILE_FILTER, context)
                paths.extend(find_rasters(folder, file_filter, exclude=[output]))
        paths.extend(layer.source().split("|")[0] for layer in layers)
        del layers
        with self.about(self.LAYERS if not folder else self.INPUT_FOLDER):
            scenes = scan_scenes(paths, progress.scaled(0.0, 0.05))
        feedback.pushInfo(self.tr("{} dates, {} bands each: {}").format(
            len(scenes), len(scenes[0].bands), ", ".join(scenes[0].bands)
        ))

        grid = self._target_grid(parameters, context, scenes[0].grid)
        resampling = RESAMPLING_METHODS[self.parameterAsEnum(parameters, self.RESAMPLING, context)]
        build_time_stack(scenes, output, grid, resampling, progress.scaled(0.05, 1.0))
        return {self.OUTPUT: output, self.DATES: len(scenes)}

    def _target_grid(self, parameters: dict[str, Any], context: QgsProcessingContext, reference):
        """The first file's grid with the target CRS / extent / resolution that are given."""
        crs_given = parameters.get(self.TARGET_CRS) not in (None, "")
        extent_given = parameters.get(self.TARGET_EXTENT) not in (None, "")
        resolution_given = parameters.get(self.TARGET_RESOLUTION) not in (None, "")
        if not (crs_given or extent_given or resolution_given):
            return None
        crs = self.parameterAsCrs(parameters, self.TARGET_CRS, context) if crs_given else None
        if crs is not None and not crs.isValid():
            raise self.parameter_error(self.TARGET_CRS, self.tr("not a valid CRS"))
        out_crs = crs or QgsCoordinateReferenceSystem.fromWkt(reference.crs_wkt or "")
        bounds = None
        if extent_given:
            rect = self.parameterAsExtent(parameters, self.TARGET_EXTENT, context, out_crs)
            if rect.isNull() or rect.isEmpty():
                raise self.parameter_error(self.TARGET_EXTENT, self.tr("the extent is empty"))
            bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        resolution = None
        if resolution_given:
            resolution = self.parameterAsDouble(parameters, self.TARGET_RESOLUTION, context)
            if resolution <= 0:
                raise self.parameter_error(self.TARGET_RESOLUTION, self.tr("the pixel size must be positive"))
        crs_text = None
        if crs is not None:
            crs_text = crs.authid() if crs.authid().upper().startswith("EPSG:") else crs.toWkt()
        name = self.TARGET_CRS if crs_given else self.TARGET_EXTENT if extent_given else self.TARGET_RESOLUTION
        with self.about(name):
            return make_grid(reference, crs_text, bounds, resolution)
