"""Temporal interpolation: an irregular, cloudy time stack -> a regular, gap-free one.

The result equals eo-learn 1.5's ``LinearInterpolationTask(feature, mask_feature=VALID,
resample_range=...)`` (after the LULC example's ``SimpleFilterTask`` with a valid-fraction
predicate), computed block by block with vectorised numpy instead of one ``np.interp`` per pixel.
eo-learn's rules that are mirrored on purpose, because they change values:

- times are whole hours since the first (kept) acquisition, ``round(seconds / 3600)`` with
  Python's round-half-even; acquisitions that fall on the same hour are averaged (NaN-aware);
- the grid ``start, start + k * interval`` runs while strictly before ``end``;
- grid times are measured from the first grid date's *day*, so a grid of midnights is evaluated
  at the first acquisition's time of day (``2016-01-01`` means ``2016-01-01T10:00`` when the
  first acquisition was at 10:00);
- a pixel is nodata before its first and after its last valid observation (optionally filled
  with that observation instead); a pixel without valid observation is nodata everywhere;
- the scene filter keeps dates whose share of valid values is strictly above the threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import iter_blocks
from .progress import Progress, ensure_progress
from .timestack import (
    StackInfo,
    StackReader,
    StackWriter,
    bounded_gdal_cache,
    format_datetime,
    open_stack,
    parse_datetime,
    read_info,
)

#: eo-learn's ``scale_time``: interpolation times are whole hours.
SCALE_SECONDS = 3600
DEFAULT_INTERVAL_DAYS = 16
DEFAULT_MIN_VALID_FRACTION = 0.8
TAG_REPORT = "EOLULC_INTERPOLATION"
COUNT_NODATA = 65535


def date_grid(start: str | datetime, end: str | datetime, interval_days: int) -> list[datetime]:
    """eo-learn's ``resample_range``: ``start + k * interval`` for every k while strictly before ``end``."""
    first = parse_datetime(start) if isinstance(start, str) else start
    last = parse_datetime(end) if isinstance(end, str) else end
    if int(interval_days) != interval_days or interval_days < 1:
        raise ValueError(f"the interval must be a whole number of days, at least 1 (got {interval_days})")
    if last <= first:
        raise ValueError(f"the end {format_datetime(last)} must be after the start {format_datetime(first)}")
    step = timedelta(days=int(interval_days))
    days = [first]
    while days[-1] + step < last:
        days.append(days[-1] + step)
    return days


def parse_date_list(text: str | Sequence[str | datetime]) -> list[datetime]:
    """Dates given as a comma/space/newline separated string or a sequence; kept in the given order."""
    items = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    dates = [parse_datetime(d) if isinstance(d, str) else d for d in items]
    if not dates:
        raise ValueError("the list of dates is empty")
    return dates


def hours_since(dates: Sequence[datetime], reference: datetime) -> np.ndarray:
    """Whole hours from ``reference``, rounded like eo-learn (Python's round-half-even)."""
    return np.asarray([round((d - reference).total_seconds() / SCALE_SECONDS) for d in dates], dtype=np.int64)


def grid_hours(grid: Sequence[datetime], reference: datetime) -> np.ndarray:
    """Hours of the grid dates on the time axis of :func:`hours_since` ``(..., reference)``, as eo-learn
    computes them: hours since the first grid date plus whole days between the two first dates."""
    days = int((grid[0].date() - reference.date()).total_seconds())
    return hours_since(grid, grid[0]) + days // SCALE_SECONDS


