"""Temporal interpolation: an irregular, cloudy time stack -> a regular, gap-free one.

The result equals eo-learn 1.5's ``LinearInterpolationTask(feature, mask_feature=VALID,
resample_range=...)`` (after the LULC example's ``SimpleFilterTask`` with a valid-fraction
predicate), computed block by block (:mod:`.interpolation_plan`) instead of one
``np.interp`` per pixel.
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

import functools
import json
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .atomic import atomic_outputs
from .blocks import READ_THREADS, Block, WriteBehind, iter_blocks, read_ahead
from .features import FeatureReader, FeatureSpec, pick_pixels
from .featureset import ChosenPixels, block_rows
from .interpolation_plan import clear_mask, grid_hours, hours_since, interpolate_block, invalid_data
from .progress import Progress, ensure_progress
from .timestack import (
    StackInfo,
    StackReader,
    StackWriter,
    Window,
    bounded_gdal_cache,
    format_datetime,
    open_stack,
    parse_datetime,
    read_info,
)

DEFAULT_INTERVAL_DAYS = 16
DEFAULT_MIN_VALID_FRACTION = 0.8
TAG_REPORT = "EOLULC_INTERPOLATION"


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
    features: FeatureSpec | None = None,
) -> np.ndarray:
    """Share of valid values of each date over the whole stack, as the scene filter sees them:
    from the mask when there is one (0 and not nodata), else from the input (not nodata; with
    ``features``, the features computed from the input's bands)."""
    with _open_input(mask_path or input_path, None if mask_path else features) as reader:
        info = reader.info
        clear_counts = np.zeros(info.n_dates, dtype=np.int64)
        per_pixel = info.count * (np.dtype(info.dtype).itemsize + 2) + info.n_dates * getattr(
            reader, "extra_bytes_per_date", 0)
        for block in iter_blocks(info.grid.height, info.grid.width, per_pixel, budget_bytes, progress=progress):
            data = reader.read(block.window)
            ok = clear_mask(data, info.nodata) if mask_path else ~invalid_data(data, info.nodata)
            clear_counts += np.count_nonzero(ok.reshape(info.n_dates, -1), axis=1)
    total = info.grid.height * info.grid.width * info.n_bands
    return clear_counts / total


def _open_input(path: str | Path, features: FeatureSpec | None) -> StackReader | FeatureReader:
    """The stack itself, or with ``features`` the features computed from its bands as they are read."""
    return FeatureReader(path, features) if features is not None else open_stack(str(path))


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
    features: FeatureSpec | None = None,
) -> InterpolationReport:
    """Interpolate ``input_path`` onto a regular grid (``start``/``end``/``interval_days``) or the
    explicit dates ``grid``, writing a float stack with NaN as nodata: :func:`plan_interpolation`
    then :func:`write_interpolation` (see them for the arguments)."""
    progress = ensure_progress(progress)
    report = plan_interpolation(
        input_path, grid=grid, start=start, end=end, interval_days=interval_days, mask_path=mask_path,
        min_valid_fraction=min_valid_fraction, fill_edges=fill_edges, budget_bytes=budget_bytes,
        progress=progress.scaled(0.0, 0.25) if min_valid_fraction > 0 else None, features=features)
    write_interpolation(
        input_path, report, output_path, mask_path=mask_path, output_count=output_count,
        output_report=output_report, budget_bytes=budget_bytes,
        progress=progress.scaled(0.25, 1.0) if min_valid_fraction > 0 else progress, features=features)
    progress.log(
        f"{len(report.kept)} of {len(report.input_dates)} dates kept"
        + (f" (valid fraction above {report.min_valid_fraction:g})" if report.fractions is not None else "")
        + f"; {len(report.dates)} new dates {format_datetime(report.dates[0])} .. {format_datetime(report.dates[-1])}"
    )
    return report


#: ``on_block(window, values, info)``: a block ``(t, h, w, b)`` of the interpolated stack ``info``.
BlockSink = Callable[[Window, np.ndarray, StackInfo], None]


