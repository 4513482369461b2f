"""Optional compiled kernels: :mod:`.kernels` (numba) where numba is installed, else None.

The hot loops that numpy cannot vectorise well, or only in many passes over memory (tree
ensembles; the cloud step's cell sums and upsampling; features of digital numbers; the
interpolation in time), have a numba kernel. numba is an optional requirement: a QGIS whose
numpy has no matching numba release yet must still run, so every kernel has a numpy or LightGBM
path that gives the same values (the tests compare the two), only slower.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType


@functools.lru_cache(maxsize=1)
def kernels() -> ModuleType | None:
    """The compiled kernels, or None where numba cannot be imported."""
    try:
        from . import kernels as module
    except ImportError:
        return None
    except Exception as error:  # noqa: BLE001  a broken numba or llvmlite (OSError: no shared library, ...)
        warnings.warn(f"numba is installed but cannot be used ({error}); EO LULC runs without it, slower",
                      RuntimeWarning, stacklevel=2)
        return None
    return module
