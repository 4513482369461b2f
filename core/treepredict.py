"""Fast, exact prediction of LightGBM tree ensembles over many pixels.

LightGBM's ``predict`` walks every tree of the model for one row before the next row. A model
of a few MB (s2cloudless: 170 trees, ~10 MB; a LULC model: 1000+ trees) does not fit in the CPU
cache, so every row pays cache misses on every tree. Here the trees are evaluated a few at a
time over all rows (``start_iteration``/``num_iteration``): those trees stay in cache while
thousands of rows pass through them, and the raw scores are summed. Rows are split over threads
(LightGBM releases the GIL). The trees, thresholds and leaf values are LightGBM's own, so the
result equals ``Booster.predict`` up to the order of the floating-point additions (last bit of a
double; identical after rounding to float32 in practice, which the tests check).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Model text evaluated per pass over the rows. Passes pay off only for models too big for the
#: CPU cache: each pass converts every row again, which for hundreds of features costs more than
#: it saves. Measured: the s2cloudless model (11 MB of text, 10 features) is ~3.5x faster in
#: passes of 10-20 trees; a 1,000-tree LULC model (2 MB, 207 features) is fastest in one pass.
BYTES_PER_PASS = 1_000_000
#: Below this much work (rows x iterations) per thread, threads cost more than they gain: a
#: thread pays ~0.1 ms to start, a row-tree costs 20-50 ns. Counting rows alone left the
#: s2cloudless model on one thread for the ~5,000 cells of a date at 160 m (170 deep trees each).
MIN_ROW_TREES_PER_THREAD = 200_000


class TreeEnsemble:
    """A LightGBM model ready for fast prediction: one Booster per thread (LightGBM keeps the
    iteration range of a ``predict`` call in the Booster, so concurrent calls on one Booster with
    different ranges would mix them up)."""

    def __init__(self, model_text: str, threads: int | None = None, average: bool = False) -> None:
        from lightgbm import Booster

        self.model_text = model_text
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.average = average
        self._boosters = [Booster(model_str=model_text)]
        self._factory = Booster

    @classmethod
    def from_file(cls, path: str, threads: int | None = None, average: bool = False) -> TreeEnsemble:
        with open(path, encoding="utf-8") as handle:
            return cls(handle.read(), threads, average)

    @property
    def booster(self):
        return self._boosters[0]

    def _booster(self, index: int):
        while len(self._boosters) <= index:
            self._boosters.append(self._factory(model_str=self.model_text))
        return self._boosters[index]

    def raw_scores(self, rows: np.ndarray) -> np.ndarray:
        """Raw model output, ``(n,)`` for one-output models or ``(n, classes)`` for multiclass: the
        sum of the trees' outputs, or their mean for random forests (``average``, LightGBM's ``rf``)."""
        data = np.ascontiguousarray(rows, dtype=np.float32)
        n = data.shape[0]
        per_iteration = max(1, self.booster.num_model_per_iteration())
        width = (n,) if per_iteration == 1 else (n, per_iteration)
        if n == 0:
            return np.zeros(width)
        iterations = self.booster.num_trees() // per_iteration
        parts = min(self.threads, max(1, n * iterations // MIN_ROW_TREES_PER_THREAD))
        passes = max(1, round(len(self.model_text) / BYTES_PER_PASS))
        step = max(1, -(-iterations // passes))

        def one_range(index: int, chunk: np.ndarray) -> np.ndarray:
            booster = self._booster(index)
            total = np.zeros((chunk.shape[0],) + width[1:], np.float64)
            for start in range(0, iterations, step):
                count = min(step, iterations - start)
                total += booster.predict(chunk, start_iteration=start, num_iteration=count, raw_score=True,
                                         num_threads=1)
            # raw scores are sums over the trees also for random forests, which LightGBM averages
            return total / iterations if self.average else total

        if parts == 1:
            return one_range(0, data)
        for index in range(parts):  # create the boosters before the threads start
            self._booster(index)
        edges = np.linspace(0, n, parts + 1).astype(int)
        chunks = [data[a:b] for a, b in zip(edges[:-1], edges[1:])]
        with ThreadPoolExecutor(parts) as pool:
            return np.concatenate(list(pool.map(one_range, range(parts), chunks)))


def sigmoid(raw: np.ndarray) -> np.ndarray:
    """LightGBM's binary output transform (``sigmoid:1`` objective)."""
    return 1.0 / (1.0 + np.exp(-raw))


def softmax(raw: np.ndarray) -> np.ndarray:
    """LightGBM's multiclass output transform."""
    shifted = raw - raw.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
