"""Tiles and their windows: what one tile of the batch pipeline is, where tiles come from (a
folder of stacks or EOPatches, or one large stack split into windows), the window copies the
steps read, and the date grid all tiles share.

Tiles come in three kinds (:class:`TileInput`):

- ``stack``: an L1C time stack and its reference raster (a folder of tiles);
- ``eopatch``: an eo-learn EOPatch folder. With 13-band L1C data (``data/BANDS-S2-L1C``) it is a
  ``stack`` tile; otherwise its temporal data features (NDVI, ...) *are* the features and its
  ``mask/CLM`` is the cloud mask (no cloud detection, no feature computation), as in eo-learn's
  own LULC example where the patches carry them;
- ``window``: a window of one large stack (:func:`split_stack`). Its cloud mask is computed on the
  window plus a halo (the averaging and dilation disks and the coarse processing grid) and only
  the window is kept, so the tiles' products equal those of the single-stack pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_outputs
from .pipeline import PipelineSettings

KINDS = ("stack", "eopatch", "window")
L1C_NAMES = ("l1c.tif", "l1c.tiff")
REFERENCE_NAMES = ("reference.tif", "reference.tiff")
#: EOPatch features: the L1C bands (then the tile runs the whole pipeline), the cloud mask, the
#: reference; temporal data features starting with a skipped prefix (cloud probabilities) are
#: never features.
EOPATCH_L1C = "BANDS-S2-L1C"
EOPATCH_MASK = "CLM"
EOPATCH_REFERENCE = "LULC"
EOPATCH_SKIPPED_PREFIXES = ("CLP",)
CLOUD_BANDS = "all 13 L1C bands or the 10 the s2cloudless model uses"


@dataclass(frozen=True)
class TileInput:
    """One tile. ``stack``: ``l1c`` and ``reference`` are rasters; ``eopatch``: both are the
    EOPatch folder and ``features`` names its data features (empty = all but cloud
    probabilities); ``window``: both are the large stack and its reference, ``window`` is the
    tile's ``(row, col, height, width)`` in them and ``halo`` the pixels read around it."""

    name: str
    l1c: str
    reference: str
    kind: str = "stack"
    window: tuple[int, int, int, int] | None = None
    halo: int = 0
    features: tuple[str, ...] = ()


