"""Compiled (numba) kernels, loaded only through :func:`.compiled.kernels` (see there why each
has a numpy or LightGBM twin that gives the same values, and why this module is loaded under a
name of its own and imports nothing from the package).

**Trees** (:func:`bitmask_scores`, for :mod:`.treepredict`; arrays from
:class:`.treepredict.FlatTrees`): a block of rows is copied first, keeping only the features the
model uses and reading ``|v| <= 1e-35`` as 0, as LightGBM's dense-row reader does. A node sends
a value right by its rule (LightGBM's missing-value handling, decided once per node when the
model is flattened):

- ``RIGHT_IF_GREATER``: ``v > t``; NaN goes left;
- ``RIGHT_UNLESS_LESS_EQUAL``: ``not v <= t``; NaN goes right;
- ``ZERO_LEFT`` / ``ZERO_RIGHT``: 0 and NaN take the default side, other values ``v > t``.

``t`` is the largest float32 not above LightGBM's double threshold, so the float32 comparison
decides exactly as LightGBM's double one does. Leaf values are added in LightGBM's order (tree
by tree, one output per tree of an iteration), so the sums are LightGBM's, bit for bit.
Big trees (s2cloudless's 770 leaves) are walked instead (:func:`walk_scores`, arrays from
:class:`.treepredict.WalkTrees`), eight rows at a time, for models whose nodes all read NaN as 0.

**Cloud cells** (:func:`valid_cell_sums`, for :mod:`.coarsegrid`): the valid pixels and the
integer sums of each cell in one pass over the digital numbers; integers add up exactly in any
order, so the sums are numpy's. :func:`bilinear_columns` finishes the bilinear upsampling of
the cells' probabilities in one pass with numpy's float32 operations in numpy's order (numba
does not fuse them without ``fastmath``), so the values are numpy's bit for bit.

**Interpolation** (:func:`interpolate_chunks`, for :mod:`.interpolate`): per chunk of series,
the last valid observation at or before and the first at or after each new date by one sweep
forwards and one backwards, then np.interp's float64 formula, as the numpy plan computes it.

**Features** (:func:`digital_number_features`, for :mod:`.features`): reflectance and normalized
differences of digital numbers in one pass, with :mod:`.features`' float32 operations.

**Smoothing** (:func:`smooth_window_logits`, for :mod:`.smoothing`): the highest values of each
pixel's window of log-odds found by a selection in place of numpy's partition and sort over window
copies; their mean and variance are numpy's formulas, summed in another order (equal to ~1e-15).
"""

from __future__ import annotations

import contextlib
import warnings

import numba
import numpy as np

#: :mod:`.treepredict`'s node rules (a test checks they are the same). Here, not imported: numba
#: bakes them into its cached machine code, which it renews only when this file's text changes.
RIGHT_IF_GREATER, RIGHT_UNLESS_LESS_EQUAL, ZERO_LEFT, ZERO_RIGHT = 0, 1, 2, 3
#: LightGBM's kZeroThreshold: its dense-row reader drops values at most this far from zero.
ZERO = np.float32(1e-35)
#: Index of the lowest set bit of a 64-bit word by a de Bruijn multiplication (no branches).
_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DE_BRUIJN_INDEX = np.zeros(64, np.int64)
for _bit in range(64):
    _DE_BRUIJN_INDEX[((int(_DE_BRUIJN) << _bit) & 0xFFFFFFFFFFFFFFFF) >> 58] = _bit


try:
    from numba.core.caching import FunctionCache
except ImportError:  # another numba layout: numba's own cache, as ``cache=True`` makes it
    FunctionCache = None


if FunctionCache is not None:
    class _TolerantCache(FunctionCache):
        """numba's on-disk cache of a kernel (what ``cache=True`` installs), except that an entry
        that cannot be loaded (a truncated or corrupted file, one pickled under a module name that
        does not import here, ...) is compiled again with a warning instead of failing the call;
        numba itself lets the unpickling error escape from the first call."""

        def __init__(self, py_func) -> None:
            super().__init__(py_func)
            self.kernel = py_func.__name__

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception as error:  # noqa: BLE001  anything unpickling can raise
                warnings.warn(f"EO LULC: the cached compiled kernel {self.kernel} cannot be loaded "
                              f"({type(error).__name__}: {error}); compiling it again", RuntimeWarning, stacklevel=2)
                with contextlib.suppress(Exception):
                    self.flush()  # an empty index, so that the new machine code can be saved
                return None

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except Exception as error:  # noqa: BLE001  a full disk or read-only folder: compiled next time again
                warnings.warn(f"EO LULC: the compiled kernel {self.kernel} cannot be cached "
                              f"({type(error).__name__}: {error})", RuntimeWarning, stacklevel=2)


