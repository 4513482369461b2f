"""The ``eolulc`` Processing provider; it lists its algorithms explicitly."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .accuracy import AccuracyAlgorithm
from .base import ICON_PATH
from .batch import BatchPipelineAlgorithm
from .build_timestack import BuildTimeStackAlgorithm
from .classify import ClassifyAlgorithm
from .cloudmask import CloudMaskAlgorithm
from .experiment import ExperimentAlgorithm
from .features import FeaturesAlgorithm
from .import_eopatch import ImportEOPatchAlgorithm
from .interpolate import InterpolateAlgorithm
from .pipeline import LulcPipelineAlgorithm
from .train import TrainAlgorithm

PROVIDER_ID = "eolulc"
#: Graphical models shipped with the plugin (``tools/make_model3.py`` writes them), listed as
#: ``eolulc:<model name>``.
MODELS_DIR = Path(__file__).resolve().parent.parent / "resources" / "models"

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
    ExperimentAlgorithm,
    BatchPipelineAlgorithm,
)


class EoLulcProvider(QgsProcessingProvider):
    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "EO LULC"

    def longName(self) -> str:
        return "EO LULC: land cover from Sentinel-2 time series"

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
        self._models = []  # Python references to the models (owned by the provider once added)
        for path in sorted(MODELS_DIR.glob("*.model3")):
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)) and model.name():
                model.setSourceFilePath(str(path))
                self.addAlgorithm(model)
                self._models.append(model)
            else:
                QgsMessageLog.logMessage(f"Could not load the model {path}", "EO LULC")
        registry = QgsApplication.processingRegistry()
        if self._models and registry.providerById(self.id()) is not self:
            registry.providerAdded.connect(self._reload_models)

    def _reload_models(self, provider_id: str) -> None:
        """The models' steps are this provider's algorithms, which the registry only finds once the
        provider is registered: read the models again then, so that their outputs are known."""
        if provider_id != self.id():
            return
        QgsApplication.processingRegistry().providerAdded.disconnect(self._reload_models)
        for model in self._models:
            model.fromFile(model.sourceFilePath())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def defaultRasterFileExtension(self) -> str:
        return "tif"
