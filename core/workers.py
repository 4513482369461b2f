"""Worker processes started from inside QGIS: which Python interpreter runs them.

Inside QGIS ``sys.executable`` is not a Python to start workers with (the QGIS program, or for
the embedded Python whatever ``python3`` is first on PATH); joblib's loky pools, used by the
experiments' variants and the batch pipeline's tiles, start ``sys.executable``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator


def _is_python(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.startswith("python") and not name.startswith("pythonw") and "config" not in name


def _runnable(path: str | Path) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def worker_python(executable: str | None = None, exec_prefix: str | None = None,
                  base_executable: str | None = None, platform: str | None = None,
                  version: tuple[int, int] | None = None, base_prefix: str | None = None) -> str | None:
    """The Python interpreter to start local worker processes with; ``None`` when there is none.

    Inside QGIS ``sys.executable`` is unreliable: the QGIS program on Linux and macOS
    (``qgis-bin.exe`` on Windows), or, for QGIS's embedded Python, whatever ``python3`` comes
    first on PATH (a pyenv or conda one that cannot load QGIS's modules). So a Python-named
    ``sys.executable`` or ``sys._base_executable`` is taken only when it lies inside
    ``sys.exec_prefix`` or ``sys.base_exec_prefix``; then the interpreter inside those prefixes
    (QGIS's own), then one beside the executable. Arguments default to this interpreter's
    values (they are parameters for the tests).
    """
    executable = sys.executable if executable is None else executable
    if exec_prefix is None:
        exec_prefix = sys.exec_prefix
        base_prefix = getattr(sys, "base_exec_prefix", exec_prefix) if base_prefix is None else base_prefix
    base_prefix = exec_prefix if base_prefix is None else base_prefix
    if base_executable is None:
        base_executable = getattr(sys, "_base_executable", "") or ""
    platform = sys.platform if platform is None else platform
    major, minor = version or sys.version_info[:2]
    prefixes = [Path(p) for p in dict.fromkeys((exec_prefix, base_prefix)) if p]
    candidates: list[Path] = []
    for given in (executable, base_executable):
        if given and _is_python(given) and any(p in Path(given).parents for p in prefixes):
            candidates.append(Path(given))
    if platform == "win32":
        names: tuple[str, ...] = ("python.exe", "python3.exe")
        folders = list(prefixes)
    else:
        names = (f"python{major}.{minor}", f"python{major}", "python")
        folders = [p / "bin" for p in prefixes]
    if executable and not _is_python(executable):
        here = Path(executable).parent
        folders += [here / "bin", here]
    candidates += [folder / name for folder in folders for name in names]
    return next((str(c) for c in candidates if _runnable(c)), None)


@contextlib.contextmanager
def interpreter_for_workers(python: str) -> Iterator[None]:
    """Start loky's worker processes (and its resource tracker) with ``python``. loky starts
    ``sys.executable`` on Linux and macOS and its own module attribute on Windows, and has no
    setter, so both are swapped while the pool runs and restored afterwards."""
    try:
        from joblib.externals.loky.backend import spawn
    except ImportError:
        spawn = None
    saved_executable = sys.executable
    saved_spawn = getattr(spawn, "_python_exe", None)
    if python == saved_executable:
        yield
        return
    sys.executable = python
    if spawn is not None:
        spawn._python_exe = python
    try:
        yield
    finally:
        sys.executable = saved_executable
        if spawn is not None and saved_spawn is not None:
            spawn._python_exe = saved_spawn
