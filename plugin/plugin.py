"""The QGIS plugin class: registers the Processing provider and the dependency installer."""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QCheckBox, QMessageBox, QPushButton

from ..processing.base import ICON_PATH
from ..processing.provider import EoLulcProvider
from . import dependencies

MENU = "&EO LULC"
LOG_TAG = "EO LULC"


class PlanTask(QgsTask):
    """Asks pip in the background what must be installed and how large it is (a few seconds:
    pip resolves against QGIS's Python and the index)."""

    def __init__(self) -> None:
        super().__init__("EO LULC: checking which Python packages to install", QgsTask.Flag.CanCancel)
        self.plans: list[dependencies.Plan] = []
        self.extras: list[dependencies.Plan] = []
        self.error = ""

    def run(self) -> bool:
        try:
            self.plans = dependencies.plans()
            # an unreachable extra index must not hold the confirmation for minutes
            self.extras = [dependencies.plan(list(extra.requirements), extra.label, False,
                                             (*extra.pip_args, "--retries", "1", "--timeout", "10"))
                           for extra in dependencies.missing_extras()]
        except (RuntimeError, OSError) as error:
            self.error = str(error)
            return False
        return True


class InstallDependenciesTask(QgsTask):
    """Runs pip in the background so QGIS stays responsive."""

    def __init__(self, plans: list[dependencies.Plan]) -> None:
        super().__init__("EO LULC: installing Python packages", QgsTask.Flag.CanCancel)
        self.plans = plans
        self.output = ""
        self.error = ""

    def run(self) -> bool:
        try:  # the required packages, then the optional ones and extras (their failure is no error)
            dependencies.install_plans(self.plans, on_output=self._keep_output)
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
        self._task: QgsTask | None = None
        self._warm_up = None  # the kernel warm-up process (core.warmup), kept so that it is not collected
        self._missing_bar = None  # the "packages missing" message, popped once installed

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
        else:
            self._warm_kernels()

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
        self.actions.clear()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def _warm_kernels(self) -> None:
        """Compile the numba kernels in a background process after an install or an upgrade, so the
        first run does not pay it (about 9 s); a problem here must never stop QGIS from starting."""
        from ..core.warmup import start_warm_up

        try:
            self._warm_up = start_warm_up()
        except Exception as error:  # noqa: BLE001
            QgsMessageLog.logMessage(f"Kernel warm-up not started: {error}", LOG_TAG, Qgis.MessageLevel.Info)

    def _offer_install(self, missing: list[str]) -> None:
        bar = self.iface.messageBar()
        names = ", ".join(dependencies.distribution_name(line) for line in missing)
        widget = bar.createMessage("EO LULC", f"Python packages missing: {names}. The algorithms need them.")
        button = QPushButton("Install now", widget)
        button.clicked.connect(self.install_dependencies)
        widget.layout().addWidget(button)
        bar.pushWidget(widget, Qgis.MessageLevel.Warning)
        self._missing_bar = widget

    def install_dependencies(self) -> None:
        """Ask pip what is missing (in the background), then confirm with the count and size."""
        if self._task is not None:
            return  # already checking or installing
        task = PlanTask()
        task.taskCompleted.connect(lambda: self._confirm(task))
        task.taskTerminated.connect(lambda: self._failed(task.error or "Checking the Python packages was canceled."))
        self._task = task  # keep a reference: sip would free it
        QgsApplication.taskManager().addTask(task)

    def _confirm(self, task: PlanTask) -> None:
        self._task = None
        window = self.iface.mainWindow()
        plans = [p for p in task.plans if p.packages or p.error]
        extras = [p for p in task.extras if p.packages and not p.error]
        if not plans and not extras:
            QMessageBox.information(window, "EO LULC", "All Python packages EO LULC needs are installed.")
            return
        packages = [pkg for group in plans for pkg in group.packages]
        size = sum(group.download_bytes for group in plans)
        kept = [name for group in task.plans for name in group.kept]
        box = QMessageBox(QMessageBox.Icon.Question, "EO LULC", "", QMessageBox.StandardButton.Yes
                          | QMessageBox.StandardButton.No, window)
        if packages:
            box.setText(
                f"Install {len(packages)} Python package{'s' * (len(packages) != 1)} "
                f"({dependencies.megabytes(size)} to download) with pip into EO LULC's own folder?\n"
                f"{dependencies.deps_dir()}\n\nQGIS's Python is not changed; what it already has "
                "(numpy, scipy, ...) is reused. The algorithms are ready as soon as pip is done, without restart."
            )
        else:
            box.setText("All Python packages EO LULC needs are installed. Install the optional extra?")
        box.setDetailedText("\n\n".join(
            f"{group.label}: {group.summary()}\n" + ("\n".join(f"  {p.name} {p.version}" for p in group.packages)
                                                   or f"  {group.error}")
            for group in plans + extras) + (f"\n\nreused from QGIS's Python: {', '.join(kept)}" if kept else ""))
        if extras:
            extra = extras[0]
            box.setCheckBox(QCheckBox(f"Also install the {extra.label}: {extra.summary()}", box))
            box.checkBox().setChecked(False)
        box.exec()
        if box.clickedButton() is not box.button(QMessageBox.StandardButton.Yes):
            return
        chosen = plans + ([extras[0]] if extras and box.checkBox().isChecked() else [])
        if not any(group.packages for group in chosen):
            return
        install = InstallDependenciesTask(chosen)
        install.taskCompleted.connect(lambda: self._installed(install, ok=True))
        install.taskTerminated.connect(lambda: self._installed(install, ok=False))
        self._task = install
        QgsApplication.taskManager().addTask(install)

    def _failed(self, error: str) -> None:
        QgsMessageLog.logMessage(error, LOG_TAG, Qgis.MessageLevel.Critical)
        self.iface.messageBar().pushMessage(
            "EO LULC",
            "Installing Python packages failed; see the EO LULC tab of the log messages panel. "
            f"You can also run: {dependencies.install_command_text()}",
            Qgis.MessageLevel.Critical,
        )
        self._task = None

    def _installed(self, task: InstallDependenciesTask, ok: bool) -> None:
        if not ok:
            self._failed(task.output + "\n" + task.error)
            return
        QgsMessageLog.logMessage(task.output, LOG_TAG, Qgis.MessageLevel.Info)
        self._task = None
        dependencies.activate()
        bar = self.iface.messageBar()
        if not dependencies.missing_requirements() and self._missing_bar is not None:
            bar.popWidget(self._missing_bar)
            self._missing_bar = None
        left = dependencies.missing_requirements(optional=True)
        if left:
            bar.pushMessage(
                "EO LULC", "The algorithms are ready; optional packages could not be installed: "
                f"{dependencies.describe_optional(left)} (see the EO LULC tab of the log messages panel).",
                Qgis.MessageLevel.Warning
            )
        else:
            bar.pushMessage("EO LULC", "Python packages installed; the algorithms are ready.",
                            Qgis.MessageLevel.Success)
        if not dependencies.missing_requirements():
            self._warm_kernels()
