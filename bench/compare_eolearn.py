"""EO LULC against eo-learn 1.5, side by side on the same data, in one command (issue 7).

Usage, from the repository root::

    .venv/bin/python bench/compare_eolearn.py                    # 500 x 500 px, 1 repeat (~10 min on 2 cores)
    .venv/bin/python bench/compare_eolearn.py --sizes 500,1000   # adds 1000 x 1000 (eo-learn peaks ~8 GB; +~15 min)
    .venv/bin/python bench/compare_eolearn.py --repeats 3 --dates-10m 4

What it does, for each ``--sizes`` N:

1. **Data.** ``demo/synthetic.py`` writes a realistic synthetic Sentinel-2 L1C patch once (``realistic=True``,
   the demo's difficulty: not trivially separable): N x N
   px, 68 dates of 2019, 13 bands (uint16 DN, scale 1e-4), planted clouds/cirrus/shadows and a
   reference map (7 classes). Our side reads that GeoTIFF time stack; for eo-learn the same
   values as float32 reflectance (``DN / 10000``) are saved as an EOPatch with ``EOPatch.save``
   (eo-learn's default gzipped ``.npy.gz``; ``--eolearn-compress 0`` for plain ``.npy``).
2. **eo-learn** (its own venv, default ``/tmp/eolearn-venv``, created by
   ``bench/setup_eolearn.sh`` when missing; never a plugin dependency) runs
   ``bench/eolearn_side.py``: ``CloudMaskTask`` at 10 m on the first ``--dates-10m`` dates (own
   process), and the whole workflow in one process with each task timed and its peak RSS:
   ``EOPatch.load``; cloud mask at the plugin's default processing resolution (160 m: eo-learn 1.5
   has no such option, so ``SpatialResizeTask`` down, ``CloudMaskTask``, ``SpatialResizeTask``
   up, s2cloudless's mask at 10 m); ``NormalizedDifferenceIndexTask`` x3 + band extract/merge;
   ``SimpleFilterTask`` (valid fraction 0.8); ``LinearInterpolationTask`` (16-day grid);
   ``ErosionTask`` + ``FractionSamplingTask`` (as many pixels as our training samples);
   ``LGBMClassifier`` fit; reshape + predict over the patch. "Whole" is the wall time from the
   load to the predicted map.
3. **Ours**: each step through the core functions in a fresh subprocess (peak RSS = that
   process's ``VmHWM``): ``CloudDetector`` at 10 m (same date subset) and at 160 m,
   ``compute_features``, ``valid_fractions`` (the scene filter), ``interpolate_stack``, pixel
   sampling (erosion, spatial split, ``sample_pixels``, ``gather_rows``), ``train_model``,
   ``classify``, and ``run_pipeline`` for the whole chain; GeoTIFF in and out everywhere. Then
   ``eolulc:lulcpipeline`` once through ``qgis_process.bin`` (throw-away profile of
   ``tools/qgis_env.py``, as the tests use) to show the QGIS overhead. Our interpolation step is fed eo-learn's
   cloud mask, so its agreement figure compares like with like.
4. **Table**: per step and whole pipeline, seconds each side (min and median of ``--repeats``),
   ratio (eo-learn / ours: > 1 means we are faster), peak RSS each side, agreement (cloud
   probability max |dp| at 10 m, 160 m mask agreement, interpolation max |d| NaN-aware,
   classification agreement %), the machine floor (a numpy pass over the float32 stack, GB/s),
   the load average before and after (the machine may be shared: a loaded machine slows both
   sides). Written to ``bench/out/compare_eolearn.json`` too.

Same threads on both sides (``--threads``, default all cores: OMP/numba/LightGBM/our threads).
Warm: models loaded and numba compiled before eo-learn's timing; input files were just written
(page cache) for both sides.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from _common import package_dir, peak_rss_kb, print_result, proc_status_kb, run_json, run_measured

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DEFAULT_OUT = BENCH / "out" / "compare_eolearn.json"
DEFAULT_VENV = Path("/tmp/eolearn-venv")
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
RESULT = "OURS-RESULT "


def _default_processing_resolution() -> float:
    """The plugin's default cloud-mask grid (core.cloudmask.DEFAULT_PROCESSING_RESOLUTION), read
    without importing the plugin (the bench imports it through a temporary package folder)."""
    import re

    text = (Path(__file__).resolve().parent.parent / "core" / "cloudmask.py").read_text(encoding="utf-8")
    return float(re.search(r"^DEFAULT_PROCESSING_RESOLUTION\s*=\s*([0-9.]+)", text, re.M).group(1))


PROCESSING_RESOLUTION = _default_processing_resolution()  # 160 m: 16x coarser, as eo-learn's LULC example
COARSE = f"cloud mask {PROCESSING_RESOLUTION:g} m"
INTERVAL_DAYS = 16
MIN_VALID_FRACTION = 0.8
SAMPLES = 20000  # our TrainSettings default; eo-learn samples as many


# ------------------------------------------------------------------------------------ plumbing
def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    # OpenMP threads sleep instead of spinning at barriers: on a shared (oversubscribed) machine a
    # spinning 2-thread LightGBM fit was measured 9x slower than 1 thread; same setting on both sides
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["PYTHONWARNINGS"] = "ignore"
    return env


# ------------------------------------------------------------------------------------ our workers
def _reference(path: str):
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.timestack import read_info

    return read_reference_raster(path, read_info(path).grid)


def w_floor(spec: dict) -> dict:
    """Machine floor: one numpy reduction over the float32 stack in memory (GB/s)."""
    data = np.load(spec["bands_npy"])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        np.add.reduce(data, axis=None, dtype=np.float32)
        times.append(time.perf_counter() - start)
    return {"gb": data.nbytes / 1e9, "seconds": min(times), "gb_per_s": data.nbytes / 1e9 / min(times)}


def w_export(spec: dict) -> dict:
    """The L1C stack -> float32 reflectance .npy (for eo-learn), date by date; the reference .npy;
    the first K dates as a stack (for the 10 m cloud runs)."""
    from eolulc.core.sentinel2 import radiometry_from_scale
    from eolulc.core.timestack import StackWriter, open_stack

    with open_stack(spec["l1c"]) as reader:
        info = reader.info
        radiometry = radiometry_from_scale(info.scales[0], info.offsets[0])  # as our steps convert DN
        t, h, w = info.n_dates, info.grid.height, info.grid.width
        out = np.lib.format.open_memmap(spec["bands_npy"], mode="w+", dtype=np.float32, shape=(t, h, w, info.n_bands))
        for i in range(t):
            out[i] = radiometry.apply(reader.read(dates=[i]))[0]
        out.flush()
        del out
        k = int(spec["dates_10m"])
        with StackWriter(spec["subset"], info.evolve(dates=info.dates[:k])) as writer:
            writer.write(reader.read(dates=list(range(k))))
        dates = [d.isoformat() for d in info.dates]
        grid = info.grid
    np.save(spec["reference_npy"], _reference(spec["reference"]).classes.astype(np.uint8))
    Path(spec["dates_json"]).write_text(json.dumps(dates))
    left, bottom, right, top = grid.bounds
    return {"bbox": [left, bottom, right, top], "crs_wkt": grid.crs_wkt, "radiometry": radiometry.reason,
            "first": dates[0], "last": dates[-1]}


def w_mask_stack(spec: dict) -> dict:
    """eo-learn's cloud mask (.npy, (T, H, W)) as a mask stack on the L1C grid and dates."""
    from eolulc.core.timestack import StackInfo, StackWriter, read_info

    info = read_info(spec["l1c"])
    mask = np.load(spec["npy"])
    out = StackInfo(grid=info.grid, dates=info.dates, bands=("CLM",), dtype="uint8", nodata=255)
    with StackWriter(spec["out"], out) as writer:
        writer.write(mask[..., None])
    return {}


