"""The README's main job on built-in demo data, through qgis_process as a user would run it.

1. generates a realistic synthetic Sentinel-2 L1C year (clouds, cirrus, shadows, snow, crops
   that green up and are harvested) with a reference map (demo/synthetic.py): as hard as real
   mapping by default (meadows and crops, shrubs and forest, wetlands and water overlap; mixed
   pixels at field edges; a reference with a few percent of wrong and outdated labels),
   ``--classic`` for the near-perfectly separable scene;
2. runs ``eolulc:lulcpipeline`` on it with ``qgis_process.bin`` (plugin enabled in a
   throw-away profile);
3. writes a QGIS project that opens with the map and the reference, styled and zoomed to the
   data, with a print layout showing them side by side.

    .venv/bin/python tools/demo.py [--out demo-output] [--size 400] [--dates 40] [--classic]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from qgis_env import PLUGIN_NAME, throwaway_profile_env  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="EO LULC demo: synthetic L1C year -> styled land-cover map")
    parser.add_argument("--out", type=Path, default=REPO / "demo-output", help="output folder (%(default)s)")
    parser.add_argument("--size", type=int, default=400, help="side of the scene in pixels (%(default)s)")
    parser.add_argument("--dates", type=int, default=40, help="acquisitions over the year (%(default)s)")
    parser.add_argument("--seed", type=int, default=4, help="seed of the scene (%(default)s)")
    parser.add_argument("--classic", action="store_true",
                        help="the classic scene: classes that separate almost perfectly, an error-free reference")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="eolulc-demo-"))
    try:
        plugins = work / "plugins"
        plugins.mkdir()
        (plugins / PLUGIN_NAME).symlink_to(REPO, target_is_directory=True)
        sys.path.insert(0, str(plugins))
        from eolulc.demo.synthetic import SyntheticScene

        print(f"1/3 generating a {args.size} x {args.size} px scene with {args.dates} dates ...", flush=True)
        scene = SyntheticScene(height=args.size, width=args.size, n_dates=args.dates, seed=args.seed,
                               realistic=not args.classic)
        data = scene.write(out / "data", polygons=True)
        print(f"    {data.l1c}\n    {data.polygons}", flush=True)

        print("2/3 running eolulc:lulcpipeline through qgis_process ...", flush=True)
        env = throwaway_profile_env(plugins, work / "profile")
        products = {"OUTPUT": "classification.tif", "OUTPUT_REFERENCE": "reference.tif",
                    "OUTPUT_AGREEMENT": "agreement.tif", "OUTPUT_CONFIDENCE": "confidence.tif",
                    "OUTPUT_MODEL": "model.json", "OUTPUT_REPORT": "report.html"}
        command = [shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin", "--json", "run",
                   "eolulc:lulcpipeline", "--", f"INPUT={data.l1c}", f"REFERENCE={data.polygons}",
                   "CLASS_FIELD=LULC_ID", "NAME_FIELD=LULC_NAME"]
        command += [f"{name}={out / file}" for name, file in products.items()]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
            return done.returncode
        results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
        (out / "lulcpipeline.json").write_text(json.dumps(results, indent=2))

        print("3/3 writing the QGIS project ...", flush=True)
        project = write_project(out)
        print(f"\nTest-split accuracy: OA {results['OVERALL_ACCURACY']:.3f}, weighted F1 "
              f"{results['F1_WEIGHTED']:.3f}, kappa {results['KAPPA']:.3f}")
        print(against_truth(scene, out))
        print(f"Project:  {project}\nReport:   {out / 'report.html'}\nMap:      {out / 'classification.tif'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def against_truth(scene, out: Path) -> str:
    """What only a synthetic scene can tell: how often the map and the reference are right, and
    the commonest disagreements between them (all pixels)."""
    import numpy as np

    from eolulc.core.timestack import open_stack
    from eolulc.demo.synthetic import CLASS_NAMES

    with open_stack(str(out / "classification.tif")) as stack:
        mapped = stack.read()[0, ..., 0]
    truth, reference = scene.truth(), scene.reference()
    lines = [f"All pixels: the map matches the reference on {np.mean(mapped == reference):.1%} and the true "
             f"cover on {np.mean(mapped == truth):.1%}; the reference itself is wrong on "
             f"{np.mean(reference != truth):.1%}."]
    pairs, counts = np.unique(reference.astype(np.int64) * 256 + mapped, return_counts=True)
    top = [(n, p // 256, p % 256) for p, n in zip(pairs, counts) if p // 256 != p % 256]
    top.sort(reverse=True)
    lines.append("Commonest disagreements (reference -> map): " + "; ".join(
        f"{CLASS_NAMES.get(int(a), a)} -> {CLASS_NAMES.get(int(b), b)} {n / reference.size:.1%}"
        for n, a, b in top[:4]))
    return "\n".join(lines)


def write_project(out: Path) -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    from eolulc.plugin.project import write_result_project

    app = QgsApplication([], False)
    app.initQgis()
    try:
        return write_result_project(out / "eolulc_demo.qgz", [
            (out / "classification.tif", "Land-cover map"), (out / "reference.tif", "Reference"),
            (out / "agreement.tif", "Agreement with the reference"), (out / "confidence.tif", "Confidence"),
        ])
    finally:
        app.exitQgis()


if __name__ == "__main__":
    sys.exit(main())
