"""Benchmark of the batch pipeline (:func:`eolulc.core.batch.run_batch`): tile throughput with 1 and
2 (or more) local worker processes, and the scaling ratio.

``--tiles`` synthetic tiles of ``--size`` x ``--size`` px x ``--dates`` dates (different seeds, so
different dates and clouds; touching, on one pixel grid) are written once. For each worker count
the whole batch runs in a fresh output folder (no resume); reported: the wall time of phase 1
(cloud mask -> features -> interpolation -> samples, per tile in parallel), of the whole run
(with the pooled training in this process and the per-tile classification), the tiles per second
of phase 1 and of the whole run, and the ratio to 1 worker. Every count runs on loky worker
processes (1 worker = one process, as for a user), started inside the timed run, so small tiles
understate the scaling.

Usage, from the repository root::

    .venv/bin/python bench/batch.py                           # 8 tiles of 200 px x 24 dates, 1 and 2 workers
    .venv/bin/python bench/batch.py --tiles 4 --size 96 --dates 10 --workers 1,2   # quick look

Writes ``bench/out/batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from _common import REPO, import_package, temp_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--dates", type=int, default=24)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--keep", help="folder to keep the tiles and outputs in (default: temporary)")
    args = parser.parse_args()
    import_package()
    from eolulc.core.batch import run_batch
    from eolulc.core.legend import read_legend
    from eolulc.core.pipeline import PipelineSettings
    from eolulc.core.progress import Progress
    from eolulc.core.tiles import discover_tiles
    from eolulc.core.train import TrainSettings
    from eolulc.demo.synthetic import SyntheticScene

    root = Path(args.keep) if args.keep else temp_dir("eolulc_batch_bench_")
    inputs = root / "tiles"
    started = time.perf_counter()
    for i in range(args.tiles):
        row, col = divmod(i, 4)
        origin = (455000.0 + col * args.size * 10.0, 5105000.0 - row * args.size * 10.0)
        if not (inputs / f"tile{i}" / "l1c.tif").exists():
            SyntheticScene(args.size, args.size, args.dates, seed=i, origin=origin).write(inputs / f"tile{i}")
    print(f"{args.tiles} tiles of {args.size} x {args.size} px x {args.dates} dates written in "
          f"{time.perf_counter() - started:.1f} s")
    tiles = discover_tiles(inputs)
    settings = PipelineSettings(train=TrainSettings(samples=args.samples))
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        out = root / f"out-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        marks: dict[str, float] = {}
        t0 = time.perf_counter()

        def log(message: str, marks=marks, t0=t0) -> None:
            if message.startswith("Training on samples pooled"):
                marks["phase1"] = time.perf_counter() - t0
            elif message.startswith("LightGBM"):
                marks["trained"] = time.perf_counter() - t0

        result = run_batch(tiles, out, read_legend(), settings, workers=workers, progress=Progress(on_log=log))
        total = time.perf_counter() - t0
        assert not result.failed, result.failed
        rows.append({"workers": workers, "phase1_s": round(marks["phase1"], 2),
                     "training_s": round(marks["trained"] - marks["phase1"], 2),
                     "after_training_s": round(total - marks["trained"], 2), "total_s": round(total, 2),
                     "phase1_tiles_per_s": round(args.tiles / marks["phase1"], 3),
                     "tiles_per_s": round(args.tiles / total, 3),
                     "overall_accuracy": round(result.report_data["overall_accuracy"], 4)})
    base = rows[0]
    for row in rows:
        row["phase1_speedup"] = round(base["phase1_s"] / row["phase1_s"], 2)
        row["speedup"] = round(base["total_s"] / row["total_s"], 2)
    print(json.dumps(rows, indent=1))
    print(f"{'workers':>7} {'phase 1 s':>9} {'total s':>8} {'tiles/s (ph.1)':>14} {'tiles/s':>8} "
          f"{'speed-up ph.1':>13} {'speed-up':>8}")
    for row in rows:
        print(f"{row['workers']:>7} {row['phase1_s']:>9.2f} {row['total_s']:>8.2f} {row['phase1_tiles_per_s']:>14.3f} "
              f"{row['tiles_per_s']:>8.3f} {row['phase1_speedup']:>13.2f} {row['speedup']:>8.2f}")
    result = {"tiles": args.tiles, "size": args.size, "dates": args.dates, "cpus": os.cpu_count(),
              "machine": platform.platform(), "runs": rows}
    (REPO / "bench" / "out").mkdir(exist_ok=True)
    (REPO / "bench" / "out" / "batch.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
