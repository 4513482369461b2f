"""Resume markers of the batch pipeline: the files of a tile's folder, the stamps of its inputs
and the keys that say what its outputs depend on.

A tile step writes every output atomically and its marker (a JSON file holding the key) last, so
a tile whose marker matches the key of the settings and inputs at hand is complete and skipped
when the batch runs again; anything else is redone from the step on. Kept apart from the steps
so that what "the same tile" means is decided in one place.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

from .atomic import atomic_outputs, remove_stale_temporaries
from .pipeline import PipelineSettings, describe_settings
from .tiles import TileInput

MARKER = "done.json"
STAGE_MARKER = "window.json"
MARKER_VERSION = 2


def tile_paths(folder: Path) -> dict[str, Path]:
    """The files of a tile's folder, by role."""
    return {name: folder / file for name, file in (
        ("cloud_mask", "cloud_mask.tif"), ("features", "features.tif"), ("interpolated", "features_interpolated.tif"),
        ("reference", "reference.tif"), ("samples", "samples.npz"), ("classification", "classification.tif"),
        ("confidence", "confidence.tif"), ("marker", MARKER), ("stage", STAGE_MARKER))}


def remove_stale_parts(folder: Path) -> None:
    """Temporary files of an attempt whose worker died before it could clean up."""
    remove_stale_temporaries(folder)


def file_stamp(path: str | Path) -> dict:
    """What identifies a file's content without reading it: path, size and modification time."""
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def input_stamps(tile: TileInput) -> dict:
    """What identifies a tile's inputs: path, size and time of each file read."""
    if tile.kind == "eopatch":
        files = sorted(Path(top) / name for top, _, names in os.walk(tile.l1c, followlinks=True) for name in names)
        return {"eopatch": [file_stamp(p) for p in files]}
    stamps = {"l1c": file_stamp(tile.l1c), "reference": file_stamp(tile.reference)}
    if tile.kind == "window":
        stamps.update(window=list(tile.window or ()), halo=tile.halo)
    if tile.cloud_mask:
        stamps["cloud_mask"] = file_stamp(tile.cloud_mask)
    return stamps


def tile_key(tile: TileInput, settings: PipelineSettings, grid_dates: Sequence[str],
             extra: dict | None = None) -> dict:
    """What a tile's phase-1 outputs depend on (compared with the marker to resume); the sample
    sizes (which depend on the number of tiles) are kept apart: they only redo the sampling."""
    train = settings.train
    return {
        "version": MARKER_VERSION,
        "kind": tile.kind,
        "features": list(tile.features),
        "inputs": input_stamps(tile),
        "pipeline": describe_settings(settings),
        "date_grid": list(grid_dates),
        "split": {"split": train.split, "test_fraction": train.test_fraction, "block_size": train.block_size,
                  "erosion": train.erosion, "sampling": train.sampling, "seed": train.seed},
        **(extra or {}),
    }


def model_id(model) -> str:
    """What a tile map depends on in a model file (not when it was written)."""
    metadata = {k: v for k, v in model.metadata.items() if k != "created"}
    text = model.model_text + json.dumps(metadata, sort_keys=True, default=str)
    if model.network is not None:  # a deep network's weights
        text += json.dumps(model.network, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_marker(path: Path) -> dict | None:
    """A marker's content; ``None`` when it is missing or unreadable (the step runs again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json_atomic(path: Path, data: dict) -> None:
    with atomic_outputs([path]) as (temp,):
        temp.write_text(json.dumps(data, indent=1), encoding="utf-8")