def w_cloud(spec: dict) -> dict:
    from eolulc.core.cloudmask import CloudDetector

    detector = CloudDetector(processing_resolution=spec["resolution"], threads=spec["threads"])
    _ = detector.model  # loaded before the timing (as eo-learn's)
    rss = proc_status_kb("VmRSS")
    start = time.perf_counter()
    detector.run(spec["l1c"], spec["probability"], spec["mask"])
    return {"seconds": time.perf_counter() - start, "rss_before_mb": rss / 1024}


def w_features(spec: dict) -> dict:
    from eolulc.core.features import FeatureSpec, compute_features

    start = time.perf_counter()
    compute_features(spec["l1c"], spec["features"], FeatureSpec())
    return {"seconds": time.perf_counter() - start}


def w_filter(spec: dict) -> dict:
    from eolulc.core.interpolate import valid_fractions

    start = time.perf_counter()
    fractions = valid_fractions(spec["features"], spec["mask"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "kept": int(np.sum(fractions > MIN_VALID_FRACTION))}


def w_interpolate(spec: dict) -> dict:
    from eolulc.core.interpolate import interpolate_stack

    start = time.perf_counter()
    report = interpolate_stack(spec["features"], spec["interpolated"], start=spec["start"], end=spec["end"],
                               interval_days=INTERVAL_DAYS, mask_path=spec["mask"],
                               min_valid_fraction=MIN_VALID_FRACTION)
    return {"seconds": time.perf_counter() - start, "kept": len(report.kept), "grid": len(report.dates)}


def w_sampling(spec: dict) -> dict:
    """What train_model does before fitting: erosion, spatial split, sampling, reading the rows."""
    from eolulc.core.featureset import FeatureSet
    from eolulc.core.progress import ensure_progress
    from eolulc.core.reference import NO_CLASS
    from eolulc.core.sampling import sample_pixels
    from eolulc.core.train import TrainSettings, erode, gather_rows, split_mask, touching

    settings = TrainSettings(threads=spec["threads"])
    reference = _reference(spec["reference"])
    start = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    classes = erode(reference.classes, settings.erosion)
    labelled = classes != NO_CLASS
    test = split_mask(reference, labelled, settings, rng, [])
    candidates = labelled & ~test & ~touching(test)
    index = sample_pixels(candidates, classes, settings.samples, settings.sampling, rng)
    with FeatureSet([spec["interpolated"]]) as features:
        rows = gather_rows(features, index, ensure_progress(None))
    return {"seconds": time.perf_counter() - start, "rows": list(rows.shape)}


def w_train(spec: dict) -> dict:
    from eolulc.core.legend import read_legend
    from eolulc.core.train import TrainSettings, train_model

    reference = _reference(spec["reference"])
    start = time.perf_counter()
    result = train_model([spec["interpolated"]], reference, read_legend(None), TrainSettings(threads=spec["threads"]))
    seconds = time.perf_counter() - start
    result.model.save(spec["model"])
    return {"seconds": seconds, "trees": result.model.ensemble(1).booster.num_trees(),
            "test_overall_accuracy": result.report.get("overall_accuracy")}


def w_classify(spec: dict) -> dict:
    from eolulc.core.classify import classify
    from eolulc.core.model import load_model

    model = load_model(spec["model"])
    start = time.perf_counter()
    classify([spec["interpolated"]], model, spec["classification"], spec["confidence"], threads=spec["threads"])
    return {"seconds": time.perf_counter() - start}


def w_pipeline(spec: dict) -> dict:
    from eolulc.core.legend import read_legend
    from eolulc.core.pipeline import PipelineSettings, default_outputs, run_pipeline
    from eolulc.core.train import TrainSettings

    start = time.perf_counter()
    reference = _reference(spec["reference"])
    Path(spec["folder"]).mkdir(parents=True, exist_ok=True)
    settings = PipelineSettings(start=spec["start"], end=spec["end"], interval_days=INTERVAL_DAYS,
                                min_valid_fraction=MIN_VALID_FRACTION, processing_resolution=PROCESSING_RESOLUTION,
                                train=TrainSettings(threads=spec["threads"]))
    result = run_pipeline(spec["l1c"], reference, read_legend(None), default_outputs(spec["folder"]), settings)
    return {"seconds": time.perf_counter() - start, "overall_accuracy": result.report.get("overall_accuracy")}


WORKERS = {"floor": w_floor, "export": w_export, "mask_stack": w_mask_stack, "cloud": w_cloud,
           "features": w_features, "filter": w_filter, "interpolate": w_interpolate, "sampling": w_sampling,
           "train": w_train, "classify": w_classify, "pipeline": w_pipeline}


def worker_main(kind: str, spec: dict, link_dir: str) -> None:
    sys.path.insert(0, link_dir)
    # the packages our steps import on first use are imported before the timers start, as
    # eo-learn's side imports its own before it times a task (about 0.1 s for rasterio)
    import rasterio  # noqa: F401
    from osgeo import gdal  # noqa: F401

    result = WORKERS[kind](spec)
    result["peak_rss_mb"] = peak_rss_kb() / 1024
    print_result(RESULT, result)


# ------------------------------------------------------------------------------------ orchestration
class Runner:
    def __init__(self, link_dir: Path, threads: int, venv: Path) -> None:
        self.link_dir, self.threads, self.venv = link_dir, threads, venv
        self.env = thread_env(threads)

    def ours(self, kind: str, spec: dict) -> dict:
        spec = {**spec, "threads": self.threads}
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--spec", json.dumps(spec),
                   "--package-dir", str(self.link_dir)]
        return run_json(command, RESULT, self.env, f"our worker {kind}")

    def eolearn(self, mode: str, spec: dict) -> dict:
        command = [str(self.venv / "bin" / "python"), str(BENCH / "eolearn_side.py"), mode, json.dumps(spec)]
        return run_json(command, "EOLEARN-RESULT ", self.env, f"eo-learn {mode}")

    def qgis_pipeline(self, spec: dict, root: Path) -> dict:
        sys.path.insert(0, str(REPO / "tools"))
        from qgis_env import throwaway_profile_env  # noqa: E402  (the tests' throw-away profile)

        env = {**throwaway_profile_env(self.link_dir, root),
               **{k: v for k, v in self.env.items() if k.endswith("THREADS") or k == "OMP_WAIT_POLICY"}}
        out = root / "out"
        out.mkdir(parents=True, exist_ok=True)
        params = {"INPUT": spec["l1c"], "REFERENCE": spec["reference"], "START": spec["start"], "END": spec["end"],
                  "INTERVAL_DAYS": INTERVAL_DAYS, "PROCESSING_RESOLUTION": PROCESSING_RESOLUTION,
                  "OUTPUT": str(out / "map.tif"), "OUTPUT_REFERENCE": str(out / "reference.tif"),
                  "OUTPUT_AGREEMENT": str(out / "agreement.tif"), "OUTPUT_CONFIDENCE": str(out / "confidence.tif"),
                  "OUTPUT_MODEL": str(out / "model.json"), "OUTPUT_REPORT": str(out / "report.html")}
        command = [QGIS_PROCESS, "--json", "run", "eolulc:lulcpipeline", "--"] + [f"{k}={v}" for k, v in params.items()]
        log_path = root / "qgis_process.log"
        with open(log_path, "w") as log:
            returncode, seconds, peak_mb = run_measured(command, env, log)
        if returncode != 0:
            raise RuntimeError(f"qgis_process failed ({returncode}):\n{log_path.read_text()[-3000:]}")
        return {"seconds": seconds, "peak_rss_mb": peak_mb, "map": str(out / "map.tif")}


