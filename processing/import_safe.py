"""``eolulc:importsafe``: Sentinel-2 products (``.SAFE`` folders or zips, L1C or L2A) -> time stacks."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm
from .compat import file_type


class ImportSafeAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "importsafe"
    DISPLAY_NAME = "Import Sentinel-2 products (SAFE)"
    GROUP_ID = "import"
    GROUP = "Import"
    DESCRIPTION = (
        "Turns Sentinel-2 products as Copernicus delivers them (.SAFE folders or .SAFE.zip files, Level-1C or "
        "Level-2A, any processing baseline) into one EO LULC time stack, reading only the extent's window of "
        "each band straight from the zip. Level, dates, quantification value and the offsets of baseline "
        "04.00 and later come from each product's metadata, and the stack carries the matching scale and "
        "offset, so later steps see true reflectance. 20 m and 60 m bands are resampled onto the grid "
        "(bilinear), products of one day are mosaicked into one date, other UTM zones are reprojected. For "
        "L2A the scene classification (SCL) gives a cloud mask stack, usable wherever a cloudmask output is."
    )

    INPUT_FOLDER = "INPUT_FOLDER"
    LAYERS = "LAYERS"
    EXTENT = "EXTENT"
    RESOLUTION = "RESOLUTION"
    BANDS = "BANDS"
    SCL_CLOUD_CLASSES = "SCL_CLOUD_CLASSES"
    MASK_DILATION = "MASK_DILATION"
    OUTPUT = "OUTPUT"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_SCL = "OUTPUT_SCL"
    DATES = "DATES"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.add(
            QgsProcessingParameterFile(self.INPUT_FOLDER, self.tr("Folder of Sentinel-2 products"),
                                       behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True),
            "Folder holding .SAFE folders and/or .SAFE.zip / .zip files (as downloaded; sub-folders are not "
            "searched). Give this or the products list, or both. All products must be of one level.",
        )
        self.add(
            QgsProcessingParameterMultipleLayers(self.LAYERS, self.tr("Sentinel-2 products"),
                                                 layerType=file_type(), optional=True),
            "Product files or folders (.SAFE.zip, .zip or .SAFE), in any order (they are sorted by sensing time).",
        )
        self.add(
            QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent"), optional=True),
            "Only this window is read. Empty: the footprint all dates share. The output is in the extent's "
            "CRS when it is projected, else in the first product's UTM zone.",
        )
        self.add(
            QgsProcessingParameterNumber(self.RESOLUTION, self.tr("Resolution (m)"),
                                         type=QgsProcessingParameterNumber.Type.Double, defaultValue=10.0,
                                         minValue=10.0, maxValue=600.0),
            "Pixel size of the stack in metres. 10 keeps the 10 m bands as they are and resamples the 20 m "
            "and 60 m bands bilinearly; 20 or 60 keep those bands as they are.",
        )
        self.add(
            QgsProcessingParameterString(self.BANDS, self.tr("Bands"), defaultValue="", optional=True),
            "Comma-separated band names (e.g. 'B02,B03,B04,B08'). Empty: all bands of the level (13 for "
            "L1C; 12 for L2A, which has no B10).",
        )
        self.add(
            QgsProcessingParameterString(self.SCL_CLOUD_CLASSES, self.tr("SCL classes that are cloud"),
                                         defaultValue="3,8,9,10"),
            "L2A: scene classification classes counted as cloud in the mask: 3 cloud shadow, 8 cloud medium "
            "probability, 9 cloud high probability, 10 thin cirrus (also 2 dark area, 11 snow). Classes 0 "
            "(no data) and 1 (saturated or defective) are always nodata.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterNumber(self.MASK_DILATION, self.tr("Mask dilation (pixels)"),
                                         type=QgsProcessingParameterNumber.Type.Integer, defaultValue=0,
                                         minValue=0, maxValue=50),
            "L2A: grow the cloud mask by this many pixels (a disk), to catch cloud edges.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Time stack")),
            "The time stack (dates x bands, uint16 digital numbers with the products' scale and offset; 0 is "
            "nodata). Do not write it into the input folder.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT_MASK, self.tr("Cloud mask stack (L2A, from SCL)"),
                                                    optional=True, createByDefault=False),
            "L2A only: one band per date, 1 cloud, 0 clear, 255 nodata, with each date's clear fraction in the "
            "metadata EOLULC_VALID_FRACTION, like the cloudmask algorithm's mask.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT_SCL, self.tr("SCL stack (L2A)"), optional=True,
                                                    createByDefault=False),
            "L2A only: the scene classification classes, one band per date (nearest neighbour; 0 is nodata).",
        )
        self.addOutput(QgsProcessingOutputNumber(self.DATES, self.tr("Number of dates")))

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext):
        """Products are folders and zips, not rasters GDAL opens: they are checked when read."""
        return super().checkParameterValues({k: v for k, v in parameters.items() if k != self.LAYERS}, context)

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.safe import find_products
        from ..core.safe_import import days_in_grid, group_by_day, import_safe, scan_products, target_grid

        output = self.required_output(parameters, self.OUTPUT, context)
        output_mask = self.output_path(parameters, self.OUTPUT_MASK, context)
        output_scl = self.output_path(parameters, self.OUTPUT_SCL, context)
        folder = self.parameterAsFile(parameters, self.INPUT_FOLDER, context)
        listed = [p for p in self.parameterAsFileList(parameters, self.LAYERS, context) if p]
        if not folder and not listed:
            raise self.parameter_error(self.INPUT_FOLDER,
                                       self.tr("give a folder of Sentinel-2 products or a list of products"))
        source = self.INPUT_FOLDER if folder else self.LAYERS
        paths: list[str] = []
        if folder:
            with self.about(self.INPUT_FOLDER):
                paths += find_products(folder)
        paths += listed
        with self.about(source):
            products = scan_products(paths, progress.scaled(0.0, 0.05))
        level = products[0].level
        feedback.pushInfo(self.tr("{} {} products").format(len(products), level))
        for name, path in ((self.OUTPUT_MASK, output_mask), (self.OUTPUT_SCL, output_scl)):
            if path and level != "L2A":
                raise self.parameter_error(name, self.tr("needs L2A products (L1C has no scene classification); "
                                                         "use the s2cloudless cloud mask for L1C"))
        with self.about(self.SCL_CLOUD_CLASSES):
            classes = _classes(self.parameterAsString(parameters, self.SCL_CLOUD_CLASSES, context))
        resolution = self.parameterAsDouble(parameters, self.RESOLUTION, context)
        bounds, crs = None, None
        if parameters.get(self.EXTENT) not in (None, ""):
            extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, extent_crs)
            if rect.isNull() or rect.isEmpty():
                raise self.parameter_error(self.EXTENT, self.tr("the extent is empty"))
            bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            if extent_crs.isValid():
                crs = extent_crs.authid() if extent_crs.authid().upper().startswith("EPSG:") else extent_crs.toWkt()
        with self.about(self.EXTENT):
            grid = target_grid(group_by_day(products), resolution, crs, bounds)
            days_in_grid(products, grid)
        bands = [b.strip() for b in self.parameterAsString(parameters, self.BANDS, context).split(",") if b.strip()]
        if bands:
            from ..core.sentinel2 import find_bands

            with self.about(self.BANDS):
                find_bands(products[0].bands, bands, f"{level} products")
        with self.about(source):
            result = import_safe(products, output, grid, bands=bands, output_mask=output_mask, output_scl=output_scl,
                                 cloud_classes=classes,
                                 dilation=self.parameterAsInt(parameters, self.MASK_DILATION, context),
                                 progress=progress.scaled(0.05, 1.0))
        feedback.pushInfo(self.tr("{} dates, {} x {} px, bands {}").format(
            result.info.n_dates, grid.width, grid.height, ", ".join(result.info.bands)))
        if result.defective_pixels:
            feedback.pushInfo(self.tr("{} source pixels the products' quality masks call no data or saturated "
                                      "are nodata.").format(result.defective_pixels))
        outputs: dict[str, Any] = {self.OUTPUT: output, self.DATES: result.info.n_dates}
        if output_mask:
            outputs[self.OUTPUT_MASK] = output_mask
        if output_scl:
            outputs[self.OUTPUT_SCL] = output_scl
        return outputs


def _classes(text: str) -> list[int]:
    """``"3, 8,9"`` -> ``[3, 8, 9]``; SCL classes are 0..11."""
    try:
        classes = sorted({int(part) for part in text.replace(";", ",").split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"'{text}' is not a comma-separated list of SCL classes (whole numbers 0-11)") from None
    if not classes or not all(0 <= c <= 11 for c in classes):
        raise ValueError(f"'{text}': give SCL classes between 0 and 11, e.g. 3,8,9,10")
    return classes
