"""eo-learn's side of ``bench/compare_eolearn.py``: runs ONLY in the eo-learn venv (eo-learn 1.5,
s2cloudless, LightGBM; see ``bench/setup_eolearn.sh``), never imports the plugin.

Modes (``python eolearn_side.py MODE SPEC_JSON``; the last stdout line is a JSON result):

- ``prepare``: build the EOPatch (``data/BANDS`` float32 L1C reflectance (T, H, W, 13),
  ``mask/IS_DATA``, ``mask_timeless/LULC``) from the orchestrator's ``.npy`` files and save it
  with ``EOPatch.save`` (``compress_level`` 1 = eo-learn's default, gzipped ``.npy.gz``; 0 = plain ``.npy``).
- ``cloud10``: ``CloudMaskTask`` (s2cloudless at 10 m, probabilities kept) on the first K dates.
- ``workflow``: the whole LULC workflow, task after task as an ``EOWorkflow`` would call them,
  each timed, with the peak RSS of each step (``VmHWM`` reset through ``/proc/self/clear_refs``
  before each step, so a step's peak includes what earlier steps left in memory, as in a real
  workflow): load, cloud mask at the processing resolution, NDI x3 + feature merge, scene filter,
  linear interpolation, erosion + fraction sampling, LGBMClassifier fit, reshape + predict.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")

import numpy as np  # noqa: E402

#: L1C band order of BANDS
L1C = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
FEATURE_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
INDICES = (("NDVI", "B08", "B04"), ("NDWI", "B03", "B08"), ("NDBI", "B11", "B08"))


def status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Steps:
    """Times steps and records each one's peak RSS."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.process_peak_kb = status_kb("VmHWM")
        self.resettable = reset_peak()

    def run(self, name: str, function, *args, **kwargs):
        self.process_peak_kb = max(self.process_peak_kb, status_kb("VmHWM"))
        reset_peak()
        start = time.perf_counter()
        result = function(*args, **kwargs)
        seconds = time.perf_counter() - start
        peak = status_kb("VmHWM")
        self.process_peak_kb = max(self.process_peak_kb, peak)
        self.rows[name] = {"seconds": seconds, "peak_rss_mb": peak / 1024, "rss_after_mb": status_kb("VmRSS") / 1024}
        return result