def read_stack(path: str) -> np.ndarray:
    from eolulc.core.timestack import open_stack

    with open_stack(path) as reader:
        return reader.read()


def summary(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "all": values}


def bench_size(size: int, args: argparse.Namespace, runner: Runner, root: Path) -> dict:
    from eolulc.demo.synthetic import make_scene_stack

    work = root / f"n{size}"
    work.mkdir(parents=True, exist_ok=True)
    log = lambda text: print(f"[{size}] {text}", flush=True)  # noqa: E731
    t0 = time.perf_counter()
    made = make_scene_stack(work / "data", size=(size, size), n_dates=68, seed=args.seed, realistic=True)
    log(f"synthetic patch written in {time.perf_counter() - t0:.0f} s ({made.cloud_source}; "
        f"mean planted cloud {100 * float(np.mean(made.cloud_fraction)):.0f} %)")
    files = {k: str(work / v) for k, v in {
        "bands_npy": "bands.npy", "reference_npy": "reference.npy", "dates_json": "dates.json",
        "subset": "l1c_subset.tif", "eopatch": "eopatch"}.items()}
    l1c, reference = str(made.l1c), str(made.reference)
    meta = runner.ours("export", {"l1c": l1c, "reference": reference, "dates_10m": args.dates_10m, **files})
    import pyproj

    epsg = pyproj.CRS.from_wkt(meta["crs_wkt"]).to_epsg() or 32633
    first = datetime.fromisoformat(meta["first"]).date()
    last = datetime.fromisoformat(meta["last"]).date() + timedelta(days=1)
    start, end = first.isoformat(), last.isoformat()
    common = {"bbox": meta["bbox"], "epsg": epsg, **files}
    prepared = runner.eolearn("prepare", {**common, "compress_level": args.eolearn_compress})
    npy_mb = sum(p.stat().st_size for p in Path(files["eopatch"]).rglob("*") if p.is_file()) / 1e6
    log(f"EOPatch saved ({npy_mb:.0f} MB, {prepared['save_s']:.1f} s); grid {start} .. {end}, {INTERVAL_DAYS} d")
    floor = runner.ours("floor", files)

    p = lambda name: str(work / name)  # noqa: E731
    rows: dict[str, dict[str, list]] = {}

    def add(step: str, side: str, seconds: float, peak: float) -> None:
        entry = rows.setdefault(step, {})
        entry.setdefault(side + "_s", []).append(seconds)
        entry.setdefault(side + "_rss", []).append(peak)

    eo_last: dict = {}
    ours_last: dict = {}
    for repeat in range(args.repeats):
        log(f"repeat {repeat + 1}/{args.repeats}: eo-learn 10 m cloud mask on {args.dates_10m} dates ...")
        r = runner.eolearn("cloud10", {**common, "dates": args.dates_10m, "out_clp": p("eo_clp10.npy"),
                                       "out_clm": p("eo_clm10.npy")})
        add("cloud mask 10 m", "eo", r["seconds"], r["peak_rss_mb"])
        log("eo-learn workflow ...")
        r = runner.eolearn("workflow", {
            **common, "threads": runner.threads, "factor": int(PROCESSING_RESOLUTION // 10), "start": start,
            "end": end, "interval_days": INTERVAL_DAYS, "min_valid_fraction": MIN_VALID_FRACTION,
            "samples": SAMPLES, "out_interpolated": p("eo_interp.npy"), "out_clm": p("eo_clm.npy"),
            "out_clp": p("eo_clp.npy"), "out_map": p("eo_map.npy")})
        eo_last = r
        s = r["steps"]
        add("load", "eo", s["load"]["seconds"], s["load"]["peak_rss_mb"])
        add(COARSE, "eo", s["cloud_mask"]["seconds"], s["cloud_mask"]["peak_rss_mb"])
        add("features (bands + NDI x3)", "eo", s["indices"]["seconds"] + s["merge"]["seconds"],
            max(s["indices"]["peak_rss_mb"], s["merge"]["peak_rss_mb"]))
        add("scene filter", "eo", s["scene_filter"]["seconds"], s["scene_filter"]["peak_rss_mb"])
        add("interpolation", "eo", s["interpolation"]["seconds"], s["interpolation"]["peak_rss_mb"])
        add("sampling", "eo", s["sampling"]["seconds"], s["sampling"]["peak_rss_mb"])
        add("training", "eo", s["training"]["seconds"], s["training"]["peak_rss_mb"])
        add("prediction", "eo", s["reshape"]["seconds"] + s["prediction"]["seconds"],
            max(s["reshape"]["peak_rss_mb"], s["prediction"]["peak_rss_mb"]))
        add("WHOLE PIPELINE", "eo", r["whole_s"], r["process_peak_rss_mb"])
        if repeat == 0:
            runner.ours("mask_stack", {"l1c": l1c, "npy": p("eo_clm.npy"), "out": p("eo_clm.tif")})

        log("ours: steps, each in a fresh process ...")
        r = runner.ours("cloud", {"l1c": files["subset"], "resolution": None, "probability": p("clp10.tif"),
                                  "mask": p("clm10.tif")})
        add("cloud mask 10 m", "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("cloud", {"l1c": l1c, "resolution": PROCESSING_RESOLUTION, "probability": p("clp_coarse.tif"),
                                  "mask": p("clm_coarse.tif")})
        add(COARSE, "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("features", {"l1c": l1c, "features": p("features.tif")})
        add("features (bands + NDI x3)", "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("filter", {"features": p("features.tif"), "mask": p("eo_clm.tif")})
        add("scene filter", "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("interpolate", {"features": p("features.tif"), "mask": p("eo_clm.tif"),
                                        "interpolated": p("interp.tif"), "start": start, "end": end})
        ours_last["interpolate"] = r
        add("interpolation", "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("sampling", {"reference": reference, "interpolated": p("interp.tif")})
        add("sampling", "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("train", {"reference": reference, "interpolated": p("interp.tif"), "model": p("model.json")})
        ours_last["train"] = r
        add("training", "ours", r["seconds"], r["peak_rss_mb"])
        r = runner.ours("classify", {"interpolated": p("interp.tif"), "model": p("model.json"),
                                     "classification": p("class.tif"), "confidence": p("confidence.tif")})
        add("prediction", "ours", r["seconds"], r["peak_rss_mb"])
        log("ours: run_pipeline ...")
        r = runner.ours("pipeline", {"l1c": l1c, "reference": reference, "folder": p("pipeline"), "start": start,
                                     "end": end})
        ours_last["pipeline"] = r
        add("WHOLE PIPELINE", "ours", r["seconds"], r["peak_rss_mb"])
        if not args.no_qgis:
            log("ours: qgis_process.bin eolulc:lulcpipeline ...")
            r = runner.qgis_pipeline({"l1c": l1c, "reference": reference, "start": start, "end": end},
                                     work / f"qgis{repeat}")
            ours_last["qgis"] = r
            add("WHOLE via qgis_process", "ours", r["seconds"], r["peak_rss_mb"])

    # agreement
    from eolulc.core.timestack import open_stack

    agreement: dict[str, Any] = {}
    ours10 = read_stack(p("clp10.tif"))[..., 0].astype(np.float64)
    eo10 = np.load(p("eo_clp10.npy")).astype(np.float64)
    agreement["cloud_probability_10m_max_abs_dp"] = float(np.nanmax(np.abs(ours10 - eo10)))
    with open_stack(p("clm_coarse.tif")) as reader:
        ours_clm = reader.read()[..., 0]
    eo_clm = np.load(p("eo_clm.npy"))
    agreement["cloud_mask_coarse_agree_pct"] = 100.0 * float(np.mean((ours_clm == 1) == (eo_clm == 1)))
    ours_clp = read_stack(p("clp_coarse.tif"))[..., 0].astype(np.float64)
    agreement["cloud_probability_coarse_max_abs_dp"] = float(np.nanmax(np.abs(ours_clp - np.load(p("eo_clp.npy")))))
    agreement["cloud_probability_coarse_mean_abs_dp"] = float(np.nanmean(np.abs(ours_clp - np.load(p("eo_clp.npy")))))
    del ours_clp, ours_clm, eo_clm
    ours_i = read_stack(p("interp.tif"))
    eo_i = np.load(p("eo_interp.npy"))
    if ours_i.shape == eo_i.shape:
        agreement["interpolation_max_abs_d"] = float(np.nanmax(np.abs(ours_i - eo_i)))
        agreement["interpolation_same_nan"] = bool(np.array_equal(np.isnan(ours_i), np.isnan(eo_i)))
    else:
        agreement["interpolation_shape_mismatch"] = [list(ours_i.shape), list(eo_i.shape)]
    del ours_i, eo_i
    truth = np.load(files["reference_npy"])
    eo_map = np.load(p("eo_map.npy"))
    ours_map = read_stack(str(Path(p("pipeline")) / "classification.tif"))[0, ..., 0]
    step_map = read_stack(p("class.tif"))[0, ..., 0]
    labelled = truth > 0
    agreement["classification_agree_pct"] = 100.0 * float(np.mean(ours_map == eo_map))
    agreement["classification_agree_steps_pct"] = 100.0 * float(np.mean(step_map == eo_map))
    agreement["map_vs_reference_pct"] = {"ours_pipeline": 100.0 * float(np.mean(ours_map[labelled] == truth[labelled])),
                                         "eolearn": 100.0 * float(np.mean(eo_map[labelled] == truth[labelled]))}
    if "qgis" in ours_last:
        qmap = read_stack(ours_last["qgis"]["map"])[0, ..., 0]
        agreement["qgis_vs_core_pipeline_map_equal_pct"] = 100.0 * float(np.mean(qmap == ours_map))
    table = {step: {"eolearn_s": summary(v["eo_s"]) if "eo_s" in v else None,
                    "ours_s": summary(v["ours_s"]) if "ours_s" in v else None,
                    "eolearn_peak_rss_mb": max(v["eo_rss"]) if "eo_rss" in v else None,
                    "ours_peak_rss_mb": max(v["ours_rss"]) if "ours_rss" in v else None}
             for step, v in rows.items()}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"size": size, "floor": floor, "eopatch_mb": npy_mb, "grid": [start, end, INTERVAL_DAYS],
            "steps": table, "agreement": agreement,
            "eolearn": {k: v for k, v in eo_last.items() if k not in ("steps",)} | {"steps": eo_last.get("steps")},
            "ours": ours_last, "planted_cloud_pct": 100.0 * float(np.mean(made.cloud_fraction))}


ORDER = ("load", "cloud mask 10 m", COARSE, "features (bands + NDI x3)", "scene filter", "interpolation",
         "sampling", "training", "prediction", "WHOLE PIPELINE", "WHOLE via qgis_process")


def format_result(result: dict, repeats: int, dates_10m: int) -> str:
    a = result["agreement"]
    notes = {
        "cloud mask 10 m": f"max|dp| {a['cloud_probability_10m_max_abs_dp']:.1e} ({dates_10m} dates)",
        COARSE: f"mask = {a['cloud_mask_coarse_agree_pct']:.2f} %, mean|dp| "
                           f"{a['cloud_probability_coarse_mean_abs_dp']:.3f}",
        "interpolation": (f"max|d| {a['interpolation_max_abs_d']:.1e}, NaN same: {a['interpolation_same_nan']}"
                          if "interpolation_max_abs_d" in a else f"shape {a.get('interpolation_shape_mismatch')}"),
        "prediction": f"maps = {a['classification_agree_steps_pct']:.3f} %",
        "WHOLE PIPELINE": f"maps = {a['classification_agree_pct']:.3f} %",
    }
    if "qgis_vs_core_pipeline_map_equal_pct" in a:
        notes["WHOLE via qgis_process"] = \
            f"= core map {a['qgis_vs_core_pipeline_map_equal_pct']:.3f} %"
    head = ["step", "eo-learn s", "ours s", "ratio", "eo RSS MB", "ours RSS MB", "RSS ratio", "agreement"]
    if repeats > 1:
        head[1:3] = ["eo-learn s min/med", "ours s min/med"]
    lines = []
    whole_eo = result["steps"]["WHOLE PIPELINE"]["eolearn_s"]
    for step in ORDER:
        row = result["steps"].get(step)
        if row is None:
            continue
        eo, ours = row["eolearn_s"], row["ours_s"]
        if step == "WHOLE via qgis_process":
            eo = whole_eo

        def sec(x):
            if x is None:
                return "-"
            return f"{x['min']:.2f}" if repeats == 1 else f"{x['min']:.2f}/{x['median']:.2f}"

        ratio = f"{eo['min'] / ours['min']:.2f}x" if eo and ours else "-"
        eo_rss = row["eolearn_peak_rss_mb"] if step != "WHOLE via qgis_process" else \
            result["steps"]["WHOLE PIPELINE"]["eolearn_peak_rss_mb"]
        ours_rss = row["ours_peak_rss_mb"]
        rss_ratio = f"{ours_rss / eo_rss:.2f}" if eo_rss and ours_rss else "-"
        lines.append([step, sec(eo), sec(ours), ratio, f"{eo_rss:.0f}" if eo_rss else "-",
                      f"{ours_rss:.0f}" if ours_rss else "-", rss_ratio, notes.get(step, "")])
    widths = [max(len(str(r[i])) for r in [head] + lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500", help="patch sides in px, comma-separated (500)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; min and median (1)")
    parser.add_argument("--dates-10m", type=int, default=8, help="dates of the 10 m cloud-mask runs (8)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both sides (all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eolearn-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--eolearn-compress", type=int, default=1,
                        help="EOPatch.save compress_level: 1 = eo-learn's default gzip (1), 0 = plain .npy")
    parser.add_argument("--no-qgis", action="store_true", help="skip the qgis_process.bin run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--package-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, json.loads(args.spec), args.package_dir)
        return 0

    if not (args.eolearn_venv / "bin" / "python").exists() or subprocess.run(
            [str(args.eolearn_venv / "bin" / "python"), "-c",
             "import eolearn.mask.extra.cloud_mask, lightgbm, s2cloudless, numba"],
            capture_output=True).returncode != 0:
        print(f"setting up eo-learn in {args.eolearn_venv} ...", flush=True)
        subprocess.run(["bash", str(BENCH / "setup_eolearn.sh"), str(args.eolearn_venv)], check=True)
    versions = subprocess.run(
        [str(args.eolearn_venv / "bin" / "python"), "-c",
         "import importlib.metadata as m; print({p: m.version(p) for p in "
         "('eo-learn','s2cloudless','lightgbm','numpy','numba')})"],
        capture_output=True, text=True).stdout.strip()

    link_dir = package_dir()
    sys.path.insert(0, str(link_dir))
    runner = Runner(link_dir, args.threads, args.eolearn_venv)
    root = Path(tempfile.mkdtemp(prefix="eolulc_vs_eolearn_"))
    if not args.keep:
        atexit.register(shutil.rmtree, root, True)
    else:
        print(f"work folder: {root}")
    load_before = os.getloadavg()
    began = time.perf_counter()
    results = []
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        results.append(bench_size(size, args, runner, root))
    total = time.perf_counter() - began
    load_after = os.getloadavg()

    print()
    print(f"EO LULC vs eo-learn ({versions}); {os.cpu_count()} CPUs, {args.threads} threads each side, "
          f"{args.repeats} repeat(s); ratio = eo-learn s / ours s (>1: we are faster); RSS ratio = ours / eo-learn")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} (the machine is shared: other jobs slow "
          f"both sides)")
    for r in results:
        f = r["floor"]
        eo = r["eolearn"]
        print()
        print(f"{r['size']} x {r['size']} px x 68 dates x 13 bands (synthetic, {r['planted_cloud_pct']:.0f} % planted "
              f"cloud; EOPatch {r['eopatch_mb']:.0f} MB on disk); grid {r['grid'][0]}..{r['grid'][1]} every "
              f"{r['grid'][2]} d; eo-learn kept {eo['dates_kept']}/{eo['dates_in']} dates, ours "
              f"{r['ours']['interpolate']['kept']}; {eo['grid_dates']} grid dates")
        print(f"machine floor: numpy pass over the float32 stack ({f['gb']:.2f} GB) {f['gb_per_s']:.1f} GB/s "
              f"({f['seconds']:.2f} s)")
        print(format_result(r, args.repeats, args.dates_10m))
        no_load = r["steps"]["WHOLE PIPELINE"]["eolearn_s"]["min"] - r["steps"]["load"]["eolearn_s"]["min"]
        print(f"eo-learn whole without its EOPatch load: {no_load:.2f} s, ratio "
              f"{no_load / r['steps']['WHOLE PIPELINE']['ours_s']['min']:.2f}x")
        a = r["agreement"]
        print(f"maps vs reference (labelled px): ours {a['map_vs_reference_pct']['ours_pipeline']:.1f} %, eo-learn "
              f"{a['map_vs_reference_pct']['eolearn']:.1f} %; eo-learn {eo['train_pixels']} training px, "
              f"{eo['trees']} trees (iterations x classes); ours {r['ours']['train']['trees']}")
    print()
    print("Notes: eo-learn 'load' is EOPatch.load (gzipped .npy.gz by default; ours reads GeoTIFF inside each step); "
          "'features' = NDI x3 + band extract/merge (eo-learn) vs compute_features (6 bands + 3 indices, GeoTIFF "
          "in/out); ours 'scene filter' is valid_fractions alone, which interpolate_stack also runs inside "
          "'interpolation'; ours 'sampling' = erosion + spatial split + sampling + reading the rows, and 'training' "
          "= train_model (the same sampling, LightGBM with early stopping, test-split report) while eo-learn's "
          "'training' is LGBMClassifier.fit alone (100 trees); 'prediction' = reshape + predict (eo-learn, in memory) "
          "vs classify (GeoTIFF in, class + confidence out); eo-learn step RSS is the process's peak during the step "
          "(what earlier steps left in memory included), WHOLE its peak over the workflow; ours is each fresh "
          "process's peak. Our interpolation step uses eo-learn's cloud mask (so its max|d| compares like with "
          "like); our WHOLE PIPELINE uses our own 160 m cloud mask. WHOLE via qgis_process: ratio against eo-learn's "
          "whole workflow.")
    print(f"(total {total:.0f} s)")
    doc = {"settings": vars(args) | {"out": str(args.out), "eolearn_venv": str(args.eolearn_venv),
                                     "omp_wait_policy": "PASSIVE"},
           "versions_eolearn_venv": versions,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": load_before,
                       "load_after": load_after},
           "results": results, "total_s": total, "generated": datetime.now().isoformat(timespec="seconds")}
    doc["settings"].pop("worker", None), doc["settings"].pop("spec", None), doc["settings"].pop("package_dir", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
