"""The experiment's answer to #24 on two scenes: LightGBM (gbdt) against TempCNN and L-TAE, same
splits and samples per seed, through ``core.experiment.run_experiment`` (what ``eolulc:experiment``
runs with ``CLASSIFIERS=gbdt,tempcnn,ltae``).

* ``testeopatch``: the real TestEOPatch as the README's training table has it: NDVI, the CLM cloud
  mask and the LULC raster imported from the EOPatch (no cloud-mask or feature step), the 16-day
  grid over 2016, scene filter 0.8 and the mask in the interpolation (23 dates x 1 channel).
* ``demo``: the scene ``tools/demo.sh`` makes (``demo/synthetic.py``: 400 x 400 px, 40 dates,
  seed 4, realistic), with its reference raster; s2cloudless mask, bands and indices, the
  pipeline's 16-day grid (23 dates x 9 channels).

Prints per dataset and classifier: OA and weighted F1 (mean ± std over the seeds, held-out
spatial blocks), fit seconds (sampling, training, test prediction; median), prediction speed on
the experiment's fixed pixel sample (median), the epochs the networks ran, and the experiment's
own noise-aware conclusions. Variants run one after the other with ``--threads`` threads.

    .venv/bin/python bench/deep_experiment.py [--datasets testeopatch,demo] [--seeds 3] [--epochs 30]
        [--classifiers gbdt,tempcnn,ltae] [--samples 20000] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import TEST_DATA, package_dir

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the plugin does before LightGBM loads
CLASSIFIERS = ("gbdt", "tempcnn", "ltae")


def prepare(dataset: str, folder: Path, args) -> tuple[str, str | None, str, dict]:
    """The input stack, the given cloud mask (or None: s2cloudless), the reference raster and the
    pipeline settings the dataset's variants start from."""
    if dataset == "testeopatch":
        from eolulc.core.eopatch import import_eopatch

        import_eopatch(args.data, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC",
                       folder / "lulc.tif")
        return str(folder / "ndvi.tif"), str(folder / "clm.tif"), str(folder / "lulc.tif"), {
            "start": "2016-01-01", "end": "2016-12-31"}
    from eolulc.demo.synthetic import SyntheticScene

    data = SyntheticScene(height=args.demo_size, width=args.demo_size, n_dates=40, seed=4,
                          realistic=True).write(folder / "data")
    return str(data.l1c), None, str(data.reference), {}


def run(dataset: str, args) -> dict:
    from eolulc.core.experiment import ExperimentSettings, run_experiment
    from eolulc.core.experiment_memory import PREDICT_SAMPLE
    from eolulc.core.legend import read_legend
    from eolulc.core.pipeline import PipelineSettings
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.timestack import read_info
    from eolulc.core.train import TrainSettings
    from eolulc.core.variants import interval_variants, with_factors

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        stack, mask, reference_path, changes = prepare(dataset, folder, args)
        prepare_s = time.perf_counter() - t0
        grid = read_info(stack).grid
        reference = read_reference_raster(reference_path, grid)
        train = TrainSettings(samples=args.samples, epochs=args.epochs, threads=args.threads, device=args.device)
        base = PipelineSettings(train=train, **changes)
        variants = with_factors(interval_variants([base.interval_days]), base, None, args.classifiers.split(","))
        seeds = list(range(train.seed, train.seed + args.seeds))
        t0 = time.perf_counter()
        result = run_experiment(stack, reference, read_legend(), variants, seeds, folder / "experiment",
                                ExperimentSettings(base=base, workers=1, cloud_mask=mask,
                                                   title=f"gbdt, tempcnn, ltae on {dataset}"))
        total_s = time.perf_counter() - t0
    runs = [r for r in result.runs if r["status"] == "ok"]
    failed = [(r["variant"], r["seed"], r["error"]) for r in result.runs if r["status"] != "ok"]
    rows = []
    for classifier in args.classifiers.split(","):
        mine = [r for r in runs if r["classifier"] == classifier]
        if not mine:
            continue
        oa = [r["overall_accuracy"] for r in mine]
        f1 = [r["f1_weighted"] for r in mine]
        rows.append({"classifier": classifier, "n": len(mine), "oa": oa, "oa_mean": float(np.mean(oa)),
                     "oa_std": float(np.std(oa, ddof=1)) if len(oa) > 1 else 0.0,
                     "f1_mean": float(np.mean(f1)), "f1_std": float(np.std(f1, ddof=1)) if len(f1) > 1 else 0.0,
                     "fit_s": float(np.median([r["train_s"] for r in mine])),
                     "predict_s": float(np.median([r["predict_s"] for r in mine])),
                     "epochs_run": [r.get("epochs_run") for r in mine],
                     "n_dates": mine[0].get("n_dates"), "n_features": mine[0].get("n_features")})
    return {"dataset": dataset, "seeds": seeds, "epochs": args.epochs, "samples": args.samples,
            "threads": args.threads, "device": args.device, "prepare_s": prepare_s, "experiment_s": total_s,
            "prediction_pixels": min(grid.height * grid.width, PREDICT_SAMPLE), "rows": rows, "failed": failed,
            "best": result.best, "conclusions": result.sentences}


def show(outcome: dict) -> None:
    pixels = outcome["prediction_pixels"]
    print(f"\n{outcome['dataset']}: {len(outcome['seeds'])} seeds, at most {outcome['epochs']} epochs, "
          f"{outcome['samples']} samples, {outcome['threads']} threads, device {outcome['device']}; "
          f"experiment {outcome['experiment_s']:.0f} s")
    print("| classifier | OA (mean ± std) | weighted F1 | fit s (median) | prediction kpx/s | epochs run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in outcome["rows"]:
        epochs = ", ".join(str(e) for e in r["epochs_run"]) if r["classifier"] != "gbdt" else ""
        print(f"| {r['classifier']} | {r['oa_mean']:.3f} ± {r['oa_std']:.3f} | {r['f1_mean']:.3f} ± {r['f1_std']:.3f} "
              f"| {r['fit_s']:.1f} | {pixels / 1e3 / r['predict_s']:.1f} | {epochs} |")
    for sentence in outcome["conclusions"]:
        print("-", sentence)
    for failure in outcome["failed"]:
        print("FAILED", *failure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="testeopatch,demo")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classifiers", default=",".join(CLASSIFIERS), help="the first is the baseline")
    parser.add_argument("--epochs", type=int, default=30, help="most epochs of the networks")
    parser.add_argument("--samples", type=int, default=20000, help="training pixels asked for (every classifier)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--demo-size", type=int, default=400, help="side of the demo scene (tools/demo.py: 400)")
    parser.add_argument("--data", type=Path, default=TEST_DATA / "TestEOPatch")
    args = parser.parse_args()
    sys.path.insert(0, str(package_dir()))
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets.split(","):
        outcome = run(dataset, args)
        name = f"deep_experiment_{dataset}" + ("" if args.epochs == 30 else f"_{args.epochs}epochs")
        (out / f"{name}.json").write_text(json.dumps(outcome, indent=2))
        show(outcome)


if __name__ == "__main__":
    main()