def _jit(function):
    # numpy's error model: a float division by zero gives inf or NaN, as in numpy (Python's
    # model raises ZeroDivisionError)
    options = {"nogil": True, "error_model": "numpy"}
    if FunctionCache is None:
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # no writable cache folder: compiled again in each process
            return numba.njit(**options)(function)
    dispatcher = numba.njit(**options)(function)
    try:
        dispatcher._cache = _TolerantCache(function)  # what enable_caching (cache=True) sets, tolerant
    except RuntimeError:  # no writable cache folder: compiled again in each process
        pass
    return dispatcher


@_jit
def _lightgbm_value(value):
    return np.float32(0.0) if abs(value) <= ZERO else value


@_jit
def bitmask_scores(rows, features, node_start, leaf_start, node_feature, node_threshold, node_rule, node_keep,
                   leaf_value, mask, every, out):
    """Add each tree's leaf value to ``out[row, tree % outputs]``, trees with at most 64 leaves.

    All nodes of a tree are tested on a block of rows at once, without branches (QuickScorer,
    Lucchese et al. 2015): leaves are numbered left to right, every node that sends a row right
    removes the leaves of its left subtree from the row's bit mask (``node_keep``), and the row's
    leaf is the lowest bit left. ``mask`` is scratch of the block's size and the masks' dtype,
    ``every`` that dtype's all-ones."""
    block = mask.size
    outputs = out.shape[1]
    by_column = rows.strides[0] < rows.strides[1]
    columns = np.empty((features.size, block), np.float32)
    # the block's sums per output, contiguous (adding into ``out`` row by row was ~20 % slower)
    block_sums = np.empty((outputs, block), np.float64)
    for start in range(0, rows.shape[0], block):
        count = min(block, rows.shape[0] - start)
        if by_column:  # the used features of the block's rows, read along the rows' memory
            for j in range(features.size):
                for r in range(count):
                    columns[j, r] = _lightgbm_value(rows[start + r, features[j]])
        else:
            for r in range(count):
                for j in range(features.size):
                    columns[j, r] = _lightgbm_value(rows[start + r, features[j]])
        for r in range(count):
            for output in range(outputs):
                block_sums[output, r] = out[start + r, output]
        for tree in range(node_start.size - 1):
            mask[:count] = every
            for node in range(node_start[tree], node_start[tree + 1]):
                values = columns[node_feature[node]]
                limit = node_threshold[node]
                keep = node_keep[node]
                rule = node_rule[node]
                if rule == RIGHT_IF_GREATER:
                    for r in range(count):
                        mask[r] &= keep if values[r] > limit else every
                elif rule == RIGHT_UNLESS_LESS_EQUAL:
                    for r in range(count):
                        mask[r] &= every if values[r] <= limit else keep
                elif rule == ZERO_LEFT:
                    for r in range(count):
                        mask[r] &= keep if (values[r] > limit and values[r] != 0) else every
                else:  # ZERO_RIGHT
                    for r in range(count):
                        mask[r] &= every if (values[r] <= limit and values[r] != 0) else keep
            output = tree % outputs
            first_leaf = leaf_start[tree]
            sums = block_sums[output]
            for r in range(count):
                bits = np.uint64(mask[r])
                lowest = bits & (~bits + np.uint64(1))
                leaf = _DE_BRUIJN_INDEX[(lowest * _DE_BRUIJN) >> np.uint64(58)]
                sums[r] += leaf_value[first_leaf + leaf]
        for r in range(count):
            for output in range(outputs):
                out[start + r, output] = block_sums[output, r]


@_jit
def _descend(node, packed, threshold, columns, shift, feature_bits, row):
    """One step down for one row: the node's left child (its right child is the next node) plus
    one where the row goes right. A leaf is its own left child and sends no value right."""
    word = packed[node]
    return (word >> shift) + np.uint64(columns[word & feature_bits, row] > threshold[node])


