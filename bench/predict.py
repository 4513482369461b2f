"""Prediction speed: EO LULC's tree predictor against LightGBM's own ``predict``, same model,
same array in memory, same threads; and the block-wise ``classify`` from a feature stack on disk.

The model is eo-learn's recipe (default LGBMClassifier settings: 100 rounds, 31 leaves) for 10
classes on 207 features (23 dates x 9 features), i.e. 1,000 small trees.

    .venv/bin/python bench/predict.py [--size 1000] [--features 207] [--classes 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# as the plugin does (see its __init__): LightGBM's OpenMP threads must not spin on a busy machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--features", type=int, default=207)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        plugins.mkdir()
        (plugins / "eolulc").symlink_to(REPO, target_is_directory=True)
        sys.path.insert(0, str(plugins))
        import lightgbm

        from eolulc.core.classify import classify
        from eolulc.core.legend import read_legend
        from eolulc.core.model import LulcModel, predict_probabilities
        from eolulc.core.timestack import Grid, StackInfo, StackWriter
        from eolulc.core.treepredict import TreeEnsemble

        rng = np.random.default_rng(0)
        n_pixels = args.size * args.size
        centres = rng.normal(size=(args.classes, args.features)).astype(np.float32)
        labels = rng.integers(0, args.classes, n_pixels)
        rows = (centres[labels] + rng.normal(scale=1.5, size=(n_pixels, args.features))).astype(np.float32)
        train = rng.choice(n_pixels, min(n_pixels, 20000), replace=False)
        booster = lightgbm.train({"objective": "multiclass", "num_class": args.classes, "verbosity": -1,
                                  "num_threads": args.threads, "seed": 0},
                                 lightgbm.Dataset(rows[train], labels[train]), num_boost_round=100)
        text = booster.model_to_string()
        ensemble = TreeEnsemble(text, threads=args.threads)
        reference = lightgbm.Booster(model_str=text)

        def best(fn):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - start)
            return min(times), float(np.median(times)), out

        lgb_min, lgb_med, expected = best(lambda: reference.predict(rows, num_threads=args.threads))
        our_min, our_med, ours = best(lambda: predict_probabilities(ensemble, rows))
        same = float((expected.argmax(1) == ours.argmax(1)).mean())
        max_diff = float(np.abs(expected - ours).max())

        # block-wise classify from a stack on disk (read + predict + write)
        dates = [datetime(2019, 1, 1) + timedelta(days=16 * i) for i in range(args.features // 9 or 1)]
        bands = [f"f{i}" for i in range(args.features // len(dates))]
        n_features = len(dates) * len(bands)
        grid = Grid(args.size, args.size, None, (10.0, 0.0, 0.0, 0.0, -10.0, 0.0))
        info = StackInfo(grid, tuple(dates), tuple(bands), "float32", nodata=float("nan"))
        stack = Path(tmp) / "features.tif"
        with StackWriter(str(stack), info) as writer:
            writer.write(rows[:, :n_features].reshape(args.size, args.size, len(dates), len(bands))
                         .transpose(2, 0, 1, 3))
        names = [f"{d:%Y-%m-%d} {b}" for d in dates for b in bands]
        metadata = {"feature_names": names, "inputs": [{"dates": [f"{d:%Y-%m-%dT%H:%M:%S}" for d in dates],
                                                        "bands": bands}],
                    "class_ids": list(range(1, args.classes + 1)),
                    "legend": read_legend().restricted(range(1, args.classes + 1)).to_json(), "parameters": {}}
        if n_features != args.features:
            sub = lightgbm.train({"objective": "multiclass", "num_class": args.classes, "verbosity": -1,
                                  "num_threads": args.threads, "seed": 0},
                                 lightgbm.Dataset(rows[train][:, :n_features], labels[train]), num_boost_round=100)
            text = sub.model_to_string()
        model = LulcModel(model_text=text, metadata=metadata)
        start = time.perf_counter()
        classify([str(stack)], model, Path(tmp) / "map.tif", threads=args.threads)
        classify_s = time.perf_counter() - start

    mpx = n_pixels / 1e6
    table = {
        "pixels": n_pixels, "features": args.features, "classes": args.classes, "trees": booster.num_trees(),
        "threads": args.threads, "lightgbm_predict_s": [lgb_min, lgb_med], "eolulc_predict_s": [our_min, our_med],
        "lightgbm_mpx_per_s": mpx / lgb_min, "eolulc_mpx_per_s": mpx / our_min, "speedup": lgb_min / our_min,
        "same_class": same, "max_abs_probability_diff": max_diff, "classify_from_disk_s": classify_s,
        "classify_mpx_per_s": mpx / classify_s, "load_average": os.getloadavg(),
    }
    print(f"{args.size} x {args.size} px, {args.features} features, {args.classes} classes, "
          f"{booster.num_trees()} trees, {args.threads} threads (load average {os.getloadavg()[0]:.1f})")
    print(f"  LightGBM predict (in memory): {lgb_min:7.2f} s  {mpx / lgb_min:6.3f} Mpx/s")
    print(f"  EO LULC predictor (in memory): {our_min:7.2f} s  {mpx / our_min:6.3f} Mpx/s  ({lgb_min / our_min:.2f}x)")
    print(f"  same class {100 * same:.4f} %, max |probability difference| {max_diff:.2e}")
    print(f"  classify from a stack on disk (read, predict, write): {classify_s:7.2f} s  {mpx / classify_s:6.3f} Mpx/s")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "predict.json").write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