def discover_tiles(folder: str | Path, eopatch_features: Sequence[str] = ()) -> list[TileInput]:
    """Tiles in ``folder``: each subfolder holding ``l1c.tif`` and ``reference.tif`` (what
    :class:`demo.synthetic.SyntheticScene` writes), each EOPatch subfolder (``bbox.geojson``),
    and each pair ``<name>_l1c.tif`` + ``<name>_reference.tif``; sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is not a folder")
    tiles: dict[str, TileInput] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        l1c = next((sub / n for n in L1C_NAMES if (sub / n).is_file()), None)
        ref = next((sub / n for n in REFERENCE_NAMES if (sub / n).is_file()), None)
        if l1c is not None and ref is not None:
            tiles[sub.name] = TileInput(sub.name, str(l1c), str(ref))
        elif (sub / "bbox.geojson").is_file():
            tiles[sub.name] = TileInput(sub.name, str(sub), str(sub), kind="eopatch",
                                        features=tuple(eopatch_features))
    for l1c in sorted(folder.glob("*_l1c.tif")):
        name = l1c.name[: -len("_l1c.tif")]
        ref = folder / f"{name}_reference.tif"
        if ref.is_file() and name not in tiles:
            tiles[name] = TileInput(name, str(l1c), str(ref))
    if not tiles:
        raise ValueError(f"no tiles in '{folder}': expected subfolders with l1c.tif and reference.tif, "
                         "EOPatch subfolders (bbox.geojson, data/, mask/), or pairs <name>_l1c.tif and "
                         "<name>_reference.tif")
    return [tiles[k] for k in sorted(tiles)]


def cloud_detector(settings: PipelineSettings, budget_bytes: int | None = None, threads: int | None = None):
    """The cloud detector of the settings, as every tile step and the whole stack use it."""
    from .cloudmask import CloudDetector

    return CloudDetector(processing_resolution=settings.processing_resolution, budget_bytes=budget_bytes,
                         threads=threads)


def split_stack(l1c: str | Path, reference: str | Path, tile_size: int,
                settings: PipelineSettings | None = None) -> list[TileInput]:
    """``window`` tiles of ``tile_size`` px (rounded up to whole cells of the cloud mask's
    processing grid, so every window starts on a cell of the whole stack's grid) covering the
    stack; the last row and column may be narrower."""
    from .timestack import read_info

    settings = settings or PipelineSettings()
    if tile_size < 1:
        raise ValueError(f"the tile size must be 1 pixel or more (got {tile_size})")
    info = read_info(str(l1c))
    if not info.is_dated:
        raise ValueError(f"'{l1c}' is not a time stack: its bands carry no acquisition dates")
    if not Path(reference).is_file():
        raise ValueError(f"the reference raster '{reference}' does not exist")
    detector = cloud_detector(settings)
    factor = detector.factor_for(info)
    size = factor * math.ceil(tile_size / factor)
    halo = detector.halo(factor)
    height, width = info.grid.height, info.grid.width
    rows, cols = math.ceil(height / size), math.ceil(width / size)
    digits = max(2, len(str(max(rows, cols) - 1)))
    return [TileInput(f"r{r:0{digits}d}c{c:0{digits}d}", str(l1c), str(reference), kind="window",
                      window=(r * size, c * size, min(size, height - r * size), min(size, width - c * size)),
                      halo=halo)
            for r in range(rows) for c in range(cols)]


def copy_window(source: str | Path, target: str | Path, window: tuple[int, int, int, int],
                dates: Sequence[int] | None = None, bands: Sequence[int] | None = None,
                budget_bytes: int | None = None) -> None:
    """A window (and optionally some date and band indices) of a stack as a stack of its own,
    georeferenced where the window lies; written atomically, block by block."""
    from .blocks import iter_blocks
    from .timestack import Grid, StackInfo, StackWriter, open_stack

    row, col, height, width = window
    with open_stack(str(source)) as reader:
        info = reader.info
        t_idx = list(range(info.n_dates)) if dates is None else list(dates)
        b_idx = list(range(info.n_bands)) if bands is None else list(bands)
        a, b, c, d, e, f = info.grid.transform
        grid = Grid(width=width, height=height, crs_wkt=info.grid.crs_wkt,
                    transform=(a, b, c + col * a + row * b, d, e, f + col * d + row * e))
        # per-date statistics of the source (EOLULC_* tags) do not hold for a part of it
        out = StackInfo(grid=grid, dates=tuple(info.dates[t] for t in t_idx), bands=tuple(info.bands[i] for i in b_idx),
                        dtype=info.dtype, nodata=info.nodata, scales=tuple(info.scales[i] for i in b_idx),
                        offsets=tuple(info.offsets[i] for i in b_idx),
                        tags={k: v for k, v in info.tags.items() if not k.startswith("EOLULC_")})
        per_pixel = 2 * len(t_idx) * len(b_idx) * np.dtype(info.dtype).itemsize + 64
        with atomic_outputs([target]) as (temp,), StackWriter(str(temp), out) as writer:
            for block in iter_blocks(height, width, per_pixel, budget_bytes):
                data = reader.read((row + block.row, col + block.col, block.height, block.width), dates=t_idx,
                                   bands=b_idx)
                writer.write(data, block.window)


def _tile_dates(tile: TileInput) -> list[datetime]:
    if tile.kind == "eopatch":
        from .eopatch import read_eopatch

        return list(read_eopatch(tile.l1c).timestamps)
    from .timestack import read_info

    return [d for d in read_info(tile.l1c).dates if d is not None]


def common_date_grid(tiles: Sequence[TileInput], settings: PipelineSettings) -> list[str]:
    """One interpolation grid for all tiles (the model needs the same features everywhere):
    from the settings' start/end, or the earliest to the latest acquisition of all tiles."""
    from .interpolate import date_grid
    from .timestack import format_datetime

    firsts, lasts, seen = [], [], set()
    for tile in tiles:
        if tile.l1c in seen:  # the windows of one stack
            continue
        seen.add(tile.l1c)
        try:
            dates = _tile_dates(tile)
        except Exception:  # noqa: BLE001 (an unreadable tile fails in its own task, with its message)
            continue
        if dates:
            firsts.append(min(dates))
            lasts.append(max(dates))
    if not firsts and not (settings.start and settings.end):
        raise ValueError("no tile has a readable, dated L1C stack or EOPatch")
    start = settings.start or min(firsts).strftime("%Y-%m-%d")
    end = settings.end or (max(lasts) + timedelta(days=1)).strftime("%Y-%m-%d")
    return [format_datetime(d) for d in date_grid(start, end, settings.interval_days)]
