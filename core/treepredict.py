"""Fast, exact prediction of LightGBM tree ensembles over many pixels.

LightGBM's ``predict`` walks every tree of the model for one row before the next row, with a
data-dependent branch at every node. Two faster evaluations:

- **Compiled kernel** for models of small trees (at most 64 leaves: LULC models), where numba is
  installed (:mod:`.kernels`): the trees are flattened into arrays (:class:`FlatTrees`) and
  all nodes of a tree are tested over a block of rows at once, without branches (QuickScorer).
  Same thresholds, same missing-value rules, leaf values added in LightGBM's order: the raw
  scores equal ``Booster.predict``'s bit for bit (the tests check). About 5x LightGBM's speed.
- **Compiled walk** for bigger trees whose nodes all read NaN as 0 (s2cloudless's 770 leaves):
  :class:`WalkTrees`, eight rows walking down a tree together, children side by side, each node
  one word. Same raw scores as LightGBM bit for bit; 3.4x its speed on s2cloudless's model.
- **LightGBM's own predict** otherwise (no numba, categorical splits, linear trees, big trees
  with NaN or zero as missing), a few trees at a time over all rows
  (``start_iteration``/``num_iteration``) so that those trees stay in the cache; the raw scores
  are summed, equal up to the order of the floating-point additions.

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
    """A model-text line's numbers, parsed in C (faster than ``np.array(text.split())`` on
    s2cloudless's 11 MB model; the same correctly rounded doubles). A token that is not a number
    is a ``ValueError`` (numpy would stop there and return what it read)."""
    tokens = text.split()
    values = np.fromstring(text, dtype, sep=" ") if tokens else np.zeros(0, dtype)
    if values.size != len(tokens):
        raise ValueError(f"not a list of numbers: {text[:60]}")
    np.array(tokens[-1:], dtype)  # numpy reads the number at the start of a last token such as "1.5x"
    return values


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


def _tree_fields(text: str) -> list[dict[str, str]]:
    """Each tree's ``key=value`` lines of LightGBM's model text; empty for what the kernels do not
    evaluate (categorical splits, linear trees)."""
    trees = []
    for block in text.split("\nend of trees", 1)[0].split("\nTree=")[1:]:
        fields = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
        if int(fields.get("num_cat", 0)) or int(fields.get("is_linear", 0)):
            return []
        trees.append(fields)
    return trees


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
    def from_trees(cls, trees: list[dict[str, str]], outputs: int) -> FlatTrees | None:
        """Flatten the trees of :func:`_tree_fields`; None for what the kernel doesn't evaluate (no
        trees, trees of more than :data:`MAX_LEAVES` leaves, categorical splits)."""
        if not trees or any(int(fields["num_leaves"]) > MAX_LEAVES for fields in trees):
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


@dataclass
class WalkTrees:
    """A model's trees laid out for :func:`.kernels.walk_scores`: each tree breadth first, the two
    children of a node side by side, so that a step down is ``left + (v > t)``. Per node one word
    (the left child's index above ``shift`` bits of feature index; a leaf is its own child), the
    float32 threshold (infinite for leaves) and the leaf value (0 for inner nodes)."""

    #: rows per chunk: the chunk's used features stay in the L1/L2 cache (256 to 4096 measured alike)
    CHUNK_ROWS = 512

    outputs: int
    features: np.ndarray
    roots: np.ndarray
    packed: np.ndarray
    shift: np.uint64
    threshold: np.ndarray
    leaf_value: np.ndarray

    @classmethod
    def from_trees(cls, trees: list[dict[str, str]], outputs: int) -> WalkTrees | None:
        """Lay out the trees of :func:`_tree_fields`; None unless every node reads NaN as 0 (missing
        type None, as in s2cloudless's model: the walk compares ``v > t`` only) and there are no
        categorical splits."""
        if not trees:
            return None
        parsed = []
        for fields in trees:
            values = _split(fields["leaf_value"], float)
            if values.size == 1:
                parsed.append((values, None))
                continue
            decision_type = _split(fields["decision_type"], np.int64)
            threshold = _split(fields["threshold"], float)
            if (decision_type & 1).any() or ((decision_type >> 2) & 3).any() or np.isnan(threshold).any():
                return None
            parsed.append((values, (_split(fields["left_child"], np.int64), _split(fields["right_child"], np.int64),
                                    _split(fields["split_feature"], np.int64), threshold)))
        # all trees' inner nodes and leaves numbered globally; a child is an inner node's number or ~leaf's
        sizes = np.array([values.size - 1 for values, _ in parsed])  # inner nodes per tree
        inner_base = np.concatenate([[0], np.cumsum(sizes)])
        leaf_base = np.concatenate([[0], np.cumsum([values.size for values, _ in parsed])])
        splits = [(tree, split) for tree, (_, split) in enumerate(parsed) if split is not None]
        nothing = [np.zeros(0, np.int64)]
        used = np.unique(np.concatenate([split[2] for _, split in splits] or nothing))
        shift = max(1, int(used.size - 1).bit_length())

        def children(side: int) -> np.ndarray:
            return np.concatenate([np.where(split[side] >= 0, split[side] + inner_base[tree],
                                            split[side] - leaf_base[tree]) for tree, split in splits] or nothing)

        left, right = children(0), children(1)
        split_feature = np.searchsorted(used, np.concatenate([split[2] for _, split in splits] or nothing))
        split_threshold = np.concatenate([split[3] for _, split in splits] or nothing).astype(np.float64)
        leaf_value = np.concatenate([values for values, _ in parsed])
        # breadth first over all trees at once; each level stays in tree order, siblings side by side
        trees = np.arange(len(parsed))
        codes = np.where(sizes > 0, inner_base[:-1], ~leaf_base[:-1])
        level_codes, level_trees, level_first_child = [], [], []
        made = 0
        while codes.size:
            inner = codes >= 0
            made += codes.size
            level_codes.append(codes)
            level_trees.append(trees)
            level_first_child.append(np.where(inner, made + 2 * (np.cumsum(inner) - 1), -1))
            codes = np.stack([left[codes[inner]], right[codes[inner]]], axis=1).reshape(-1)
            trees = np.repeat(trees[inner], 2)
        codes, trees, first_child = (np.concatenate(parts) for parts in (level_codes, level_trees, level_first_child))
        order = np.argsort(trees, kind="stable")  # each tree's nodes together, still breadth first
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        codes, first_child = codes[order], first_child[order]
        inner = codes >= 0
        child = np.where(inner, position[np.maximum(first_child, 0)], np.arange(codes.size))
        feature = np.zeros(codes.size, np.int64)
        feature[inner] = split_feature[codes[inner]]
        threshold = np.full(codes.size, np.inf)
        threshold[inner] = split_threshold[codes[inner]]
        leaf = np.zeros(codes.size)
        leaf[~inner] = leaf_value[~codes[~inner]]
        roots = position[:len(parsed)]  # the first level holds the roots in tree order
        return cls(outputs=outputs, features=used.astype(np.int64), roots=roots.astype(np.uint64),
                   packed=(child.astype(np.uint64) << np.uint64(shift)) | feature.astype(np.uint64),
                   shift=np.uint64(shift), threshold=_float32_at_most(threshold), leaf_value=leaf)

    def add_scores(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Add the trees' outputs for float32 ``rows`` (any memory layout) to ``out`` ``(rows, outputs)``."""
        # a leaf reads feature 0 (and lets it go): one row of scratch even for trees of leaves only
        columns = np.zeros((max(1, self.features.size), self.CHUNK_ROWS), np.float32)
        kernels().walk_scores(rows, self.features, self.roots, self.packed, self.shift, self.threshold,
                              self.leaf_value, columns, out)


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
    def flat(self) -> FlatTrees | WalkTrees | None:
        """The trees laid out for a compiled kernel, made at the first prediction (not for a model
        only loaded to be checked); None where LightGBM predicts. numba is imported only for a
        model it can run."""
        if not self._compile:
            return None
        outputs = max(1, self.booster.num_model_per_iteration())
        try:  # the model text parsed once, for whichever layout takes it
            trees = _tree_fields(self.model_text)
            flat = FlatTrees.from_trees(trees, outputs) or WalkTrees.from_trees(trees, outputs)
        except (KeyError, ValueError):  # a model text this code does not know: LightGBM evaluates it
            flat = None
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
