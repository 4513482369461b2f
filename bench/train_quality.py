"""Accuracy of the default training recipe against eo-learn's LULC-example recipe, same data and splits.

Data: the real TestEOPatch (tests/data): NDVI, cloud-masked (CLM) and interpolated onto a
16-day grid over 2016 with the 0.8 scene filter; reference from LULC.npy (raster) and from
LULC.gpkg (polygons). eo-learn's recipe: proportional sampling and a default LGBMClassifier
(100 rounds, learning rate 0.1, 31 leaves, every feature, no early stopping), i.e.
TrainSettings(n_estimators=100, early_stopping=False, num_leaves=31, feature_fraction=1.0); ours:
the defaults. All on the same spatial split and seed. ``--recipe`` adds recipes to compare.

    .venv/bin/python bench/train_quality.py --table recipes [--seeds 5] [--recipe "name=num_leaves:31"]

The default table (``--table splits``, issue #23) puts the default chain against eo-learn's recipe
on several honest spatial splits of the patch, not only the blocks the defaults were chosen on:
5 seeds of spatial block splits (train_model's own split), the four half-patch splits (train on
one half, test on the other) and the two colourings of a checkerboard of 25 px blocks. It also
tries a few changes of the defaults (class weights, 31 leaves and all features, a slower learning
rate, no early stopping, eo-learn's LightGBM settings; each also with Bayesian smoothing of the
probabilities, 9 and 5 px windows)
with nested validation: for every outer split the change is chosen on 3 inner block splits of its
training part alone and scored on the outer test part, so the choice never sees the test pixels.
Every recipe sees the same eroded test pixels per split; the training part is the rest, less a
one-pixel gap, sampled stratified (all of it here: the patch holds fewer than 20,000 pixels).

    .venv/bin/python bench/train_quality.py [--inner 3] [--threads 2]
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
from _common import TEST_DATA

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the plugin does before LightGBM loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("splits", "recipes", "shares"), default="splits",
                        help="splits: issue #23's table over honest spatial splits; recipes: the block-split table; "
                             "shares: class counts of a random draw against the stratified one")
    parser.add_argument("--seeds", type=int, default=5, help="splits/seeds to average over")
    parser.add_argument("--inner", type=int, default=3, help="inner block splits per outer split (nested validation)")
    parser.add_argument("--data", type=Path, default=TEST_DATA / "TestEOPatch")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="prediction threads")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=KEY:VALUE,...",
                        help="another recipe to compare, TrainSettings changes, e.g. lr02=learning_rate:0.2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plugins = Path(tmp) / "plugins"
        plugins.mkdir()
        (plugins / "eolulc").symlink_to(REPO, target_is_directory=True)
        sys.path.insert(0, str(plugins))
        from eolulc.core.eopatch import import_eopatch
        from eolulc.core.featureset import FeatureSet
        from eolulc.core.interpolate import interpolate_stack
        from eolulc.core.legend import read_legend
        from eolulc.core.model import predict_probabilities
        from eolulc.core.reference import rasterize_polygons, read_reference_raster
        from eolulc.core.timestack import read_info
        from eolulc.core.train import TrainSettings, train_model

        folder = Path(tmp)
        import_eopatch(args.data, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
        interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                          interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
        grid = read_info(str(folder / "ndvi16.tif")).grid
        if args.table != "recipes":
            from eolulc.core.reference import read_reference_raster as read_raster

            reference = read_raster(str(folder / "lulc.tif"), grid)
            if args.table == "shares":
                share_table(reference, args.seeds)
            else:
                split_table(str(folder / "ndvi16.tif"), reference, args)
            return
        references = {"raster LULC.npy": read_reference_raster(str(folder / "lulc.tif"), grid),
                      "polygons LULC.gpkg": _polygons(args.data / "vector_timeless" / "LULC.gpkg", grid,
                                                      rasterize_polygons)}
        recipes = {"eo-learn recipe": dict(n_estimators=100, early_stopping=False, num_leaves=31, feature_fraction=1.0),
                   "EO LULC defaults": {}, **dict(_recipe(text) for text in args.recipe)}
        with FeatureSet([str(folder / "ndvi16.tif")]) as features:
            table = features.read_rows((0, 0, grid.height, grid.width))
        # about one million pixels for the prediction timing: the patch's rows repeated
        pixels = np.tile(table, (max(1, 1_000_000 // table.shape[0]), 1))
        rows = []
        for ref_name, reference in references.items():
            for recipe, changes in recipes.items():
                oa, f1, trees, seconds, predict = [], [], [], [], []
                for seed in range(args.seeds):
                    start = time.perf_counter()
                    result = train_model([str(folder / "ndvi16.tif")], reference, read_legend(),
                                         TrainSettings(seed=seed, threads=1, **changes))
                    seconds.append(time.perf_counter() - start)
                    oa.append(result.report["overall_accuracy"])
                    f1.append(result.report["f1_weighted"])
                    trees.append(len(result.model.model_text.split("Tree=")) - 1)
                    if seed == 0:
                        start = time.perf_counter()
                        predict_probabilities(result.model.ensemble(args.threads), pixels)
                        predict.append(pixels.shape[0] / 1e6 / (time.perf_counter() - start))
                rows.append({"reference": ref_name, "recipe": recipe, "oa_mean": float(np.mean(oa)),
                             "oa_std": float(np.std(oa)), "f1_mean": float(np.mean(f1)), "f1_std": float(np.std(f1)),
                             "trees_mean": float(np.mean(trees)), "train_seconds": float(np.median(seconds)),
                             "predict_mpx_per_s": float(predict[0])})
    print(f"{'reference':20} {'recipe':18} {'OA':>15} {'weighted F1':>15} {'trees':>7} {'train s':>8} "
          f"{'predict Mpx/s':>14}")
    for r in rows:
        print(f"{r['reference']:20} {r['recipe']:18} {r['oa_mean']:.3f} +/- {r['oa_std']:.3f}  "
              f"{r['f1_mean']:.3f} +/- {r['f1_std']:.3f} {r['trees_mean']:7.0f} {r['train_seconds']:8.2f} "
              f"{r['predict_mpx_per_s']:14.3f}")
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_quality.json").write_text(json.dumps(rows, indent=2))


#: eo-learn's LULC example: proportional (fraction) sampling, a default LGBMClassifier
EOLEARN = dict(n_estimators=100, early_stopping=False, num_leaves=31, feature_fraction=1.0)
#: honest changes of the defaults the nested validation chooses among (each also smoothed)
CHANGES = {
    "defaults": {},
    "balanced class weights": {"class_weight": "balanced"},
    "31 leaves, all features": {"num_leaves": 31, "feature_fraction": 1.0},
    "learning rate 0.05": {"learning_rate": 0.05, "n_estimators": 1000},
    "no early stopping": {"early_stopping": False},
    "eo-learn's LightGBM settings": EOLEARN,
}
#: smoothing of the probabilities tried on each change: none, sits' default window of 9 px, 5 px
SMOOTHINGS = {"": None, ", smoothed 9 px": 9, ", smoothed 5 px": 5}
CHECKER = 25  # px side of the checkerboard's blocks


def honest_splits(labelled: np.ndarray, reference, seeds: int) -> list[tuple[str, np.ndarray]]:
    """(name, test mask) of the outer splits: block splits as train_model draws them, the four
    halves, the two checkerboard colourings."""
    from eolulc.core.train import TrainSettings, split_mask

    h, w = labelled.shape
    splits = [(f"blocks seed {s}", split_mask(reference, labelled, TrainSettings(seed=s), np.random.default_rng(s),
                                              [])) for s in range(seeds)]
    rows, cols = np.mgrid[:h, :w]
    halves = {"test left half": cols < w // 2, "test right half": cols >= w // 2,
              "test top half": rows < h // 2, "test bottom half": rows >= h // 2}
    board = (rows // CHECKER + cols // CHECKER) % 2 == 0
    halves.update({f"checkerboard {CHECKER} px, black": board, f"checkerboard {CHECKER} px, white": ~board})
    return splits + [(name, mask & labelled) for name, mask in halves.items()]


def scores(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Overall accuracy and support-weighted F1 (as core.accuracy)."""
    oa = float((truth == predicted).mean())
    f1s, weights = [], []
    for c in np.unique(truth):
        tp = float(((truth == c) & (predicted == c)).sum())
        denominator = float((truth == c).sum() + (predicted == c).sum())
        f1s.append(2 * tp / denominator if denominator else 0.0)
        weights.append(float((truth == c).sum()))
    return oa, float(np.average(f1s, weights=weights))


