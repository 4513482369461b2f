"""What every EO LULC algorithm shares: naming, help built from per-parameter help, the
dependency check, the feedback adapter, and the mapping of core errors to
``QgsProcessingException``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.progress import Cancelled, Progress
from ..plugin.dependencies import missing_message, missing_modules
from .compat import advanced_flag
from .paths import is_layer_parameter, overwrite_conflict, plain_files, raster_sources, unreadable_input

ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icons" / "eolulc.svg"


#: Required packages that the core only reads files from, so the check before a run looks them up
#: without importing them: s2cloudless holds the cloud model (``core.cloudmask.model_path``), and
#: importing it imports sentinelhub and its HTTP stack, 0.3-0.7 s of every cloud-mask run.
LOOKED_UP_ONLY = frozenset({"s2cloudless"})


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def progress_from_feedback(feedback: QgsProcessingFeedback | None) -> Progress:
    """Adapt QGIS feedback to the core's progress/cancel protocol."""
    if feedback is None:
        return Progress()
    return Progress(
        on_progress=lambda fraction: feedback.setProgress(100.0 * fraction),
        is_canceled=feedback.isCanceled,
        on_log=feedback.pushInfo,
        on_warning=feedback.pushWarning,
    )


class EoLulcAlgorithm(QgsProcessingAlgorithm):
    """Base of all EO LULC algorithms.

    Subclasses set the class attributes, declare parameters with :meth:`add` (which records the
    help shown in the dialog, in ``qgis_process help`` and in the help panel) and implement
    :meth:`execute` (not ``run``: that name is QgsProcessingAlgorithm's). Core ``ValueError`` s
    become ``QgsProcessingException`` s; wrap a core call in ``with self.about(PARAM):`` so the
    message names the parameter to fix.
    """

    ALGORITHM_ID = ""
    DISPLAY_NAME = ""
    GROUP_ID = ""
    GROUP = ""
    DESCRIPTION = ""
    #: Python modules the algorithm imports when it runs (checked before running).
    REQUIRES: tuple[str, ...] = ("numpy", "rasterio")

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("EoLulc", text)

    def name(self) -> str:
        return self.ALGORITHM_ID

    def displayName(self) -> str:
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return self.tr(self.GROUP)

    def groupId(self) -> str:
        return self.GROUP_ID

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def createInstance(self) -> EoLulcAlgorithm:
        return type(self)()

    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False) -> None:
        """Add a parameter with its help text (``setHelp``), optionally in the Advanced group."""
        parameter.setHelp(self.tr(help_text))
        if advanced:
            parameter.setFlags(parameter.flags() | advanced_flag())
        self.addParameter(parameter)

    def shortHelpString(self) -> str:
        parts = [f"<p>{self.tr(self.DESCRIPTION)}</p>"]
        items = [
            f"<dt><b>{p.description()}</b> (<code>{p.name()}</code>)</dt><dd>{p.help()}</dd>"
            for p in self.parameterDefinitions()
            if p.help()
        ]
        if items:
            parts.append("<h3>Parameters</h3><dl>" + "".join(items) + "</dl>")
        return "".join(parts)

    def raster_source(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                      required: str = "") -> str | None:
        """The file (GDAL source) of a raster parameter, without loading a file given as text; with
        ``required`` (what to ask for) an error naming the parameter when none is given."""
        sources = self.raster_sources(parameters, name, context, required)
        return sources[0] if sources else None

    def raster_sources(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                       required: str = "") -> list[str]:
        """The files of a multiple-layer parameter, without loading those given as text; with
        ``required`` (what to ask for) an error naming the parameter when none is given."""
        sources = raster_sources(self, parameters, name, context)
        if required and not any(sources):
            raise self.parameter_error(name, self.tr(required))
        return sources

    def stack_info(self, source: str, name: str):
        """The :class:`~..core.timestack.StackInfo` of the raster ``source`` of parameter ``name``;
        an error naming the parameter when it cannot be read."""
        from ..core.timestack import read_info

        with self.about(name):
            return read_info(source)

    def option_key(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                   options: Sequence[tuple[str, str]]) -> str:
        """The key of the chosen option of an enum parameter declared from ``(key, label)`` pairs."""
        return options[self.parameterAsEnum(parameters, name, context)][0]

    def output_path(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str | None:
        """The file of a raster or file destination parameter, None when no output is asked for."""
        if isinstance(self.parameterDefinition(name), QgsProcessingParameterRasterDestination):
            return self.parameterAsOutputLayer(parameters, name, context) or None
        return self.parameterAsFileOutput(parameters, name, context) or None

    def required_output(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                        message: str = "give a file (or leave the temporary output)") -> str:
        """The file of an output the algorithm cannot do without; an error naming it when none is given."""
        path = self.output_path(parameters, name, context)
        if path is None:
            raise self.parameter_error(name, self.tr(message))
        return path

    def parameter_label(self, name: str) -> str:
        definition = self.parameterDefinition(name)
        return f"{definition.description()} ({name})" if definition is not None else name

    def parameter_error(self, name: str, message: str) -> QgsProcessingException:
        """An exception whose message names the parameter to fix."""
        return QgsProcessingException(f"{self.parameter_label(name)}: {message}")

    @contextlib.contextmanager
    def about(self, name: str) -> Iterator[None]:
        """Turn a core ``ValueError`` raised inside the block into an error naming ``name``."""
        try:
            yield
        except ValueError as error:
            raise self.parameter_error(name, str(error)) from None

    def checkParameterValues(self, parameters: dict[str, Any], context: QgsProcessingContext):
        """Before QGIS's own checks: a missing, empty or damaged input file and a number out of its
        range are named with the parameter and the fix (QGIS would say "not found" or "Incorrect
        parameter value")."""
        problem = unreadable_input(self, parameters, context) or self._number_out_of_range(parameters, context)
        if not problem and self.parameterDefinition("CLASS_FIELD") is not None:
            from .reference import reference_problem

            problem = reference_problem(self, parameters, context)
        problem = problem or self.choice_problem(parameters, context)
        if problem:
            return False, problem
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            if is_layer_parameter(definition) and plain_files(value) is not None:
                # checked above with GDAL; QGIS's check would load the layer, whose statistics
                # leave a .aux.xml beside the user's file
                continue
            if not definition.checkValueIsAcceptable(value, context):
                label = self.parameter_label(definition.name())
                return False, self.tr("Incorrect parameter value for {}").format(label)
        return True, ""

    def choice_problem(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """An algorithm's own check of its parameters before the run (e.g. an empty band list): the
        dialog's message naming the parameter, or None."""
        return None

    def _number_out_of_range(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        for definition in self.parameterDefinitions():
            if not isinstance(definition, QgsProcessingParameterNumber):
                continue
            value = parameters.get(definition.name())
            if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue  # an expression or a property: QGIS evaluates and checks it
            if not definition.minimum() <= number <= definition.maximum():
                return self.tr("{}: {} is outside the allowed range {} to {}").format(
                    self.parameter_label(definition.name()), value, _number_text(definition.minimum()),
                    _number_text(definition.maximum()))
        return None

    def processAlgorithm(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        required = self.required_modules(parameters, context)
        missing = missing_modules([m for m in required if m not in LOOKED_UP_ONLY], try_import=True) + \
            missing_modules([m for m in required if m in LOOKED_UP_ONLY], try_import=False)
        if missing:
            raise QgsProcessingException(missing_message(missing))
        conflict = overwrite_conflict(self, parameters, context)
        if conflict:
            raise QgsProcessingException(conflict)
        try:
            return self.execute(parameters, context, feedback, progress_from_feedback(feedback))
        except Cancelled:
            raise QgsProcessingException(self.tr("Canceled by the user; no output was written.")) from None
        except ValueError as error:
            raise QgsProcessingException(str(error)) from None
        except OSError as error:
            raise QgsProcessingException(self.tr("Cannot read or write a file: {}").format(error)) from None

    def required_modules(self, parameters: dict[str, Any], context: QgsProcessingContext) -> Sequence[str]:
        """The modules this run needs (checked before it starts): ``REQUIRES``, or more where the
        parameters choose a route with a package of its own."""
        return self.REQUIRES

    def execute(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: Progress) -> dict[str, Any]:
        raise NotImplementedError
