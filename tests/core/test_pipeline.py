"""run_pipeline on the real L1C scenes: the map made from interpolated blocks that are never
written equals classifying the written interpolated stack."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eolulc.core.classify import classify
from eolulc.core.legend import read_legend
from eolulc.core.model import load_model
from eolulc.core.pipeline import PipelineSettings, default_outputs, run_pipeline
from eolulc.core.timestack import open_stack
from eolulc.core.train import TrainSettings


def _settings() -> PipelineSettings:
    # the classifier's own map, which these tests compare with classify's (the default smoothing of
    # its probabilities: test_pipeline_smoothing.py)
    return PipelineSettings(interval_days=8, train=TrainSettings(samples=4000, threads=2), smoothing=False)


def _read(path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        return stack.read()


def test_map_without_the_interpolated_stack_equals_classifying_it(scene_stack, scene_reference, tmp_path):
    kept, fused = tmp_path / "kept", tmp_path / "fused"
    with_stack = run_pipeline(str(scene_stack), scene_reference, read_legend(),
                              default_outputs(kept, keep_interpolated=True), _settings(), budget_bytes=2_000_000)
    without = run_pipeline(str(scene_stack), scene_reference, read_legend(), default_outputs(fused), _settings(),
                           budget_bytes=2_000_000)
    assert not (fused / "features_interpolated.tif").exists()
    assert sorted(p.name for p in fused.iterdir()) == sorted(
        p.name for p in kept.iterdir() if p.name != "features_interpolated.tif")
    # the same model and test figures either way
    model_a, model_b = (json.loads((f / "model.json").read_text()) for f in (kept, fused))
    assert model_a["lightgbm"] == model_b["lightgbm"]
    for metric in ("overall_accuracy", "kappa", "f1_weighted"):
        assert with_stack.report[metric] == without.report[metric]
    # the blocks classified on the way give the map that classifying the written stack gives
    classify([str(kept / "features_interpolated.tif")], load_model(kept / "model.json"), tmp_path / "again.tif",
             tmp_path / "again_confidence.tif")
    mapped = _read(fused / "classification.tif")
    np.testing.assert_array_equal(mapped, _read(tmp_path / "again.tif"))
    np.testing.assert_array_equal(_read(fused / "confidence.tif"), _read(tmp_path / "again_confidence.tif"))
    assert len(np.unique(mapped)) > 2
    assert (fused / "classification.qml").is_file()
    # the whole report (map-wide class areas included) is the same
    assert without.report == with_stack.report


def test_kept_features_and_no_cloud_mask_give_the_map_of_the_written_stacks(scene_stack, scene_reference, tmp_path):
    """The other paths into the fused step: training pixels read from a kept per-date feature
    stack (not computed on the fly) and a scene filter counted on the features (no cloud mask)."""
    from dataclasses import replace

    settings = replace(_settings(), cloud_mask_in_interpolation=False, min_valid_fraction=0.5)
    outputs = default_outputs(tmp_path / "run", keep_features=True, keep_interpolated=True)
    result = run_pipeline(str(scene_stack), scene_reference, read_legend(), outputs, settings, budget_bytes=2_000_000)
    assert (tmp_path / "run" / "features.tif").is_file()
    assert result.report["interpolation"]["valid_fractions"]  # the scene filter ran on the features
    classify([outputs.interpolated], load_model(outputs.model), tmp_path / "again.tif")
    np.testing.assert_array_equal(_read(outputs.classification), _read(tmp_path / "again.tif"))


def test_cancel_while_classifying_leaves_no_map(scene_stack, scene_reference, tmp_path):
    """Cancel during the fused interpolation and classification: no map, no confidence, no
    interpolated stack, no half-written temporary file."""
    from eolulc.core.progress import Cancelled, Progress

    logs: list[str] = []
    progress = Progress(on_log=logs.append, is_canceled=lambda: any(line.startswith("Step 5/6") for line in logs))
    outputs = default_outputs(tmp_path, keep_interpolated=True)
    with pytest.raises(Cancelled):
        run_pipeline(str(scene_stack), scene_reference, read_legend(), outputs, _settings(), progress,
                     budget_bytes=2_000_000)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "model.json" in left  # trained before the cancel
    assert not {"classification.tif", "confidence.tif", "features_interpolated.tif"} & set(left), left
    assert not [name for name in left if name.startswith(".") or "tmp" in name], left


def test_a_failed_last_prediction_keeps_no_interpolated_stack(scene_stack, scene_reference, tmp_path, monkeypatch):
    """The last block is predicted after the interpolation has finished its own output: a failure
    there (here a full disk, injected) must still leave neither the map nor the kept stack."""
    from eolulc.core import classify as classify_module

    original = classify_module.MapWriter.write

    def write(self, window, rows):
        row, col, height, width = window
        if row + height == self.grid.height and col + width == self.grid.width:
            raise OSError("No space left on device")
        original(self, window, rows)

    monkeypatch.setattr(classify_module.MapWriter, "write", write)
    outputs = default_outputs(tmp_path, keep_interpolated=True)
    with pytest.raises(OSError, match="No space"):
        run_pipeline(str(scene_stack), scene_reference, read_legend(), outputs, _settings(), budget_bytes=2_000_000)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not {"classification.tif", "confidence.tif", "features_interpolated.tif"} & set(left), left
    assert not [name for name in left if name.startswith(".")], left


def test_report_has_settings_importances_grid_and_kept_dates(scene_stack, scene_reference, tmp_path):
    """The report says how its map was made, as the pipeline's help promises."""
    import re
    from dataclasses import replace

    settings = replace(_settings(), min_valid_fraction=0.3)
    outputs = default_outputs(tmp_path)
    result = run_pipeline(str(scene_stack), scene_reference, read_legend(), outputs, settings)
    html = (tmp_path / "report.html").read_text()
    for heading in ("Settings", "Interpolation grid and kept dates", "Feature importance"):
        assert f"<h2>{heading}</h2>" in html, heading
    assert re.search(r"<td class=\"name\">interval days</td><td>8</td>", html)
    assert re.search(r"<td class=\"name\">training feature fraction</td><td>0.5</td>", html)
    assert re.search(r"<td class=\"name\">min valid fraction</td><td>0.3</td>", html)
    # the importance table lists the model's most important feature with its gain share
    top = result.report["feature_importance"][0]
    assert f"<td class='name'>{top['feature']}</td><td>{100 * top['gain_share']:.1f} %</td>" in html
    # every acquisition with its fate, and the grid's dates
    interpolation = result.report["interpolation"]
    assert interpolation["kept_dates"] and interpolation["output_dates"]
    for date in interpolation["kept_dates"]:
        assert f'<td class="name">{date}</td>' in html and "kept" in html
    for date in interpolation["dropped_dates"]:
        assert re.search(rf'<td class="name">{re.escape(date)}</td><td>[0-9.]+</td><td>dropped</td>', html)
    assert f"{len(interpolation['output_dates'])} dates every 8 days" in html
    assert interpolation["output_dates"][-1][:10] in html


