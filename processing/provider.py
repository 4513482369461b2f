"""The ``eolulc`` Processing provider; it lists its algorithms explicitly."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .accuracy import AccuracyAlgorithm
from .base import ICON_PATH
from .build_timestack import BuildTimeStackAlgorithm
from .classify import ClassifyAlgorithm
from .cloudmask import CloudMaskAlgorithm
from .features import FeaturesAlgorithm
from .import_eopatch import ImportEOPatchAlgorithm
from .interpolate import InterpolateAlgorithm
from .pipeline import LulcPipelineAlgorithm
from .train import TrainAlgorithm

PROVIDER_ID = "eolulc"

ALGORITHMS = (
    ImportEOPatchAlgorithm,
    BuildTimeStackAlgorithm,
    CloudMaskAlgorithm,
    InterpolateAlgorithm,
    FeaturesAlgorithm,
    TrainAlgorithm,
    ClassifyAlgorithm,
    AccuracyAlgorithm,
    LulcPipelineAlgorithm,
)


class EoLulcProvider(QgsProcessingProvider):
    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "EO LULC"

    def longName(self) -> str:  # noqa: N802
        return "EO LULC: land cover from Sentinel-2 time series"

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        return "tif"