@_jit
def walk_scores(rows, features, roots, packed, shift, threshold, leaf_value, columns, out):
    """Add each tree's leaf value to ``out[row, tree % outputs]``, for trees of any size whose
    nodes all read NaN as 0 (missing type None), so a node sends a value right when ``v > t``.

    Per chunk of rows (``columns`` is scratch of ``(features, chunk)``, chunk a multiple of 8),
    tree by tree, eight rows walk down together: a walk is a chain of dependent loads, and eight
    independent chains keep the core busy while each waits (about 3.5x a row at a time). Each
    node is one word, its left child's index above ``shift`` bits of feature index; a leaf is
    its own child with an infinite threshold, so a finished row stays until its group is done."""
    chunk = columns.shape[1]
    outputs = out.shape[1]
    feature_bits = (np.uint64(1) << shift) - np.uint64(1)
    by_column = rows.strides[0] < rows.strides[1]
    for start in range(0, rows.shape[0], chunk):
        count = min(chunk, rows.shape[0] - start)
        if by_column:
            for j in range(features.size):
                for r in range(count):
                    value = rows[start + r, features[j]]
                    columns[j, r] = np.float32(0.0) if value != value else _lightgbm_value(value)
        else:
            for r in range(count):
                for j in range(features.size):
                    value = rows[start + r, features[j]]
                    columns[j, r] = np.float32(0.0) if value != value else _lightgbm_value(value)
        padded = (count + 7) // 8 * 8
        for r in range(count, padded):  # a partial group walks copies of the last row
            for j in range(features.size):
                columns[j, r] = columns[j, count - 1]
        for tree in range(roots.size):
            output = tree % outputs
            for group in range(0, padded, 8):
                g = np.uint64(group)
                n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = roots[tree]
                while True:
                    for _ in range(4):
                        n0 = _descend(n0, packed, threshold, columns, shift, feature_bits, g)
                        n1 = _descend(n1, packed, threshold, columns, shift, feature_bits, g + np.uint64(1))
                        n2 = _descend(n2, packed, threshold, columns, shift, feature_bits, g + np.uint64(2))
                        n3 = _descend(n3, packed, threshold, columns, shift, feature_bits, g + np.uint64(3))
                        n4 = _descend(n4, packed, threshold, columns, shift, feature_bits, g + np.uint64(4))
                        n5 = _descend(n5, packed, threshold, columns, shift, feature_bits, g + np.uint64(5))
                        n6 = _descend(n6, packed, threshold, columns, shift, feature_bits, g + np.uint64(6))
                        n7 = _descend(n7, packed, threshold, columns, shift, feature_bits, g + np.uint64(7))
                    if ((packed[n0] >> shift) == n0 and (packed[n1] >> shift) == n1
                            and (packed[n2] >> shift) == n2 and (packed[n3] >> shift) == n3
                            and (packed[n4] >> shift) == n4 and (packed[n5] >> shift) == n5
                            and (packed[n6] >> shift) == n6 and (packed[n7] >> shift) == n7):
                        break
                lanes = min(8, count - group)
                for lane, node in enumerate((n0, n1, n2, n3, n4, n5, n6, n7)):
                    if lane < lanes:
                        out[start + group + lane, output] += leaf_value[node]


@_jit
def valid_cell_sums(planes, factor, nodata, has_nodata, valid, sums, counts):
    """For ``(T, B, h, w)`` integer ``planes``: ``valid`` ``(T, h, w)`` where no band is ``nodata``
    (with ``has_nodata``), and per ``factor`` x ``factor`` cell the ``(T, B, ch, cw)`` int64 sums of
    its valid pixels' values and their ``(T, ch, cw)`` count (``sums`` and ``counts`` start at 0).
    The ``factor`` rows of a cell row are added up first (whole rows, vectorised), then the columns."""
    n_dates, n_bands, height, width = planes.shape
    n_cells = counts.shape[2]
    by_rows = np.zeros(n_cells * factor, np.int64)
    for t in range(n_dates):
        for y in range(height):
            row_valid = valid[t, y]
            row_valid[:] = True
            if has_nodata:
                for band in range(n_bands):
                    row = planes[t, band, y]
                    for x in range(width):
                        row_valid[x] &= row[x] != nodata
        for band in range(-1, n_bands):  # -1: the counts
            for cell_row in range(counts.shape[1]):
                by_rows[:] = 0
                for y in range(cell_row * factor, min(height, (cell_row + 1) * factor)):
                    row_valid = valid[t, y]
                    if band < 0:
                        for x in range(width):
                            by_rows[x] += row_valid[x]
                    else:
                        row = planes[t, band, y]
                        for x in range(width):
                            by_rows[x] += row[x] * row_valid[x]
                target = counts[t, cell_row] if band < 0 else sums[t, band, cell_row]
                for cell in range(n_cells):
                    total = 0
                    for x in range(cell * factor, (cell + 1) * factor):
                        total += by_rows[x]
                    target[cell] += total


