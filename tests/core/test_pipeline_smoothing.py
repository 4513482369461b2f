"""run_pipeline with SMOOTHING on the real L1C scenes: the map and the probabilities are those of
smoothing the classifier's probabilities, and the report says so."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from eolulc.core.legend import read_legend
from eolulc.core.pipeline import PipelineSettings, default_outputs, run_pipeline
from eolulc.core.smoothing import SmoothSettings, smooth_stack
from eolulc.core.timestack import open_stack
from eolulc.core.train import TrainSettings


def _read(path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        return stack.read()


def test_smoothing_in_the_pipeline_equals_smoothing_its_probabilities(scene_stack, scene_reference, tmp_path):
    settings = PipelineSettings(interval_days=8, train=TrainSettings(samples=4000, threads=2), smoothing=False)
    plain = default_outputs(tmp_path / "plain")
    plain.probabilities = str(tmp_path / "plain" / "probabilities.tif")
    unsmoothed = run_pipeline(str(scene_stack), scene_reference, read_legend(), plain, settings)
    smooth = SmoothSettings(window_size=5, min_mapping_unit=3)
    smoothed_outputs = default_outputs(tmp_path / "smoothed")
    smoothed_outputs.probabilities = str(tmp_path / "smoothed" / "probabilities.tif")
    smoothed = run_pipeline(str(scene_stack), scene_reference, read_legend(), smoothed_outputs,
                            replace(settings, smoothing=True, smooth=smooth), budget_bytes=2_000_000)
    expected = smooth_stack(plain.probabilities, tmp_path / "expected.tif", tmp_path / "expected_p.tif",
                            tmp_path / "expected_c.tif", smooth)
    np.testing.assert_array_equal(_read(smoothed_outputs.classification), _read(tmp_path / "expected.tif"))
    np.testing.assert_array_equal(_read(smoothed_outputs.probabilities), _read(tmp_path / "expected_p.tif"))
    np.testing.assert_array_equal(_read(smoothed_outputs.confidence), _read(tmp_path / "expected_c.tif"))
    assert expected.changed_pixels > 0
    assert any(note.startswith("Spatial smoothing") for note in smoothed.notes)
    assert smoothed.report["pipeline"]["smoothing"]["window_size"] == 5
    assert unsmoothed.report["pipeline"]["smoothing"] is False
    assert "Spatial smoothing" in (tmp_path / "smoothed" / "report.html").read_text()
    assert not [p for p in (tmp_path / "smoothed").iterdir() if p.name.startswith(".")]  # no temporaries left
