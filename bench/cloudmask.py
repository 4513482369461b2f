"""Benchmark of the cloud mask (:class:`~eolulc.core.cloudmask.CloudDetector`): agreement and speed.

1. **Agreement on real scenes.** The five real L1C scenes of ``tests/data/REFERENCE_SCENES.npy``
   are written as a 5-date float32 reflectance stack on the TestEOPatch grid (dates in time
   order). For each processing resolution (10, 20, 40, 80, 160 m) the detector runs with
   threshold 0.4, ``average_over=4``, ``dilation_size=2``; reported: cloud cover, agreement of
   the mask with our own 10 m mask and with the service's ``mask/CLM.npy`` of those frames, and
   the largest difference of the probabilities to ``data/CLP_S2C.npy`` (s2cloudless at 10 m:
   must be ~0 at 10 m).
2. **Speed on a larger patch.** An L1C-like stack of ``--size`` x ``--size`` px x ``--dates``
   dates x 13 bands is tiled from the real scenes (100 x 100 px cells, each date and cell a
   randomly chosen scene, rotated and/or flipped, so the clouds are real), stored as uint16
   digital numbers (``round(reflectance * 10000)``, GDAL scale 1e-4) and written once to a
   temporary GeoTIFF. Each processing resolution (160, 80, 40, 20 m) runs ``CloudDetector.run``
   on the whole stack (probability and mask outputs) in a fresh subprocess; reported: seconds
   (min and median over ``--repeats``), Mpx-frames/s, the peak RSS of that process (``VmHWM``;
   the RSS before the run, after the imports, is given too) and the time extrapolated to
   1000 x 1000 px x 68 dates. 10 m takes minutes on the whole stack, so it runs on a stack of
   the first ``--dates-10m`` dates, with our detector and with s2cloudless itself
   (``S2PixelCloudDetector(all_bands=True, average_over=4, dilation_size=2)``,
   ``get_cloud_probability_maps`` + ``get_mask_from_prob`` on the whole float32 reflectance
   array in memory; only those two calls are timed, no I/O, while our figure includes reading
   the GeoTIFF and writing both outputs). The masks of the coarser runs are also compared with
   our 10 m mask on those first dates (a second, larger but synthetic, agreement figure: cell
   edges are not real).
3. **Block budget.** The 40 m run is repeated on a stack of twice the side (4x the pixels): with
   block-by-block processing its peak RSS should not grow (``--memory-check``; adds the write
   of the larger stack and a 4x longer 40 m run, about 2 minutes at the default size on 2 cores).

Timings compare within one run only: every figure of one table comes from the same machine and
the same moment (other jobs on a shared machine shift all of them together, roughly).

Prints the tables, writes everything to ``bench/out/cloudmask.json`` and ends with a
recommendation for the default processing resolution derived from the figures.

Usage, from the repository root (the defaults run in about 7 minutes on 2 cores)::

    .venv/bin/python bench/cloudmask.py                                # defaults
    .venv/bin/python bench/cloudmask.py --size 200 --dates 20 --no-memory-check   # quick look
    .venv/bin/python bench/cloudmask.py --repeats 3 --resolutions 160,40
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from _common import REPO, TEST_DATA, import_package, peak_rss_kb, print_result, proc_status_kb, run_json, temp_dir

DEFAULT_OUT = REPO / "bench" / "out" / "cloudmask.json"

#: TestEOPatch frames of REFERENCE_SCENES.npy: scene i is frame FRAMES[i].
FRAMES = (2, 1, 4, 3, 0)
L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
THRESHOLD = 0.4
AVERAGE_OVER = 4
DILATION_SIZE = 2
AGREEMENT_RESOLUTIONS = (10, 20, 40, 80, 160)
SPEED_RESOLUTIONS = (160, 80, 40, 20)
MEMORY_CHECK_RESOLUTION = 40
#: Side of the tiling cells (the scenes are 101 x 100: the last row is dropped so that every
#: rotation keeps the cell square).
CELL = 100
#: Size of the extrapolation target: 1000 x 1000 px x 68 dates.
TARGET_MPX_FRAMES = 1000 * 1000 * 68 / 1e6
#: The 10 m path must give s2cloudless's probabilities up to this.
PROBABILITY_TOLERANCE = 1e-6
#: Recommendation: the coarsest (fastest) resolution whose mask agrees with the 10 m mask on at
#: least this many percent of the pixels, on the real scenes and on the tiled patch.
AGREEMENT_TARGET = 99.0


# --- plumbing ------------------------------------------------------------------------------------


def mb(kilobytes: float) -> float:
    return kilobytes / 1024.0


# --- data ----------------------------------------------------------------------------------------


def eopatch_dates(count: int) -> list[datetime]:
    """The TestEOPatch's 68 acquisition times, continued on a 5-day grid when more are asked for."""
    stamps = json.loads((TEST_DATA / "TestEOPatch" / "timestamps.json").read_text(encoding="utf-8"))
    dates = [datetime.fromisoformat(s) for s in stamps]
    while len(dates) < count:
        dates.append(dates[-1] + timedelta(days=5))
    return dates[:count]


