"""An EOPatch shaped like Sinergise's shared Slovenia 2017 patches (eo-learn's LULC example data):
``data/BANDS`` with the six L1C bands B02, B03, B04, B08, B11, B12 as reflectance, ``mask/CLM``
from their s2cloudless service, ``mask/IS_DATA``, ``mask_timeless/LULC``, ``bbox.geojson`` and
``timestamps.json``. Built from the real values of tests/data (the five 13-band scenes and the
TestEOPatch's masks of the same frames), so no network is needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

#: TestEOPatch frames of REFERENCE_SCENES.npy, in its order (as tests/conftest.py's SCENE_FRAMES).
SCENE_FRAMES = (2, 1, 4, 3, 0)
SIX_BANDS = (1, 2, 3, 7, 11, 12)  # B02 B03 B04 B08 B11 B12 in ESA's 13-band order


def write_slovenia_patch(eopatch: Path, scenes: np.ndarray, out: Path) -> Path:
    """The patch in ``out`` (frames in time order); returns it."""
    frames = sorted(SCENE_FRAMES)
    order = [SCENE_FRAMES.index(f) for f in frames]
    for folder in ("data", "mask", "mask_timeless"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    shutil.copy(eopatch / "bbox.geojson", out / "bbox.geojson")
    stamps = json.loads((eopatch / "timestamps.json").read_text())
    (out / "timestamps.json").write_text(json.dumps([stamps[f] for f in frames], indent=2))
    np.save(out / "data" / "BANDS.npy", np.ascontiguousarray(scenes[order][..., list(SIX_BANDS)], np.float32))
    for name in ("CLM", "IS_DATA"):
        np.save(out / "mask" / f"{name}.npy", np.load(eopatch / "mask" / f"{name}.npy")[frames])
    shutil.copy(eopatch / "mask_timeless" / "LULC.npy", out / "mask_timeless" / "LULC.npy")
    return out
