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

With the pipeline's ``given`` cloud-mask source (an L2A stack with its SCL mask, an EOPatch with
its CLM) no tile runs s2cloudless: a ``stack`` tile's mask is the ``cloud_mask.tif`` beside its
stack, a ``window`` tile's the window of the large stack's mask, an EOPatch's its ``mask/CLM``
(:func:`check_tile_masks` refuses what cannot work before any tile starts).
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
#: A tile's band stack: L1C, or L2A (from 'Import Sentinel-2 products (SAFE)') with a given mask.
L1C_NAMES = ("l1c.tif", "l1c.tiff", "l2a.tif", "l2a.tiff")
REFERENCE_NAMES = ("reference.tif", "reference.tiff")
#: A tile's given cloud mask (``<name>_cloud_mask.tif`` beside pairs): used with the ``given`` source.
MASK_NAMES = ("cloud_mask.tif", "cloud_mask.tiff")
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
    tile's ``(row, col, height, width)`` in them and ``halo`` the pixels read around it.
    ``cloud_mask``: the given mask stack (``stack``: on the tile's grid; ``window``: the large
    stack's), used instead of s2cloudless."""

    name: str
    l1c: str
    reference: str
    kind: str = "stack"
    window: tuple[int, int, int, int] | None = None
    halo: int = 0
    features: tuple[str, ...] = ()
    cloud_mask: str | None = None


def discover_tiles(folder: str | Path, eopatch_features: Sequence[str] = (),
                   given_masks: bool = False) -> list[TileInput]:
    """Tiles in ``folder``: each subfolder holding ``l1c.tif`` (or ``l2a.tif``) and
    ``reference.tif`` (what :class:`demo.synthetic.SyntheticScene` writes), each EOPatch subfolder
    (``bbox.geojson``), and each pair ``<name>_l1c.tif`` (or ``_l2a``) + ``<name>_reference.tif``;
    sorted by name. ``given_masks``: each stack tile's ``cloud_mask.tif`` (``<name>_cloud_mask.tif``)
    is its cloud mask; a stack tile without one is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"'{folder}' is not a folder")
    tiles: dict[str, TileInput] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        l1c = next((sub / n for n in L1C_NAMES if (sub / n).is_file()), None)
        ref = next((sub / n for n in REFERENCE_NAMES if (sub / n).is_file()), None)
        if l1c is not None and ref is not None:
            mask = next((sub / n for n in MASK_NAMES if (sub / n).is_file()), None)
            tiles[sub.name] = TileInput(sub.name, str(l1c), str(ref),
                                        cloud_mask=str(mask) if given_masks and mask else None)
        elif (sub / "bbox.geojson").is_file():
            tiles[sub.name] = TileInput(sub.name, str(sub), str(sub), kind="eopatch",
                                        features=tuple(eopatch_features))
    for suffix in ("_l1c.tif", "_l2a.tif"):
        for l1c in sorted(folder.glob("*" + suffix)):
            name = l1c.name[: -len(suffix)]
            ref, mask = folder / f"{name}_reference.tif", folder / f"{name}_cloud_mask.tif"
            if ref.is_file() and name not in tiles:
                tiles[name] = TileInput(name, str(l1c), str(ref),
                                        cloud_mask=str(mask) if given_masks and mask.is_file() else None)
    if not tiles:
        raise ValueError(f"no tiles in '{folder}': expected subfolders with l1c.tif (or l2a.tif) and reference.tif, "
                         "EOPatch subfolders (bbox.geojson, data/, mask/), or pairs <name>_l1c.tif and "
                         "<name>_reference.tif")
    lacking = [t.name for t in tiles.values() if given_masks and t.kind == "stack" and t.cloud_mask is None]
    if lacking:
        raise ValueError(f"the cloud-mask source is 'given mask stack' but tile(s) {', '.join(sorted(lacking))} have "
                         "no cloud_mask.tif beside their stack (<name>_cloud_mask.tif for pairs): put each tile's "
                         "mask there (e.g. OUTPUT_MASK of 'Import Sentinel-2 products (SAFE)'), or choose s2cloudless")
    return [tiles[k] for k in sorted(tiles)]


#: What to do instead of s2cloudless on an L2A tile, in the batch pipeline's parameters.
L2A_TILE_FIX = ("set CLOUD_MASK_SOURCE to 'given mask stack' with the SCL mask (OUTPUT_MASK of 'Import Sentinel-2 "
                "products (SAFE)') as CLOUD_MASK for a large stack, or as cloud_mask.tif beside each tile's stack; "
                "or FORCE_S2CLOUDLESS to run s2cloudless anyway")


def check_tile_masks(tiles: Sequence[TileInput], settings: PipelineSettings) -> None:
    """Before any tile starts, what the single-stack pipeline refuses (:func:`core.pipeline.
    check_cloud_mask_source`), per tile: with the ``given`` source a missing mask or one off its
    stack's grid and dates, an EOPatch without ``mask/CLM``; with s2cloudless a stack tagged L2A
    unless forced. Each stack is checked once (the windows of one stack share it)."""
    from .eopatch import read_eopatch
    from .pipeline import GIVEN_MASK, check_cloud_mask_source, refuse_s2cloudless_on_l2a
    from .timestack import read_info

    given = settings.cloud_mask_source == GIVEN_MASK
    seen: set[tuple[str, str | None]] = set()
    for tile in tiles:
        if (tile.l1c, tile.cloud_mask) in seen:
            continue
        seen.add((tile.l1c, tile.cloud_mask))
        if tile.kind == "eopatch":
            try:
                features = read_eopatch(tile.l1c).features
            except Exception:  # noqa: BLE001 (as above)
                continue
            if given and f"mask/{EOPATCH_MASK}" not in features:
                raise ValueError(f"tile {tile.name}: the cloud-mask source is 'given mask stack' but the EOPatch has "
                                 f"no mask/{EOPATCH_MASK}; choose s2cloudless (it needs data/{EOPATCH_L1C})")
            continue
        if not given and tile.cloud_mask:
            raise ValueError(f"tile {tile.name} has a given cloud mask but the cloud-mask source is s2cloudless: set "
                             "CLOUD_MASK_SOURCE to 'given mask stack' to use it, or leave CLOUD_MASK empty")
        if given and not tile.cloud_mask:
            raise ValueError(f"tile {tile.name}: the cloud-mask source is 'given mask stack' but it has no mask: give "
                             "CLOUD_MASK for a large stack, or cloud_mask.tif beside each tile's stack")
        try:
            info = read_info(tile.l1c)
        except Exception:  # noqa: BLE001 (an unreadable tile fails in its own task, with its message)
            continue
        try:
            if given:
                check_cloud_mask_source(info, settings, tile.cloud_mask)
            elif not settings.force_s2cloudless:
                refuse_s2cloudless_on_l2a(info, L2A_TILE_FIX)
        except ValueError as error:
            raise ValueError(f"tile {tile.name}: {error}") from None


def cloud_detector(settings: PipelineSettings, budget_bytes: int | None = None, threads: int | None = None):
    """The cloud detector of the settings, as every tile step and the whole stack use it."""
    from .cloudmask import CloudDetector

    return CloudDetector(processing_resolution=settings.processing_resolution, budget_bytes=budget_bytes,
                         threads=threads)


def split_stack(l1c: str | Path, reference: str | Path, tile_size: int,
                settings: PipelineSettings | None = None, cloud_mask: str | Path | None = None) -> list[TileInput]:
    """``window`` tiles of ``tile_size`` px (rounded up to whole cells of the cloud mask's
    processing grid, so every window starts on a cell of the whole stack's grid) covering the
    stack; the last row and column may be narrower. With a given ``cloud_mask`` (a mask stack on
    the stack's grid and dates) the windows cut it too and read no halo."""
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
    halo = 0 if cloud_mask else detector.halo(factor)
    height, width = info.grid.height, info.grid.width
    rows, cols = math.ceil(height / size), math.ceil(width / size)
    digits = max(2, len(str(max(rows, cols) - 1)))
    return [TileInput(f"r{r:0{digits}d}c{c:0{digits}d}", str(l1c), str(reference), kind="window",
                      window=(r * size, c * size, min(size, height - r * size), min(size, width - c * size)),
                      halo=halo, cloud_mask=str(cloud_mask) if cloud_mask else None)
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