def reference_info(dates: Sequence[datetime], dtype: str, height: int, width: int, scaled: bool) -> Any:
    """StackInfo on the TestEOPatch grid (its bbox and CRS) extended to ``height`` x ``width``."""
    from eolulc.core.eopatch import read_eopatch
    from eolulc.core.timestack import Grid, StackInfo

    patch = read_eopatch(TEST_DATA / "TestEOPatch")
    base = patch.grid(101, 100)
    grid = Grid(width=width, height=height, crs_wkt=base.crs_wkt, transform=base.transform)
    scales = (1e-4,) * len(L1C_BANDS) if scaled else ()
    nodata = None if dtype == "float32" else 0.0
    return StackInfo(grid=grid, dates=tuple(dates), bands=L1C_BANDS, dtype=dtype, nodata=nodata, scales=scales)


class TiledScenes:
    """A ``size`` x ``size`` x ``n_dates`` L1C stack in uint16 DN made of the real scenes: cell
    ``(row, col)`` of date ``t`` is scene ``scene[t, row, col]`` under dihedral transform
    ``transform[t, row, col]`` (rotation by 90 degrees x k, optionally mirrored)."""

    def __init__(self, scenes: np.ndarray, size: int, n_dates: int, seed: int) -> None:
        dn = np.rint(scenes[:, :CELL, :CELL] * 10000.0)
        if dn.min() < 1 or dn.max() > 65535:
            dn = np.clip(dn, 1, 65535)  # 0 is the stack's nodata
        dn = dn.astype(np.uint16)
        self.variants = np.stack([
            np.stack([np.rot90(s[:, ::-1] if flip else s, k) for s in dn])
            for flip in (0, 1) for k in range(4)
        ])  # (8 transforms, scenes, CELL, CELL, 13)
        cells = math.ceil(size / CELL)
        rng = np.random.default_rng(seed)
        self.scene = rng.integers(0, scenes.shape[0], size=(n_dates, cells, cells))
        self.transform = rng.integers(0, 8, size=(n_dates, cells, cells))
        self.size = size
        self.n_dates = n_dates

    def window(self, row: int, col: int, height: int, width: int, dates: Sequence[int] | None = None) -> np.ndarray:
        """``(time, height, width, 13)`` uint16 of a window."""
        dates = list(range(self.n_dates)) if dates is None else list(dates)
        out = np.empty((len(dates), height, width, len(L1C_BANDS)), np.uint16)
        for cy in range(row // CELL, (row + height - 1) // CELL + 1):
            r0, r1 = max(row, cy * CELL), min(row + height, (cy + 1) * CELL)
            for cx in range(col // CELL, (col + width - 1) // CELL + 1):
                c0, c1 = max(col, cx * CELL), min(col + width, (cx + 1) * CELL)
                for i, t in enumerate(dates):
                    cell = self.variants[self.transform[t, cy, cx], self.scene[t, cy, cx]]
                    out[i, r0 - row:r1 - row, c0 - col:c1 - col] = cell[r0 - cy * CELL:r1 - cy * CELL,
                                                                        c0 - cx * CELL:c1 - cx * CELL]
        return out

    def write(self, path: Path, n_dates: int) -> float:
        """Write the first ``n_dates`` dates with ``StackWriter`` in tile-aligned windows; seconds."""
        from eolulc.core.timestack import TILE_SIZE, StackWriter

        info = reference_info(eopatch_dates(n_dates), "uint16", self.size, self.size, scaled=True)
        start = time.perf_counter()
        with StackWriter(str(path), info) as writer:
            for row in range(0, self.size, TILE_SIZE):
                for col in range(0, self.size, TILE_SIZE):
                    h, w = min(TILE_SIZE, self.size - row), min(TILE_SIZE, self.size - col)
                    writer.write(self.window(row, col, h, w, range(n_dates)), (row, col, h, w))
        return time.perf_counter() - start


def read_stack(path: Path) -> np.ndarray:
    from eolulc.core.timestack import open_stack

    with open_stack(str(path)) as reader:
        return reader.read()


# --- workers (each run in a fresh process) -------------------------------------------------------


def worker_detector(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``CloudDetector.run`` on a stack; seconds and memory."""
    import cv2  # noqa: F401  (imported before the RSS baseline, as the run needs it)
    import lightgbm  # noqa: F401
    import rasterio  # noqa: F401

    from eolulc.core.cloudmask import CloudDetector

    detector = CloudDetector(threshold=THRESHOLD, average_over=AVERAGE_OVER, dilation_size=DILATION_SIZE,
                             processing_resolution=spec["resolution"])
    rss_before = proc_status_kb("VmRSS")
    start = time.perf_counter()
    result = detector.run(spec["stack"], spec.get("probability"), spec.get("mask"))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "factor": result.factor, "radiometry": result.radiometry.reason,
            "rss_before_kb": rss_before, "peak_rss_kb": peak_rss_kb(),
            "cloud_fraction": float(np.mean(result.cloud_fraction))}


def worker_s2cloudless(spec: dict[str, Any]) -> dict[str, Any]:
    """s2cloudless on the whole stack in memory as float32 reflectance (as our radiometry makes it
    from DN: ``float32(DN) / 10000``); only the two s2cloudless calls are timed."""
    from s2cloudless import S2PixelCloudDetector

    from eolulc.core.sentinel2 import QUANTIFICATION, Radiometry

    rss_before = proc_status_kb("VmRSS")
    reflectance = Radiometry(QUANTIFICATION, 0.0).apply(read_stack(Path(spec["stack"])))
    rss_loaded = proc_status_kb("VmRSS")
    detector = S2PixelCloudDetector(threshold=THRESHOLD, all_bands=True, average_over=AVERAGE_OVER,
                                    dilation_size=DILATION_SIZE)
    detector.classifier  # noqa: B018  (load the model outside the timing, as our run cannot)
    start = time.perf_counter()
    probability = detector.get_cloud_probability_maps(reflectance)
    mask = detector.get_mask_from_prob(probability)
    seconds = time.perf_counter() - start
    np.save(spec["probability"], probability)
    np.save(spec["mask"], mask)
    return {"seconds": seconds, "rss_before_kb": rss_before, "rss_loaded_kb": rss_loaded,
            "peak_rss_kb": peak_rss_kb(), "cloud_fraction": float(mask.mean())}


WORKERS = {"detector": worker_detector, "s2cloudless": worker_s2cloudless}
RESULT_PREFIX = "CLOUDMASK-BENCH-RESULT "


def run_worker(kind: str, spec: dict[str, Any], link_dir: Path, threads: int | None) -> dict[str, Any]:
    """Run a worker in a fresh interpreter; its result dictionary."""
    env = dict(os.environ)
    if spec.get("gdal_cache_mb"):
        env["GDAL_CACHEMAX"] = str(spec["gdal_cache_mb"])
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        spec = {**spec, "threads": threads}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--worker-spec", json.dumps(spec),
               "--package-dir", str(link_dir)]
    return run_json(command, RESULT_PREFIX, env, what=f"worker {kind} {spec}")


# --- measurements --------------------------------------------------------------------------------


@dataclass
class Agreement:
    resolution_m: float
    factor: int
    cloud_pct: float
    agree_10m_pct: float
    missed_pct: float  # cloudy at 10 m, clear here (% of all pixels)
    extra_pct: float  # clear at 10 m, cloudy here
    agree_clm_pct: float
    max_abs_dp_clp_s2c: float
    mean_abs_dp_clp_s2c: float
    seconds: float


def compare_masks(mask: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Agreement, missed and extra clouds of ``mask`` against ``reference``, in % of the pixels."""
    agree = 100.0 * float(np.mean(mask == reference))
    missed = 100.0 * float(np.mean((reference == 1) & (mask == 0)))
    extra = 100.0 * float(np.mean((reference == 0) & (mask == 1)))
    return agree, missed, extra


def real_scene_agreement(workdir: Path, resolutions: Sequence[float]) -> tuple[list[Agreement], dict[str, Any]]:
    from eolulc.core.cloudmask import CloudDetector
    from eolulc.core.timestack import StackWriter

    scenes = np.load(TEST_DATA / "REFERENCE_SCENES.npy")
    patch_dir = TEST_DATA / "TestEOPatch"
    all_dates = eopatch_dates(68)
    order = sorted(range(len(FRAMES)), key=lambda i: FRAMES[i])  # scenes in time order
    frames = [FRAMES[i] for i in order]
    data = scenes[order]
    clp = np.load(patch_dir / "data" / "CLP_S2C.npy")[frames, ..., 0]
    clm = np.load(patch_dir / "mask" / "CLM.npy")[frames, ..., 0]
    info = reference_info([all_dates[f] for f in frames], "float32", *data.shape[1:3], scaled=False)
    stack = workdir / "reference_scenes.tif"
    with StackWriter(str(stack), info) as writer:
        writer.write(data)
    rows: list[Agreement] = []
    base_mask: np.ndarray | None = None
    radiometry = ""
    for resolution in sorted(resolutions):
        detector = CloudDetector(threshold=THRESHOLD, average_over=AVERAGE_OVER, dilation_size=DILATION_SIZE,
                                 processing_resolution=resolution)
        prob_path, mask_path = workdir / f"ref_clp_{resolution:g}.tif", workdir / f"ref_clm_{resolution:g}.tif"
        start = time.perf_counter()
        result = detector.run(str(stack), prob_path, mask_path)
        seconds = time.perf_counter() - start
        radiometry = result.radiometry.reason
        probability, mask = read_stack(prob_path)[..., 0], read_stack(mask_path)[..., 0]
        if base_mask is None:
            base_mask = mask
        agree, missed, extra = compare_masks(mask, base_mask)
        dp = np.abs(probability.astype(np.float64) - clp)
        rows.append(Agreement(
            resolution_m=float(resolution), factor=result.factor, cloud_pct=100.0 * float(mask.mean()),
            agree_10m_pct=agree, missed_pct=missed, extra_pct=extra,
            agree_clm_pct=compare_masks(mask, clm)[0], max_abs_dp_clp_s2c=float(np.nanmax(dp)),
            mean_abs_dp_clp_s2c=float(np.nanmean(dp)), seconds=seconds))
    meta = {"frames": frames, "shape": list(data.shape), "radiometry": radiometry,
            "clm_cloud_pct": 100.0 * float(clm.mean())}
    return rows, meta


@dataclass
class SpeedRow:
    label: str
    engine: str  # "CloudDetector" or "s2cloudless"
    resolution_m: float
    dates: int
    mpx_frames: float
    seconds_min: float
    seconds_median: float
    runs_s: list[float]
    mpx_frames_per_s: float
    peak_rss_mb: float
    rss_before_mb: float
    target_s: float  # extrapolated to 1000 x 1000 x 68
    agree_10m_pct: float | None = None  # on the first dates, against our 10 m mask
    missed_pct: float | None = None
    extra_pct: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def speed_row(label: str, engine: str, resolution: float, dates: int, size: int,
              runs: list[dict[str, Any]]) -> SpeedRow:
    seconds = [r["seconds"] for r in runs]
    mpx_frames = size * size * dates / 1e6
    rate = mpx_frames / min(seconds)
    return SpeedRow(
        label=label, engine=engine, resolution_m=resolution, dates=dates, mpx_frames=mpx_frames,
        seconds_min=min(seconds), seconds_median=statistics.median(seconds), runs_s=seconds,
        mpx_frames_per_s=rate, peak_rss_mb=mb(max(r["peak_rss_kb"] for r in runs)),
        rss_before_mb=mb(min(r["rss_before_kb"] for r in runs)), target_s=TARGET_MPX_FRAMES / rate,
        extra={k: v for k, v in runs[0].items() if k not in ("seconds", "peak_rss_kb", "rss_before_kb")},
    )


def repeat_worker(kind: str, spec: dict[str, Any], repeats: int, link_dir: Path, threads: int | None,
                  log: str) -> list[dict[str, Any]]:
    runs = []
    for i in range(repeats):
        started = time.perf_counter()
        runs.append(run_worker(kind, spec, link_dir, threads))
        print(f"  {log} run {i + 1}/{repeats}: {runs[-1]['seconds']:.1f} s "
              f"(process {time.perf_counter() - started:.1f} s)", flush=True)
    return runs


# --- report --------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def agreement_table(rows: Sequence[Agreement]) -> str:
    headers = ("res m", "factor", "cloud %", "=10m %", "missed %", "extra %", "=CLM %", "max|p-CLP_S2C|",
               "mean|p-CLP_S2C|")
    return format_table(headers, [
        (f"{r.resolution_m:g}", str(r.factor), fmt(r.cloud_pct), fmt(r.agree_10m_pct), fmt(r.missed_pct),
         fmt(r.extra_pct), fmt(r.agree_clm_pct), f"{r.max_abs_dp_clp_s2c:.2e}", f"{r.mean_abs_dp_clp_s2c:.2e}")
        for r in rows
    ])


def speed_table(rows: Sequence[SpeedRow], repeats: int) -> str:
    headers = ["run", "dates", "Mpx-frames", "s min"] + (["s median"] if repeats > 1 else []) + [
        "Mpx-frames/s", "peak RSS MB", "RSS before MB", "1000x1000x68 s", "=10m %", "missed %", "extra %"]
    out = []
    for r in rows:
        cells = [r.label, str(r.dates), fmt(r.mpx_frames), fmt(r.seconds_min, 1)]
        if repeats > 1:
            cells.append(fmt(r.seconds_median, 1))
        cells += [fmt(r.mpx_frames_per_s, 3), f"{r.peak_rss_mb:.0f}", f"{r.rss_before_mb:.0f}", f"{r.target_s:.0f}",
                  fmt(r.agree_10m_pct), fmt(r.missed_pct), fmt(r.extra_pct)]
        out.append(cells)
    return format_table(headers, out)


def recommend(agreement: Sequence[Agreement], speed: Sequence[SpeedRow]) -> tuple[float | None, str]:
    """The coarsest resolution whose mask agrees with the 10 m mask on at least
    :data:`AGREEMENT_TARGET` % of the pixels both on the real scenes and on the tiled patch."""
    real = {a.resolution_m: a.agree_10m_pct for a in agreement}
    tiled = {s.resolution_m: s.agree_10m_pct for s in speed if s.engine == "CloudDetector"}
    rate = {s.resolution_m: s.mpx_frames_per_s for s in speed if s.engine == "CloudDetector"}
    measured = set(tiled) if tiled else set(real)  # only resolutions with both figures when timed
    candidates = [r for r in sorted(measured, reverse=True)
                  if real.get(r, 100.0) >= AGREEMENT_TARGET and (tiled.get(r) or 100.0) >= AGREEMENT_TARGET]
    if not candidates:
        return None, f"no resolution reaches {AGREEMENT_TARGET:g} % agreement with the 10 m mask"
    best = candidates[0]
    parts = [f"{best:g} m: the coarsest resolution whose mask agrees with the 10 m mask on >= {AGREEMENT_TARGET:g} %"
             f" of the pixels (real scenes {fmt(real.get(best))} %, tiled patch {fmt(tiled.get(best))} %)"]
    if best in rate and 10.0 in rate:
        parts.append(f"{rate[best] / rate[10.0]:.0f}x the 10 m throughput")
    coarser = [r for r in sorted(real, reverse=True) if r > best]
    if coarser:
        worse = coarser[-1]
        parts.append(f"{worse:g} m would agree on {fmt(real[worse])} % (real) / {fmt(tiled.get(worse))} % (tiled)")
    return best, "; ".join(parts)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=500, help="side of the speed patch in pixels (500)")
    parser.add_argument("--dates", type=int, default=68, help="dates of the speed patch (68)")
    parser.add_argument("--dates-10m", type=int, default=8, help="dates of the 10 m speed runs (8)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration; min and median (1)")
    parser.add_argument("--resolutions", default=",".join(str(r) for r in SPEED_RESOLUTIONS),
                        help="processing resolutions of the speed runs on the whole patch (160,80,40,20)")
    parser.add_argument("--memory-check", action=argparse.BooleanOptionalAction, default=True,
                        help="repeat the 40 m run on a patch of twice the side to check that the peak RSS "
                             "stays flat (on; about 2 minutes at the default size)")
    parser.add_argument("--memory-dates", type=int, default=17,
                        help="dates of the two memory-check stacks (17: a quarter of 68, to keep it short)")
    parser.add_argument("--gdal-cache-mb", type=int, default=None,
                        help="GDAL_CACHEMAX of the runs (default: GDAL's own, 5%% of the RAM)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both engines (default: all cores, as the plugin)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scene tiling (0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output ({DEFAULT_OUT.relative_to(REPO)})")
    parser.add_argument("--keep", type=Path, default=None, help="keep the stacks and outputs in this folder")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-spec", help=argparse.SUPPRESS)
    parser.add_argument("--package-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        if args.size < 16 or args.dates < 1 or args.dates_10m < 1 or args.repeats < 1:
            parser.error("--size must be at least 16, --dates, --dates-10m and --repeats at least 1")
        args.dates_10m = min(args.dates_10m, args.dates)
    return args


def worker_main(args: argparse.Namespace) -> int:
    import_package(args.package_dir)
    spec = json.loads(args.worker_spec)
    if spec.get("threads"):
        from eolulc.core import cloudmask

        threads = int(spec["threads"])
        original = cloudmask.CloudDetector.__init__

        def init(self: Any, *a: Any, **k: Any) -> None:
            original(self, *a, **{**k, "threads": threads})

        cloudmask.CloudDetector.__init__ = init  # type: ignore[method-assign]
    result = WORKERS[args.worker](spec)
    print_result(RESULT_PREFIX, result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    if not (TEST_DATA / "REFERENCE_SCENES.npy").is_file():
        print(f"real test data not found in {TEST_DATA}", file=sys.stderr)
        return 1
    link_dir = import_package()
    import rasterio

    resolutions = [float(r) for r in args.resolutions.split(",") if r.strip()]
    if args.keep:
        workdir = args.keep
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = temp_dir("eolulc_cloudmask_bench_")
    began = time.perf_counter()
    threads = args.threads
    cache = {"gdal_cache_mb": args.gdal_cache_mb} if args.gdal_cache_mb else {}

    # 1. agreement on the real scenes
    print("1. Agreement on the real scenes ...", flush=True)
    agreement, agreement_meta = real_scene_agreement(workdir, AGREEMENT_RESOLUTIONS)
    ten = next(a for a in agreement if a.resolution_m == 10.0)

    # 2. speed
    size, n_dates, n_10m = args.size, args.dates, args.dates_10m
    scenes = np.load(TEST_DATA / "REFERENCE_SCENES.npy")
    tiled = TiledScenes(scenes, size, n_dates, args.seed)
    stack, stack_10m = workdir / "patch.tif", workdir / f"patch_{n_10m}dates.tif"
    print(f"2. Speed: writing the {size} x {size} px x {n_dates} dates patch ...", flush=True)
    write_s = tiled.write(stack, n_dates)
    write_10m_s = tiled.write(stack_10m, n_10m)
    stack_mb = os.path.getsize(stack) / 1e6

    speed: list[SpeedRow] = []
    spec = {"stack": str(stack_10m), "resolution": None, **cache, "probability": str(workdir / "p10_clp.tif"),
            "mask": str(workdir / "p10_clm.tif")}
    runs = repeat_worker("detector", spec, args.repeats, link_dir, threads, "10 m CloudDetector")
    ours = speed_row("10 m CloudDetector", "CloudDetector", 10.0, n_10m, size, runs)
    s2c_spec = {"stack": str(stack_10m), **cache, "probability": str(workdir / "s2c_clp.npy"),
                "mask": str(workdir / "s2c_clm.npy")}
    runs = repeat_worker("s2cloudless", s2c_spec, args.repeats, link_dir, threads, "10 m s2cloudless")
    theirs = speed_row("10 m s2cloudless (in memory)", "s2cloudless", 10.0, n_10m, size, runs)
    our_probability = read_stack(Path(spec["probability"]))[..., 0]
    our_mask = read_stack(Path(spec["mask"]))[..., 0]
    s2c_probability, s2c_mask = np.load(s2c_spec["probability"]), np.load(s2c_spec["mask"])
    max_dp_s2c = float(np.max(np.abs(our_probability.astype(np.float64) - s2c_probability)))
    mask_equal_s2c = compare_masks(our_mask, s2c_mask)[0]
    ours.agree_10m_pct = 100.0
    theirs.agree_10m_pct = mask_equal_s2c
    speed += [ours, theirs]
    for resolution in sorted(resolutions, reverse=True):
        label = f"{resolution:g} m CloudDetector"
        mask_path = workdir / f"p{resolution:g}_clm.tif"
        spec = {"stack": str(stack), "resolution": resolution, **cache,
                "probability": str(workdir / f"p{resolution:g}_clp.tif"), "mask": str(mask_path)}
        runs = repeat_worker("detector", spec, args.repeats, link_dir, threads, label)
        row = speed_row(label, "CloudDetector", resolution, n_dates, size, runs)
        with rasterio.open(mask_path) as ds:
            head = ds.read(list(range(1, n_10m + 1)))
        row.agree_10m_pct, row.missed_pct, row.extra_pct = compare_masks(head, our_mask)
        speed.append(row)
        for path in (spec["probability"], spec["mask"]):
            if not args.keep:
                os.remove(path)
    speed_s = time.perf_counter() - began

    # 3. memory
    memory: dict[str, Any] | None = None
    if args.memory_check:
        m_dates = min(args.memory_dates, n_dates)
        print(f"3. Block budget: {MEMORY_CHECK_RESOLUTION} m, {m_dates} dates, {size} and {2 * size} px ...",
              flush=True)
        started = time.perf_counter()
        rows = []
        for side in (size, 2 * size):
            path = workdir / f"patch_{side}_{m_dates}dates.tif"
            big_write_s = TiledScenes(scenes, side, m_dates, args.seed).write(path, m_dates)
            spec = {"stack": str(path), "resolution": MEMORY_CHECK_RESOLUTION, **cache,
                    "probability": str(workdir / "m_clp.tif"), "mask": str(workdir / "m_clm.tif")}
            runs = repeat_worker("detector", spec, 1, link_dir, threads, f"{MEMORY_CHECK_RESOLUTION} m {side} px")
            rows.append(speed_row(f"{MEMORY_CHECK_RESOLUTION} m CloudDetector, {side} px", "CloudDetector",
                                  MEMORY_CHECK_RESOLUTION, m_dates, side, runs))
            if not args.keep:
                for item in (path, spec["probability"], spec["mask"]):
                    os.remove(item)
        small_row, big_row = rows
        memory = {"size": size, "size_2x": 2 * size, "resolution_m": MEMORY_CHECK_RESOLUTION, "dates": m_dates,
                  "gdal_cache_mb": args.gdal_cache_mb,
                  "peak_rss_mb": small_row.peak_rss_mb, "peak_rss_2x_mb": big_row.peak_rss_mb,
                  "rss_before_mb": small_row.rss_before_mb, "rss_before_2x_mb": big_row.rss_before_mb,
                  "seconds": small_row.seconds_min, "seconds_2x": big_row.seconds_min,
                  "mpx_frames_per_s_2x": big_row.mpx_frames_per_s, "write_2x_s": big_write_s,
                  "check_s": time.perf_counter() - started, "block_budget_mb": _budget_mb()}
    total_s = time.perf_counter() - began

    # report
    best, reason = recommend(agreement, speed)
    print()
    print(f"Cloud mask benchmark ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"threshold {THRESHOLD}, average_over {AVERAGE_OVER}, dilation_size {DILATION_SIZE})")
    print()
    print(f"1. Agreement on the real scenes: TestEOPatch frames {agreement_meta['frames']}, "
          f"{agreement_meta['shape'][1]} x {agreement_meta['shape'][2]} px; {agreement_meta['radiometry']}")
    print("   =10m: same mask as our 10 m mask; missed/extra: cloudy/clear at 10 m only (% of pixels);")
    print(f"   =CLM: same as the service's mask (cloud cover {agreement_meta['clm_cloud_pct']:.2f} %)")
    print(agreement_table(agreement))
    print()
    print(f"2. Speed: {size} x {size} px, {n_dates} dates x 13 bands uint16 DN tiled from the real scenes "
          f"({stack_mb:.0f} MB GeoTIFF, written in {write_s:.1f} s); 10 m on the first {n_10m} dates; "
          f"{args.repeats} run(s) each, {threads or os.cpu_count()} threads")
    print("   CloudDetector: whole run() in a fresh process (read, model, mask, write both outputs);")
    print("   s2cloudless: get_cloud_probability_maps + get_mask_from_prob on the array in memory;")
    print(f"   =10m/missed/extra: mask against our 10 m mask on the first {n_10m} dates (tiled patch)")
    print(speed_table(speed, args.repeats))
    print(f"   10 m CloudDetector vs s2cloudless: max |dp| = {max_dp_s2c:.2e} "
          f"({'OK' if max_dp_s2c <= PROBABILITY_TOLERANCE else 'OVER'} <= {PROBABILITY_TOLERANCE:g}), "
          f"masks equal on {mask_equal_s2c:.4f} %, speed ratio {ours.mpx_frames_per_s / theirs.mpx_frames_per_s:.2f}x")
    print(f"   10 m on the real scenes: max |p - CLP_S2C| = {ten.max_abs_dp_clp_s2c:.2e}")
    if memory:
        growth = memory["peak_rss_2x_mb"] - memory["peak_rss_mb"]
        print()
        print(f"3. Block budget ({memory['block_budget_mb']:.0f} MB, {memory['dates']} dates, GDAL cache "
              f"{memory['gdal_cache_mb'] or 'default'}): {MEMORY_CHECK_RESOLUTION} m peak RSS "
              f"{memory['peak_rss_mb']:.0f} MB at {size} px, {memory['peak_rss_2x_mb']:.0f} MB at {2 * size} px "
              f"(4x the pixels; {growth:+.0f} MB; RSS before the run {memory['rss_before_mb']:.0f} / "
              f"{memory['rss_before_2x_mb']:.0f} MB); {memory['seconds']:.1f} s -> {memory['seconds_2x']:.1f} s; "
              f"check took {memory['check_s']:.0f} s")
    print()
    print(f"Recommendation: {reason}")
    print(f"(total {total_s:.0f} s)")

    out = {
        "settings": {"threshold": THRESHOLD, "average_over": AVERAGE_OVER, "dilation_size": DILATION_SIZE,
                     "size": size, "dates": n_dates, "dates_10m": n_10m, "repeats": args.repeats,
                     "threads": threads, "seed": args.seed, "speed_resolutions_m": resolutions},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "load_average": list(os.getloadavg())},
        "agreement": {"meta": agreement_meta, "rows": [asdict(a) for a in agreement]},
        "speed": {"stack_mb": stack_mb, "write_s": write_s, "write_10m_s": write_10m_s,
                  "rows": [asdict(s) for s in speed],
                  "s2cloudless_max_abs_dp": max_dp_s2c, "s2cloudless_mask_equal_pct": mask_equal_s2c,
                  "speed_ratio_10m": ours.mpx_frames_per_s / theirs.mpx_frames_per_s,
                  "target_mpx_frames": TARGET_MPX_FRAMES, "seconds": speed_s},
        "memory": memory,
        "recommendation": {"resolution_m": best, "reason": reason, "agreement_target_pct": AGREEMENT_TARGET},
        "total_s": total_s,
        "generated": datetime.now().isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _budget_mb() -> float:
    from eolulc.core.blocks import default_budget_bytes

    return default_budget_bytes() / 2**20


if __name__ == "__main__":
    sys.exit(main())