def test_a_given_mask_gives_the_map_of_the_computed_mask(scene_stack, scene_reference, tmp_path):
    """CLOUD_MASK_SOURCE 'given': s2cloudless is not run and the given stack drives the scene filter
    and the interpolation as the computed mask does; given the computed mask file, the same map."""
    from dataclasses import replace

    computed = run_pipeline(str(scene_stack), scene_reference, read_legend(), default_outputs(tmp_path / "computed"),
                            _settings(), budget_bytes=2_000_000)
    mask = tmp_path / "computed" / "cloud_mask.tif"
    logs: list[str] = []
    from eolulc.core.progress import Progress

    given = run_pipeline(str(scene_stack), scene_reference, read_legend(), default_outputs(tmp_path / "given"),
                         replace(_settings(), cloud_mask_source="given"), Progress(on_log=logs.append),
                         budget_bytes=2_000_000, cloud_mask=str(mask))
    assert not (tmp_path / "given" / "cloud_mask.tif").exists()  # the mask step was skipped
    assert any("s2cloudless not run" in line for line in logs)
    np.testing.assert_array_equal(_read(tmp_path / "given" / "classification.tif"),
                                  _read(tmp_path / "computed" / "classification.tif"))
    assert given.report["interpolation"] == computed.report["interpolation"]
    assert given.report["overall_accuracy"] == computed.report["overall_accuracy"]
    assert given.report["pipeline"]["cloud_mask_source"] == "given"


def test_mask_source_errors_name_the_fix(scene_stack, scene_reference, tmp_path):
    """s2cloudless on an L2A stack is refused unless forced; a given mask must be there and fit."""
    from dataclasses import replace

    from eolulc.core.pipeline import check_cloud_mask_source
    from eolulc.core.timestack import read_info

    info = read_info(str(scene_stack))
    l2a = replace(info, tags={**info.tags, "EOLULC_S2_LEVEL": "L2A"})
    with pytest.raises(ValueError, match="CLOUD_MASK_SOURCE.*FORCE_S2CLOUDLESS"):
        check_cloud_mask_source(l2a, _settings(), None)
    check_cloud_mask_source(l2a, replace(_settings(), force_s2cloudless=True), None)
    check_cloud_mask_source(info, _settings(), None)  # L1C: s2cloudless is fine
    given = replace(_settings(), cloud_mask_source="given")
    with pytest.raises(ValueError, match="no CLOUD_MASK stack"):
        check_cloud_mask_source(info, given, None)
    # the input stack itself is on the grid and dates but has 13 bands per date, a mask one
    with pytest.raises(ValueError, match="bands per date"):
        check_cloud_mask_source(info, given, str(scene_stack))
    with pytest.raises(ValueError, match="CLOUD_MASK_SOURCE is s2cloudless"):
        check_cloud_mask_source(info, _settings(), str(scene_stack))
