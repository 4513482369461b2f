"""The interpolation of a block of time series: which observations and weights give each new date.

:mod:`.interpolate` handles stacks (scene filter, dates, blocks, outputs); this module is its
arithmetic on in-memory arrays, kept apart because it is what must equal eo-learn's per-pixel
``np.interp`` bit for bit, and what benchmarks and tests call directly. An
:class:`InterpolationPlan` is built once per validity pattern and applied to every band that
shares it; :func:`interpolate_block` uses the compiled kernel (:mod:`.kernels`) where numba is
installed and the acquisition times are sorted and distinct, the numpy plans otherwise, with the
same values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

import numpy as np

from .compiled import kernels

#: eo-learn's ``scale_time``: interpolation times are whole hours.
SCALE_SECONDS = 3600
#: Counts are uint16: a series with more valid observations saturates at this value.
COUNT_NODATA = 65535
#: series interpolated together: small enough that a plan and its bands' values stay in the CPU cache
CHUNK_SERIES = 4096


def hours_since(dates: Sequence[datetime], reference: datetime) -> np.ndarray:
    """Whole hours from ``reference``, rounded like eo-learn (Python's round-half-even)."""
    return np.asarray([round((d - reference).total_seconds() / SCALE_SECONDS) for d in dates], dtype=np.int64)


def grid_hours(grid: Sequence[datetime], reference: datetime) -> np.ndarray:
    """Hours of the grid dates on the time axis of :func:`hours_since` ``(..., reference)``, as eo-learn
    computes them: hours since the first grid date plus whole days between the two first dates."""
    days = int((grid[0].date() - reference.date()).total_seconds())
    return hours_since(grid, grid[0]) + days // SCALE_SECONDS


class InterpolationPlan:
    """Which two observations, and which weight, give every new date's value of every series.

    Built once from a validity pattern ``valid`` ``(T, P)`` (T acquisitions in any order, P series)
    and applied to every band that shares it (bands of one pixel usually share the cloud mask), so
    a band costs two gathers and three arithmetic passes. ``times`` are the acquisitions' whole
    hours, ``new_times`` the hours to evaluate. ``count_`` is the ``(P,)`` number of valid
    observation times.

    Values follow ``np.interp`` (what eo-learn calls per pixel): ``y0 + (y1 - y0) * (x - x0) / (x1 - x0)``
    in float64 between the nearest valid observations at or before and at or after ``x``; ``y0``
    on an observation; NaN outside the valid range unless ``fill_edges`` takes the nearest one.
    """

    def __init__(self, valid: np.ndarray, times: np.ndarray, new_times: np.ndarray, fill_edges: bool = False):
        n_series = valid.shape[1]
        order = np.argsort(times, kind="stable")
        unique_times, starts = np.unique(times[order], return_index=True)
        n_unique = len(unique_times)
        in_order = bool(np.all(order[1:] > order[:-1]))
        self.order_ = None if in_order else order
        self.starts_ = None
        if n_unique == len(times):
            ok = valid if in_order else valid[order]
        else:  # acquisitions in the same hour are averaged (eo-learn's nanmean)
            self.order_, self.starts_ = order, starts
            self.sorted_valid_ = valid[order]
            self.counts_ = np.add.reduceat(self.sorted_valid_.astype(np.int32), starts, axis=0)
            ok = self.counts_ > 0
        self.count_ = ok.sum(axis=0)

        # the last valid row at or before each row, the next at or after; n_unique = none. The
        # extra last row answers the grid dates before the first / after the last observation.
        none = n_unique
        rows = np.arange(n_unique, dtype=np.int32)[:, None]
        last = np.full((n_unique + 1, n_series), none, np.int32)
        following = np.full((n_unique + 1, n_series), none, np.int32)
        last[:-1] = np.where(ok, rows, -1)
        following[:-1] = np.where(ok, rows, none)
        # row by row: ufunc.accumulate along the first axis walks it with a stride (10x slower)
        for u in range(1, n_unique):
            np.maximum(last[u - 1], last[u], out=last[u])
            k = n_unique - 1 - u
            np.minimum(following[k + 1], following[k], out=following[k])
        last[last < 0] = none
        i0 = last[np.searchsorted(unique_times, new_times, side="right") - 1]
        i1 = following[np.searchsorted(unique_times, new_times, side="left")]
        if fill_edges:
            i0, i1 = np.where(i0 == none, i1, i0), np.where(i1 == none, i0, i1)
        hours = np.append(unique_times.astype(np.float64), np.nan)
        t0, t1 = hours[i0], hours[i1]
        # np.interp's own formula (slope * (x - x0) + y0), so values equal eo-learn's bit for bit;
        # on an observation the value is y0; a NaN offset (no neighbour on a side) makes it NaN
        on_observation = i0 == i1
        self.span_ = np.where(on_observation, 1.0, t1 - t0)
        self.offset_ = np.where(on_observation, 0.0, new_times.astype(np.float64)[:, None] - t0)
        self.offset_[i0 == none] = np.nan  # nothing before (or, filling the edges, no valid observation)
        # where the value is NaN the index only has to exist
        np.minimum(i0, n_unique - 1, out=i0)
        np.minimum(i1, n_unique - 1, out=i1)
        columns = np.arange(n_series, dtype=np.intp)
        self.flat0_ = i0 * n_series + columns
        self.flat1_ = i1 * n_series + columns

    def _means(self, values: np.ndarray) -> np.ndarray:
        if self.starts_ is None:
            return values if self.order_ is None else values[self.order_]
        valid_values = np.where(self.sorted_valid_, values[self.order_], 0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.add.reduceat(valid_values, self.starts_, axis=0) / np.maximum(self.counts_, 1)

    def apply(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The ``(N, P)`` values on the new dates of the ``(T, P)`` series ``values`` (float64, or
        cast into ``out``)."""
        flat = np.ascontiguousarray(self._means(values)).ravel()
        v0 = flat.take(self.flat0_).astype(np.float64, copy=False)
        step = flat.take(self.flat1_) - v0
        step /= self.span_
        step *= self.offset_
        if out is None:
            step += v0
            return step
        np.add(v0, step, out=out)
        return out


def interpolate_series(
    values: np.ndarray,
    valid: np.ndarray,
    times: np.ndarray,
    new_times: np.ndarray,
    fill_edges: bool = False,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate the ``(T, P)`` series ``values`` (valid where ``valid``) at ``new_times``:
    the ``(N, P)`` result (float64, or written into ``out``; NaN where there is no value) and the
    ``(P,)`` number of valid observation times."""
    plan = InterpolationPlan(valid, times, new_times, fill_edges)
    return plan.apply(values, out), plan.count_


def interpolate_block(
    values: np.ndarray,
    nodata: float | None,
    clear: np.ndarray | None,
    times: np.ndarray,
    new_times: np.ndarray,
    fill_edges: bool,
    out: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Interpolate a block's ``(T, B, P)`` values into ``out`` ``(N, B, P)`` and their valid
    observation counts into ``counts`` ``(B, P)``.

    Valid = not nodata/NaN and, with ``clear`` ``(T, 1 or B, P)``, clear. Series go in chunks of
    :data:`CHUNK_SERIES` so a plan stays in cache while every band sharing its validity uses it.
    """
    n_bands, n_series = values.shape[1], values.shape[2]
    compiled = kernels()
    if (compiled is not None and values.dtype == np.float32 and out.dtype == np.float32
            and np.all(np.diff(times) > 0) and np.all(np.diff(new_times) >= 0)):
        has_nodata = nodata is not None and not np.isnan(nodata)
        # contiguous arrays: one compiled version for blocks and picked pixels alike
        compiled.interpolate_chunks(
            np.ascontiguousarray(values), np.float32(nodata) if has_nodata else np.float32(0), has_nodata,
            np.ones((1, 1, 1), bool) if clear is None else np.ascontiguousarray(clear), clear is not None,
            times.astype(np.float64), new_times.astype(np.float64), fill_edges, out, counts, COUNT_NODATA)
        return
    for start in range(0, n_series, CHUNK_SERIES):
        part = slice(start, start + CHUNK_SERIES)
        plans: list[tuple[np.ndarray, InterpolationPlan]] = []
        for b in range(n_bands):
            series = values[:, b, part]
            valid = ~invalid_data(series, nodata)
            if clear is not None:
                valid &= clear[:, b if clear.shape[1] > 1 else 0, part]
            plan = next((p for v, p in plans if np.array_equal(v, valid)), None)
            if plan is None:
                plan = InterpolationPlan(valid, times, new_times, fill_edges)
                plans.append((valid, plan))
            plan.apply(series, out=out[:, b, part])
            np.minimum(plan.count_, COUNT_NODATA, out=counts[b, part], casting="unsafe")


def invalid_data(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """Values that are no observation: NaN, or the stack's nodata value."""
    invalid = np.isnan(block) if block.dtype.kind == "f" else np.zeros(block.shape, dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        invalid |= block == np.asarray(nodata).astype(block.dtype)
    return invalid


def clear_mask(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """Mask values that let the data through: 0 (no cloud), not nodata."""
    clear = block == 0
    if nodata is not None and not np.isnan(nodata) and np.asarray(nodata).astype(block.dtype) == 0:
        clear[...] = False  # 0 is the nodata value: nothing is clear (any other nodata is not 0 anyway)
    return clear
