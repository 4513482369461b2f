"""Does the pipeline scale to a whole Sentinel-2 tile? ``eolulc:lulcpipeline`` through
``qgis_process`` on growing synthetic patches (issue 25).

Usage, from the repository root::

    .venv/bin/python bench/scale.py                         # 1000 and 4000 px, 36 dates (about 1 h on 2 cores)
    .venv/bin/python bench/scale.py --sizes 500,1000        # a quick look (a few minutes)

For each ``--sizes`` N, ``demo/synthetic.py`` writes a realistic scene (``realistic=True``: the demo's
difficulty, not trivially separable) of N x N px x ``--dates`` dates x 13 bands (uint16 DN, as an L1C
stack), then ``eolulc:lulcpipeline`` runs once through ``qgis_process.bin`` in the tests' throw-away
profile with the pipeline's defaults (the same run as ``bench/compare_eolearn.py``'s QGIS line). It
prints, per size, the wall time, the time per megapixel, the peak resident memory of the
``qgis_process`` process, and how far the time is from linear in pixels (the largest size against
the smallest scaled by the pixel ratio; the target is at most 1.2), plus the projected time of a
whole 10980 x 10980 px tile from the largest size's time per pixel. Memory is meant to stay flat:
the pipeline walks blocks under a memory budget, so the peak should not grow with the patch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from _common import REPO, package_dir, temp_dir
from compare_eolearn import DEFAULT_VENV, Runner

TILE_SIDE = 10980  # a Sentinel-2 tile at 10 m
LINEAR_TARGET = 1.2
RSS_TARGET_MB = 1536


def mapped_share(path: str) -> float:
    """Share of the map's pixels that got a class (a map mostly nodata would make any time look good)."""
    import numpy as np
    import rasterio

    mapped = total = 0
    with rasterio.open(path) as src:
        for _, window in src.block_windows(1):
            valid = src.read_masks(1, window=window) > 0
            data = src.read(1, window=window)
            mapped += int(np.count_nonzero(valid & (data > 0)))
            total += valid.size
    return mapped / total


def run_size(size: int, args: argparse.Namespace, runner: Runner, root: Path) -> dict:
    from eolulc.demo.synthetic import make_scene_stack

    work = root / f"n{size}"
    start = time.perf_counter()
    made = make_scene_stack(work / "data", size=(size, size), n_dates=args.dates, seed=args.seed, realistic=True)
    written = time.perf_counter() - start
    first, last = made.dates[0].date(), made.dates[-1].date() + timedelta(days=1)  # END is exclusive
    print(f"[{size}] scene written in {written:.0f} s; running qgis_process", flush=True)
    spec = {"l1c": str(made.l1c), "reference": str(made.reference), "start": first.isoformat(), "end": last.isoformat()}
    result = runner.qgis_pipeline(spec, work / "qgis")
    result.update(size=size, megapixels=size * size / 1e6, mapped=mapped_share(result["map"]))
    print(f"[{size}] {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
          f"{100 * result['mapped']:.1f} % of the pixels mapped", flush=True)
    return result


def table(results: list[dict], dates: int, threads: int) -> str:
    smallest, largest = results[0], results[-1]
    lines = [f"lulcpipeline through qgis_process, {dates} dates x 13 bands, {threads} threads",
             "| side px | Mpx | seconds | s per Mpx | peak RSS MB | pixels mapped |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['size']} | {r['megapixels']:.2f} | {r['seconds']:.1f} | "
                     f"{r['seconds'] / r['megapixels']:.1f} | {r['peak_rss_mb']:.0f} | {100 * r['mapped']:.1f} % |")
    if len(results) > 1:
        pixels = largest["megapixels"] / smallest["megapixels"]
        linearity = largest["seconds"] / (smallest["seconds"] * pixels)
        lines.append(f"\n{largest['size']} px against {smallest['size']} px: x{pixels:.0f} pixels, "
                     f"x{largest['seconds'] / smallest['seconds']:.2f} time; {linearity:.2f} of linear "
                     f"(target at most {LINEAR_TARGET})")
    peak = max(r["peak_rss_mb"] for r in results)
    lines.append(f"peak RSS {peak:.0f} MB (target under {RSS_TARGET_MB} MB)")
    tile = largest["seconds"] / largest["megapixels"] * TILE_SIDE * TILE_SIDE / 1e6
    lines.append(f"projected whole tile ({TILE_SIDE} x {TILE_SIDE} px, {dates} dates): {tile:.0f} s "
                 f"({tile / 60:.0f} min), from the {largest['size']} px time per pixel")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,4000", help="patch sides in px, comma-separated, smallest first")
    parser.add_argument("--dates", type=int, default=36, help="dates of the stack (36)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads (all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "scale.json")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if any(not 64 <= s <= TILE_SIDE for s in sizes):
        parser.error(f"sizes must be from 64 to {TILE_SIDE} px")
    link_dir = package_dir()
    sys.path.insert(0, str(link_dir))
    root = temp_dir("eolulc_scale_", remove=not args.keep)
    if args.keep:
        print(f"work folder: {root}")
    runner = Runner(link_dir, args.threads, DEFAULT_VENV)  # eo-learn's venv is not used here
    results = [run_size(size, args, runner, root) for size in sizes]
    text = table(results, args.dates, args.threads)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dates": args.dates, "threads": args.threads, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