@contextmanager
def _inputs(input_path: str | Path, mask_path: str | Path | None,
            features: FeatureSpec | None) -> Iterator[tuple[StackReader | FeatureReader, StackReader | None]]:
    """The input (or its features) and the mask, checked to fit each other."""
    with _open_input(input_path, features) as reader:
        mask_reader = open_stack(str(mask_path)) if mask_path else None
        try:
            check_inputs(reader.info, mask_reader.info if mask_reader else None)
            yield reader, mask_reader
        finally:
            if mask_reader is not None:
                mask_reader.close()


def plan_interpolation(
    input_path: str | Path,
    *,
    grid: Sequence[datetime] | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    interval_days: int = DEFAULT_INTERVAL_DAYS,
    mask_path: str | Path | None = None,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    fill_edges: bool = False,
    fractions: Sequence[float] | None = None,
    budget_bytes: int | None = None,
    progress: Progress | None = None,
    features: FeatureSpec | None = None,
) -> InterpolationReport:
    """The scene filter's decisions and the new dates: a regular grid (``start``/``end``/
    ``interval_days``) or the explicit dates ``grid``.

    ``mask_path``: a mask stack on the input's dates, 0 = clear, anything else (and nodata) = invalid.
    ``min_valid_fraction`` > 0 drops dates whose valid share is not above it; the shares are
    counted over the whole stack unless ``fractions`` gives them (the cloud-mask step counts them
    as it writes the mask). ``features``: ``input_path`` is a band stack and these per-date
    features of it are what is interpolated.
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
    with _inputs(input_path, mask_path, features) as (reader, _):
        info = reader.info
    kept = list(range(info.n_dates))
    if min_valid_fraction > 0:
        if fractions is None:
            fractions = valid_fractions(input_path, mask_path, budget_bytes, progress, features)
        elif len(fractions) != info.n_dates:
            raise ValueError(f"{len(fractions)} valid fractions given for {info.n_dates} dates")
        kept = [i for i, f in enumerate(fractions) if f > min_valid_fraction]
        if not kept:
            best = int(np.argmax(fractions))
            raise ValueError(
                f"no date has a valid fraction above {min_valid_fraction:g} (the best is "
                f"{fractions[best]:.3f} on {format_datetime(info.dates[best])}); lower the minimum"
            )
    report = InterpolationReport(
        input_dates=list(info.dates),
        fractions=None if min_valid_fraction <= 0 else [float(f) for f in fractions],
        min_valid_fraction=float(min_valid_fraction), kept=kept, dates=grid, fill_edges=fill_edges,
    )
    times, new_times = _time_axes(report)
    if not np.any((new_times >= times.min()) & (new_times <= times.max())):
        kept_dates = [info.dates[i] for i in kept]
        raise ValueError(
            f"the new dates {format_datetime(min(grid))} .. {format_datetime(max(grid))} lie outside "
            f"the input's (kept) dates {format_datetime(min(kept_dates))} .. "
            f"{format_datetime(max(kept_dates))}"
        )
    progress.report(1.0)
    return report


def _time_axes(report: InterpolationReport) -> tuple[np.ndarray, np.ndarray]:
    """Hours of the kept acquisitions and of the new dates, from the first kept acquisition."""
    kept_dates = [report.input_dates[i] for i in report.kept]
    reference = min(kept_dates)
    return hours_since(kept_dates, reference), grid_hours(report.dates, reference)


def interpolated_stack_info(input_path: str | Path, report: InterpolationReport,
                            features: FeatureSpec | None = None) -> StackInfo:
    """What :func:`write_interpolation` of ``input_path`` (or its ``features``) with ``report``
    writes: dates, bands, data type, tags (e.g. for a model trained before it is written)."""
    with _open_input(input_path, features) as reader:
        return _interpolated_info(reader.info, report)


def _interpolated_info(info: StackInfo, report: InterpolationReport) -> StackInfo:
    out_dtype = "float64" if np.dtype(info.dtype) == np.float64 else "float32"
    summary = report.as_dict()
    tags = {k: v for k, v in info.tags.items() if not k.startswith("EOLULC_")}
    tags[TAG_REPORT] = json.dumps({k: summary[k] for k in ("min_valid_fraction", "dropped_dates", "fill_edges")})
    return StackInfo(
        grid=info.grid, dates=tuple(report.dates), bands=info.bands, dtype=out_dtype, nodata=float("nan"),
        scales=info.scales, offsets=info.offsets, tags=tags,
    )


class _BlockSource:
    """Reads blocks of the kept dates as ``(T, B, pixels)`` values and ``(T, 1 or B, pixels)``
    clear flags, and interpolates them."""

    def __init__(self, reader: StackReader | FeatureReader, mask_reader: StackReader | None,
                 report: InterpolationReport) -> None:
        self.reader, self.mask_reader, self.report = reader, mask_reader, report
        self.info = reader.info
        if tuple(report.input_dates) != tuple(self.info.dates):
            raise ValueError("the interpolation plan was made for another input (its dates differ); "
                             "plan it again with plan_interpolation on this input")
        self.out_info = _interpolated_info(self.info, report)
        self.times, self.new_times = _time_axes(report)
        self.n_kept, self.n_new, self.n_bands = len(report.kept), len(report.dates), self.info.n_bands
        self.mask_bands = mask_reader.info.n_bands if mask_reader else 0
        self._kept_arg = None if self.n_kept == self.info.n_dates else report.kept

    def bytes_per_pixel(self) -> int:
        """The values and clear flags of a pixel, with the features' work while reading."""
        return (self.n_kept * self.n_bands * np.dtype(self.info.dtype).itemsize + self.n_kept * self.mask_bands * 2
                + self.n_kept * getattr(self.reader, "extra_bytes_per_date", 0))

    def read(self, window: Window, pixels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The window's values and clear flags, or only those of ``pixels`` (flat indices into it)."""
        if pixels is not None and isinstance(self.reader, FeatureReader):  # features of those pixels only
            block = self.reader.read(window, dates=self._kept_arg, pixels=pixels)
        else:
            block = pick_pixels(self.reader.read(window, dates=self._kept_arg), pixels)
        # (T, h, w, B) views of rasterio's (T * B, h, w) arrays: (T, B, pixels) without a copy
        values = block.transpose(0, 3, 1, 2).reshape(self.n_kept, self.n_bands, -1)
        clear = None
        if self.mask_reader is not None:
            mask = pick_pixels(self.mask_reader.read(window, dates=self._kept_arg), pixels).transpose(0, 3, 1, 2)
            clear = clear_mask(mask, self.mask_reader.info.nodata).reshape(self.n_kept, self.mask_bands, -1)
        return values, clear

    def interpolate(self, values: np.ndarray, clear: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(N, B, pixels)`` interpolated values and ``(B, pixels)`` valid observation counts."""
        n_pixels = values.shape[2]
        result = np.empty((self.n_new, self.n_bands, n_pixels), self.out_info.dtype)
        counts = np.empty((self.n_bands, n_pixels), np.uint16)
        interpolate_block(values, self.info.nodata, clear, self.times, self.new_times, self.report.fill_edges,
                          result, counts)
        return result, counts


def _read_chosen(source: _BlockSource,
                 item: tuple[Block, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray | None]:
    block, (_, local) = item
    return source.read(block.window, local)


@bounded_gdal_cache()
def interpolate_pixels(
    input_path: str | Path,
    report: InterpolationReport,
    flat_indices: np.ndarray,
    *,
    mask_path: str | Path | None = None,
    budget_bytes: int | None = None,
    progress: Progress | None = None,
    features: FeatureSpec | None = None,
) -> np.ndarray:
    """Feature rows ``(pixels, new dates x bands)`` (:func:`~.featureset.block_rows` layout) of the
    chosen pixels (flat indices, row by row) interpolated as :func:`write_interpolation` with
    ``report`` would, reading only the blocks that hold one and interpolating only those series:
    training rows without the whole interpolated stack.

    Decoding the blocks is most of the work here (a few pixels of each are kept), so two
    threads decode, each with its own handles; both windows count in the budget."""
    progress = ensure_progress(progress)
    with ExitStack() as stack:
        sources = [_BlockSource(*stack.enter_context(_inputs(input_path, mask_path, features)), report)
                   for _ in range(READ_THREADS)]
        source = sources[0]
        grid = source.info.grid
        chosen = ChosenPixels(flat_indices, grid.width)
        rows = np.full((chosen.flat.size, source.n_new * source.n_bands), np.nan, np.float32)
        blocks = iter_blocks(grid.height, grid.width, READ_THREADS * source.bytes_per_pixel() + 16, budget_bytes,
                             progress=progress)
        wanted = ((block, chosen.pixels_in(block.window)) for block in blocks)
        wanted = ((block, found) for block, found in wanted if found[0].size)
        reads = [functools.partial(_read_chosen, each) for each in sources]
        with closing(read_ahead(wanted, reads)) as blocks_read:
            for (_, (inside, _)), (values, clear) in blocks_read:
                result, _ = source.interpolate(values, clear)
                block = result.transpose(0, 2, 1)[:, None]  # (N, 1, pixels, B)
                rows[inside] = block_rows(block, source.out_info)
    return rows


@bounded_gdal_cache()
def write_interpolation(
    input_path: str | Path,
    report: InterpolationReport,
    output_path: str | Path | None,
    *,
    mask_path: str | Path | None = None,
    output_count: str | Path | None = None,
    output_report: str | Path | None = None,
    budget_bytes: int | None = None,
    progress: Progress | None = None,
    features: FeatureSpec | None = None,
    on_block: BlockSink | None = None,
    on_block_bytes: int = 0,
) -> None:
    """Interpolate the kept dates of ``input_path`` onto the new dates of ``report`` (from
    :func:`plan_interpolation` with the same input, mask and features).

    ``output_count``: valid observation times per pixel and band (uint16). ``output_report``: JSON.
    ``on_block(window, values, info)`` sees each block of the result as it is made, ``(t, h, w, b)``
    values of the stack described by ``info`` (to collect rows, or to classify on the way), and
    needs ``on_block_bytes`` per pixel. ``output_path`` may be ``None`` when ``on_block`` is what
    is wanted. All outputs are written, or none.
    """
    progress = ensure_progress(progress)
    if output_path is None and on_block is None:
        raise ValueError("give an output file or a block consumer")
    with _inputs(input_path, mask_path, features) as (reader, mask_reader):
        source = _BlockSource(reader, mask_reader, report)
        _write(source, output_path, output_count, output_report, budget_bytes, progress, on_block, on_block_bytes)


def _write(
    source: _BlockSource,
    output_path: str | Path | None,
    output_count: str | Path | None,
    output_report: str | Path | None,
    budget_bytes: int | None,
    progress: Progress,
    on_block: BlockSink | None,
    on_block_bytes: int,
) -> None:
    info, out_info, report = source.info, source.out_info, source.report
    count_info = StackInfo(grid=info.grid, dates=(None,), bands=info.bands, dtype="uint16", nodata=None,
                           tags={TAG_REPORT: out_info.tags[TAG_REPORT]})
    # the block's values, mask and clear flags, its output and counts, each twice (the next block
    # is read and the last one written while this one is computed); plans work on fixed-size chunks
    per_pixel = 2 * (source.bytes_per_pixel() + source.n_new * source.n_bands * np.dtype(out_info.dtype).itemsize
                     + source.n_bands * 2) + 64 + on_block_bytes
    with atomic_outputs([output_path, output_count, output_report]) as (temp, temp_count, temp_report):
        writer = StackWriter(str(temp), out_info) if temp is not None else None
        count_writer = StackWriter(str(temp_count), count_info) if temp_count is not None else None

        def write(block: Block, result: np.ndarray, counts: np.ndarray) -> None:
            if writer is not None:
                writer.write(result.transpose(0, 2, 3, 1), block.window)
            if count_writer is not None:
                count_writer.write(counts[None].transpose(0, 2, 3, 1), block.window)

        blocks = iter_blocks(info.grid.height, info.grid.width, per_pixel, budget_bytes, progress=progress)
        try:
            # closing: the read thread must be done before the caller closes the input
            with closing(read_ahead(blocks, lambda b: source.read(b.window))) as blocks_read, \
                    WriteBehind() as behind:
                for block, (values, clear) in blocks_read:
                    result, counts = source.interpolate(values, clear)
                    del values, clear
                    shape = (source.n_new, source.n_bands, block.height, block.width)
                    result, counts = result.reshape(shape), counts.reshape(shape[1:])
                    if on_block is not None:
                        on_block(block.window, result.transpose(0, 2, 3, 1), out_info)
                    if writer is not None or count_writer is not None:
                        behind.submit(write, block, result, counts)
                    del result, counts
        finally:
            for open_writer in (writer, count_writer):
                if open_writer is not None:
                    open_writer.close()
        if temp_report is not None:
            Path(temp_report).write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")