# ---------------------------------------------------------------------------- block kernel
def interpolate_series(
    values: np.ndarray,
    valid: np.ndarray,
    times: np.ndarray,
    new_times: np.ndarray,
    fill_edges: bool = False,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate many series at once.

    ``values`` and ``valid`` are ``(T, P)`` (T acquisitions, any order; P series), ``times`` the
    acquisitions' whole hours, ``new_times`` the hours to evaluate. Returns the ``(N, P)`` result
    (float64, or written into ``out``; NaN where there is no value) and the ``(P,)`` number of
    valid observation times. Two sweeps over the observation times carry, for every series, the
    last valid value and time so far (and the next ones, backwards); each new date then needs only
    two rows of each, so the work is a few passes over ``P`` per date, with no gathers.
    """
    order = np.argsort(times, kind="stable")
    unique_times, starts = np.unique(times[order], return_index=True)
    n_unique, n_series = len(unique_times), values.shape[1]
    if n_unique == len(times):
        # invalid values are never picked below, so they need no cleaning
        in_order = bool(np.all(order[1:] > order[:-1]))
        ok = valid if in_order else valid[order]
        means = values if in_order else values[order]
    else:
        # acquisitions in the same hour: average of their valid values (eo-learn's nanmean)
        sums = np.add.reduceat(np.where(valid, values, 0.0).astype(np.float64)[order], starts, axis=0)
        counts = np.add.reduceat(valid[order].astype(np.int32), starts, axis=0)
        ok = counts > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / np.maximum(counts, 1)
        del sums, counts
    value_type = np.float64 if means.dtype == np.float64 else np.float32
    # hours are whole numbers far below 2**24, exact in float32; NaN = no valid observation
    hours = unique_times.astype(np.float32)
    last_value = np.empty((n_unique, n_series), value_type)
    last_time = np.empty((n_unique, n_series), np.float32)
    next_value = np.empty((n_unique, n_series), value_type)
    next_time = np.empty((n_unique, n_series), np.float32)
    nothing = np.full(n_series, np.nan, np.float32)
    for u in range(n_unique):
        last_value[u] = np.where(ok[u], means[u], last_value[u - 1] if u else nothing)
        last_time[u] = np.where(ok[u], hours[u], last_time[u - 1] if u else nothing)
        k = n_unique - 1 - u
        next_value[k] = np.where(ok[k], means[k], next_value[k + 1] if u else nothing)
        next_time[k] = np.where(ok[k], hours[k], next_time[k + 1] if u else nothing)
    count = ok.sum(axis=0)
    del ok, means

    result = np.empty((len(new_times), n_series), np.float64) if out is None else out
    at_or_before = np.searchsorted(unique_times, new_times, side="right") - 1
    at_or_after = np.searchsorted(unique_times, new_times, side="left")
    for n, x in enumerate(new_times.astype(np.float64)):
        k0, k1 = at_or_before[n], at_or_after[n]
        v0 = (last_value[k0] if k0 >= 0 else nothing).astype(np.float64)
        t0 = (last_time[k0] if k0 >= 0 else nothing).astype(np.float64)
        v1 = (next_value[k1] if k1 < n_unique else nothing).astype(np.float64)
        t1 = (next_time[k1] if k1 < n_unique else nothing).astype(np.float64)
        # np.interp's formula: slope * (x - x0) + y0, and y0 itself on an observation's time;
        # a missing neighbour (NaN time) makes the value NaN
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (v1 - v0) / (t1 - t0) * (x - t0) + v0
        np.copyto(value, v0, where=t0 == t1)
        if fill_edges:
            np.copyto(value, v1, where=np.isnan(t0))
            np.copyto(value, v0, where=np.isnan(t1))
        result[n] = value
    return result, count


# ---------------------------------------------------------------------------- stacks
@dataclass
class InterpolationReport:
    """What was done: the scene filter's decisions and the new dates (JSON for the report output)."""

    input_dates: list[datetime]
    fractions: list[float] | None
    min_valid_fraction: float
    kept: list[int]
    dates: list[datetime]
    fill_edges: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def dropped(self) -> list[int]:
        kept = set(self.kept)
        return [i for i in range(len(self.input_dates)) if i not in kept]

    def as_dict(self) -> dict:
        fmt = format_datetime
        return {
            "min_valid_fraction": self.min_valid_fraction,
            "valid_fractions": None if self.fractions is None else {
                fmt(d): round(f, 6) for d, f in zip(self.input_dates, self.fractions)
            },
            "kept_dates": [fmt(self.input_dates[i]) for i in self.kept],
            "dropped_dates": [fmt(self.input_dates[i]) for i in self.dropped],
            "output_dates": [fmt(d) for d in self.dates],
            "fill_edges": self.fill_edges,
            **self.extra,
        }


def _invalid_data(block: np.ndarray, nodata: float | None) -> np.ndarray:
    invalid = np.isnan(block) if block.dtype.kind == "f" else np.zeros(block.shape, dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        invalid |= block == np.asarray(nodata).astype(block.dtype)
    return invalid


def _clear_mask(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """Mask values that let the data through: 0 (no cloud), not nodata."""
    clear = block == 0
    if nodata is not None and not np.isnan(nodata):
        clear &= block != np.asarray(nodata).astype(block.dtype)
    return clear


def check_inputs(info: StackInfo, mask_info: StackInfo | None) -> None:
    """Refuse an undated input, or a mask on other pixels, other dates or with an unusable band count."""
    if not info.is_dated:
        raise ValueError("the input is not a time stack: its bands carry no acquisition dates")
    if mask_info is None:
        return
    if not mask_info.grid.same_as(info.grid):
        raise ValueError("the mask does not cover the same pixels as the input (size, transform or CRS differ)")
    if tuple(mask_info.dates) != tuple(info.dates):
        only_mask = sorted(set(d for d in mask_info.dates if d is not None) - set(info.dates))
        only_input = sorted(set(info.dates) - set(d for d in mask_info.dates if d is not None))
        detail = []
        if only_input:
            detail.append(f"input-only dates {', '.join(format_datetime(d) for d in only_input[:5])}")
        if only_mask:
            detail.append(f"mask-only dates {', '.join(format_datetime(d) for d in only_mask[:5])}")
        if not detail:
            detail.append("the same dates in another order")
        raise ValueError(
            f"the mask must hold the input's dates in the same order ({info.n_dates} dates); "
            f"it has {mask_info.n_dates}: {'; '.join(detail)}"
        )
    if mask_info.n_bands not in (1, info.n_bands):
        raise ValueError(
            f"the mask has {mask_info.n_bands} bands per date; it needs 1 (for all bands) or {info.n_bands}"
        )


def valid_fractions(
    input_path: str | Path,
    mask_path: str | Path | None = None,
    budget_bytes: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Share of valid values of each date over the whole stack, as the scene filter sees them:
    from the mask when there is one (0 and not nodata), else from the input (not nodata)."""
    with open_stack(str(mask_path or input_path)) as reader:
        info = reader.info
        clear_counts = np.zeros(info.n_dates, dtype=np.int64)
        per_pixel = info.count * (np.dtype(info.dtype).itemsize + 2)
        for block in iter_blocks(info.grid.height, info.grid.width, per_pixel, budget_bytes, progress=progress):
            data = reader.read(block.window)
            ok = _clear_mask(data, info.nodata) if mask_path else ~_invalid_data(data, info.nodata)
            clear_counts += ok.reshape(info.n_dates, -1).sum(axis=1)
    total = info.grid.height * info.grid.width * info.n_bands
    return clear_counts / total


def default_range(info: StackInfo) -> tuple[datetime, datetime]:
    """The grid's default start and end: the first acquisition's day and the day after the last."""
    dates = [d for d in info.dates if d is not None]
    if not dates:
        raise ValueError("the input has no acquisition dates; it is not a time stack")
    first = datetime.combine(min(dates).date(), datetime.min.time())
    return first, datetime.combine(max(dates).date(), datetime.min.time()) + timedelta(days=1)


@bounded_gdal_cache()
def interpolate_stack(
    input_path: str | Path,
    output_path: str | Path,
    *,
    grid: Sequence[datetime] | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    interval_days: int = DEFAULT_INTERVAL_DAYS,
    mask_path: str | Path | None = None,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    fill_edges: bool = False,
    output_count: str | Path | None = None,
    output_report: str | Path | None = None,
    budget_bytes: int | None = None,
    progress: Progress | None = None,
) -> InterpolationReport:
    """Interpolate ``input_path`` onto a regular grid (``start``/``end``/``interval_days``) or the
    explicit dates ``grid``, writing a float stack with NaN as nodata.

    ``mask_path``: a mask stack on the input's dates, 0 = clear, anything else (and nodata) = invalid.
    ``min_valid_fraction`` > 0 drops dates whose valid share is not above it before interpolating.
    ``output_count``: valid observation times per pixel and band (uint16). ``output_report``: JSON.
    All outputs are written, or none.
    """
    progress = ensure_progress(progress)
    if not 0 <= min_valid_fraction <= 1:
        raise ValueError(f"the minimum valid fraction must be between 0 and 1 (got {min_valid_fraction})")
    if grid is None:
        first_day, day_after = default_range(read_info(str(input_path)))
        grid = date_grid(first_day if start is None else start, day_after if end is None else end, interval_days)
    grid = list(grid)
    if not grid:
        raise ValueError("the list of dates is empty")

    with open_stack(str(input_path)) as reader:
        info = reader.info
        mask_reader = open_stack(str(mask_path)) if mask_path else None
        try:
            check_inputs(info, mask_reader.info if mask_reader else None)
            fractions = None
            kept = list(range(info.n_dates))
            if min_valid_fraction > 0:
                fractions = valid_fractions(input_path, mask_path, budget_bytes, progress.scaled(0.0, 0.25))
                kept = [i for i, f in enumerate(fractions) if f > min_valid_fraction]
                if not kept:
                    best = int(np.argmax(fractions))
                    raise ValueError(
                        f"no date has a valid fraction above {min_valid_fraction:g} (the best is "
                        f"{fractions[best]:.3f} on {format_datetime(info.dates[best])}); lower the minimum"
                    )
                progress = progress.scaled(0.25, 1.0)
            report = InterpolationReport(
                input_dates=list(info.dates), fractions=None if fractions is None else [float(f) for f in fractions],
                min_valid_fraction=float(min_valid_fraction), kept=kept, dates=grid, fill_edges=fill_edges,
            )
            kept_dates = [info.dates[i] for i in kept]
            reference = min(kept_dates)
            times = hours_since(kept_dates, reference)
            new_times = grid_hours(grid, reference)
            if not np.any((new_times >= times.min()) & (new_times <= times.max())):
                raise ValueError(
                    f"the new dates {format_datetime(min(grid))} .. {format_datetime(max(grid))} lie outside "
                    f"the input's (kept) dates {format_datetime(min(kept_dates))} .. "
                    f"{format_datetime(max(kept_dates))}"
                )
            _write(reader, mask_reader, kept, times, new_times, report, output_path, output_count,
                   output_report, fill_edges, budget_bytes, progress)
        finally:
            if mask_reader is not None:
                mask_reader.close()
    return report


def _write(
    reader: StackReader,
    mask_reader: StackReader | None,
    kept: list[int],
    times: np.ndarray,
    new_times: np.ndarray,
    report: InterpolationReport,
    output_path: str | Path,
    output_count: str | Path | None,
    output_report: str | Path | None,
    fill_edges: bool,
    budget_bytes: int | None,
    progress: Progress,
) -> None:
    info = reader.info
    out_dtype = "float64" if np.dtype(info.dtype) == np.float64 else "float32"
    summary = report.as_dict()
    tags = {k: v for k, v in info.tags.items() if not k.startswith("EOLULC_")}
    tags[TAG_REPORT] = json.dumps({k: summary[k] for k in ("min_valid_fraction", "dropped_dates", "fill_edges")})
    out_info = StackInfo(
        grid=info.grid, dates=tuple(report.dates), bands=info.bands, dtype=out_dtype, nodata=float("nan"),
        scales=info.scales, offsets=info.offsets, tags=tags,
    )
    count_info = StackInfo(grid=info.grid, dates=(None,), bands=info.bands, dtype="uint16", nodata=None,
                           tags={TAG_REPORT: tags[TAG_REPORT]})
    n_kept, n_new, n_bands = len(kept), len(new_times), info.n_bands
    mask_bands = mask_reader.info.n_bands if mask_reader else 0
    n_unique = len(np.unique(times))
    # the block's output (and the writer's copy of it) for all bands; the mask; then one band at a
    # time: its dates read (and rasterio's copy), validity, float64 sums, the sweeps, float64 result
    per_pixel = (n_new * n_bands * (np.dtype(out_dtype).itemsize * 2 + 2) + n_kept * mask_bands * 2
                 + n_kept * 21 + n_unique * 24 + n_new * 8 + 128)
    kept_arg = None if n_kept == info.n_dates else kept
    with atomic_outputs([output_path, output_count, output_report]) as (temp, temp_count, temp_report):
        writer = StackWriter(str(temp), out_info)
        count_writer = StackWriter(str(temp_count), count_info) if temp_count is not None else None
        try:
            for block in iter_blocks(info.grid.height, info.grid.width, per_pixel, budget_bytes, progress=progress):
                h, w = block.height, block.width
                clear = None
                if mask_reader is not None:
                    mask = mask_reader.read(block.window, dates=kept_arg)
                    clear = _clear_mask(mask, mask_reader.info.nodata)
                    del mask
                result = np.empty((n_new, h, w, n_bands), out_dtype)
                counts = np.empty((1, h, w, n_bands), np.uint16)
                for b in range(n_bands):
                    data = reader.read(block.window, dates=kept_arg, bands=[b])
                    valid = ~_invalid_data(data, info.nodata)
                    if clear is not None:
                        valid &= clear[..., b if mask_bands > 1 else 0, None]
                    band_result, count = interpolate_series(
                        data.reshape(n_kept, -1), valid.reshape(n_kept, -1), times, new_times, fill_edges
                    )
                    del data, valid
                    result[..., b] = band_result.reshape(n_new, h, w)
                    counts[0, ..., b] = np.minimum(count, COUNT_NODATA).reshape(h, w)
                    del band_result
                writer.write(result, block.window)
                if count_writer is not None:
                    count_writer.write(counts, block.window)
                del result
        finally:
            writer.close()
            if count_writer is not None:
                count_writer.close()
        if temp_report is not None:
            Path(temp_report).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    progress.log(
        f"{n_kept} of {info.n_dates} dates kept"
        + (f" (valid fraction above {report.min_valid_fraction:g})" if report.fractions is not None else "")
        + f"; {n_new} new dates {format_datetime(report.dates[0])} .. {format_datetime(report.dates[-1])}"
    )
