"""Compile the numba kernels ahead of the first real run.

numba compiles :mod:`.kernels` on first use and caches the machine code on disk (see
:mod:`.compiled`); after an install or an upgrade (a new kernels.py) the first pipeline run pays
the compilation, about as long as a small run itself. :func:`warm_kernels` runs the whole
pipeline once on a tiny synthetic scene, so every kernel is compiled for the argument types the
steps really pass, and leaves a marker (:func:`marker_path`) so that it runs once per version of
the kernels. The QGIS plugin starts it in a separate, low-priority process when the desktop
starts (:func:`warm_up_command`); it never runs inside QGIS's own process, where compiling would
hold Python's lock and make the interface stutter.

Run as a script: ``python warmup.py`` (what the plugin starts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Side in pixels and dates of the scene the pipeline runs on: the smallest that takes every path
#: (a 160 m cloud grid of several cells, a spatial split with test blocks, smoothing).
SIZE, DATES = 96, 10


def marker_path() -> Path | None:
    """The file that says the kernels of this kernels.py, Python and numba are compiled and cached;
    None where the cache folder next to the kernels is not writable (numba then caches elsewhere,
    per user, and a warm-up could not tell)."""
    import importlib.metadata

    from .compiled import SOURCE, module_name

    try:
        numba_version = importlib.metadata.version("numba")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else SOURCE.parent / "__pycache__"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not _writable(folder):
        return None
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return folder / f"{module_name()}.{python}.numba{numba_version}.warm"


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def needs_warm_up() -> bool:
    """Whether numba is installed and the kernels of this version were never warmed here."""
    import importlib.util

    if importlib.util.find_spec("numba") is None:
        return False
    marker = marker_path()
    return marker is not None and not marker.exists()


def warm_kernels() -> list[str]:
    """Run the pipeline on a tiny synthetic scene (every kernel, with the steps' own argument
    types), then write the marker (saying "warmed", or why it failed); the kernels, by name."""
    from ..demo.synthetic import SyntheticScene
    from .compiled import kernels
    from .legend import read_legend
    from .pipeline import PipelineOutputs, PipelineSettings, run_pipeline
    from .reference import read_reference_raster
    from .timestack import read_info

    compiled = kernels()
    if compiled is None:
        return []
    folder = Path(tempfile.mkdtemp(prefix="eolulc-warm-up-"))
    outcome = "warmed"
    try:
        data = SyntheticScene(height=SIZE, width=SIZE, n_dates=DATES, seed=1).write(folder / "data")
        grid = read_info(str(data.l1c)).grid
        reference = read_reference_raster(str(data.reference), grid)
        outputs = PipelineOutputs(**{name: str(folder / f"{name}.tif") for name in (
            "cloud_mask", "classification", "confidence", "reference", "agreement")},
            features=None, interpolated=None, model=str(folder / "model.json"), report=str(folder / "report.html"))
        settings = PipelineSettings()
        settings.train.samples = 2000
        run_pipeline(str(data.l1c), reference, read_legend(), outputs, settings)
    except Exception as error:
        outcome = f"failed: {type(error).__name__}: {error}"
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        # written after a failure too (with why): the warm-up only saves time, and one that fails
        # would fail again at every start of QGIS; the first real run then compiles what it needs
        marker = marker_path()
        if marker is not None:
            marker.write_text(outcome + "\n", encoding="utf-8")
    return sorted(name for name in dir(compiled) if hasattr(getattr(compiled, name), "stats"))


def start_warm_up() -> subprocess.Popen | None:
    """Start :func:`warm_kernels` in a separate low-priority process when it is needed (see
    :func:`needs_warm_up`) and a Python interpreter to run it is found; the process, or None.
    Never waits: it compiles while the user prepares a run, and a run that starts earlier
    compiles what it needs itself (numba's cache tolerates both writing it)."""
    if not needs_warm_up():
        return None
    from .workers import worker_python

    python = worker_python()
    if python is None:
        return None
    options: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.BELOW_NORMAL_PRIORITY_CLASS | subprocess.CREATE_NO_WINDOW
    else:
        options["start_new_session"] = True  # the script lowers its own priority (no preexec_fn in threads)
    try:
        return subprocess.Popen(warm_up_command(python), **options)
    except OSError:
        return None


def warm_up_command(python: str) -> list[str]:
    """The command line that warms the kernels in another process with ``python``: this file run
    as a script imports the plugin by its folder's name, whatever that is."""
    return [python, str(Path(__file__).absolute())]


if __name__ == "__main__":  # run by warm_up_command: the plugin folder's parent on the path
    if hasattr(os, "nice"):
        os.nice(10)
    _plugin = Path(__file__).absolute().parent.parent
    sys.path.insert(0, str(_plugin.parent))
    _core = __import__(f"{_plugin.name}.core.warmup", fromlist=["warm_kernels"])
    _core.warm_kernels()
