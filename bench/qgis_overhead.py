"""Where the time of a ``qgis_process`` run goes besides the pipeline's own work (issue 25).

Usage, from the repository root::

    .venv/bin/python bench/qgis_overhead.py                  # provider load, start-up, a 200 px pipeline
    .venv/bin/python bench/qgis_overhead.py --size 0         # without the pipeline runs (about 1 min)

1. **Provider load** in a fresh interpreter, as QGIS does it: import the plugin package
   (``plugin/dependencies.activate``), import the provider module, ``classFactory`` +
   ``initProcessing`` (every algorithm's ``initAlgorithm``), CPU and wall time of each stage, after
   QGIS and numpy are loaded (QGIS's own Processing plugin imports numpy in every ``qgis_process``).
2. **Start-up**: ``qgis_process.bin help native:buffer`` without any plugin, with an empty Processing
   plugin, and with ours (throw-away profile of the tests): what loading our plugin adds to every call.
3. **Pipeline** (``--size`` N > 0): a realistic synthetic stack (N x N px x ``--dates``), then
   ``eolulc:lulcpipeline`` through ``qgis_process.bin`` against the same ``run_pipeline`` call in a
   fresh Python (process wall time: interpreter, imports and run). (The arrival of
   ``qgis_process``'s log lines says little: its output is buffered when piped.)

Minimum of ``--repeats``; the runs alternate, so a busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from _common import REPO, package_dir, temp_dir

sys.path.insert(0, str(REPO / "tools"))
from qgis_env import PLUGIN_NAME, throwaway_profile_env  # noqa: E402

QGIS_PROCESS = "qgis_process.bin"
DEFAULT_OUT = REPO / "bench" / "out" / "qgis_overhead.json"

LOAD = textwrap.dedent(f"""
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from qgis.core import QgsApplication
    app = QgsApplication([], False)
    app.initQgis()
    import numpy  # noqa: F401  (imported by QGIS's Processing plugin in qgis_process anyway)
    marks = [("start", time.process_time(), time.perf_counter())]
    def mark(name):
        marks.append((name, time.process_time(), time.perf_counter()))
    import {PLUGIN_NAME}
    mark("import the package (dependencies.activate)")
    import {PLUGIN_NAME}.processing.provider  # noqa: F401
    mark("import the provider and algorithm modules")
    plugin = {PLUGIN_NAME}.classFactory(None)
    plugin.initProcessing()
    mark("initProcessing (every initAlgorithm)")
    for algorithm in QgsApplication.processingRegistry().providerById("eolulc").algorithms():
        algorithm.create().shortHelpString()
    mark("build each algorithm once more (toolbox, qgis_process help)")
    stages = {{b[0]: {{"cpu_ms": 1000 * (b[1] - a[1]), "wall_ms": 1000 * (b[2] - a[2])}}
              for a, b in zip(marks, marks[1:])}}
    stages["total"] = {{"cpu_ms": 1000 * (marks[-1][1] - marks[0][1]), "wall_ms": 1000 * (marks[-1][2] - marks[0][2])}}
    ours = sum(m.startswith("{PLUGIN_NAME}") for m in sys.modules)
    print("RESULT " + json.dumps({{"stages": stages, "modules": ours}}))
""")

EMPTY_PLUGIN = """def classFactory(iface):
    class Plugin:
        def __init__(self, iface): pass
        def initProcessing(self): pass
        def initGui(self): pass
        def unload(self): pass
    return Plugin(iface)
"""

CORE = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from {p}.core.legend import read_legend
    from {p}.core.pipeline import PipelineSettings, default_outputs, run_pipeline
    from {p}.core.reference import read_reference_raster
    from {p}.core.timestack import read_info
    l1c, reference, folder, start, end = sys.argv[2:7]
    settings = PipelineSettings(start=start, end=end, interval_days=16, processing_resolution=160.0)
    run_pipeline(l1c, read_reference_raster(reference, read_info(l1c).grid), read_legend(None),
                 default_outputs(folder), settings)
""").format(p=PLUGIN_NAME)


