"""One or more aligned time stacks seen as a table of per-pixel feature rows.

Every band of every date of every stack is one feature, named ``"<date> <band>"``
(``2017-03-14 NDVI``; the time is added only where two dates fall on one day; undated stacks use
the band name). A window of the stacks becomes rows ``(pixels, features)`` in float32, scaled
to physical values, with nodata as NaN (LightGBM's missing value).
"""

from __future__ import annotations

import math
import re
from contextlib import ExitStack
from typing import Iterator, Sequence

import numpy as np

from .sentinel2 import normalise_band_name
from .timestack import StackInfo, Window, format_datetime, open_stack


def feature_names(info: StackInfo) -> list[str]:
    if not info.is_dated:
        return list(info.bands)
    days = [format_datetime(d)[:10] for d in info.dates]
    labels = [format_datetime(d) if days.count(day) > 1 else day for d, day in zip(info.dates, days)]
    return [f"{label} {band}" for label in labels for band in info.bands]


def describe_stack(info: StackInfo) -> dict:
    """What a model remembers of each input stack (to check the stacks it is applied to)."""
    return {
        "dates": [format_datetime(d) if d is not None else None for d in info.dates],
        "bands": list(info.bands),
    }


def block_rows(block: np.ndarray, info: StackInfo) -> np.ndarray:
    """Feature rows ``(h * w, t * b)`` of a block ``(t, h, w, b)`` of a stack described by
    ``info``: float32, nodata as NaN, scaled to physical values. Often a strided view of
    ``block`` (do not write into it)."""
    has_nodata = info.nodata is not None and not math.isnan(info.nodata)
    # float32 blocks without a nodata value to replace are used as they are (a view, no copy)
    values = block.astype(np.float32, copy=has_nodata)
    if has_nodata:
        values[block == info.nodata] = np.nan
    if info.has_scaling:
        values = values * np.asarray(info.scales, np.float32) + np.asarray(info.offsets, np.float32)
    t, h, w, b = values.shape
    return values.transpose(1, 2, 0, 3).reshape(h * w, t * b)


