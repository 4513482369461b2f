"""Fast, exact prediction of LightGBM tree ensembles over many pixels.

LightGBM's ``predict`` walks every tree of the model for one row before the next row, with a
data-dependent branch at every node. Two faster evaluations:

- **Compiled kernel** for models of small trees (at most 64 leaves: LULC models), where numba is
  installed (:mod:`.kernels`): the trees are flattened into arrays (:class:`FlatTrees`) and
  all nodes of a tree are tested over a block of rows at once, without branches (QuickScorer).
  Same thresholds, same missing-value rules, leaf values added in LightGBM's order: the raw
  scores equal ``Booster.predict``'s bit for bit (the tests check). About 5x LightGBM's speed.
- **LightGBM's own predict** otherwise (no numba, big trees such as s2cloudless's 770 leaves,
  categorical splits, linear trees), a few trees at a time over all rows
  (``start_iteration``/``num_iteration``) so that those trees stay in the cache; the raw scores
  are summed, equal up to the order of the floating-point additions. Walking big trees in
  compiled code was measured no faster than this.

Rows are split over threads in both cases (numba and LightGBM release the GIL).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .compiled import kernels

#: Model text evaluated per pass over the rows. Passes pay off only for models too big for the
#: CPU cache: each pass converts every row again, which for hundreds of features costs more than
#: it saves. Measured: the s2cloudless model (11 MB of text, 10 features) is ~3.5x faster in
#: passes of 10-20 trees; a 1,000-tree LULC model (2 MB, 207 features) is fastest in one pass.
BYTES_PER_PASS = 1_000_000
#: Below this much work (rows x iterations) per thread, threads cost more than they gain: a
#: thread pays ~0.1 ms to start, a row-tree costs 20-50 ns. Counting rows alone left the
#: s2cloudless model on one thread for the ~5,000 cells of a date at 160 m (170 deep trees each).
MIN_ROW_TREES_PER_THREAD = 200_000
#: Rows per block of the compiled kernel: the block's used features (4 bytes each) stay in the
#: L1/L2 cache (64 to 1,024 measured; 128 fastest).
BLOCK_ROWS = 128
#: Trees with more leaves than bits in a mask are left to LightGBM.
MAX_LEAVES = 64
#: How a node sends a value right (LightGBM's missing-value handling, see :mod:`.kernels`).
#: kernels.py defines the same codes (a test checks), as numba bakes them into its cached code.
RIGHT_IF_GREATER, RIGHT_UNLESS_LESS_EQUAL, ZERO_LEFT, ZERO_RIGHT = 0, 1, 2, 3


def _split(text: str, dtype: type) -> np.ndarray:
    return np.array(text.split(), dtype) if text else np.zeros(0, dtype)


def _float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each double: for a float32 ``v``, ``v <= t`` exactly when
    ``v <= _float32_at_most(t)``."""
    with np.errstate(over="ignore"):
        rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def _node_rules(threshold: np.ndarray, decision_type: np.ndarray) -> np.ndarray:
    """LightGBM's ``NumericalDecision`` per node: missing type None reads NaN as 0, NaN sends NaN
    to the default side, Zero sends 0 and NaN to the default side."""
    missing = (decision_type >> 2) & 3
    default_left = (decision_type & 2) != 0
    nan_side = np.where(0.0 > threshold, RIGHT_UNLESS_LESS_EQUAL, RIGHT_IF_GREATER)
    nan_side = np.where(missing == 2, np.where(default_left, RIGHT_IF_GREATER, RIGHT_UNLESS_LESS_EQUAL), nan_side)
    return np.where(missing == 1, np.where(default_left, ZERO_LEFT, ZERO_RIGHT), nan_side).astype(np.uint8)


def _leaves_left_to_right(left: np.ndarray, right: np.ndarray) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """A tree's leaf ids from left to right, and per node the positions of its left subtree's
    first and last leaf in that order."""
    order: list[int] = []
    left_span: dict[int, tuple[int, int]] = {}

    def visit(child: int) -> tuple[int, int]:
        if child < 0:
            order.append(~child)
            return len(order) - 1, len(order) - 1
        first, last = visit(int(left[child]))
        left_span[child] = (first, last)
        _, last = visit(int(right[child]))
        return first, last

    visit(0)
    return order, left_span


