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
from .download import DownloadAlgorithm
from .experiment import ExperimentAlgorithm
from .features import FeaturesAlgorithm
from .import_eopatch import ImportEOPatchAlgorithm
from .import_safe import ImportSafeAlgorithm
from .interpolate import InterpolateAlgorithm
from .pipeline import LulcPipelineAlgorithm
from .smooth import SmoothAlgorithm
from .suggest_samples import SuggestSamplesAlgorithm
from .train import TrainAlgorithm
from .uncertainty import UncertaintyAlgorithm

PROVIDER_ID = "eolulc"
#: Graphical models shipped with the plugin (``tools/make_model3.py`` writes them), listed as
#: ``eolulc:<model name>``.
MODELS_DIR = Path(__file__).resolve().parent.parent / "resources" / "models"
#: What the toolbox shows for a shipped model (its name is its id, so it stays short).
MODEL_DISPLAY_NAMES = {"lulcchain": "LULC chain (graphical model of the LULC pipeline)"}

ALGORITHMS = (
    ImportEOPatchAlgorithm,
    ImportSafeAlgorithm,
    DownloadAlgorithm,
    BuildTimeStackAlgorithm,
    CloudMaskAlgorithm,
    InterpolateAlgorithm,
    FeaturesAlgorithm,
    TrainAlgorithm,
    ClassifyAlgorithm,
    AccuracyAlgorithm,
    SmoothAlgorithm,
    UncertaintyAlgorithm,
    SuggestSamplesAlgorithm,
    LulcPipelineAlgorithm,
    ExperimentAlgorithm,
    BatchPipelineAlgorithm,
)


class ShippedModel(QgsProcessingModelAlgorithm):
    """A shipped graphical model under a readable name, in the group of the algorithms of the same
    group name. QGIS (3.22) shows a model's id as its name and uses its group's name as the group's
    id, so a model in "Pipeline" would get a toolbox group of its own next to the algorithms'."""

    def __init__(self, display_name: str = "", group_id: str = "") -> None:
        super().__init__()
        self._display_name = display_name
        self._group_id = group_id

    def displayName(self) -> str:
        return self._display_name or super().displayName()

    def groupId(self) -> str:
        return self._group_id or super().groupId()

    def createInstance(self) -> ShippedModel:
        instance = ShippedModel(self._display_name, self._group_id)
        instance.loadVariant(self.toVariant())
        instance.setSourceFilePath(self.sourceFilePath())
        return instance


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
            model = ShippedModel()
            if model.fromFile(str(path)) and model.name():
                group_ids = {a.GROUP: a.GROUP_ID for a in ALGORITHMS}
                model = ShippedModel(MODEL_DISPLAY_NAMES.get(model.name(), model.name()),
                                     group_ids.get(model.group(), ""))
                model.fromFile(str(path))
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
