"""``eolulc:importeopatch``: an eo-learn EOPatch folder -> EO LULC time stacks."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm


class ImportEOPatchAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "importeopatch"
    DISPLAY_NAME = "Import eo-learn EOPatch"
    GROUP_ID = "import"
    GROUP = "Import"
    DESCRIPTION = (
        "Turns an eo-learn EOPatch folder (eo-learn 1.0 or newer: bbox.geojson, timestamps.json and "
        ".npy arrays) into EO LULC time stacks: temporal data features (bands, indices) into one stack, "
        "a mask feature such as the cloud mask CLM into a mask stack, and a timeless feature such as "
        "the LULC reference into a single-band raster. The rasters are georeferenced from bbox.geojson "
        "and carry the acquisition dates. Pickle files (.pkl) are never read: they can run code."
    )

    INPUT = "INPUT"
    DATA_FEATURES = "DATA_FEATURES"
    MASK_FEATURE = "MASK_FEATURE"
    TIMELESS_FEATURE = "TIMELESS_FEATURE"
    APPLY_IS_DATA = "APPLY_IS_DATA"
    OUTPUT = "OUTPUT"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_TIMELESS = "OUTPUT_TIMELESS"

    def initAlgorithm(self, config=None):
        self.add(
            QgsProcessingParameterFile(
                self.INPUT, self.tr("EOPatch folder"), behavior=QgsProcessingParameterFile.Behavior.Folder
            ),
            "The EOPatch folder: it holds bbox.geojson, timestamps.json and the data/, mask/, "
            "data_timeless/, mask_timeless/ sub-folders of .npy (or .npy.gz) arrays.",
        )
        self.add(
            QgsProcessingParameterString(self.DATA_FEATURES, self.tr("Data features"), defaultValue="", optional=True),
            "Comma-separated names of temporal data features (files in data/, e.g. 'NDVI' or 'BANDS,NDVI') "
            "to write into the data stack; their channels become the stack's bands (a 13-channel feature "
            "gets the Sentinel-2 L1C band names). Empty: all features in data/ except cloud probabilities "
            "(CLP, CLP_S2C...), which are not observations; name them here to import them too.",
        )
        self.add(
            QgsProcessingParameterString(self.MASK_FEATURE, self.tr("Mask feature"), defaultValue="CLM", optional=True),
            "Name of the temporal mask feature (file in mask/, e.g. CLM for clouds) written to the mask "
            "stack, one band per date. Needed only when the mask output is wanted.",
        )
        self.add(
            QgsProcessingParameterString(
                self.TIMELESS_FEATURE, self.tr("Timeless feature"), defaultValue="LULC", optional=True
            ),
            "Name of a timeless feature (file in mask_timeless/ or data_timeless/, e.g. LULC for the "
            "reference land-cover map) written as a single-band raster. Needed only when that output is wanted.",
        )
        self.add(
            QgsProcessingParameterBoolean(self.APPLY_IS_DATA, self.tr("Nodata where IS_DATA is 0"), defaultValue=True),
            "When the EOPatch has the mask IS_DATA, pixels of a frame without data become nodata in the "
            "data and mask stacks (NaN for float data, 255 for masks), so later steps treat them as invalid.",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Data stack"), optional=True),
            "Time stack of the data features: dates x bands, float, NaN as nodata.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_MASK, self.tr("Mask stack"), optional=True, createByDefault=True
            ),
            "Time stack of the mask feature, one band per date (skip the output to leave it out).",
        )
        self.add(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT_TIMELESS, self.tr("Timeless raster"), optional=True, createByDefault=True
            ),
            "Single-band raster of the timeless feature (skip the output to leave it out).",
        )

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.eopatch import TIMELESS_KINDS, import_eopatch, read_eopatch

        folder = self.parameterAsFile(parameters, self.INPUT, context)
        if not folder:
            raise self.parameter_error(self.INPUT, self.tr("choose an EOPatch folder"))
        data_features = [
            name.strip()
            for name in self.parameterAsString(parameters, self.DATA_FEATURES, context).split(",")
            if name.strip()
        ]
        outputs = {
            name: self.output_path(parameters, name, context)
            for name in (self.OUTPUT, self.OUTPUT_MASK, self.OUTPUT_TIMELESS)
        }
        if not any(outputs.values()):
            raise self.parameter_error(self.OUTPUT, self.tr("choose at least one output"))
        mask_feature = self.parameterAsString(parameters, self.MASK_FEATURE, context).strip()
        timeless_feature = self.parameterAsString(parameters, self.TIMELESS_FEATURE, context).strip()
        # an output whose feature name is cleared is skipped, with a warning
        for output, feature in ((self.OUTPUT_MASK, mask_feature), (self.OUTPUT_TIMELESS, timeless_feature)):
            if outputs[output] and not feature:
                feedback.pushWarning(self.tr("{} is skipped: no feature name given").format(output))
                outputs[output] = None
        with self.about(self.INPUT):
            patch = read_eopatch(folder)
        # check the names first so the error points at the parameter to fix
        if outputs[self.OUTPUT]:
            with self.about(self.DATA_FEATURES):
                for name in data_features:
                    patch.feature(name, ("data",))
        if outputs[self.OUTPUT_MASK]:
            with self.about(self.MASK_FEATURE):
                patch.feature(mask_feature, ("mask",))
        if outputs[self.OUTPUT_TIMELESS]:
            with self.about(self.TIMELESS_FEATURE):
                patch.feature(timeless_feature, TIMELESS_KINDS)
        with self.about(self.INPUT):
            import_eopatch(
                patch,
                data_features=data_features,
                output_data=outputs[self.OUTPUT],
                mask_feature=mask_feature or None,
                output_mask=outputs[self.OUTPUT_MASK],
                timeless_feature=timeless_feature or None,
                output_timeless=outputs[self.OUTPUT_TIMELESS],
                apply_is_data=self.parameterAsBoolean(parameters, self.APPLY_IS_DATA, context),
                progress=progress,
            )
        return {name: path for name, path in outputs.items() if path}
