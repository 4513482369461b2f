"""LightGBM against the temporal deep classifiers (TempCNN, L-TAE): accuracy, fit and prediction time.

Data and setting as the README's training table (bench/train_quality.py): the real TestEOPatch,
NDVI cloud-masked and interpolated onto a 16-day grid over 2016 (0.8 scene filter), the raster
reference LULC.npy, the default training recipe (spatial blocks, 20000 samples asked for, early
stopping), ``--threads`` CPU threads for fitting and predicting. Prediction time is for about
``--pixels`` rows (the patch's rows repeated), the fastest of ``--repeats`` runs (on a shared
machine the others are disturbed by other processes). Accuracy and weighted F1 are the held-out test
blocks', mean and standard deviation over the seeds (each seed is another split).

    .venv/bin/python bench/deep.py [--seeds 3] [--threads 2] [--device cpu|cuda] [--classifiers gbdt,tempcnn,ltae]
        [--epochs 30] [--pixels 200000] [--repeats 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for fitting and predicting")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="where the networks run")
    parser.add_argument("--classifiers", default="gbdt,tempcnn,ltae")
    parser.add_argument("--pixels", type=int, default=200_000, help="rows in the prediction timing")
    parser.add_argument("--epochs", type=int, default=30, help="most epochs of the networks (short runs: fewer)")
    parser.add_argument("--repeats", type=int, default=3, help="prediction runs per model; the fastest counts")
    parser.add_argument("--data", type=Path, default=TEST_DATA / "TestEOPatch")
    args = parser.parse_args()
    sys.path.insert(0, str(package_dir()))
    from eolulc.core.eopatch import import_eopatch
    from eolulc.core.featureset import FeatureSet
    from eolulc.core.interpolate import interpolate_stack
    from eolulc.core.legend import read_legend
    from eolulc.core.model import predict_probabilities
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.timestack import read_info
    from eolulc.core.train import TrainSettings, train_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        import_eopatch(args.data, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
        interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                          interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
        grid = read_info(str(folder / "ndvi16.tif")).grid
        reference = read_reference_raster(str(folder / "lulc.tif"), grid)
        with FeatureSet([str(folder / "ndvi16.tif")]) as features:
            table = features.read_rows((0, 0, grid.height, grid.width))
        table = table[~np.all(np.isnan(table), axis=1)]
        pixels = np.tile(table, (max(1, args.pixels // table.shape[0]), 1))
        rows = []
        for classifier in args.classifiers.split(","):
            oa, f1, fit_s, predict_s, epochs = [], [], [], [], []
            for seed in range(args.seeds):
                settings = TrainSettings(classifier=classifier, seed=seed, threads=args.threads, device=args.device,
                                         epochs=args.epochs)
                start = time.perf_counter()
                result = train_model([str(folder / "ndvi16.tif")], reference, read_legend(), settings)
                fit_s.append(time.perf_counter() - start)
                oa.append(result.report["overall_accuracy"])
                f1.append(result.report["f1_weighted"])
                epochs.append(result.model.metadata["parameters"].get("epochs_run", 0))
                predictor = result.model.ensemble(args.threads)
                runs = []
                for _ in range(args.repeats):  # the fastest run: the least disturbed by other processes
                    start = time.perf_counter()
                    predict_probabilities(predictor, pixels)
                    runs.append(time.perf_counter() - start)
                predict_s.append(min(runs))
            rows.append({"classifier": classifier, "device": args.device if classifier != "gbdt" else "cpu",
                         "threads": args.threads, "seeds": args.seeds, "oa_mean": float(np.mean(oa)),
                         "oa_std": float(np.std(oa)), "f1_mean": float(np.mean(f1)), "f1_std": float(np.std(f1)),
                         "oa": oa, "fit_s_median": float(np.median(fit_s)), "epochs_run": epochs,
                         "predict_mpx_per_s": pixels.shape[0] / 1e6 / float(np.median(predict_s)),
                         "predict_rows": int(pixels.shape[0])})
    print(f"{'classifier':10} {'device':6} {'OA':>15} {'weighted F1':>15} {'fit s':>7} {'predict Mpx/s':>14}  epochs")
    for r in rows:
        print(f"{r['classifier']:10} {r['device']:6} {r['oa_mean']:.3f} +/- {r['oa_std']:.3f}  "
              f"{r['f1_mean']:.3f} +/- {r['f1_std']:.3f} {r['fit_s_median']:7.2f} {r['predict_mpx_per_s']:14.4f}  "
              f"{r['epochs_run']}")
    if len(rows) > 1:
        base = np.asarray(rows[0]["oa"])
        for r in rows[1:]:
            diff = np.asarray(r["oa"]) - base
            print(f"{r['classifier']} - {rows[0]['classifier']}: OA {diff.mean():+.3f} (per seed "
                  f"{', '.join(f'{d:+.3f}' for d in diff)})")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"deep_{args.device}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
