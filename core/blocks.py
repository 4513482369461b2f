"""Memory-budgeted block walking: every step processes a raster window by window.

A step says how many bytes it holds per pixel (all dates, bands and working copies together);
:func:`iter_blocks` cuts the raster into windows whose pixels fit the budget, aligned to the
stacks' internal tiles, with an optional halo for steps that look at neighbours (averaging,
dilation). Progress is reported and cancel checked once per block, here and nowhere else.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from .progress import Progress, ensure_progress

#: Default memory budget for one block's working arrays; ``EOLULC_BLOCK_BUDGET_MB`` overrides it.
DEFAULT_BUDGET_MB = 256
#: Block sides are multiples of this (the stacks' tile size) when the budget allows.
ALIGN = 128

T = TypeVar("T")
K = TypeVar("K")


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` on Linux, free pages elsewhere); ``None``
    when unknown. Sizes pools of parallel workers, each holding its own block budget."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def default_budget_bytes() -> int:
    """The budget in bytes: ``EOLULC_BLOCK_BUDGET_MB`` if set, else :data:`DEFAULT_BUDGET_MB`."""
    value = os.environ.get("EOLULC_BLOCK_BUDGET_MB", "").strip()
    try:
        megabytes = float(value) if value else DEFAULT_BUDGET_MB
    except ValueError:
        megabytes = DEFAULT_BUDGET_MB
    return max(1, int(megabytes * 1024 * 1024))


@dataclass(frozen=True)
class Block:
    """One window of the raster: ``row``/``col``/``height``/``width`` is the part this block
    owns (and writes); ``read_*`` is that window grown by the halo and clipped to the raster."""

    index: int
    count: int
    row: int
    col: int
    height: int
    width: int
    read_row: int
    read_col: int
    read_height: int
    read_width: int

    @property
    def window(self) -> tuple[int, int, int, int]:
        """``(row, col, height, width)`` of the owned window."""
        return self.row, self.col, self.height, self.width

    @property
    def read_window(self) -> tuple[int, int, int, int]:
        """``(row, col, height, width)`` of the window to read, halo included."""
        return self.read_row, self.read_col, self.read_height, self.read_width

    def grown(self, halo: int, height: int, width: int) -> Block:
        """This block read with ``halo`` pixels around its owned window, clipped to a raster of
        ``height`` x ``width`` pixels."""
        top, left = max(0, self.row - halo), max(0, self.col - halo)
        bottom = min(height, self.row + self.height + halo)
        right = min(width, self.col + self.width + halo)
        return replace(self, read_row=top, read_col=left, read_height=bottom - top, read_width=right - left)

    @property
    def inner(self) -> tuple[slice, slice]:
        """Row and column slices that cut the owned window out of an array read with the halo."""
        top = self.row - self.read_row
        left = self.col - self.read_col
        return slice(top, top + self.height), slice(left, left + self.width)


def block_shape(
    height: int,
    width: int,
    bytes_per_pixel: float,
    budget_bytes: int | None = None,
    halo: int = 0,
    align: int = ALIGN,
    multiple_of: int = 1,
) -> tuple[int, int]:
    """Rows and columns of the owned part of a block so that the block with its halo fits the budget.

    Wide rasters get square-ish blocks aligned to ``align``; block sides are multiples of
    ``multiple_of`` (for steps working on a coarser grid) unless the raster is smaller. A block
    never has less than one pixel (or ``multiple_of``), even when the budget is smaller.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"the raster has no pixels ({width} x {height})")
    budget = default_budget_bytes() if budget_bytes is None else max(1, int(budget_bytes))
    pixels = max(1.0, budget / max(float(bytes_per_pixel), 1e-9))
    side = int(math.sqrt(pixels)) - 2 * halo
    cols = _aligned(min(width, max(1, side)), width, align)
    rows = int(pixels // (cols + 2 * halo)) - 2 * halo
    rows = _aligned(min(height, max(1, rows)), height, align)
    if multiple_of > 1:
        rows = rows if rows >= height else max(multiple_of, rows - rows % multiple_of)
        cols = cols if cols >= width else max(multiple_of, cols - cols % multiple_of)
    return min(rows, height), min(cols, width)


def _aligned(size: int, total: int, align: int) -> int:
    """``size`` rounded down so blocks never straddle the stacks' tiles: a multiple of ``align``,
    or, below it, a power-of-two fraction of it (so whole tiles are written, and GDAL need not
    keep half-written tiles in memory). Sizes under 16 stay as they are."""
    if size >= total:
        return total
    if size >= align:
        return size - size % align
    part = align
    while part > size and part > 16:
        part //= 2
    return part if part <= size else size


def iter_blocks(
    height: int,
    width: int,
    bytes_per_pixel: float,
    budget_bytes: int | None = None,
    halo: int = 0,
    progress: Progress | None = None,
    align: int = ALIGN,
    multiple_of: int = 1,
) -> Iterator[Block]:
    """Yield the blocks of a ``height`` x ``width`` raster in row-major order.

    Before each block the caller's cancel is checked (raising :class:`~.progress.Cancelled`);
    after each block the fraction done is reported.
    """
    progress = ensure_progress(progress)
    rows, cols = block_shape(height, width, bytes_per_pixel, budget_bytes, halo, align, multiple_of)
    n_rows = math.ceil(height / rows)
    n_cols = math.ceil(width / cols)
    count = n_rows * n_cols
    index = 0
    for r in range(n_rows):
        row = r * rows
        h = min(rows, height - row)
        for c in range(n_cols):
            col = c * cols
            w = min(cols, width - col)
            progress.check()
            yield Block(index, count, row, col, h, w, row, col, h, w).grown(halo, height, width)
            index += 1
            progress.report(index / count)


#: Threads that decode blocks where decoding is most of a step's work (a few pixels of each block
#: are kept: the training rows): each reads with its own handles, and each block counts in the budget.
READ_THREADS = 2


def read_ahead(blocks: Iterable[K], read: Callable[[K], T] | Sequence[Callable[[K], T]]) -> Iterator[tuple[K, T]]:
    """Yield ``(block, read(block))``, reading the next blocks in threads while the caller works
    on this one. GDAL decodes without the GIL, so on two cores reading and computing overlap.

    ``read`` must use its own dataset handles (not touched by the caller meanwhile). Several
    ``read`` functions (each with its own handles) read that many blocks at once, for steps that
    decode more than they compute. One block per function plus the caller's are in memory at once:
    count them all in the bytes per pixel.
    """
    reads = [read] if callable(read) else list(read)
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="eolulc-read") as pool:
        pending: deque[tuple[K, Future]] = deque()
        for index, block in enumerate(blocks):
            if len(pending) == len(reads):  # the oldest read's handles are free once it is done
                done_block, done = pending.popleft()
                result = done.result()
                pending.append((block, pool.submit(reads[index % len(reads)], block)))
                yield done_block, result
            else:
                pending.append((block, pool.submit(reads[index % len(reads)], block)))
        while pending:
            done_block, done = pending.popleft()
            yield done_block, done.result()


class WriteBehind:
    """Runs writes in one background thread, in order, one at a time, so the next block is
    computed while the last one is compressed and written.

    :meth:`submit` waits for the previous write first (so at most one block's output is pending:
    count it twice in the bytes per pixel) and re-raises its error; :meth:`close` waits for the
    last one. Use as a context manager around the block loop, inside the outputs' ``atomic_outputs``.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eolulc-write")
        self._pending: Future | None = None

    def submit(self, write: Callable[..., object], *args: object) -> None:
        self.wait()
        self._pending = self._pool.submit(write, *args)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller failed: finish the pending write quietly, the outputs are discarded anyway
            try:
                self.close()
            except Exception:  # noqa: BLE001
                pass
