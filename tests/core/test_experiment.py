"""The cloud and resampling experiments on the real L1C scenes and the LULC polygons."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

from eolulc.core.experiment import ExperimentSettings, check_cloud_mask, run_experiment
from eolulc.core.experiment_memory import variant_memory_bytes
from eolulc.core.experiment_stats import confusion_differences, paired
from eolulc.core.features import FeatureSpec, has_feature_bands
from eolulc.core.legend import read_legend
from eolulc.core.pipeline import PipelineSettings, default_outputs, run_pipeline
from eolulc.core.progress import Progress
from eolulc.core.timestack import read_info
from eolulc.core.train import TrainSettings
from eolulc.core.variants import (
    Variant,
    cloud_variants,
    interval_variants,
    parse_classifiers,
    parse_intervals,
    parse_resolutions,
    with_factors,
)
from eolulc.core.workers import plan_workers

SEEDS = (1, 7)


@pytest.fixture(scope="module")
def reference(scene_reference):
    return scene_reference


def _base() -> PipelineSettings:
    # the experiment does not smooth: its variants equal the pipeline without smoothing
    return PipelineSettings(train=TrainSettings(samples=4000, threads=2), smoothing=False)


@pytest.fixture(scope="module")
def cloud(scene_stack, reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cloud")
    result = run_experiment(str(scene_stack), reference, read_legend(), cloud_variants(), SEEDS, folder,
                            ExperimentSettings(base=_base(), json_path=folder / "experiment.json"))
    return folder, result


def test_cloud_variants_equal_the_pipeline(cloud, scene_stack, reference, tmp_path):
    folder, result = cloud
    assert [s["n_ok"] for s in result.summary] == [2, 2, 2, 2]
    seed = SEEDS[1]
    settings = replace(_base(), train=replace(_base().train, seed=seed))
    expected = run_pipeline(str(scene_stack), reference, read_legend(), default_outputs(tmp_path), settings).report
    row = next(r for r in result.runs if r["variant"] == "filter on, cloud mask on" and r["seed"] == seed)
    for metric in ("overall_accuracy", "f1_weighted", "kappa"):
        assert row[metric] == pytest.approx(expected[metric], abs=1e-12), metric
    assert row["n_features"] == len(json.loads((tmp_path / "model.json").read_text())["metadata"]["feature_names"])
    # the run's test confusion matrix is the pipeline's (on the experiment's labels: the reference's classes)
    labels = result.document["confusion_labels"]
    pipeline = dict(zip(expected["labels"], expected["confusion"]["counts"]))
    for i, truth in enumerate(labels):
        for j, mapped in enumerate(labels):
            want = pipeline[truth][expected["labels"].index(mapped)] if truth in pipeline and mapped in pipeline else 0
            assert row["confusion"][i][j] == want, (truth, mapped)


def test_report_outputs_and_words(cloud):
    folder, result = cloud
    page = (folder / "experiment.html").read_text()
    assert "<svg" in page and "Does cloud handling change accuracy beyond noise here?" in page
    assert "paired t" in page or "paired difference" in page
    rows = list(csv.DictReader((folder / "experiment.csv").read_text().splitlines()))
    assert len(rows) == 4 * len(SEEDS) and {r["status"] for r in rows} == {"ok"}
    document = json.loads((folder / "experiment.json").read_text())
    assert document["best_variant"] == result.best and len(document["comparisons"]) == 3
    assert (folder / "best_classification.tif").is_file() and (folder / "best_classification.qml").is_file()
    assert "paletted" in (folder / "best_classification.qml").read_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_failed_variant_is_reported_and_intervals_compared(scene_stack, reference, tmp_path, workers):
    variants = interval_variants((16, 32)) + [Variant("impossible grid", {"interval_days": 0})]
    result = run_experiment(str(scene_stack), reference, read_legend(), variants, (3,), tmp_path,
                            ExperimentSettings(base=_base(), workers=workers))
    status = {r["variant"]: r["status"] for r in result.runs}
    assert status == {"16-day interval": "ok", "32-day interval": "ok", "impossible grid": "failed"}
    failed = next(r for r in result.runs if r["variant"] == "impossible grid")
    assert "interval" in failed["error"]
    assert any(s.startswith("Halving the interval from 32 to 16 days costs") for s in result.sentences)
    assert any("impossible grid" in s and "failed" in s for s in result.sentences)
    assert "impossible grid" in (tmp_path / "experiment.html").read_text()


def test_paired_statistics():
    runs = [{"variant": v, "seed": s, "status": "ok", "overall_accuracy": a}
            for v, s, a in (("a", 1, 0.80), ("a", 2, 0.82), ("a", 3, 0.81),
                            ("b", 1, 0.85), ("b", 2, 0.86), ("b", 3, 0.87))]
    c = paired(runs, "a", "b", (1, 2, 3))
    assert c["mean_difference"] == pytest.approx(0.05) and c["std_difference"] == pytest.approx(0.01)
    assert c["t"] == pytest.approx(0.05 / (0.01 / 3 ** 0.5)) and c["beyond_noise"] is True
    assert paired(runs, "a", "b", (1,))["beyond_noise"] is None
    assert parse_intervals("8, 16,32") == [8, 16, 32]
    with pytest.raises(ValueError):
        parse_intervals("8,x")


def test_confusion_differences_in_the_report(cloud):
    folder, result = cloud
    document = json.loads((folder / "experiment.json").read_text())
    assert document["confusion_baseline"] == "filter on, cloud mask on"  # lulcpipeline's settings
    items = {d["variant"]: d for d in document["confusion_differences"]}
    assert set(items) == {v.name for v in cloud_variants()}
    labels = document["confusion_labels"]
    for name, item in items.items():
        counts = np.sum([r["confusion"] for r in result.runs if r["variant"] == name], axis=0)
        assert item["counts"] == counts.tolist() and item["seeds"] == list(SEEDS)
        diff = np.array(item["difference"], dtype=float)  # None (a class without test pixels) -> nan
        assert diff.shape == (len(labels), len(labels))
        rows = ~np.isnan(diff).all(axis=1)
        # every variant tests the same pixels per seed, so each row of the difference sums to 0
        assert np.allclose(np.nansum(diff[rows], axis=1), 0, atol=1e-12)
        if name == document["confusion_baseline"]:
            assert np.nanmax(np.abs(diff)) == 0
    page = (folder / "experiment.html").read_text()
    assert "Confusion differences against the baseline" in page and "percentage points" in page


def test_confusion_differences_by_hand():
    runs = [{"variant": "base", "seed": 1, "status": "ok", "confusion": [[10, 0], [0, 10]]},
            {"variant": "base", "seed": 2, "status": "ok", "confusion": [[10, 0], [0, 0]]},
            {"variant": "v", "seed": 1, "status": "ok", "confusion": [[8, 2], [5, 5]]},
            {"variant": "v", "seed": 2, "status": "ok", "confusion": [[6, 4], [0, 0]]},
            {"variant": "w", "seed": 1, "status": "failed"}]
    out = {d["variant"]: d for d in confusion_differences(runs, ["base", "v", "w"], "base", (1, 2))}
    assert set(out) == {"base", "v"}  # w never ran
    # v summed over both seeds: [[14, 6], [5, 5]] -> row shares [[0.7, 0.3], [0.5, 0.5]]; base: identity
    assert out["v"]["counts"] == [[14, 6], [5, 5]]
    assert np.allclose(out["v"]["difference"], [[-0.3, 0.3], [0.5, -0.5]])
    assert out["base"]["difference"] == [[0.0, 0.0], [0.0, 0.0]]
    one_seed = {d["variant"]: d for d in confusion_differences(runs[:3], ["base", "v"], "base", (1, 2))}
    assert one_seed["v"]["seeds"] == [1] and np.allclose(one_seed["v"]["difference"], [[-0.2, 0.2], [0.5, -0.5]])


def test_parallel_equals_sequential(cloud, scene_stack, reference, tmp_path):
    """Variants in two worker processes (one LightGBM thread each) give exactly the sequential numbers."""
    folder, sequential = cloud
    result = run_experiment(str(scene_stack), reference, read_legend(), cloud_variants(), SEEDS, tmp_path,
                            ExperimentSettings(base=_base(), workers=2))
    assert result.document["parallel"]["workers"] == min(2, os.cpu_count() or 1)
    assert result.document["sequential"] is (result.document["parallel"]["workers"] == 1)
    key = ("variant", "seed", "status", "n_dates", "n_features", "overall_accuracy", "f1_weighted", "kappa",
           "confusion")
    assert [[r.get(k) for k in key] for r in result.runs] == [[r.get(k) for k in key] for r in sequential.runs]
    assert result.best == sequential.best
    with rasterio.open(tmp_path / "best_classification.tif") as a, \
            rasterio.open(folder / "best_classification.tif") as b:
        assert np.array_equal(a.read(), b.read())


def test_a_dead_worker_costs_no_variant(scene_stack, reference, tmp_path):
    """A worker process killed from outside (as the kernel kills one for memory) breaks the pool:
    its variants run again alone and every variant still reports its numbers."""
    assert (os.cpu_count() or 1) >= 2, "this test needs two CPUs (two worker processes) to kill one of them"
    logs: list[str] = []

    def kill_a_worker() -> None:
        for _ in range(400):
            for pid in _children(os.getpid()):
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"popen_loky_posix" in command:
                    time.sleep(0.3)  # let it start a variant
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.05)

    def log(message: str) -> None:
        logs.append(message)
        if message.startswith("Variants in parallel"):
            threading.Thread(target=kill_a_worker, daemon=True).start()

    variants = interval_variants((16, 32))
    result = run_experiment(str(scene_stack), reference, read_legend(), variants, (3,), tmp_path,
                            ExperimentSettings(base=_base(), workers=2), progress=Progress(on_log=log))
    assert any(m.startswith("A worker process stopped") for m in logs), logs
    assert {r["variant"]: r["status"] for r in result.runs} == {v.name: "ok" for v in variants}
    alone = run_experiment(str(scene_stack), reference, read_legend(), variants, (3,), tmp_path / "seq",
                           ExperimentSettings(base=_base()))
    assert [r["overall_accuracy"] for r in result.runs] == [r["overall_accuracy"] for r in alone.runs]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_extra_factors_make_variants(scene_stack, reference, tmp_path):
    base = replace(_base(), train=replace(_base().train, n_estimators=100))  # rf never stops early
    variants = with_factors([Variant("filter on, cloud mask on"), Variant("filter off, cloud mask off",
                                                                          {"scene_filter": False,
                                                                           "cloud_mask_in_interpolation": False})],
                            base, [160.0, 40.0], ["gbdt", "rf"])
    assert [v.name for v in variants] == [
        "filter on, cloud mask on, cloud mask at 160 m, gbdt", "filter on, cloud mask on, cloud mask at 40 m, gbdt",
        "filter on, cloud mask on, cloud mask at 160 m, rf", "filter on, cloud mask on, cloud mask at 40 m, rf",
        "filter off, cloud mask off, gbdt", "filter off, cloud mask off, rf"]  # no mask: the resolution is moot
    assert [v.name for v in with_factors(cloud_variants(), base, [40.0], ["rf"])] == [v.name for v in cloud_variants()]
    rf40 = variants[3].settings(base)
    assert rf40.train.classifier == "rf" and rf40.processing_resolution == 40
    result = run_experiment(str(scene_stack), reference, read_legend(), variants[:4], (5,), tmp_path,
                            ExperimentSettings(base=base))
    assert [s["variant"] for s in result.summary] == [v.name for v in variants[:4]]
    assert [(s["classifier"], s["processing_resolution"]) for s in result.summary] == [
        ("gbdt", 160), ("gbdt", 40), ("rf", 160), ("rf", 40)]
    studies = sorted((c["study"], c["from"], c["to"]) for c in result.comparisons)
    assert studies == sorted([("classifier", variants[0].name, variants[2].name),
                              ("classifier", variants[1].name, variants[3].name),
                              ("cloud mask resolution", variants[0].name, variants[1].name),
                              ("cloud mask resolution", variants[2].name, variants[3].name)])
    assert any(s.startswith("Classifier: ") for s in result.sentences)
    assert any(s.startswith("Cloud mask resolution: ") for s in result.sentences)
    # the rf variant at 40 m is lulcpipeline with those settings
    settings = replace(rf40, train=replace(rf40.train, seed=5))
    expected = run_pipeline(str(scene_stack), reference, read_legend(), default_outputs(tmp_path / "p"), settings)
    row = next(r for r in result.runs if r["variant"] == variants[3].name)
    assert row["overall_accuracy"] == pytest.approx(expected.report["overall_accuracy"], abs=1e-12)
    assert row["kappa"] == pytest.approx(expected.report["kappa"], abs=1e-12)


def test_workers_follow_cpus_and_memory():
    mb = 2**20
    assert plan_workers(0, 10, 500 * mb, cpus=8, available=4000 * mb).workers == 8
    assert plan_workers(0, 10, 1000 * mb, cpus=8, available=2500 * mb).workers == 2  # memory-bound
    assert plan_workers(0, 3, 100 * mb, cpus=8, available=10**12).workers == 3  # variant-bound
    assert plan_workers(4, 10, 100 * mb, cpus=2, available=10**12).workers == 2  # CPU-bound
    assert plan_workers(0, 10, 1000 * mb, cpus=8, available=100 * mb).workers == 1  # never 0
    plan = plan_workers(0, 10, 1000 * mb, cpus=8, available=3000 * mb)
    assert (plan.workers, plan.threads) == (3, 2) and "3000 MB available / 1000 MB per variant" in plan.reason
    assert plan_workers(1, 10, mb, cpus=8, available=10**12).threads is None  # sequential: all cores
    small = variant_memory_bytes(100, 100, 50, 4000, budget_bytes=64 * mb)
    assert variant_memory_bytes(1000, 1000, 50, 4000, budget_bytes=64 * mb) > small
    assert variant_memory_bytes(100, 100, 50, 4000, budget_bytes=256 * mb) == small + 192 * mb


def test_parse_factors():
    assert parse_resolutions("160, 40") == [160.0, 40.0] and parse_resolutions(" ") is None
    assert parse_classifiers("gbdt, RF") == ["gbdt", "rf"] and parse_classifiers("") is None
    for bad in ("160,x", "0", "40,40"):
        with pytest.raises(ValueError):
            parse_resolutions(bad)
    with pytest.raises(ValueError, match="unknown classifier"):
        parse_classifiers("gbdt,svm")


def test_real_test_eopatch_ndvi_with_its_cloud_mask(eopatch_dir, tmp_path):
    """The seed's own data: TestEOPatch's 68-date NDVI with its CLM and LULC, imported as stacks;
    the cloud experiment then skips the cloud-mask and feature steps. Each variant's numbers
    equal the steps run by hand (interpolation with or without the mask and filter, training)."""
    from eolulc.core.eopatch import import_eopatch
    from eolulc.core.interpolate import interpolate_stack
    from eolulc.core.reference import read_reference_raster
    from eolulc.core.train import train_model

    ndvi, clm, lulc = tmp_path / "ndvi.tif", tmp_path / "clm.tif", tmp_path / "lulc.tif"
    import_eopatch(eopatch_dir, ["NDVI"], ndvi, "CLM", clm, "LULC", lulc)
    reference = read_reference_raster(str(lulc), read_info(str(ndvi)).grid)
    base = replace(_base(), start="2016-01-01", end="2016-12-31")
    result = run_experiment(str(ndvi), reference, read_legend(), cloud_variants(), SEEDS, tmp_path / "run",
                            ExperimentSettings(base=base, cloud_mask=clm))
    assert [s["n_ok"] for s in result.summary] == [2, 2, 2, 2]
    assert all(s["overall_accuracy_mean"] > 0.8 for s in result.summary)
    assert any("noise" in sentence for sentence in result.sentences)
    for variant in cloud_variants():
        settings = variant.settings(base)
        interpolated = tmp_path / f"{variant.name}.tif"
        interpolate_stack(ndvi, interpolated, start=settings.start, end=settings.end,
                          interval_days=settings.interval_days,
                          mask_path=clm if settings.cloud_mask_in_interpolation else None,
                          min_valid_fraction=settings.min_valid_fraction if settings.scene_filter else 0.0)
        trained = train_model([str(interpolated)], reference, read_legend(),
                              replace(settings.train, seed=SEEDS[0]))
        row = next(r for r in result.runs if r["variant"] == variant.name and r["seed"] == SEEDS[0])
        assert row["overall_accuracy"] == pytest.approx(trained.report["overall_accuracy"], abs=1e-12)
    with pytest.raises(ValueError, match="processing resolutions"):
        run_experiment(str(ndvi), reference, read_legend(), with_factors(cloud_variants(), base, [160, 40]),
                       SEEDS, tmp_path / "bad", ExperimentSettings(base=base, cloud_mask=clm))


def test_l2a_needs_a_given_mask_and_band_stacks_keep_their_features(scene_stack, tmp_path):
    """s2cloudless is refused on a stack tagged L2A when a variant uses the mask; a band stack has
    the bands the default features read (so a given mask skips only the cloud-mask step), a
    prepared NDVI stack has not."""
    info = read_info(str(scene_stack))
    l2a = replace(info, tags={**info.tags, "EOLULC_S2_LEVEL": "L2A"})
    with pytest.raises(ValueError, match="L2A.*OUTPUT_MASK.*as CLOUD_MASK"):
        check_cloud_mask(l2a, [PipelineSettings()], None)
    check_cloud_mask(l2a, [replace(PipelineSettings(), cloud_mask_in_interpolation=False)], None)
    check_cloud_mask(info, [PipelineSettings()], None)
    assert has_feature_bands(l2a, FeatureSpec())
    assert not has_feature_bands(replace(info, bands=("NDVI",), scales=(), offsets=()), FeatureSpec())
