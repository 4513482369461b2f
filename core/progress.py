"""The tiny progress/cancel protocol between the QGIS-free core and whoever drives it.

The core never imports QGIS. Long-running core functions take a :class:`Progress` and call
``report`` (fraction done, 0..1), ``log`` (a line for the user), ``warn`` (a line the user must not
miss) and ``check`` (raises :class:`Cancelled` when the user asked to stop). The processing layer builds one from a
``QgsProcessingFeedback``; scripts and tests pass nothing and get a silent one.
"""

from __future__ import annotations

from typing import Callable


class Cancelled(Exception):
    """Raised inside the core when the caller asked to stop; outputs are then discarded."""


class Progress:
    """Progress, log and cancel callbacks, each optional.

    ``scaled(start, end)`` gives a child that maps its own 0..1 onto ``start..end`` of this one,
    so a multi-step job hands each step its own Progress.
    """

    def __init__(
        self,
        on_progress: Callable[[float], None] | None = None,
        is_canceled: Callable[[], bool] | None = None,
        on_log: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self._on_progress = on_progress
        self._is_canceled = is_canceled
        self._on_log = on_log
        self._on_warning = on_warning

    def report(self, fraction: float) -> None:
        if self._on_progress is not None:
            self._on_progress(min(1.0, max(0.0, float(fraction))))

    def log(self, message: str) -> None:
        if self._on_log is not None:
            self._on_log(message)

    def warn(self, message: str) -> None:
        """A warning (QGIS shows it highlighted); a log line starting "Warning:" where nobody
        listens for warnings."""
        if self._on_warning is not None:
            self._on_warning(message)
        else:
            self.log(f"Warning: {message}")

    def canceled(self) -> bool:
        return bool(self._is_canceled and self._is_canceled())

    def check(self) -> None:
        if self.canceled():
            raise Cancelled("canceled by the user")

    def scaled(self, start: float, end: float) -> Progress:
        return Progress(
            on_progress=lambda f: self.report(start + (end - start) * f),
            is_canceled=self._is_canceled,
            on_log=self._on_log,
            on_warning=self._on_warning,
        )


def ensure_progress(progress: Progress | None) -> Progress:
    """The given Progress, or a silent one that never cancels."""
    return progress if progress is not None else Progress()
