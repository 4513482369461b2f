"""What Bayesian smoothing (eolulc:smooth, sits's method) does to the held-out accuracy on the real
TestEOPatch: NDVI on the 16-day 2016 grid after the 0.8 scene filter, the default training recipe,
spatial block splits of several seeds; each setting's overall accuracy minus the unsmoothed
map's, on the same test pixels.

    .venv/bin/python bench/smoothing_quality.py [--seeds 5] [--windows 3,5,7,9] [--smoothness 5,20,80]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import TEST_DATA, package_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--windows", default="3,5,7,9")
    parser.add_argument("--smoothness", default="5,20,80")
    parser.add_argument("--fraction", type=float, default=0.5)
    args = parser.parse_args()
    sys.path.insert(0, str(package_dir()))
    from eolulc.core.classify import classify
    from eolulc.core.eopatch import import_eopatch
    from eolulc.core.interpolate import interpolate_stack
    from eolulc.core.legend import read_legend
    from eolulc.core.probstack import describe_probabilities
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.smoothing import SmoothSettings, smooth_array
    from eolulc.core.timestack import open_stack, read_info
    from eolulc.core.train import TrainSettings, plan_samples, train_model

    folder = Path(tempfile.mkdtemp(prefix="eolulc_smooth_bench_"))
    import_eopatch(TEST_DATA / "TestEOPatch", ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC",
                   folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    features = [str(folder / "ndvi16.tif")]
    reference = read_reference_raster(str(folder / "lulc.tif"), read_info(features[0]).grid)
    settings_grid = [(w, s) for w in map(int, args.windows.split(",")) for s in map(float, args.smoothness.split(","))]
    gains: dict[tuple[int, float], list[float]] = {key: [] for key in settings_grid}
    raw_scores = []
    for seed in range(args.seeds):
        settings = TrainSettings(seed=seed)
        model = train_model(features, reference, read_legend(), settings).model
        plan = plan_samples(reference, settings, np.random.default_rng(seed))  # the same test pixels
        classify(features, model, folder / "map.tif", output_probabilities=folder / "p.tif", probabilities_float=True)
        stack = describe_probabilities(folder / "p.tif")
        with open_stack(str(folder / "p.tif")) as reader:
            probabilities = stack.read(reader)
        ids = np.asarray(stack.class_ids)
        truth = reference.classes.ravel()[plan.test]

        def accuracy(p: np.ndarray, ids=ids, test=plan.test, truth=truth) -> float:
            return float((ids[np.argmax(np.nan_to_num(p, nan=-1.0), axis=-1)].ravel()[test] == truth).mean())

        raw = accuracy(probabilities)
        raw_scores.append(raw)
        for window, smoothness in settings_grid:
            smooth = SmoothSettings(window_size=window, smoothness=smoothness,
                                    neighbourhood_fraction=args.fraction)
            gains[(window, smoothness)].append(accuracy(smooth_array(probabilities, smooth)) - raw)
        print(f"seed {seed}: unsmoothed OA {raw:.4f}", flush=True)
    print(f"\nunsmoothed OA {np.mean(raw_scores):.4f} ± {np.std(raw_scores):.4f} ({args.seeds} block splits)")
    print(f"neighbourhood fraction {args.fraction}; OA change (mean, min, max over seeds)\n")
    print("| window | smoothness | OA change | min | max |\n| --- | --- | --- | --- | --- |")
    for (window, smoothness), values in gains.items():
        print(f"| {window} | {smoothness:g} | {np.mean(values):+.4f} | {np.min(values):+.4f} | {np.max(values):+.4f} |")


if __name__ == "__main__":
    main()
