"""Benchmark ``eolulc:importsafe``'s core against GDAL's own ``gdal_translate`` of the same windows.

``--products`` zipped L2A products (``--size`` px a side at 10 m, written like the real ones by
tests/safe_products.py: 1024 px JPEG 2000 tiles, zip members stored; real L1C reflectance tiled
over them; with ``--quality-masks`` also every band's ``MSK_QUALIT`` raster, as baseline 04.00
and later products carry) are imported for a ``--window`` px square extent inside the tiles.

- ours (``import_safe`` with its metadata scan): reads every band's window (and SCL's, and the
  quality masks where the products have them), resamples the 20/60 m bands to 10 m, applies SCL
  and writes one time stack (GeoTIFF, ZSTD level 1, horizontal predictor, 128 px tiles);
- ours again with GDAL decoding the JPEG 2000 files (``EOLULC_JPEG2000=gdal``: whole tiles, every
  layer of a quality mask) instead of OpenJPEG's partial decoding (:mod:`core.jpeg2000`);
- GDAL: ``gdal.Translate`` with ``srcWin`` of the same window of every band file and SCL at
  their own resolution (no resampling, no masks), in process, one GeoTIFF per band and product,
  twice: uncompressed (``gdal_translate``'s default) and with the stack's compression options.

Both sides decode the same JPEG 2000 tiles. GDAL's JPEG 2000 decoder uses all CPUs on both sides
(``GDAL_NUM_THREADS`` unset); ours also reads bands in parallel threads. The three are run in turn
in each of ``--repeats`` rounds (so a change of the machine's load hits all of them); wall and
process CPU seconds (all threads) are printed, with the load average before and after, and
written to ``bench/out/import_safe.json``. ``--keep DIR`` writes the products there once and
reuses them; ``--package DIR`` times another checkout's import (``DIR/eolulc``), e.g. the code
before a change (``git archive <commit> | tar -x -C DIR/eolulc``).

    .venv/bin/python bench/import_safe.py [--products 10] [--size 1200] [--window 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from _common import REPO, TEST_DATA, import_package, temp_dir

# --package DIR: time another checkout's import (DIR holds it as an ``eolulc`` package), e.g. the
# code before a change, on the same products
_PACKAGE = sys.argv[sys.argv.index("--package") + 1] if "--package" in sys.argv[:-1] else None
import_package(_PACKAGE)
sys.path.insert(0, str(REPO / "tests"))

OUT = REPO / "bench" / "out" / "import_safe.json"


def write_products(root: Path, count: int, size: int, quality_masks: bool) -> list[str]:
    from safe_products import L2A_BANDS, dns_from_reflectance, write_product

    found = sorted(str(p) for p in root.glob("*.zip"))
    if len(found) >= count:
        return found[:count]
    scenes = np.load(TEST_DATA / "REFERENCE_SCENES.npy")
    reps = -(-size // 100)
    for i in range(len(found), count):
        tiled = np.tile(scenes[i % 5, :100, :100], (reps, reps, 1))[:size, :size]
        dns = dns_from_reflectance(tiled, L2A_BANDS, -1000)
        scl = np.full((size // 2, size // 2), 4, np.uint8)
        write_product(root, "L2A", dns, datetime(2023, 1, 1, 10) + timedelta(days=5 * i), zipped=True, scl=scl,
                      defects=[] if quality_masks else None)
    return sorted(str(p) for p in root.glob("*.zip"))[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--window", type=int, default=1000,
                        help="window side in px, centred in the product (so it crosses the 1024 px tiles' "
                             "boundary when the product is 2048 px, as a user's extent in a real tile)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality-masks", action="store_true", help="products carry MSK_QUALIT rasters")
    parser.add_argument("--keep", type=Path, help="folder for the products, written once and reused")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON file (default bench/out/import_safe.json)")
    parser.add_argument("--package", help="folder holding another checkout as 'eolulc' to time instead of this one")
    args = parser.parse_args()

    from osgeo import gdal

    from eolulc.core.safe import read_product
    from eolulc.core.safe_import import group_by_day, import_safe, scan_products, target_grid
    from eolulc.core.timestack import COMPRESSION_LEVEL, TILE_SIZE

    root = temp_dir("eolulc_bench_safe_")
    products_dir = args.keep or root / "products"
    products_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths = write_products(products_dir, args.products, args.size, args.quality_masks)
    print(f"{len(paths)} products ready in {time.perf_counter() - start:.0f} s")
    margin = (args.size - args.window) // 2
    x0 = 499980 + margin * 10
    y1 = 5200020 - margin * 10
    bounds = (x0, y1 - args.window * 10, x0 + args.window * 10, y1)

    def ours() -> None:
        products = scan_products(paths)
        grid = target_grid(group_by_day(products), 10, "EPSG:32633", bounds)
        import_safe(products, root / "out" / "stack.tif", grid)

    def gdal_side(options: list[str]) -> None:
        out = root / "gdal"
        out.mkdir(exist_ok=True)
        for i, path in enumerate(paths):
            for band, file in read_product(path).granules[0].bands.items():
                scale = {"B01": 6, "B09": 6}.get(band, 1 if band in ("B02", "B03", "B04", "B08") else 2)
                gdal.Translate(str(out / f"{i}_{band}.tif"), file, creationOptions=options,
                               srcWin=[margin // scale, margin // scale, args.window // scale, args.window // scale])

    same = ["TILED=YES", f"BLOCKXSIZE={TILE_SIZE}", f"BLOCKYSIZE={TILE_SIZE}", "COMPRESS=ZSTD",
            f"ZSTD_LEVEL={COMPRESSION_LEVEL}", "PREDICTOR=2"]
    def ours_gdal_decoding() -> None:
        os.environ["EOLULC_JPEG2000"] = "gdal"
        try:
            ours()
        finally:
            os.environ.pop("EOLULC_JPEG2000")

    sides = {"eolulc importsafe": ours,
             "eolulc importsafe, GDAL decoding": ours_gdal_decoding,
             "gdal.Translate, GTiff uncompressed": lambda: gdal_side([]),
             "gdal.Translate, the stack's ZSTD": lambda: gdal_side(same)}
    loads = [os.getloadavg()]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, run in sides.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    loads.append(os.getloadavg())
    rows = {}
    for name, values in times.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        rows[name] = {"wall_min": min(walls), "wall_median": statistics.median(walls), "cpu_min": min(cpus),
                      "cpu_median": statistics.median(cpus), "runs": values}
        print(f"{name:36s} wall min {min(walls):6.2f} s  median {statistics.median(walls):6.2f} s   "
              f"CPU min {min(cpus):6.2f} s  median {statistics.median(cpus):6.2f} s")
    ours_row = rows["eolulc importsafe"]
    for name in list(sides)[1:]:
        if name.startswith("eolulc"):
            continue
        print(f"ours / {name}: wall (medians) {ours_row['wall_median'] / rows[name]['wall_median']:.2f}x, "
              f"CPU {ours_row['cpu_median'] / rows[name]['cpu_median']:.2f}x")
    print(f"{args.products} zipped L2A products of {args.size} px, window {args.window} px, 12 bands + SCL"
          f"{', quality masks' if args.quality_masks else ''}; load average before {loads[0][0]:.1f}, "
          f"after {loads[1][0]:.1f} (1 min), {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load_average": loads,
                               "cpus": os.cpu_count(), "results": rows}, indent=1))


if __name__ == "__main__":
    main()