class ValidDataFractionPredicate:
    """The eo-learn LULC example's predicate."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, array: np.ndarray) -> bool:
        return bool(np.sum(array.astype(np.uint8)) / np.prod(array.shape) > self.threshold)


def prepare(spec: dict) -> dict:
    from eolearn.core import EOPatch, FeatureType, OverwritePermission
    from sentinelhub import CRS, BBox

    bands = np.load(spec["bands_npy"], mmap_mode="r")
    t, h, w, _ = bands.shape
    dates = [dt.datetime.fromisoformat(d) for d in json.load(open(spec["dates_json"]))]
    patch = EOPatch(bbox=BBox(tuple(spec["bbox"]), crs=CRS(spec["epsg"])), timestamps=dates)
    patch[FeatureType.DATA, "BANDS"] = np.asarray(bands, dtype=np.float32)
    patch[FeatureType.MASK, "IS_DATA"] = np.ones((t, h, w, 1), bool)
    patch[FeatureType.MASK_TIMELESS, "LULC"] = np.load(spec["reference_npy"]).astype(np.uint8)[..., None]
    start = time.perf_counter()
    patch.save(spec["eopatch"], overwrite_permission=OverwritePermission.OVERWRITE_PATCH,
               compress_level=int(spec.get("compress_level", 1)))
    return {"save_s": time.perf_counter() - start}


def cloud10(spec: dict) -> dict:
    from eolearn.core import EOPatch, FeatureType
    from eolearn.mask.extra.cloud_mask import CloudMaskTask
    from sentinelhub import CRS, BBox

    k = int(spec["dates"])
    bands = np.array(np.load(spec["bands_npy"], mmap_mode="r")[:k], dtype=np.float32)
    dates = [dt.datetime.fromisoformat(d) for d in json.load(open(spec["dates_json"]))][:k]
    patch = EOPatch(bbox=BBox(tuple(spec["bbox"]), crs=CRS(spec["epsg"])), timestamps=dates)
    patch[FeatureType.DATA, "BANDS"] = bands
    patch[FeatureType.MASK, "IS_DATA"] = np.ones(bands.shape[:3] + (1,), bool)
    task = CloudMaskTask((FeatureType.DATA, "BANDS"), (FeatureType.MASK, "IS_DATA"), (FeatureType.MASK, "CLM"),
                         output_proba_feature=(FeatureType.DATA, "CLP"), all_bands=True, threshold=0.4,
                         average_over=4, dilation_size=2)
    _ = task.classifier.classifier  # load the model outside the timing
    rss_before = status_kb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    patch = task(patch)
    seconds = time.perf_counter() - start
    np.save(spec["out_clp"], patch[FeatureType.DATA, "CLP"][..., 0])
    np.save(spec["out_clm"], patch[FeatureType.MASK, "CLM"][..., 0].astype(np.uint8))
    return {"seconds": seconds, "peak_rss_mb": status_kb("VmHWM") / 1024, "rss_before_mb": rss_before / 1024}


def workflow(spec: dict) -> dict:
    from eolearn.core import (
        EOPatch,
        ExtractBandsTask,
        FeatureType,
        MergeFeatureTask,
        RemoveFeatureTask,
        ZipFeatureTask,
    )
    from eolearn.features import NormalizedDifferenceIndexTask, SimpleFilterTask
    from eolearn.features.extra.interpolation import LinearInterpolationTask
    from eolearn.features.feature_manipulation import SpatialResizeTask
    from eolearn.features.utils import ResizeParam
    from eolearn.geometry import ErosionTask
    from eolearn.mask.extra.cloud_mask import CloudMaskTask
    from eolearn.ml_tools import FractionSamplingTask
    from lightgbm import LGBMClassifier
    from sentinelhub import CRS, BBox

    threads = int(spec["threads"])
    factor = int(spec["factor"])
    grid = (spec["start"], spec["end"], int(spec["interval_days"]))
    DATA, MASK, TIMELESS = FeatureType.DATA, FeatureType.MASK, FeatureType.MASK_TIMELESS  # noqa: N806
    FEATURES, VALID = (DATA, "FEATURES"), (MASK, "VALID")  # noqa: N806

    # tasks are built (and models loaded, numba compiled) before any timing: warm start
    cloud_task = CloudMaskTask((DATA, "BANDS_C"), (MASK, "IS_DATA_C"), (MASK, "CLM_C"),
                               output_proba_feature=(DATA, "CLP_C"), all_bands=True, threshold=0.4,
                               average_over=4, dilation_size=2)
    _ = cloud_task.classifier.classifier
    down = SpatialResizeTask(resize_type=ResizeParam.SCALE_FACTORS, height_param=1 / factor, width_param=1 / factor,
                             features=[(DATA, "BANDS", "BANDS_C")])
    valid_task = ZipFeatureTask({MASK: ["IS_DATA", "CLM"]}, VALID, lambda is_data, clm: is_data & ~clm)
    ndi_tasks = [NormalizedDifferenceIndexTask((DATA, "BANDS"), (DATA, name), (L1C.index(a), L1C.index(b)))
                 for name, a, b in INDICES]
    extract = ExtractBandsTask((DATA, "BANDS"), (DATA, "BANDS6"), [L1C.index(b) for b in FEATURE_BANDS])
    merge = MergeFeatureTask({DATA: ["BANDS6"] + [n for n, _, _ in INDICES]}, FEATURES)
    drop = RemoveFeatureTask([(DATA, "BANDS"), (DATA, "BANDS6")] + [(DATA, n) for n, _, _ in INDICES])
    scene_filter = SimpleFilterTask(VALID, ValidDataFractionPredicate(float(spec["min_valid_fraction"])))
    interpolation = LinearInterpolationTask(FEATURES, mask_feature=VALID, resample_range=grid,
                                            copy_features=[(TIMELESS, "LULC")])
    erosion = ErosionTask((TIMELESS, "LULC", "LULC_ERODED"), disk_radius=1)

    # numba warm-up of the interpolation on a tiny patch (not timed)
    tiny = EOPatch(bbox=BBox((0, 0, 20, 20), crs=CRS(32633)),
                   timestamps=[dt.datetime.fromisoformat(d) for d in json.load(open(spec["dates_json"]))])
    tiny[FEATURES] = np.random.default_rng(0).random((len(tiny.timestamps), 2, 2, 9), dtype=np.float32)
    tiny[VALID] = np.ones((len(tiny.timestamps), 2, 2, 1), bool)
    tiny[TIMELESS, "LULC"] = np.ones((2, 2, 1), np.uint8)
    interpolation(tiny)

    steps = Steps()
    began = time.perf_counter()
    patch = steps.run("load", EOPatch.load, spec["eopatch"], lazy_loading=False)
    t, h, w, _ = patch[DATA, "BANDS"].shape

    def cloud_mask(patch):
        patch = down(patch)
        coarse = patch[DATA, "BANDS_C"]
        patch[MASK, "IS_DATA_C"] = np.ones(coarse.shape[:3] + (1,), bool)
        patch = cloud_task(patch)
        up = SpatialResizeTask(resize_type=ResizeParam.NEW_SIZE, height_param=h, width_param=w,
                               features=[(DATA, "CLP_C", "CLP")])
        patch = up(patch)
        probability = patch[DATA, "CLP"][..., 0]
        mask = cloud_task.classifier.get_mask_from_prob(probability, threshold=0.4)
        patch[MASK, "CLM"] = (mask[..., None] * patch[MASK, "IS_DATA"]).astype(bool)
        for feature in ((DATA, "BANDS_C"), (MASK, "IS_DATA_C"), (MASK, "CLM_C"), (DATA, "CLP_C")):
            del patch[feature]
        return valid_task(patch)

    patch = steps.run("cloud_mask", cloud_mask, patch)
    clm_all = patch[MASK, "CLM"][..., 0].astype(np.uint8)
    clp_all = patch[DATA, "CLP"][..., 0]

    def indices(patch):
        for task in ndi_tasks:
            patch = task(patch)
        return patch

    patch = steps.run("indices", indices, patch)
    patch = steps.run("merge", lambda p: drop(merge(extract(p))), patch)
    n_before = len(patch.timestamps)
    patch = steps.run("scene_filter", scene_filter, patch)
    kept_dates = [d.isoformat() for d in patch.timestamps]
    patch = steps.run("interpolation", interpolation, patch)
    interpolated = patch[FEATURES]
    n_grid = interpolated.shape[0]

    def sampling(patch):
        patch = erosion(patch)
        eroded = patch[TIMELESS, "LULC_ERODED"]
        labelled = int(np.count_nonzero(eroded))
        fraction = min(1.0, float(spec["samples"]) / max(1, labelled))
        sampler = FractionSamplingTask(features_to_sample=[(DATA, "FEATURES", "FEATURES_SAMPLED"),
                                                           (TIMELESS, "LULC_ERODED", "LULC_SAMPLED")],
                                       sampling_feature=(TIMELESS, "LULC_ERODED"), fraction=fraction,
                                       exclude_values=[0])
        patch = sampler(patch, seed=42)
        sampled = patch[DATA, "FEATURES_SAMPLED"]  # (T, n, 1, F)
        x = np.moveaxis(sampled, 0, 2).reshape(sampled.shape[1], -1)  # (n, T*F), date-major
        y = patch[TIMELESS, "LULC_SAMPLED"].ravel()
        return patch, x, y

    patch, x, y = steps.run("sampling", sampling, patch)

    def fit():
        model = LGBMClassifier(objective="multiclass", num_class=len(np.unique(y)), metric="multi_logloss",
                               random_state=42, n_jobs=threads, verbosity=-1)
        model.fit(x, y)
        return model

    model = steps.run("training", fit)

    def reshape(patch):
        features = patch[FEATURES]
        return np.moveaxis(features, 0, 2).reshape(h * w, -1)

    rows = steps.run("reshape", reshape, patch)
    labels = steps.run("prediction", lambda: model.predict(rows).reshape(h, w))
    total = time.perf_counter() - began

    np.save(spec["out_interpolated"], np.asarray(interpolated, np.float32))
    np.save(spec["out_clm"], clm_all)
    np.save(spec["out_clp"], clp_all.astype(np.float32))
    np.save(spec["out_map"], labels.astype(np.uint8))
    return {"steps": steps.rows, "whole_s": total, "process_peak_rss_mb": steps.process_peak_kb / 1024,
            "peak_reset_supported": steps.resettable, "dates_in": n_before, "dates_kept": len(kept_dates),
            "kept_dates": kept_dates, "grid_dates": n_grid, "train_pixels": int(len(y)),
            "trees": int(model.booster_.num_trees())}


MODES = {"prepare": prepare, "cloud10": cloud10, "workflow": workflow}

if __name__ == "__main__":
    mode, spec_text = sys.argv[1], sys.argv[2]
    result = MODES[mode](json.loads(spec_text))
    result["pid"] = os.getpid()
    print("EOLEARN-RESULT " + json.dumps(result), flush=True)