class Fitter:
    """Fits a recipe on the pixels of a training mask and scores it, raw and smoothed, on a test mask."""

    def __init__(self, table: np.ndarray, classes: np.ndarray, names: list[str], threads: int) -> None:
        self.table, self.classes, self.names, self.threads = table, classes, names, threads

    def probabilities(self, train: np.ndarray, changes: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from eolulc.core.progress import ensure_progress
        from eolulc.core.sampling import sample_pixels
        from eolulc.core.train import TrainSettings, fit_booster

        settings = TrainSettings(seed=seed, threads=self.threads, **changes)
        rng = np.random.default_rng(seed)
        index = sample_pixels(train, self.classes, settings.samples, settings.sampling, rng, settings.class_counts())
        x, y = self.table[index], self.classes.ravel()[index]
        usable = ~np.all(np.isnan(x), axis=1)
        class_ids = sorted(int(c) for c in np.unique(y[usable]))
        booster, _ = fit_booster(x[usable], y[usable], class_ids, self.names, settings, rng, ensure_progress(None))
        h, w = self.classes.shape
        return booster.predict(self.table).reshape(h, w, len(class_ids)), np.asarray(class_ids)

    def score(self, train: np.ndarray, test: np.ndarray, changes: dict, seed: int) -> dict[str, tuple[float, float]]:
        """(OA, F1) on the test pixels per smoothing of :data:`SMOOTHINGS` (its key)."""
        from eolulc.core.smoothing import SmoothSettings, smooth_array

        probabilities, ids = self.probabilities(train, changes, seed)
        truth = self.classes[test]
        out = {}
        for suffix, window in SMOOTHINGS.items():
            p = probabilities if window is None else smooth_array(probabilities, SmoothSettings(window_size=window))
            out[suffix] = scores(truth, ids[np.argmax(p, axis=-1)][test])
        return out


def split_table(features: str, reference, args) -> None:
    """Issue #23's table: eo-learn's recipe, the defaults and the nested choice per outer split."""
    from eolulc.core.featureset import FeatureSet
    from eolulc.core.pipeline import PipelineSettings
    from eolulc.core.reference import NO_CLASS, Reference
    from eolulc.core.train import TrainSettings, erode, split_mask, touching

    pipeline = PipelineSettings()  # the defaults row is the pipeline's chain: smoothed when it smooths
    window = pipeline.smooth.window_size if pipeline.smoothing else None
    default_suffix = next(k for k, v in SMOOTHINGS.items() if v == window)

    with FeatureSet([features]) as stack:
        grid = stack.grid
        table = stack.read_rows((0, 0, grid.height, grid.width))
        names = stack.names
    classes = erode(reference.classes, TrainSettings().erosion)
    labelled = classes != NO_CLASS
    fitter = Fitter(table, classes, names, args.threads)
    candidates = [(f"{name}{suffix}", name, suffix) for name in CHANGES for suffix in SMOOTHINGS]
    rows = []
    started = time.perf_counter()
    for number, (split, test) in enumerate(honest_splits(labelled, reference, args.seeds)):
        seed = number
        train = labelled & ~test & ~touching(test)
        outer = {name: fitter.score(train, test, changes, seed) for name, changes in CHANGES.items()}
        eolearn = outer["eo-learn's LightGBM settings"][""]
        inner: dict[str, list[float]] = {label: [] for label, _, _ in candidates}
        part = Reference(classes=np.where(train, classes, NO_CLASS).astype(classes.dtype))
        for i in range(args.inner):
            inner_seed = 1000 + 10 * number + i
            inner_test = split_mask(part, train, TrainSettings(seed=inner_seed), np.random.default_rng(inner_seed), [])
            inner_train = train & ~inner_test & ~touching(inner_test)
            for name, changes in CHANGES.items():
                result = fitter.score(inner_train, inner_test, changes, inner_seed)
                for suffix in SMOOTHINGS:
                    inner[f"{name}{suffix}"].append(float(np.mean(result[suffix])))
        chosen = max(candidates, key=lambda c: (np.mean(inner[c[0]]), c[0] == f"defaults{default_suffix}"))
        rows.append({"split": split, "eo-learn": eolearn, "defaults": outer["defaults"][default_suffix],
                     "defaults_label": f"defaults{default_suffix}",
                     "nested": outer[chosen[1]][chosen[2]], "chosen": chosen[0],
                     "candidates": {label: outer[name][suffix] for label, name, suffix in candidates},
                     "test_pixels": int(test.sum()), "train_pixels": int(train.sum())})
        print(f"{split}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print_split_table(rows)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_quality_splits.json").write_text(json.dumps(rows, indent=2))


def share_table(reference, seeds: int) -> None:
    """How far each class's training count is from its exact share: a plain random draw of n
    pixels (the former proportional sampling) against the stratified draw, block splits by seed."""
    from eolulc.core.reference import NO_CLASS
    from eolulc.core.sampling import sample_pixels
    from eolulc.core.train import TrainSettings, erode, split_mask, touching

    classes = erode(reference.classes, "1")
    labelled = classes != NO_CLASS
    print("| training pixels | random draw: largest class error (px), mean over seeds | worst | stratified |")
    print("| --- | --- | --- | --- |")
    for n in (500, 2000, 5000):
        errors = {"random": [], "stratified": []}
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            test = split_mask(reference, labelled, TrainSettings(seed=seed), rng, [])
            train = labelled & ~test & ~touching(test)
            flat = np.flatnonzero(train)
            labels = classes.ravel()[flat]
            ids, counts = np.unique(labels, return_counts=True)
            exact = counts * n / flat.size
            drawn = {"random": classes.ravel()[rng.choice(flat, n, replace=False)],
                     "stratified": classes.ravel()[sample_pixels(train, classes, n, "proportional", rng)]}
            for way, values in drawn.items():
                got = np.array([(values == c).sum() for c in ids])
                errors[way].append(float(np.abs(got - exact).max()))
        print(f"| {n} | {np.mean(errors['random']):.1f} | {np.max(errors['random']):.1f} | "
              f"{np.max(errors['stratified']):.2f} |")


def print_split_table(rows: list[dict]) -> None:
    print("| split | test px | eo-learn OA | F1 | defaults OA | F1 | nested OA | F1 | nested choice |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['split']} | {r['test_pixels']} | {r['eo-learn'][0]:.3f} | {r['eo-learn'][1]:.3f} | "
              f"{r['defaults'][0]:.3f} | {r['defaults'][1]:.3f} | {r['nested'][0]:.3f} | {r['nested'][1]:.3f} | "
              f"{r['chosen']} |")
    print("\n| recipe | OA mean | OA worst | F1 mean | F1 worst | OA - eo-learn: mean, worst | "
          "F1 - eo-learn: mean, worst |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = np.array([r["eo-learn"] for r in rows])
    recipes = {"eo-learn recipe": base,
               f"EO LULC {rows[0]['defaults_label']} (the pipeline's)": np.array([r["defaults"] for r in rows]),
               "nested choice": np.array([r["nested"] for r in rows])}
    recipes.update({f"always: {label}": np.array([r["candidates"][label] for r in rows])
                    for label in rows[0]["candidates"]
                    if label not in (rows[0]["defaults_label"], "eo-learn's LightGBM settings")})
    for name, values in recipes.items():
        gain = values - base
        print(f"| {name} | {values[:, 0].mean():.3f} | {values[:, 0].min():.3f} | {values[:, 1].mean():.3f} | "
              f"{values[:, 1].min():.3f} | {gain[:, 0].mean():+.3f}, {gain[:, 0].min():+.3f} | "
              f"{gain[:, 1].mean():+.3f}, {gain[:, 1].min():+.3f} |")


def _recipe(text: str) -> tuple[str, dict]:
    """``name=key:value,key:value`` -> (name, TrainSettings changes) with numbers and booleans parsed."""
    name, _, changes = text.partition("=")
    parsed = {}
    for item in filter(None, changes.split(",")):
        key, _, value = item.partition(":")
        parsed[key] = json.loads(value) if value not in ("gbdt", "rf") else value
    return name, parsed


def _polygons(path: Path, grid, rasterize):
    from osgeo import ogr

    source = ogr.Open(str(path))
    shapes, names = [], {}
    for feature in source.GetLayer(0):
        shapes.append((json.loads(feature.GetGeometryRef().ExportToJson()), feature.GetField("LULC_ID")))
        names[feature.GetField("LULC_ID")] = feature.GetField("LULC_NAME")
    return rasterize(shapes, grid, names)


if __name__ == "__main__":
    main()
