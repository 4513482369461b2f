"""Reading the sampled rows (``core.train.gather_rows``): only the tiles holding sampled pixels,
only those pixels converted, against reading every block whole and picking the pixels after.

A synthetic stack (float32, NaN nodata, the plugin's tiled GeoTIFF layout) of ``--size`` px
squared and ``--dates`` dates; three references: labels everywhere, scattered 60 px squares
covering about 10 %, and one corner (a quarter). Each draws 20,000 training pixels (stratified)
and up to 200,000 test pixels of a spatial block split, as train_model does. Both ways must give
the same rows; the time is the best of ``--repeats``.

    .venv/bin/python bench/sample_rows.py [--size 2048] [--dates 23] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import package_dir, temp_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=23)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(package_dir()))
    from datetime import datetime, timedelta

    from eolulc.core.blocks import iter_blocks
    from eolulc.core.featureset import ChosenPixels, FeatureSet
    from eolulc.core.progress import ensure_progress
    from eolulc.core.reference import Reference
    from eolulc.core.timestack import Grid, StackInfo, StackWriter, bounded_gdal_cache
    from eolulc.core.train import TrainSettings, gather_rows, plan_samples

    size, folder = args.size, Path(temp_dir("eolulc_sample_rows_"))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    dates = tuple(datetime(2016, 1, 1) + timedelta(days=16 * i) for i in range(args.dates))
    grid = Grid(width=size, height=size, crs_wkt=None, transform=(10.0, 0.0, 0.0, 0.0, -10.0, size * 10.0))
    path = folder / "features.tif"
    info = StackInfo(grid=grid, dates=dates, bands=("NDVI",), dtype="float32", nodata=float("nan"))
    with StackWriter(str(path), info) as writer:
        for t in range(args.dates):
            layer = np.sin(x / 97 + t / 4) * np.cos(y / 131) + rng.normal(0, 0.02, (size, size)).astype(np.float32)
            writer.write(layer[None, :, :, None].astype(np.float32), dates=[t])
    classes = ((x // 50 + y // 70) % 4 + 1).astype(np.uint16)
    everywhere = classes

    def squares(share: float) -> np.ndarray:
        labels = np.zeros_like(classes)
        for r, c in rng.integers(0, size - 60, (int(share * size * size / 3600), 2)):
            labels[r:r + 60, c:c + 60] = classes[r:r + 60, c:c + 60]
        return labels
    corner = np.where((x < size // 2) & (y < size // 2), classes, 0).astype(np.uint16)

    @bounded_gdal_cache()  # as gather_rows: GDAL's cache capped while the step runs
    def whole_blocks(features: FeatureSet, flat: np.ndarray) -> np.ndarray:
        """The former way: every block read whole and converted, the chosen pixels picked after."""
        out = np.empty((flat.size, features.n_features), np.float32)
        chosen = ChosenPixels(flat, size)
        for block in iter_blocks(size, size, features.bytes_per_pixel()):
            inside, local = chosen.pixels_in(block.window)
            if inside.size:
                out[inside] = features.read_rows(block.window)[local]
        return out

    print(f"{size} x {size} px, {args.dates} dates float32; best of {args.repeats}\n")
    print("| reference | pixels read | whole blocks s | sampled tiles s | speed-up |\n| --- | --- | --- | --- | --- |")
    for name, labels in (("labels everywhere", everywhere), ("60 px squares, ~10 %", squares(0.1)),
                         ("60 px squares, ~3 %", squares(0.03)), ("one corner, 25 %", corner)):
        plan = plan_samples(Reference(classes=labels), TrainSettings(), np.random.default_rng(1))
        flat = np.concatenate([plan.train, plan.test])
        times = {}
        with FeatureSet([str(path)]) as features:
            for label in ("old", "new"):
                best = float("inf")
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    rows = (whole_blocks(features, flat) if label == "old" else
                            gather_rows(features, flat, ensure_progress(None)))
                    best = min(best, time.perf_counter() - start)
                times[label] = (best, rows)
        np.testing.assert_array_equal(times["old"][1], times["new"][1])
        old, new = times["old"][0], times["new"][0]
        print(f"| {name} | {flat.size} | {old:.2f} | {new:.2f} | {old / new:.1f}x |")


if __name__ == "__main__":
    main()
