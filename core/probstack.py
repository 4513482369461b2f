"""Class-probability stacks: one band per class, what classification can write and what smoothing,
uncertainty and sample suggestion read.

A probability stack is an undated time stack (``T = 1``) whose bands are the classes, named by
the legend, with the class ids and the legend in its tags (so a smoothed class map is styled
like the classifier's). Values are percent in bytes (0-100, nodata 255: a fourth of the size of
float32 and all the precision a map needs) or float32 probabilities (0-1, nodata NaN). In memory
a block of probabilities is ``(height, width, classes)`` float32 with NaN where there is no data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .legend import Legend
from .timestack import Grid, StackInfo, StackReader, Window, open_stack

TAG_CLASSES = "EOLULC_CLASSES"
TAG_LEGEND = "EOLULC_LEGEND"
TAG_PROBABILITIES = "EOLULC_PROBABILITIES"
#: Nodata of byte (percent) probabilities and of byte rasters derived from them.
BYTE_NODATA = 255
PERCENT, FRACTION = "percent", "fraction"


def probability_stack_info(grid: Grid, class_ids: Sequence[int], legend: Legend, as_float: bool = False) -> StackInfo:
    """The structure of a probability stack of ``class_ids`` (band names from ``legend``, made
    unique with the id when two classes share a name)."""
    names = [legend.name(c) for c in class_ids]
    bands = tuple(name if names.count(name) == 1 else f"{name} ({c})" for name, c in zip(names, class_ids))
    tags = {TAG_CLASSES: ",".join(str(int(c)) for c in class_ids),
            TAG_LEGEND: json.dumps(legend.restricted(class_ids).to_json()),
            TAG_PROBABILITIES: FRACTION if as_float else PERCENT}
    if as_float:
        return StackInfo(grid=grid, dates=(None,), bands=bands, dtype="float32", nodata=float("nan"), tags=tags)
    return StackInfo(grid=grid, dates=(None,), bands=bands, dtype="uint8", nodata=BYTE_NODATA, tags=tags)


def encode(probabilities: np.ndarray, info: StackInfo) -> np.ndarray:
    """``(h, w, classes)`` probabilities (NaN = nodata) as the stack stores them, shaped for
    :meth:`~.timestack.StackWriter.write`."""
    if info.dtype == "float32":
        values = probabilities.astype(np.float32, copy=False)
    else:
        missing = np.isnan(probabilities)
        values = np.where(missing, BYTE_NODATA, np.round(100 * np.nan_to_num(probabilities))).astype(np.uint8)
    return values[None]


@dataclass(frozen=True)
class ProbabilityStack:
    """What a probability stack holds besides its pixels."""

    info: StackInfo
    class_ids: tuple[int, ...]
    legend: Legend

    @property
    def as_float(self) -> bool:
        return self.info.dtype.startswith("float")

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Raw ``(1, h, w, classes)`` values -> ``(h, w, classes)`` float32 probabilities, NaN
        where any class has no data."""
        values = raw[0].astype(np.float32)
        nodata = self.info.nodata
        missing = np.isnan(values)
        if nodata is not None and not np.isnan(nodata):
            missing |= raw[0] == nodata
        if not self.as_float:
            values /= 100.0
        values[missing.any(axis=-1)] = np.nan
        return values

    def read(self, reader: StackReader, window: Window | None = None) -> np.ndarray:
        return self.decode(reader.read(window))


def describe_probabilities(path: str | Path) -> ProbabilityStack:
    """Read and check a probability stack's structure; a stack without our tags is accepted when
    its values look like probabilities (its bands are then classes 1..n)."""
    with open_stack(str(path)) as reader:
        info = reader.info
    if info.n_dates != 1:
        raise ValueError(f"'{Path(path).name}' is a time stack of {info.n_dates} dates; a probability stack has one "
                         "band per class (OUTPUT_PROBABILITIES of 'Classify with LULC model')")
    if info.n_bands < 2:
        raise ValueError(f"'{Path(path).name}' has one band; a probability stack has one band per class (two or more)")
    if info.dtype not in ("uint8", "float32", "float64"):
        raise ValueError(f"'{Path(path).name}' holds {info.dtype} values; probabilities are bytes (percent) or floats")
    try:
        ids = tuple(int(c) for c in info.tags[TAG_CLASSES].split(","))
    except (KeyError, ValueError):
        ids = tuple(range(1, info.n_bands + 1))
    if len(ids) != info.n_bands:
        raise ValueError(f"'{Path(path).name}' names {len(ids)} classes in {TAG_CLASSES} but has {info.n_bands} bands")
    try:
        legend = Legend.from_json(json.loads(info.tags[TAG_LEGEND]))
    except (KeyError, ValueError, TypeError):
        from .legend import LegendClass, fallback_colour

        legend = Legend(LegendClass(c, name, fallback_colour(c)) for c, name in zip(ids, info.bands))
    return ProbabilityStack(info=info, class_ids=ids, legend=legend.restricted(ids))
