"""Placeholder, being written."""

from __future__ import annotations

from .base import EoLulcAlgorithm


class BuildTimeStackAlgorithm(EoLulcAlgorithm):
    ALGORITHM_ID = "buildtimestack"
    DISPLAY_NAME = "Build time stack from per-date rasters"
    GROUP_ID = "import"
    GROUP = "Import"

    def initAlgorithm(self, config=None):  # noqa: N802
        pass
