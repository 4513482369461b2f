"""Memory of the experiment's variants: the peak resident memory a step adds (measured), and
the budget of one variant in its own worker process (planned, before it runs).

Measured and planned memory are one concept: the budget decides how many variants run at once
(:func:`core.workers.plan_workers`), the measure is reported per run so the budget can be
checked against it.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path

from .blocks import default_budget_bytes
from .timestack import GDAL_CACHE_MB
from .train import MAX_TEST_PIXELS

#: Pixels the prediction time is measured on (a fixed, evenly spread sample).
PREDICT_SAMPLE = 100_000
#: A worker process before its variant starts: Python, numpy, GDAL/rasterio, scipy, LightGBM
#: (about 125 MB measured with Python 3.11 on Debian 12), with a margin.
WORKER_BASE_BYTES = 200 * 2**20
#: Reference-sized arrays a variant holds while training (the classes, their eroded copy, the
#: labelled/test/candidate masks, the split units as int64), in bytes per pixel.
REFERENCE_BYTES_PER_PIXEL = 32


class PeakMemory:
    """Peak resident memory above the level at entry, in MB (sampled from ``/proc/self/statm``
    every 10 ms on Linux; elsewhere the growth of the process's maximum RSS, which stays 0 below an
    earlier peak)."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._statm = Path("/proc/self/statm")
        self._stop = threading.Event()

    def _rss(self) -> int:
        return int(self._statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        self._proc = self._statm.exists()
        if self._proc:
            self._start = self._peak = self._rss()

            def sample() -> None:
                while not self._stop.wait(0.01):
                    self._peak = max(self._peak, self._rss())

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        else:
            self._start = _max_rss_bytes()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss())
            self.peak_mb = (self._peak - self._start) / 2**20
        else:
            after = _max_rss_bytes()
            self.peak_mb = None if after is None or self._start is None else (after - self._start) / 2**20


def _max_rss_bytes() -> int | None:
    try:
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (AttributeError, OSError):  # pragma: no cover
        return None
    return value if sys.platform == "darwin" else value * 1024


def variant_memory_bytes(height: int, width: int, n_features: int, samples: int,
                         budget_bytes: int | None = None) -> int:
    """Budget of one variant in its own worker process: the interpreter and libraries
    (:data:`WORKER_BASE_BYTES`), GDAL's bounded cache, one block of the block budget (what the
    interpolation and the row gathering hold), twice the float32 feature rows of the training,
    test and prediction-sample pixels (LightGBM copies them) and the reference-sized masks."""
    pixels = height * width
    rows = min(samples, pixels) + min(pixels, MAX_TEST_PIXELS) + min(pixels, PREDICT_SAMPLE)
    return int(WORKER_BASE_BYTES + GDAL_CACHE_MB * 2**20 + (budget_bytes or default_budget_bytes())
               + 2 * rows * n_features * 4 + REFERENCE_BYTES_PER_PIXEL * pixels)
