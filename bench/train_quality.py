"""Accuracy of the default training recipe against eo-learn's LULC-example recipe, same data and split.

Data: the real TestEOPatch (tests/data): NDVI, cloud-masked (CLM) and interpolated onto a
16-day grid over 2016 with the 0.8 scene filter; reference from LULC.npy (raster) and from
LULC.gpkg (polygons). eo-learn's recipe: proportional sampling and a default LGBMClassifier
(100 rounds, learning rate 0.1, 31 leaves, every feature, no early stopping), i.e.
TrainSettings(n_estimators=100, early_stopping=False, num_leaves=31, feature_fraction=1.0); ours:
the defaults. All on the same spatial split and seed. ``--recipe`` adds recipes to compare.

    .venv/bin/python bench/train_quality.py [--seeds 5] [--recipe "name=num_leaves:31,feature_fraction:1.0"]
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
    parser.add_argument("--seeds", type=int, default=5, help="splits/seeds to average over")
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
