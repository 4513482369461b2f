"""numba's on-disk cache of the compiled kernels: shared by the plugin imported under any name,
and a cache that cannot be loaded is compiled again with a warning, never a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eolulc.core import treepredict
from eolulc.core.compiled import kernels

pytestmark = pytest.mark.skipif(kernels() is None, reason="numba is not installed")

REPO = Path(__file__).resolve().parent.parent.parent

# Imports the plugin as argv[2] from folder argv[1] (nothing else of it on sys.path), calls a
# kernel and prints its result, the cache hits and misses and the warnings.
CALL = """
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
import importlib
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    k = importlib.import_module(sys.argv[2] + ".core.compiled").kernels()
    by_rows = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    present = (by_rows % 5 != 0).astype(np.float32)
    low, high = np.array([0, 0, 1, 2, 3]), np.array([0, 1, 2, 3, 3])
    low_weight = np.linspace(0, 1, 5).astype(np.float32)
    out = np.zeros((2, 3, 5), np.float32)
    k.bilinear_columns(by_rows, present, low, high, low_weight, 1 - low_weight, out)
stats = k.bilinear_columns.stats
print(json.dumps({"out": out.tolist(), "module": k.__name__, "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()), "warnings": [str(w.message) for w in caught],
                  "names": sorted(m for m in sys.modules if m.split(".")[0] in ("eolulc_a", "eo_lulc"))}))
"""


def _call(folder: Path, name: str, cache: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    done = subprocess.run([sys.executable, "-c", CALL, str(folder), name], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["in-tree", "NUMBA_CACHE_DIR"])
def two_names(request, tmp_path: Path) -> tuple[Path, Path, Path, Path | None]:
    """A copy of the plugin folder (so that its core/__pycache__ starts empty and is the tests'
    own) as ``eolulc_a`` and as ``eo_lulc``, each alone in its folder; numba's cache in the
    copy's core/__pycache__ (as for a user) or in a NUMBA_CACHE_DIR."""
    plugin = tmp_path / "plugin"
    for folder in ("core", "plugin"):
        shutil.copytree(REPO / folder, plugin / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "__init__.py", plugin / "__init__.py")
    first, second = tmp_path / "profile1", tmp_path / "profile2"
    first.mkdir()
    second.mkdir()
    (first / "eolulc_a").symlink_to(plugin, target_is_directory=True)
    (second / "eo_lulc").symlink_to(plugin, target_is_directory=True)
    if request.param == "in-tree":
        return first, second, plugin / "core" / "__pycache__", None
    return first, second, tmp_path / "numba-cache", tmp_path / "numba-cache"


def test_cache_made_under_one_package_name_is_loaded_under_another(two_names):
    first, second, folder, cache = two_names
    made = _call(first, "eolulc_a", cache)
    assert made["misses"] == 1 and made["hits"] == 0 and made["warnings"] == []
    assert any(folder.rglob("kernels.bilinear_columns-*.nbc"))
    # before: in-tree, ModuleNotFoundError: No module named 'eolulc_a' from numba/core/caching.py;
    # in a NUMBA_CACHE_DIR, compiled again (a cache folder per path of the symlink)
    loaded = _call(second, "eo_lulc", cache)
    assert loaded["hits"] == 1 and loaded["misses"] == 0 and loaded["warnings"] == []
    assert loaded["out"] == made["out"] and loaded["module"] == made["module"]
    assert not any(name.startswith("eolulc_a") for name in loaded["names"])  # no second copy imported


def test_cache_that_cannot_be_loaded_is_compiled_again_with_a_warning(two_names):
    first, _, folder, cache = two_names
    made = _call(first, "eolulc_a", cache)
    for data in folder.rglob("kernels.bilinear_columns-*.nbc"):
        data.write_bytes(data.read_bytes()[:200])  # truncated
    again = _call(first, "eolulc_a", cache)
    assert again["out"] == made["out"] and again["hits"] == 0 and again["misses"] == 1
    assert len(again["warnings"]) == 1 and "bilinear_columns cannot be loaded" in again["warnings"][0]
    repaired = _call(first, "eolulc_a", cache)  # the new machine code was saved
    assert repaired["hits"] == 1 and repaired["warnings"] == [] and repaired["out"] == made["out"]
    for index in folder.rglob("kernels.bilinear_columns-*.nbi"):
        index.write_bytes(b"\x80\x04garbage")
    assert _call(first, "eolulc_a", cache)["out"] == made["out"]


def test_kernels_module_name_and_rule_codes_do_not_depend_on_the_package():
    module = kernels()
    assert module.__name__.startswith("eolulc_kernels_") and "." not in module.__name__
    assert Path(module.__file__) == (REPO / "core" / "kernels.py").resolve()
    codes = ("RIGHT_IF_GREATER", "RIGHT_UNLESS_LESS_EQUAL", "ZERO_LEFT", "ZERO_RIGHT")
    assert [getattr(module, c) for c in codes] == [getattr(treepredict, c) for c in codes]
