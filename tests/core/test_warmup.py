"""The kernels' warm-up: run in its own process (as the plugin starts it), it leaves numba's cache
holding every kernel with the argument types a real pipeline run passes, and a marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eolulc.core import warmup
from eolulc.core.compiled import kernels

pytestmark = pytest.mark.skipif(kernels() is None, reason="numba is not installed")

# A pipeline on another scene than the warm-up's (size, dates, realistic, probabilities kept):
# prints every kernel's cache hits and misses.
PIPELINE = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from eolulc.demo.synthetic import SyntheticScene
from eolulc.core.compiled import kernels
from eolulc.core.legend import read_legend
from eolulc.core.pipeline import PipelineOutputs, PipelineSettings, run_pipeline
from eolulc.core.reference import read_reference_raster
from eolulc.core.timestack import read_info
folder = Path(tempfile.mkdtemp())
data = SyntheticScene(height=130, width=130, n_dates=14, seed=3, realistic=True).write(folder / "data")
reference = read_reference_raster(str(data.reference), read_info(str(data.l1c)).grid)
outputs = PipelineOutputs(**{n: str(folder / f"{n}.tif") for n in ("cloud_mask", "classification", "confidence",
                          "reference", "agreement")}, features=None, interpolated=None, model=str(folder / "m.json"),
                          report=str(folder / "r.html"), probabilities=str(folder / "p.tif"))
run_pipeline(str(data.l1c), reference, read_legend(), outputs, PipelineSettings())
k = kernels()
print(json.dumps({name: [sum(getattr(k, name).stats.cache_hits.values()),
                         sum(getattr(k, name).stats.cache_misses.values())]
                  for name in dir(k) if hasattr(getattr(k, name), "stats")}))
"""


def test_warm_up_fills_the_cache_a_pipeline_then_uses(tmp_path, monkeypatch, plugins_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    monkeypatch.setenv("NUMBA_CACHE_DIR", env["NUMBA_CACHE_DIR"])
    assert warmup.needs_warm_up() and not warmup.marker_path().exists()
    command = warmup.warm_up_command(sys.executable)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert warmup.marker_path().read_text() == "warmed\n" and not warmup.needs_warm_up()
    ran = subprocess.run([sys.executable, "-c", PIPELINE, str(plugins_dir)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert ran.returncode == 0, ran.stderr
    stats = json.loads(ran.stdout.strip().splitlines()[-1])
    used = {name: hits for name, (hits, misses) in stats.items() if hits or misses}
    assert {"walk_scores", "bitmask_scores", "valid_cell_sums", "bilinear_columns", "digital_number_features",
            "interpolate_chunks", "smooth_window_logits"} <= set(used)
    assert all(misses == 0 for _, misses in stats.values()), stats  # nothing compiled in the real run


def test_no_warm_up_where_the_cache_folder_cannot_be_made(tmp_path, monkeypatch):
    """numba would cache elsewhere then, and a marker could not say what is cached."""
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "a file" / "numba"))
    assert warmup.marker_path() is None and not warmup.needs_warm_up() and warmup.start_warm_up() is None


def test_a_failed_warm_up_says_why_and_is_not_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(warmup, "SIZE", 0)  # a scene of no pixels: the pipeline refuses it
    with pytest.raises(ValueError):
        warmup.warm_kernels()
    assert warmup.marker_path().read_text().startswith("failed: ValueError") and not warmup.needs_warm_up()