def _mask_type(leaves: int) -> type:
    return np.uint16 if leaves <= 16 else np.uint32 if leaves <= 32 else np.uint64


@dataclass
class FlatTrees:
    """A model's trees as flat arrays for :mod:`.kernels`: per tree the range of its nodes
    and of its leaves (numbered left to right); per node the feature (index into ``features``,
    the model inputs used), float32 threshold, rule, and the bit mask of the leaves a row keeps
    when the node sends it right (all but those of the node's left subtree)."""

    outputs: int
    features: np.ndarray
    node_start: np.ndarray
    leaf_start: np.ndarray
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_rule: np.ndarray
    node_keep: np.ndarray
    leaf_value: np.ndarray

    @classmethod
    def from_model_text(cls, text: str, outputs: int) -> FlatTrees | None:
        """Flatten LightGBM's model text; None for what the kernel doesn't evaluate (trees of more
        than :data:`MAX_LEAVES` leaves, categorical splits, linear trees)."""
        try:
            return cls._flatten(text, outputs)
        except (KeyError, ValueError):  # a model text this code does not know: LightGBM evaluates it
            return None

    @classmethod
    def _flatten(cls, text: str, outputs: int) -> FlatTrees | None:
        trees = []
        for block in text.split("\nend of trees", 1)[0].split("\nTree=")[1:]:
            fields = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
            if (int(fields.get("num_cat", 0)) or int(fields.get("is_linear", 0))
                    or int(fields["num_leaves"]) > MAX_LEAVES):
                return None
            trees.append(fields)
        if not trees:
            return None
        every = (1 << 64) - 1
        leaves, feature, threshold, rule, keep, leaf_value = [], [], [], [], [], []
        for fields in trees:
            values = _split(fields["leaf_value"], float)
            leaves.append(values.size)
            if values.size == 1:
                leaf_value.append(values)
                continue
            decision_type = _split(fields["decision_type"], np.int64)
            if (decision_type & 1).any():  # categorical split
                return None
            split_threshold = _split(fields["threshold"], float)
            if np.isnan(split_threshold).any():  # never written by LightGBM; its "<=" would differ
                return None
            order, left_span = _leaves_left_to_right(_split(fields["left_child"], np.int64),
                                                     _split(fields["right_child"], np.int64))
            feature.append(_split(fields["split_feature"], np.int64))
            threshold.append(split_threshold)
            rule.append(_node_rules(split_threshold, decision_type))
            keep.append([every ^ (((1 << (last + 1)) - 1) ^ ((1 << first) - 1))
                         for first, last in (left_span[node] for node in range(values.size - 1))])
            leaf_value.append(values[order])
        used, local = np.unique(np.concatenate(feature) if feature else np.zeros(0, np.int64), return_inverse=True)
        return cls(
            outputs=outputs,
            features=used.astype(np.int64),
            node_start=np.concatenate([[0], np.cumsum(leaves) - np.arange(1, len(leaves) + 1)]).astype(np.int64),
            leaf_start=np.concatenate([[0], np.cumsum(leaves)]).astype(np.int64),
            node_feature=local.astype(np.int32).reshape(-1),
            node_threshold=_float32_at_most(np.concatenate(threshold) if threshold else np.zeros(0)),
            node_rule=np.concatenate(rule) if rule else np.zeros(0, np.uint8),
            # the narrowest masks that hold the leaves: more rows per vector instruction
            node_keep=np.array([k for tree in keep for k in tree], np.uint64).astype(_mask_type(max(leaves))),
            leaf_value=np.concatenate(leaf_value).astype(np.float64),
        )

    def add_scores(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Add the trees' outputs for float32 ``rows`` (any memory layout) to ``out`` ``(rows, outputs)``."""
        mask = np.empty(BLOCK_ROWS, self.node_keep.dtype)
        every = self.node_keep.dtype.type(np.iinfo(self.node_keep.dtype).max)
        kernels().bitmask_scores(rows, self.features, self.node_start, self.leaf_start, self.node_feature,
                                 self.node_threshold, self.node_rule, self.node_keep, self.leaf_value, mask, every,
                                 out)


class TreeEnsemble:
    """A LightGBM model ready for fast prediction: its :class:`FlatTrees` for the compiled kernels
    (``compiled``, the default where numba is installed), else one Booster per thread (LightGBM
    keeps the iteration range of a ``predict`` call in the Booster, so concurrent calls on one
    Booster with different ranges would mix them up)."""

    def __init__(self, model_text: str, threads: int | None = None, average: bool = False,
                 compiled: bool = True) -> None:
        from lightgbm import Booster

        self.model_text = model_text
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.average = average
        self._boosters = [Booster(model_str=model_text)]
        self._factory = Booster
        self._compile = compiled

    @classmethod
    def from_file(cls, path: str, threads: int | None = None, average: bool = False,
                  compiled: bool = True) -> TreeEnsemble:
        with open(path, encoding="utf-8") as handle:
            return cls(handle.read(), threads, average, compiled)

    @functools.cached_property
    def flat(self) -> FlatTrees | None:
        """The flattened trees, made at the first prediction (not for a model only loaded to be
        checked); None where LightGBM predicts. numba is imported only for a model it can run."""
        if not self._compile:
            return None
        flat = FlatTrees.from_model_text(self.model_text, max(1, self.booster.num_model_per_iteration()))
        return flat if flat is not None and kernels() is not None else None

    @property
    def compiled(self) -> bool:
        """Whether the compiled kernels evaluate this model (else LightGBM's predict)."""
        return self.flat is not None

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
        # the kernel reads any float32 layout (feature rows are often a strided view); LightGBM rows
        data = rows.astype(np.float32, copy=False) if self.flat is not None else np.ascontiguousarray(
            rows, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != self.booster.num_feature():
            raise ValueError(f"the rows have {data.shape[-1]} features, the model {self.booster.num_feature()}")
        n = data.shape[0]
        per_iteration = max(1, self.booster.num_model_per_iteration())
        width = (n,) if per_iteration == 1 else (n, per_iteration)
        if n == 0:
            return np.zeros(width)
        iterations = self.booster.num_trees() // per_iteration
        parts = min(self.threads, max(1, n * iterations // MIN_ROW_TREES_PER_THREAD))
        passes = max(1, round(len(self.model_text) / BYTES_PER_PASS))
        step = max(1, -(-iterations // passes))
        total = np.zeros((n, per_iteration), np.float64)

        def add_range(index: int, first: int, last: int) -> None:
            """Add the trees' outputs for rows ``first .. last`` (one thread, its own booster)."""
            if self.flat is not None:
                self.flat.add_scores(data[first:last], total[first:last])
                return
            booster = self._booster(index)
            for start in range(0, iterations, step):
                total[first:last] += booster.predict(
                    data[first:last], start_iteration=start, num_iteration=min(step, iterations - start),
                    raw_score=True, num_threads=1).reshape(last - first, per_iteration)

        edges = np.linspace(0, n, parts + 1).astype(int)
        if parts == 1:
            add_range(0, 0, n)
        else:
            for index in range(parts):  # create the boosters before the threads start
                self._booster(index)
            with ThreadPoolExecutor(parts) as pool:
                list(pool.map(add_range, range(parts), edges[:-1], edges[1:]))
        total = total.reshape(width)
        # raw scores are sums over the trees also for random forests, which LightGBM averages
        return total / iterations if self.average else total


def sigmoid(raw: np.ndarray) -> np.ndarray:
    """LightGBM's binary output transform (``sigmoid:1`` objective)."""
    return 1.0 / (1.0 + np.exp(-raw))


def softmax(raw: np.ndarray) -> np.ndarray:
    """LightGBM's multiclass output transform."""
    shifted = raw - raw.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