class ChosenPixels:
    """Chosen pixels of a raster (flat indices, row by row) found window by window."""

    def __init__(self, flat_indices: np.ndarray, width: int) -> None:
        self.flat = np.asarray(flat_indices)
        self.rows = self.flat // width
        self.cols = self.flat % width

    def pixels_in(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Positions (in ``flat_indices``) of the chosen pixels inside ``window`` (row, col,
        height, width) and their flat indices within the window."""
        row, col, height, width = window
        inside = np.flatnonzero((self.rows >= row) & (self.rows < row + height)
                                & (self.cols >= col) & (self.cols < col + width))
        return inside, (self.rows[inside] - row) * width + (self.cols[inside] - col)


def pixel_windows(rows: np.ndarray, cols: np.ndarray, align: int) -> Iterator[tuple[np.ndarray, Window, np.ndarray]]:
    """Windows that hold the pixels (``rows``, ``cols``), touching only the ``align`` x ``align``
    tiles that hold some: per strip of tiles, each run of adjacent occupied tiles is one window,
    trimmed to its pixels. Yields (positions in ``rows``, window, flat indices within the window)."""
    strip, tile = rows // align, cols // align
    order = np.lexsort((tile, strip))
    strip, tile = strip[order], tile[order]
    # a new window where the strip changes or the tile jumps by more than one
    starts = np.flatnonzero(np.r_[True, (strip[1:] != strip[:-1]) | (tile[1:] - tile[:-1] > 1)])
    for start, end in zip(starts, np.r_[starts[1:], order.size]):
        positions = order[start:end]
        r, c = rows[positions], cols[positions]
        row, col = int(r.min()), int(c.min())
        width = int(c.max()) - col + 1
        yield positions, (row, col, int(r.max()) - row + 1, width), (r - row) * width + (c - col)


class FeatureColumns:
    """The feature columns of aligned stacks (same grid): their names, what a model remembers of
    each stack, the grid. What training needs, also of stacks that are never written."""

    def __init__(self, infos: Sequence[StackInfo], paths: Sequence[str] | None = None) -> None:
        if not infos:
            raise ValueError("give at least one feature stack")
        self.infos = list(infos)
        self.paths = [str(p) for p in paths] if paths is not None else [f"stack {i + 1}" for i in range(len(infos))]
        first = self.infos[0].grid
        for path, info in zip(self.paths[1:], self.infos[1:]):
            if not info.grid.same_as(first):
                raise ValueError(
                    f"'{path}' is not on the same grid as '{self.paths[0]}' (size, pixel grid and CRS must be "
                    "equal); resample it first, e.g. with 'Build time stack from per-date rasters' and a target grid"
                )
        self.grid = first
        names = [name for info in self.infos for name in feature_names(info)]
        if len(set(names)) != len(names):
            # two stacks with the same band names: tell them apart by stack number
            names = [f"s{number + 1} {name}" for number, info in enumerate(self.infos) for name in feature_names(info)]
        self.names = names

    @property
    def n_features(self) -> int:
        return len(self.names)

    def describe(self) -> list[dict]:
        return [describe_stack(info) for info in self.infos]


class FeatureSet(FeatureColumns):
    """Opens aligned stacks (same grid) and reads their windows as feature rows."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._exit = ExitStack()
        try:
            self.readers = [self._exit.enter_context(open_stack(str(p))) for p in paths]
            super().__init__([r.info for r in self.readers], paths)
        except Exception:
            self._exit.close()
            raise

    def bytes_per_pixel(self) -> int:
        return sum(info.count for info in self.infos) * (4 + 8)

    def read_rows(self, window: Window) -> np.ndarray:
        """``(height * width, features)`` float32 rows of a window, pixel-major (row by row)."""
        parts = [block_rows(reader.read(window), info) for reader, info in zip(self.readers, self.infos)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def read_pixels(self, window: Window, local: np.ndarray) -> np.ndarray:
        """Rows of some pixels of a window (flat indices ``local`` within it): the window is read,
        only those pixels are converted."""
        parts = []
        for reader, info in zip(self.readers, self.infos):
            block = reader.read(window)
            t, h, w, b = block.shape
            parts.append(block_rows(block.reshape(t, h * w, 1, b)[:, local], info))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def close(self) -> None:
        self._exit.close()

    def __enter__(self) -> FeatureSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compare_to_model(feature_set: FeatureColumns, expected: list[dict], expected_names: list[str]) -> None:
    """Raise a ``ValueError`` that says exactly how the stacks differ from the model's inputs."""
    actual = feature_set.describe()
    if len(actual) != len(expected):
        raise ValueError(f"the model was trained on {len(expected)} feature stack(s), {len(actual)} given")
    problems = []
    for number, (have, want) in enumerate(zip(actual, expected), start=1):
        label = f"stack {number} ({feature_set.paths[number - 1]})"
        if _band_keys(have["bands"]) != _band_keys(want["bands"]):
            problems.append(f"{label} has bands {', '.join(have['bands'])}; the model needs {', '.join(want['bands'])}")
        if have["dates"] != want["dates"]:
            missing = [d for d in want["dates"] if d not in have["dates"]]
            extra = [d for d in have["dates"] if d not in want["dates"]]
            detail = []
            if missing:
                detail.append(f"missing {_some(missing)}")
            if extra:
                detail.append(f"not in the model {_some(extra)}")
            if not detail:
                detail.append("same dates in another order")
            counts = f"{len(have['dates'])} dates, the model {len(want['dates'])}"
            problems.append(f"{label} has {counts}: {'; '.join(detail)}")
    if not problems and [_feature_key(n) for n in feature_set.names] != [_feature_key(n) for n in expected_names]:
        problems.append("the feature names differ from the model's")
    if problems:
        raise ValueError("the features do not match the model: " + " | ".join(problems)
                         + ". Build the features exactly as for training (same dates grid, bands and indices)")


def _band_keys(bands: Sequence[str]) -> list[str]:
    return [normalise_band_name(b) for b in bands]


#: A feature name: the stack number where two stacks share band names, the date, the band.
_FEATURE_NAME = re.compile(r"^(?:s\d+ )?(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2})? )?(.*)$", re.DOTALL)


def _feature_key(name: str) -> tuple[str, str]:
    """``"2017-03-14 B4, central wavelength 665 nm"`` -> ``("2017-03-14 ", "B04")``: names from
    stacks whose bands were written differently (SNAP's ``B2``, ESA's ``B02``) match."""
    date, band = _FEATURE_NAME.match(name).groups()  # type: ignore[union-attr]
    return date or "", normalise_band_name(band)


def _some(items: list) -> str:
    return ", ".join(str(i) for i in items[:5]) + (" ..." if len(items) > 5 else "")