@_jit
def bilinear_columns(by_rows, present_rows, low, high, low_weight, high_weight, out):
    """``out[t, y, x]``: the float32 ``(t, y, cells)`` row-interpolated values between cells
    ``low[x]`` and ``high[x]``, weighted, divided by the same weights of the present cells
    (``present_rows``); NaN where no present cell weighs."""
    for t in range(out.shape[0]):
        for y in range(out.shape[1]):
            values = by_rows[t, y]
            present = present_rows[t, y]
            row = out[t, y]
            for x in range(out.shape[2]):
                a, b = low[x], high[x]
                total = values[a] * low_weight[x] + values[b] * high_weight[x]
                weight = present[a] * low_weight[x] + present[b] * high_weight[x]
                row[x] = total / weight if weight > 0 else np.float32(np.nan)


@_jit
def digital_number_features(planes, shift, divisor, nodata, has_nodata, kept, pairs, out):
    """``out`` ``(t, F, h, w)`` float32 from integer ``(t, k, h, w)`` band planes: each read band's
    reflectance ``(float32(v) + shift) / divisor`` (NaN where ``v`` is ``nodata``), the ``kept``
    bands, then each pair's ``(a - b) / (a + b)``, NaN where not finite."""
    n_dates, n_read, height, width = planes.shape
    n_kept = kept.size
    row = np.empty((n_read, width), np.float32)
    for t in range(n_dates):
        for y in range(height):
            for j in range(n_read):
                source = planes[t, j, y]
                target = row[j]
                add, divide = shift[j], divisor[j]
                for x in range(width):
                    value = source[x]
                    if has_nodata and value == nodata:
                        target[x] = np.float32(np.nan)
                    else:
                        target[x] = (np.float32(value) + add) / divide
            for f in range(n_kept):
                out[t, f, y, :] = row[kept[f]]
            for p in range(pairs.shape[0]):
                a, b = row[pairs[p, 0]], row[pairs[p, 1]]
                target = out[t, n_kept + p, y]
                for x in range(width):
                    ratio = (a[x] - b[x]) / (a[x] + b[x])
                    target[x] = ratio if np.isfinite(ratio) else np.float32(np.nan)


#: Series per chunk of :func:`interpolate_chunks` (their validity and neighbours stay in cache).
_SERIES = 256


