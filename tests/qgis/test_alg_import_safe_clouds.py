"""s2cloudless on imported L1C products: the five real 13-band scenes of tests/data written as
zipped L1C products (three at baseline 02.04, two at 05.09 with the -1000 offset), imported with
eolulc:importsafe and masked with eolulc:cloudmask, against the cloud masks Sinergise stored with
the same frames (TestEOPatch mask/CLM, from their s2cloudless service)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SCENE_FRAMES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from safe_products import dns_from_reflectance, write_product  # noqa: E402

#: The products' side (the 60 m bands' block means need a multiple of 6 px) and their corner: the
#: TestEOPatch corner snapped to the 10 m grid, so the import's footprint is the products' pixels.
SIDE, ULX, ULY = 96, 465180.0, 5080260.0
#: Measured when this test was written (s2cloudless at 10 m, averaging 4 px, dilation 2 px): the
#: mask equals CLM on every pixel (1.0000; on this 96 px crop CLM is all cloud on two dates and
#: clear on three); the cloud probability correlates with Sinergise's CLP at 0.9953 and, both
#: thresholded at 0.4, agrees on 0.9946 of the pixels (0.9730 on the partly cloudy date); it
#: differs from the s2cloudless package's CLP_S2C on the original 10 m values by 0.0105 on average
#: (the 20 m and 60 m bands come back bilinear from their block means, not as the 10 m values).
MIN_AGREEMENT, MIN_CORRELATION, MIN_THRESHOLD_AGREEMENT, MAX_MEAN_DIFFERENCE = 0.995, 0.99, 0.99, 0.015


@pytest.fixture(scope="module")
def products(tmp_path_factory, eopatch_dir, reference_scenes):
    from eolulc.core.eopatch import read_eopatch

    root = tmp_path_factory.mktemp("l1c_products")
    timestamps = read_eopatch(eopatch_dir).timestamps
    for i, frame in enumerate(SCENE_FRAMES):
        baseline, add = ("05.09", -1000) if i % 2 else ("02.04", 0)
        write_product(root, "L1C", dns_from_reflectance(reference_scenes[i, :SIDE, :SIDE], add_offset=add),
                      timestamps[frame], baseline=baseline, tile="33TVM", ulx=ULX, uly=ULY, zipped=True)
    return root, timestamps


def test_s2cloudless_on_imported_l1c_products_matches_sinergise_masks(run_alg, products, eopatch_dir, tmp_path):
    from eolulc.core.timestack import open_stack

    root, timestamps = products
    imported = run_alg("eolulc:importsafe", {"INPUT_FOLDER": str(root), "OUTPUT": str(tmp_path / "l1c.tif")})
    clouds = run_alg("eolulc:cloudmask", {"INPUT": imported["OUTPUT"], "PROCESSING_RESOLUTION": 10,
                                          "AVERAGE_OVER": 4, "DILATION_SIZE": 2,
                                          "OUTPUT_PROBABILITY": str(tmp_path / "p.tif"),
                                          "OUTPUT_MASK": str(tmp_path / "mask.tif")})
    with open_stack(clouds["OUTPUT_PROBABILITY"]) as stack:
        probability = stack.read()[..., 0]
    with open_stack(clouds["OUTPUT_MASK"]) as stack:
        mask, dates = stack.read()[..., 0], stack.info.dates
    assert mask.shape == (5, SIDE, SIDE)
    frames = [timestamps.index(d) for d in dates]  # the import sorts by sensing time
    assert sorted(frames) == sorted(SCENE_FRAMES)

    def stored(feature: str) -> np.ndarray:
        return np.load(eopatch_dir / feature)[frames, :SIDE, :SIDE, 0]

    clm, clp, clp_s2c = stored("mask/CLM.npy"), stored("data/CLP.npy"), stored("data/CLP_S2C.npy")
    # the masks: the same two cloudy and three clear dates, pixel for pixel
    assert (mask == clm).mean() >= MIN_AGREEMENT
    assert list(clm.mean(axis=(1, 2))) == [0, 1, 1, 0, 0]  # the crop's frames are all-or-nothing in CLM
    # the probabilities, where the partly cloudy date differs: close to Sinergise's service
    assert np.corrcoef(probability.ravel(), clp.ravel())[0, 1] >= MIN_CORRELATION
    assert ((probability > 0.4) == (clp > 0.4)).mean() >= MIN_THRESHOLD_AGREEMENT
    # and to the s2cloudless package on the original 10 m values: the import's radiometry (both
    # baselines' offsets) is right, only the 20 m and 60 m bands' resampling differs
    assert np.abs(probability - clp_s2c).mean() <= MAX_MEAN_DIFFERENCE
