"""``eolulc:features``: chosen bands, normalized-difference indices and temporal statistics of a
band stack, as the feature stack that training and classification read."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterEnum,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..core.progress import Progress
from .base import EoLulcAlgorithm

#: Enum order of the INDICES parameter (keys of core.features.PRESET_INDICES).
PRESETS = ("NDVI", "NDWI", "NDBI")
INDICES = "INDICES"


def add_indices_parameter(algorithm, advanced: bool = False) -> None:
    """The preset indices (``INDICES``, all three by default), as features and the pipeline offer them."""
    from ..core.features import PRESET_INDICES

    algorithm.add(
        QgsProcessingParameterEnum(
            INDICES, algorithm.tr("Indices"),
            options=[f"{name} ({a}, {b})" for name, (a, b) in PRESET_INDICES.items()],
            allowMultiple=True, defaultValue=list(range(len(PRESETS))), optional=True,
        ),
        "Preset normalized differences (A - B) / (A + B): NDVI (B08, B04), NDWI (B03, B08, McFeeters), "
        "NDBI (B11, B08). Computed from reflectance. None for a stack without those bands (e.g. an NDVI "
        "stack: then name its band in the bands).",
        advanced=advanced,
    )


def chosen_indices(algorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple:
    """The preset indices ``INDICES`` asks for, in its order."""
    from ..core.features import preset_indices

    return preset_indices([PRESETS[i] for i in algorithm.parameterAsEnums(parameters, INDICES, context)])


class FeaturesAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "features"
    DISPLAY_NAME = "Features (bands, indices, temporal statistics)"
    GROUP_ID = "classification"
    GROUP = "Classification"
    DESCRIPTION = (
        "Builds the features a land-cover classifier learns from: chosen bands (as reflectance, using the "
        "stack's scale/offset, or for Sentinel-2 bands without one judged as the cloud mask does: digital "
        "numbers, processing baseline 04.00's offset) and normalized differences (A - B) / (A + B) of "
        "two bands, for every date of a band stack, named in the band descriptions (e.g. "
        "'2017-03-14T10:00:21 NDVI'). Optionally, "
        "statistics over time per band and index replace the per-date features with one undated set "
        "(e.g. NDVI_mean, NDVI_p90), which does not depend on the acquisition dates. Undefined values "
        "(nodata input, A + B = 0) are nodata (NaN), never infinite. Any raster works: one without dates "
        "is treated as a single undated date."
    )

    INPUT = "INPUT"
    BANDS = "BANDS"
    INDICES = INDICES
    CUSTOM_INDICES = "CUSTOM_INDICES"
    STATISTICS = "STATISTICS"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        from ..core.features import DEFAULT_BANDS, STATISTICS

        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Band stack")),
            "A time stack of bands named in the band descriptions (e.g. from 'Import eo-learn EOPatch', "
            "'Build time stack from per-date rasters' or 'Interpolate time series'), or any raster.",
        )
        self.add(
            QgsProcessingParameterString(self.BANDS, self.tr("Bands to keep"), defaultValue=",".join(DEFAULT_BANDS),
                                         optional=True),
            "Comma-separated band names copied into the features as reflectance (case-insensitive, B4 = B04). "
            "The default is the six bands of eo-learn's LULC example. Empty keeps no band (indices only); "
            "* keeps all bands of the stack.",
        )
        add_indices_parameter(self)
        self.add(
            QgsProcessingParameterString(self.CUSTOM_INDICES, self.tr("Custom indices"), defaultValue="",
                                         optional=True),
            "More normalized differences as NAME=BAND_A,BAND_B separated by semicolons, e.g. "
            "'NDRE=B8A,B05; MNDWI=B03,B11'. Names become band names, so they must be unique.",
        )
        self.add(
            QgsProcessingParameterEnum(
                self.STATISTICS, self.tr("Temporal statistics (replace per-date features)"),
                options=list(STATISTICS), allowMultiple=True, defaultValue=[], optional=True,
            ),
            "If any is chosen, the output is one undated date holding, for every band and index, these "
            "statistics over all dates, ignoring nodata: mean, population standard deviation, minimum, "
            "maximum and percentiles (linear interpolation), named like NDVI_mean. Run the algorithm twice "
            "to get both per-date features and statistics.",
        )
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Features")),
            "Feature stack, float32, NaN as nodata: the input's dates x the chosen bands then indices, or "
            "one undated date of statistics.",
        )

    def choice_problem(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """No band and no index: nothing to compute (said before the run, not after the input is read)."""
        from ..core.features import parse_band_list

        if parse_band_list(self.parameterAsString(parameters, self.BANDS, context)):
            return None
        if self.parameterAsEnums(parameters, self.INDICES, context) or \
                self.parameterAsString(parameters, self.CUSTOM_INDICES, context).strip():
            return None
        return self.tr("{}: empty, and no index is chosen: nothing to compute. Name the bands to keep, separated "
                       "by commas (e.g. B02,B03,B04,B08, or * for all), or choose an index").format(
            self.parameter_label(self.BANDS))

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        from ..core.features import (
            STATISTICS,
            FeatureSpec,
            parse_band_list,
            parse_custom_indices,
            plan_features,
            resolve_bands,
        )
        from ..core.features import compute_features as run_features

        source = self.raster_source(parameters, self.INPUT, context, "choose a raster layer or file")
        info = self.stack_info(source, self.INPUT)
        bands = parse_band_list(self.parameterAsString(parameters, self.BANDS, context))
        presets = chosen_indices(self, parameters, context)
        with self.about(self.CUSTOM_INDICES):
            custom = parse_custom_indices(self.parameterAsString(parameters, self.CUSTOM_INDICES, context))
        statistics = tuple(STATISTICS[i] for i in sorted(self.parameterAsEnums(parameters, self.STATISTICS, context)))
        # each check names the parameter that asks for what the stack lacks
        with self.about(self.BANDS):
            resolve_bands(info.bands, bands)
        for name, indices in ((self.INDICES, presets), (self.CUSTOM_INDICES, custom)):
            with self.about(name):
                for index in indices:
                    resolve_bands(info.bands, [index.a, index.b], index.name)
        # nothing chosen, or a name used twice (a custom index named like a band or preset)
        with self.about(self.CUSTOM_INDICES if custom else self.BANDS):
            spec = FeatureSpec(bands=bands, indices=presets + custom, statistics=statistics)
            plan_features(info, spec)

        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        with self.about(self.INPUT):
            result = run_features(source, output, spec, progress=progress)
        feedback.pushInfo(self.tr("Wrote {} feature(s) x {} date(s).").format(len(result.names), result.n_dates))
        return {self.OUTPUT: output}