def provider_load(link_dir: Path, repeats: int) -> dict:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", LOAD, str(link_dir)], env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        runs.append(json.loads(done.stdout[done.stdout.index("RESULT ") + 7:]))
    stages = {name: {key: min(r["stages"][name][key] for r in runs) for key in ("cpu_ms", "wall_ms")}
              for name in runs[0]["stages"]}
    return {"stages": stages, "modules": runs[0]["modules"]}


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``command`` (which must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{command[0]} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - start


def start_up(link_dir: Path, root: Path, repeats: int) -> dict:
    empty = root / "empty_plugins" / "emptyplugin"
    empty.mkdir(parents=True)
    (empty / "__init__.py").write_text(EMPTY_PLUGIN)
    (empty / "metadata.txt").write_text("[general]\nname=empty\nqgisMinimumVersion=3.0\ndescription=x\n"
                                        "version=1\nauthor=x\nemail=x@x\nhasProcessingProvider=yes\n")
    env = throwaway_profile_env(link_dir, root / "profile")
    ini = root / "profile" / "config" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.write_text(f"[PythonPlugins]\n{PLUGIN_NAME}=true\nemptyplugin=true\n")
    cases = {"no plugin": {**env, "QGIS_PLUGINPATH": str(root / "none")},
             "an empty Processing plugin": {**env, "QGIS_PLUGINPATH": str(empty.parent)},
             "EO LULC": env}
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case_env in cases.items():
            seconds[name].append(timed([QGIS_PROCESS, "help", "native:buffer"], case_env))
    timed([QGIS_PROCESS, "help", "eolulc:lulcpipeline"], env)  # the plugin was loaded (fails otherwise)
    return {name: min(values) for name, values in seconds.items()}


def pipeline(link_dir: Path, root: Path, size: int, dates: int, repeats: int) -> dict:
    from eolulc.demo.synthetic import make_scene_stack

    made = make_scene_stack(root / "data", size=(size, size), n_dates=dates, seed=0, realistic=True)
    start, end = "2019-01-01", "2020-01-01"
    env = throwaway_profile_env(link_dir, root / "pipeline-profile")
    results: dict[str, list[float]] = {"core (fresh Python)": [], "qgis_process": []}
    for i in range(repeats):
        core = root / f"core{i}"
        core.mkdir()
        results["core (fresh Python)"].append(timed(
            [sys.executable, "-c", CORE, str(link_dir), str(made.l1c), str(made.reference), str(core), start, end],
            env))
        out = root / f"qgis{i}"
        out.mkdir()
        params = {"INPUT": made.l1c, "REFERENCE": made.reference, "START": start, "END": end, "INTERVAL_DAYS": 16,
                  "PROCESSING_RESOLUTION": 160, "OUTPUT": out / "map.tif", "OUTPUT_REFERENCE": out / "reference.tif",
                  "OUTPUT_AGREEMENT": out / "agreement.tif", "OUTPUT_CONFIDENCE": out / "confidence.tif",
                  "OUTPUT_MODEL": out / "model.json", "OUTPUT_REPORT": out / "report.html"}
        results["qgis_process"].append(timed([QGIS_PROCESS, "run", "eolulc:lulcpipeline", "--"]
                                             + [f"{k}={v}" for k, v in params.items()], env))
    return {name: min(values) for name, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=200, help="pipeline patch side in px; 0 skips it (200)")
    parser.add_argument("--dates", type=int, default=68)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    link_dir = package_dir()
    sys.path.insert(0, str(link_dir))
    root = temp_dir("eolulc_qgis_overhead_")
    load_before = os.getloadavg()[0]
    result: dict = {"provider_load": provider_load(link_dir, args.repeats)}
    for name, stage in result["provider_load"]["stages"].items():
        print(f"provider load | {name:60s} | CPU {stage['cpu_ms']:5.0f} ms | wall {stage['wall_ms']:5.0f} ms")
    result["start_up_s"] = start_up(link_dir, root, args.repeats)
    for name, seconds in result["start_up_s"].items():
        print(f"qgis_process help native:buffer | {name:30s} | {seconds:5.2f} s")
    if args.size:
        result["pipeline_s"] = pipeline(link_dir, root, args.size, args.dates, args.repeats)
        for name, seconds in result["pipeline_s"].items():
            print(f"pipeline {args.size} px x {args.dates} dates | {name:28s} | {seconds:6.2f} s")
    result["load_average"] = [load_before, os.getloadavg()[0]]
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    _save(result, args.out)
    return 0


def _save(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    sys.exit(main())
