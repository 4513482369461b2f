"""Bounds of every numeric setting: what a parameter may ask for before the work would exhaust
memory or make no sense. The Processing parameters declare them as ``minValue``/``maxValue`` and
the core checks them again (scripts and workers call it directly)."""

from __future__ import annotations

#: LightGBM and numpy seeds are 32-bit.
MAX_SEED = 2**31 - 1
#: Training pixels: 5 million rows of 200 float32 features are 4 GB.
MAX_SAMPLES = 5_000_000
#: Ten years between two dates of a grid.
MAX_INTERVAL_DAYS = 3660
#: Cloud-mask averaging and dilation disks, in pixels (s2cloudless uses 22 and 11 at 10 m).
MAX_CLOUD_RADIUS = 100
#: Reference erosion radius in pixels (eo-learn's recipe erodes by 1).
MAX_EROSION = 50
#: Cloud-mask processing resolution in metres (s2cloudless's model was trained at 160 m).
MAX_PROCESSING_RESOLUTION = 2000.0
#: A batch tile's side (a Sentinel-2 tile is 10980 px).
MAX_TILE_SIZE = 20_000
#: The spatial split's block side.
MAX_BLOCK_SIZE = 10_000
#: Boosting rounds and leaves per tree.
MAX_TREES = 10_000
MAX_LEAVES = 1024
#: Deep classifiers (core.deep): training epochs and rows per gradient step.
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 65_536
#: Worker processes.
MAX_WORKERS = 256
#: A raster side no stack of one area should exceed (ten Sentinel-2 tiles at 10 m).
MAX_GRID_SIDE = 200_000


def check_range(name: str, value: float, low: float, high: float, hint: str = "") -> None:
    """A ``ValueError`` that says the allowed range when ``value`` is outside it."""
    if not low <= value <= high:
        raise ValueError(f"{name} = {value:g} is outside {low:g}..{high:g}" + (f"; {hint}" if hint else ""))
