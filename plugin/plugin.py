"""The QGIS plugin class: registers the Processing provider and the dependency installer."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QMessageBox, QPushButton

from ..processing.base import ICON_PATH
from ..processing.provider import EoLulcProvider
from . import dependencies

MENU = "&EO LULC"
LOG_TAG = "EO LULC"


class InstallDependenciesTask(QgsTask):
    """Runs pip in the background so QGIS stays responsive."""

    def __init__(self, required: list[str], optional: list[str]) -> None:
        super().__init__("EO LULC: installing Python packages", QgsTask.Flag.CanCancel)
        self.required, self.optional = required, optional
        self.output = ""
        self.error = ""

    def run(self) -> bool:
        try:  # the required packages, then the optional ones (their failure is no error)
            dependencies.install(self.required, optional_lines=self.optional, on_output=self._keep_output)
        except (RuntimeError, OSError) as error:
            self.error = str(error)
            return False
        return True

    def _keep_output(self, text: str) -> None:
        self.output = text


class EoLulcPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: EoLulcProvider | None = None
        self.actions: list[QAction] = []
        self._task: InstallDependenciesTask | None = None

    # Processing, also used by qgis_process (no GUI)
    def initProcessing(self) -> None:
        if self.provider is None:
            self.provider = EoLulcProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # GUI
    def initGui(self) -> None:
        self.initProcessing()
        action = QAction(QIcon(str(ICON_PATH)), "Install Python dependencies...", self.iface.mainWindow())
        action.triggered.connect(self.install_dependencies)
        self.iface.addPluginToMenu(MENU, action)
        self.actions.append(action)
        missing = dependencies.missing_requirements()
        if missing:
            self._offer_install(missing)

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions.clear()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def _offer_install(self, missing: list[str]) -> None:
        bar = self.iface.messageBar()
        widget = bar.createMessage(
            "EO LULC", f"Python packages missing: {', '.join(missing)}. The algorithms need them."
        )
        button = QPushButton("Install now", widget)
        button.clicked.connect(self.install_dependencies)
        widget.layout().addWidget(button)
        bar.pushWidget(widget, Qgis.MessageLevel.Warning)

    def install_dependencies(self) -> None:
        required, optional = dependencies.missing_requirements(), dependencies.missing_requirements(optional=True)
        missing = required + [f"{line} (optional: faster)" for line in optional]
        if not missing:
            QMessageBox.information(
                self.iface.mainWindow(), "EO LULC", "All Python packages EO LULC needs are installed."
            )
            return
        answer = QMessageBox.question(
            self.iface.mainWindow(),
            "EO LULC",
            "Install these Python packages with pip into EO LULC's own folder\n"
            f"{dependencies.deps_dir()}\n(QGIS's Python is not changed)?\n\n" + "\n".join(missing),
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        task = InstallDependenciesTask(required, optional)
        task.taskCompleted.connect(lambda: self._installed(task, ok=True))
        task.taskTerminated.connect(lambda: self._installed(task, ok=False))
        self._task = task  # keep a reference: sip would free it
        QgsApplication.taskManager().addTask(task)

    def _installed(self, task: InstallDependenciesTask, ok: bool) -> None:
        QgsMessageLog.logMessage(task.output or task.error, LOG_TAG, Qgis.MessageLevel.Info)
        bar = self.iface.messageBar()
        if ok:
            dependencies.activate()
            left = dependencies.missing_requirements(optional=True)
            if left:
                bar.pushMessage(
                    "EO LULC", f"The algorithms are ready; the optional {', '.join(left)} could not be installed, "
                    "so they run slower (see the EO LULC tab of the log messages panel).", Qgis.MessageLevel.Warning
                )
            else:
                bar.pushMessage(
                    "EO LULC", "Python packages installed; the algorithms are ready.", Qgis.MessageLevel.Success
                )
        else:
            bar.pushMessage(
                "EO LULC",
                "Installing Python packages failed; see the EO LULC tab of the log messages panel. "
                f"You can also run: {dependencies.install_command_text()}",
                Qgis.MessageLevel.Critical,
            )
        self._task = None
