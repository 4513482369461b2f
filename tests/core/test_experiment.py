"""The cloud and resampling experiments on the real L1C scenes and the LULC polygons."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest

from eolulc.core.experiment import (
    Variant,
    cloud_variants,
    interval_variants,
    paired,
    parse_intervals,
    run_experiment,
)
from eolulc.core.legend import read_legend
from eolulc.core.pipeline import PipelineSettings, default_outputs, run_pipeline
from eolulc.core.reference import rasterize_polygons
from eolulc.core.timestack import read_info
from eolulc.core.train import TrainSettings

SEEDS = (1, 7)


@pytest.fixture(scope="module")
def reference(scene_stack, eopatch_dir):
    from osgeo import ogr

    grid = read_info(str(scene_stack)).grid
    dataset = ogr.Open(str(eopatch_dir / "vector_timeless/LULC.gpkg"))  # EPSG:32633, as the stack
    layer = dataset.GetLayer()
    shapes, names = [], {}
    for feature in layer:
        class_id = int(feature.GetField("LULC_ID"))
        shapes.append((json.loads(feature.GetGeometryRef().ExportToJson()), class_id))
        names.setdefault(class_id, feature.GetField("LULC_NAME"))
    del layer, dataset
    return rasterize_polygons(shapes, grid, names)


def _base() -> PipelineSettings:
    return PipelineSettings(train=TrainSettings(samples=4000, threads=2))


@pytest.fixture(scope="module")
def cloud(scene_stack, reference, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cloud")
    result = run_experiment(str(scene_stack), reference, read_legend(), cloud_variants(), SEEDS, folder,
                            base=_base(), json_path=folder / "experiment.json")
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


def test_failed_variant_is_reported_and_intervals_compared(scene_stack, reference, tmp_path):
    variants = interval_variants((16, 32)) + [Variant("impossible grid", {"interval_days": 0})]
    result = run_experiment(str(scene_stack), reference, read_legend(), variants, (3,), tmp_path, base=_base())
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
