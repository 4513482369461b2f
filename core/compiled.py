"""Optional compiled kernels: :mod:`.kernels` (numba) where numba is installed, else None.

The hot loops that numpy cannot vectorise well, or only in many passes over memory (tree
ensembles; the cloud step's cell sums and upsampling; features of digital numbers; the
interpolation in time), have a numba kernel. numba is an optional requirement: a QGIS whose
numpy has no matching numba release yet must still run, so every kernel has a numpy or LightGBM
path that gives the same values (the tests compare the two), only slower.

numba caches the machine code in ``core/__pycache__`` (``cache=True``), keyed by the source
file's text, and pickles the kernels' module by its name: loaded from a package imported under
another name (the plugin folder is ``eolulc`` for QGIS and the tests, but a profile may name it
otherwise, and so may a batch worker), that module does not import and the first kernel call
failed with ``ModuleNotFoundError``. So kernels.py is loaded from its real path (symlinks
resolved) under a name of its own that does not depend on the package's name, only on the
file's text (:func:`module_name`), and imports nothing from the package; any cached kernel
that still cannot be loaded is compiled again with a warning (:mod:`.kernels`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).resolve().with_name("kernels.py")


def module_name() -> str:
    """The kernels' module name: the same for every package name and folder, another for
    another text of kernels.py (two versions of the plugin in one process stay apart)."""
    return f"eolulc_kernels_{hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:12]}"


def _load() -> ModuleType:
    name = module_name()
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, SOURCE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {SOURCE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache imports it by this name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@functools.lru_cache(maxsize=1)
def kernels() -> ModuleType | None:
    """The compiled kernels, or None where numba cannot be imported."""
    try:
        return _load()
    except ImportError:
        return None
    except Exception as error:  # noqa: BLE001  a broken numba or llvmlite (OSError: no shared library, ...)
        warnings.warn(f"numba is installed but cannot be used ({error}); EO LULC runs without it, slower",
                      RuntimeWarning, stacklevel=2)
        return None
