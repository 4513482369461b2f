"""Loading the plugin must stay cheap: QGIS (desktop start and every ``qgis_process`` call) imports
the plugin and builds its provider before anything runs, so the heavy modules (LightGBM, numba,
s2cloudless, torch, scipy, the STAC and Sentinel Hub clients, rasterio) are imported only by the
algorithm that uses them. Checked in a fresh interpreter (``sys.modules``) and in ``qgis_process``
itself (Python's own import log)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import PLUGIN_NAME, QGIS_PROCESS

#: Modules the provider must not import (top-level package names).
HEAVY = ("lightgbm", "numba", "llvmlite", "s2cloudless", "torch", "scipy", "sklearn", "pystac_client",
         "sentinelhub", "rasterio", "pandas", "matplotlib", "joblib", "loky")

#: What QGIS does with an enabled Processing plugin: import the package, ``classFactory``,
#: ``initProcessing``; then the toolbox (or ``qgis_process help``) builds each algorithm.
LOAD_AS_QGIS = textwrap.dedent(f"""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    start = time.perf_counter()
    import {PLUGIN_NAME}
    plugin = {PLUGIN_NAME}.classFactory(None)
    plugin.initProcessing()
    provider = QgsApplication.processingRegistry().providerById("eolulc")
    algorithms = provider.algorithms()
    for algorithm in algorithms:
        instance = algorithm.create()  # initAlgorithm: the parameters and their defaults
        instance.parameterDefinitions()
        instance.shortHelpString()
    seconds = time.perf_counter() - start
    print("RESULT " + json.dumps({{"algorithms": [a.id() for a in algorithms], "seconds": seconds,
                                   "modules": sorted({{m.split(".")[0] for m in sys.modules}})}}))
""")


def heavy_in(modules) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_loading_the_provider_imports_no_heavy_module(plugins_dir: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", LOAD_AS_QGIS, str(plugins_dir)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("RESULT ") + 7:])
    assert "eolulc:lulcpipeline" in result["algorithms"] and len(result["algorithms"]) >= 16
    assert heavy_in(result["modules"]) == [], "loading the provider imported heavy modules"


def test_qgis_process_help_imports_no_heavy_module(qgis_process) -> None:
    """``qgis_process help`` loads QGIS, its Processing plugin and ours; Python's import log
    (``PYTHONPROFILEIMPORTTIME``) lists every module imported in that process."""
    done = subprocess.run([QGIS_PROCESS, "help", "eolulc:lulcpipeline"],
                          env={**qgis_process.env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    imported = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", done.stderr, re.M)
    assert any(m.startswith(f"{PLUGIN_NAME}.processing.provider") for m in imported), "the plugin was not loaded"
    assert heavy_in(imported) == []



def test_cloud_mask_run_does_not_import_s2cloudless(qgis_process, scene_stack_dn: Path, tmp_path: Path) -> None:
    """The core reads s2cloudless's model file only; importing the package (as the check of the
    algorithm's requirements did) imports sentinelhub and its HTTP stack, 0.3-0.7 s of every run."""
    args = ["--json", "run", "eolulc:cloudmask", "--", f"INPUT={scene_stack_dn}",
            f"OUTPUT_PROBABILITY={tmp_path / 'p.tif'}", f"OUTPUT_MASK={tmp_path / 'm.tif'}"]
    done = subprocess.run([QGIS_PROCESS, *args], env={**qgis_process.env, "PYTHONPROFILEIMPORTTIME": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "m.tif").is_file()
    imported = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", done.stderr, re.M)
    assert f"{PLUGIN_NAME}.core.cloudmask" in imported  # the run was logged
    assert {"s2cloudless", "sentinelhub"} & {m.split(".")[0] for m in imported} == set()
