"""Benchmark ``eolulc:importsafe``'s core against GDAL's own ``gdal_translate`` of the same windows.

``--products`` zipped L2A products (``--size`` px a side at 10 m, written like the real ones by
tests/safe_products.py: 1024 px JPEG 2000 tiles, zip members stored; real L1C reflectance tiled
over them) are imported for a ``--window`` px
square extent inside the tiles: ours reads every band's window, resamples the 20/60 m bands to
10 m, applies SCL and writes the time stack; GDAL translates the same window of every band file
(``gdal.Translate`` with ``srcWin``, in process, to GTiff files, no resampling). Each side runs
``--repeats`` times; min and median wall times are printed. GDAL's JPEG 2000 decoder uses all CPUs
on both sides (``GDAL_NUM_THREADS`` unset); ours also reads bands in parallel threads.

    .venv/bin/python bench/import_safe.py [--products 10] [--size 1200] [--window 600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta

import numpy as np
from _common import REPO, TEST_DATA, import_package, temp_dir

import_package()
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--window", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from osgeo import gdal
    from safe_products import L2A_BANDS, dns_from_reflectance, write_product

    from eolulc.core.safe import read_product
    from eolulc.core.safe_import import group_by_day, import_safe, scan_products, target_grid

    scenes = np.load(TEST_DATA / "REFERENCE_SCENES.npy")
    root = temp_dir("eolulc_bench_safe_")
    reps = -(-args.size // 100)
    paths = []
    for i in range(args.products):
        tiled = np.tile(scenes[i % 5, :100, :100], (reps, reps, 1))[: args.size, : args.size]
        dns = dns_from_reflectance(tiled, L2A_BANDS, -1000)
        scl = np.full((args.size // 2, args.size // 2), 4, np.uint8)
        paths.append(write_product(root, "L2A", dns, datetime(2023, 1, 1, 10) + timedelta(days=5 * i),
                                   zipped=True, scl=scl).path)
    x0 = 499980 + (args.size - args.window) // 2 * 10
    y1 = 5200020 - (args.size - args.window) // 2 * 10
    bounds = (x0, y1 - args.window * 10, x0 + args.window * 10, y1)

    def ours() -> None:
        products = scan_products(paths)
        grid = target_grid(group_by_day(products), 10, "EPSG:32633", bounds)
        import_safe(products, root / "out" / "stack.tif", grid)

    def gdal_side() -> None:
        out = root / "gdal"
        out.mkdir(exist_ok=True)
        for i, path in enumerate(paths):
            for band, file in read_product(path).granules[0].bands.items():
                scale = {"B01": 6, "B09": 6}.get(band, 1 if band in ("B02", "B03", "B04", "B08") else 2)
                off = (args.size - args.window) // 2 // scale
                side = args.window // scale
                gdal.Translate(str(out / f"{i}_{band}.tif"), file, srcWin=[off, off, side, side])

    for name, run in (("eolulc importsafe", ours), ("gdal.Translate srcWin", gdal_side)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        print(f"{name:22s} min {min(times):6.2f} s  median {statistics.median(times):6.2f} s")
    print(f"{args.products} zipped L2A products of {args.size} px, window {args.window} px, 12 bands + SCL")


if __name__ == "__main__":
    main()