@_jit
def interpolate_chunks(values, nodata, has_nodata, clear, has_clear, times, new_times, fill_edges, out, counts,
                       count_max):
    """``out`` ``(N, B, P)`` float32: the ``(T, B, P)`` float32 ``values`` interpolated in time
    from strictly increasing ``times`` to non-decreasing ``new_times`` (float64 hours) over their
    valid observations (not NaN, not ``nodata``, and with ``has_clear`` ``clear`` ``(T, 1 or B,
    P)``); ``counts`` ``(B, P)`` the valid observations, at most ``count_max``. Between
    neighbours ``v0 + (v1 - v0) / (t1 - t0) * (t - t0)`` in float64; on an observation its value;
    NaN outside the valid range unless ``fill_edges`` takes the nearest. A band whose validity in
    a chunk is the last band's reuses its neighbours (bands of a pixel share its cloud mask)."""
    n_times, n_bands, n_series = values.shape
    n_new = new_times.size
    valid = np.zeros((n_times, _SERIES), np.bool_)
    last_valid = np.zeros((n_times, _SERIES), np.bool_)
    before = np.empty((n_new, _SERIES), np.int32)
    after = np.empty((n_new, _SERIES), np.int32)
    nearest = np.empty(_SERIES, np.int32)
    seen = np.empty(_SERIES, np.int32)
    check_nodata = nodata if has_nodata else np.float32(np.nan)  # NaN equals nothing
    for start in range(0, n_series, _SERIES):
        size = min(_SERIES, n_series - start)
        for b in range(n_bands):
            mask_band = b if clear.shape[1] > 1 else 0
            for t in range(n_times):
                row = values[t, b, start:start + size]
                flags = valid[t]
                if has_clear:
                    clear_row = clear[t, mask_band, start:start + size]
                    for p in range(size):
                        value = row[p]
                        flags[p] = (value == value) & (value != check_nodata) & clear_row[p]
                else:
                    for p in range(size):
                        value = row[p]
                        flags[p] = (value == value) & (value != check_nodata)
            same = b > 0
            if same:
                for t in range(n_times):
                    for p in range(size):
                        if valid[t, p] != last_valid[t, p]:
                            same = False
                            break
                    if not same:
                        break
            if not same:
                seen[:size] = 0
                for t in range(n_times):
                    for p in range(size):
                        seen[p] += valid[t, p]
                        last_valid[t, p] = valid[t, p]
                nearest[:size] = -1
                n = 0
                for t in range(n_times):  # forwards: the last valid at or before
                    while n < n_new and new_times[n] < times[t]:
                        before[n, :size] = nearest[:size]
                        n += 1
                    for p in range(size):
                        nearest[p] = t if valid[t, p] else nearest[p]
                while n < n_new:
                    before[n, :size] = nearest[:size]
                    n += 1
                nearest[:size] = -1
                n = n_new - 1
                for t in range(n_times - 1, -1, -1):  # backwards: the first valid at or after
                    while n >= 0 and new_times[n] > times[t]:
                        after[n, :size] = nearest[:size]
                        n -= 1
                    for p in range(size):
                        nearest[p] = t if valid[t, p] else nearest[p]
                while n >= 0:
                    after[n, :size] = nearest[:size]
                    n -= 1
                if fill_edges:
                    for n in range(n_new):
                        for p in range(size):
                            low, high = before[n, p], after[n, p]
                            before[n, p], after[n, p] = (high if low < 0 else low), (low if high < 0 else high)
            for p in range(size):
                counts[b, start + p] = min(seen[p], count_max)
            for n in range(n_new):
                target = out[n, b, start:start + size]
                for p in range(size):
                    low, high = before[n, p], after[n, p]
                    if low < 0 or high < 0:
                        target[p] = np.float32(np.nan)
                        continue
                    # the numpy plan's operations, on an observation too (span 1, offset 0: -0.0
                    # becomes 0.0 and inf NaN there, as in the plan)
                    span, offset = (times[high] - times[low], new_times[n] - times[low]) if low != high else (1.0, 0.0)
                    first = np.float64(values[low, b, start + p])
                    step = (np.float64(values[high, b, start + p]) - first) / span
                    target[p] = np.float32(first + step * offset)


@_jit
def _highest_first(values, count, k):
    """Reorder ``values[:count]`` so that its ``k`` highest come first (any order): Hoare's
    selection, linear on average, in place."""
    low, high = 0, count - 1
    while low < high:
        pivot = values[(low + high) // 2]
        i, j = low, high
        while i <= j:
            while values[i] > pivot:
                i += 1
            while values[j] < pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        # now values[low:j + 1] >= pivot >= values[i:high + 1]
        if k - 1 <= j:
            high = j
        elif k - 1 >= i:
            low = i
        else:
            return


@_jit
def smooth_window_logits(planes, window, fraction, smoothness, min_variance, out, first_row, end_row):
    """Bayesian posterior mean of the log-odds (:func:`.smoothing.smooth_logits`): class-first
    ``planes`` ``(c, h + 2 r, w + 2 r)`` float64 (NaN nodata) -> rows ``first_row:end_row`` of
    ``out`` ``(h, w, c)``; per pixel and class the prior is the mean and variance of the highest
    ``ceil(fraction * valid)`` values of its window."""
    _, width, n_classes = out.shape
    r = window // 2
    values = np.empty(window * window, np.float64)
    for c in range(n_classes):
        plane = planes[c]
        for y in range(first_row, end_row):
            for x in range(width):
                centre = plane[y + r, x + r]
                if np.isnan(centre):
                    out[y, x, c] = np.nan
                    continue
                count = 0
                for i in range(window):
                    row = plane[y + i]
                    for j in range(x, x + window):
                        v = row[j]
                        if not np.isnan(v):
                            values[count] = v
                            count += 1
                k = int(np.ceil(fraction * count))
                _highest_first(values, count, k)
                total = 0.0
                for i in range(k):
                    total += values[i]
                mean = total / k
                variance = 0.0
                if k > 1:
                    for i in range(k):
                        variance += (values[i] - mean) ** 2
                    variance /= k - 1
                if variance < min_variance:
                    out[y, x, c] = mean
                else:
                    weight = variance / (variance + smoothness[c])
                    out[y, x, c] = weight * centre + (1.0 - weight) * mean
