"""Compile the numba kernels ahead of the first real run.

numba compiles :mod:`.kernels` on first use and caches the machine code on disk (see
:mod:`.compiled`); after an install or an upgrade (a new kernels.py) the first pipeline run pays
the compilation, about as long as a small run itself. :func:`warm_kernels` runs the whole
pipeline once on a tiny scene of its own (:func:`write_scene`), so every kernel is compiled for
the argument types the steps really pass, and leaves a marker (:func:`marker_path`) so that it runs once per version of
the kernels. The QGIS plugin starts it in a separate, low-priority process when the desktop
starts (:func:`start_warm_up`, also after it installed the dependencies); it never runs inside
QGIS's own process, where compiling would hold Python's lock and make the interface stutter.

Run as a script: ``python warmup.py`` (what the plugin starts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
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


def write_scene(folder: Path) -> tuple[Path, Path]:
    """A tiny L1C-like stack and its reference raster, written in the types real inputs have:
    13 bands of uint16 digital numbers (scale 1e-4, nodata 0) on :data:`DATES` dates over a year,
    a bright cloud on each date, and four classes in stripes whose reflectance differs by class
    and season. (The plugin's zip ships no demo generator, so the warm-up has its own.)"""
    from datetime import datetime, timedelta

    import numpy as np
    from rasterio.crs import CRS

    from .sentinel2 import L1C_BANDS
    from .timestack import Grid, StackInfo, StackWriter

    rng = np.random.default_rng(1)
    grid = Grid(SIZE, SIZE, CRS.from_epsg(32633).to_wkt(), (10.0, 0.0, 500000.0, 0.0, -10.0, 5100000.0))
    dates = tuple(datetime(2019, 1, 5) + timedelta(days=365 * i // DATES) for i in range(DATES))
    classes = np.repeat((np.arange(SIZE) * 4 // SIZE + 1)[None, :], SIZE, axis=0).astype(np.uint8)
    # clear-sky reflectance of vegetation per band (B01 ... B12; cirrus B10 near 0), varied per class 1-4
    clear = np.array([0.12, 0.09, 0.08, 0.05, 0.10, 0.25, 0.30, 0.32, 0.33, 0.10, 0.003, 0.20, 0.10])
    level = clear[None, :] * rng.uniform(0.6, 1.4, (5, len(L1C_BANDS)))
    season = np.sin(np.linspace(0, np.pi, DATES))[:, None, None, None] * rng.uniform(-0.1, 0.1, (1, 1, 1, 4))
    values = level[classes][None] + np.take_along_axis(
        season.repeat(SIZE, 1).repeat(SIZE, 2), (classes[None, ..., None] - 1).astype(np.intp), axis=-1)
    values = values + rng.normal(0, 0.01, (DATES, SIZE, SIZE, len(L1C_BANDS)))
    for date in range(DATES):  # a cloud on each date, a block somewhere
        row, col = rng.integers(0, SIZE - SIZE // 8, 2)
        values[date, row:row + SIZE // 8, col:col + SIZE // 8] = 0.6
    values = np.maximum(values, 0.001)
    digital_numbers = np.clip(np.round(values * 10000), 1, 65535).astype(np.uint16)
    l1c, reference = folder / "l1c.tif", folder / "reference.tif"
    folder.mkdir(parents=True, exist_ok=True)
    with StackWriter(str(l1c), StackInfo(grid, dates, L1C_BANDS, "uint16", nodata=0,
                                         scales=(1e-4,) * len(L1C_BANDS))) as writer:
        writer.write(digital_numbers)
    with StackWriter(str(reference), StackInfo(grid, (None,), ("LULC",), "uint8", nodata=0)) as writer:
        writer.write(classes[None, ..., None])
    return l1c, reference


def warm_kernels() -> list[str]:
    """Run the pipeline on :func:`write_scene`'s scene (every kernel, with the steps' own argument
    types), then write the marker saying "warmed" or why not; the kernels, by name."""
    folder = Path(tempfile.mkdtemp(prefix="eolulc-warm-up-"))
    outcome = "interrupted"
    try:
        from .compiled import kernels
        from .legend import read_legend
        from .pipeline import PipelineOutputs, PipelineSettings, run_pipeline
        from .reference import read_reference_raster
        from .timestack import read_info

        compiled = kernels()
        if compiled is None:
            outcome = "failed: numba does not load"
            return []
        l1c, reference_path = write_scene(folder / "data")
        reference = read_reference_raster(str(reference_path), read_info(str(l1c)).grid)
        outputs = PipelineOutputs(**{name: str(folder / f"{name}.tif") for name in (
            "cloud_mask", "classification", "confidence", "reference", "agreement")},
            features=None, interpolated=None, model=str(folder / "model.json"), report=str(folder / "report.html"))
        settings = PipelineSettings()
        settings.train.samples = 2000
        settings.min_valid_fraction = 0.5  # every date kept whatever the coarse cloud grid makes of the cloud
        run_pipeline(str(l1c), reference, read_legend(), outputs, settings)
        outcome = "warmed"
        return sorted(name for name in dir(compiled) if hasattr(getattr(compiled, name), "stats"))
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


def start_warm_up() -> subprocess.Popen | None:
    """Start :func:`warm_kernels` in a separate low-priority process when it is needed (see
    :func:`needs_warm_up`) and a Python interpreter to run it is found; the process, or None.
    Never waits: it compiles while the user prepares a run, and a run that starts earlier
    compiles what it needs itself (numba's cache tolerates both writing it). A thread reaps it."""
    if not needs_warm_up():
        return None
    from .workers import worker_python

    python = worker_python()
    if python is None:
        return None
    options: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.BELOW_NORMAL_PRIORITY_CLASS | subprocess.CREATE_NO_WINDOW
    elif sys.version_info >= (3, 11):
        # its own process group (a Ctrl+C to QGIS's terminal does not reach it), not its own session:
        # a new session is a new scheduler autogroup on Linux, where its lowered priority would not count
        options["process_group"] = 0
    try:
        process = subprocess.Popen(warm_up_command(python), **options)
    except OSError:
        return None
    threading.Thread(target=process.wait, name="eolulc-warm-up-reaper", daemon=True).start()
    return process


def warm_up_command(python: str) -> list[str]:
    """The command line that warms the kernels in another process with ``python``: this file run
    as a script imports the plugin by its folder's name, whatever that is."""
    return [python, str(Path(__file__).absolute())]


if __name__ == "__main__":  # run by warm_up_command: the plugin folder's parent on the path
    if hasattr(os, "nice"):
        os.nice(10)
    _plugin = Path(__file__).absolute().parent.parent
    # not core/ itself (the script's folder): its modules must not be importable as top-level names
    sys.path[:] = [p for p in sys.path if Path(p or ".").absolute() != _plugin / "core"]
    sys.path.insert(0, str(_plugin.parent))
    _core = __import__(f"{_plugin.name}.core.warmup", fromlist=["warm_kernels"])
    _core.warm_kernels()
