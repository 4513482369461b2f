"""Bayesian smoothing (sits's method), the minimum mapping unit and the uncertainty measures on
hand-made probabilities, against slow direct implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eolulc.core.blocks import block_shape
from eolulc.core.compiled import kernels
from eolulc.core.legend import read_legend
from eolulc.core.probstack import describe_probabilities, encode, probability_stack_info
from eolulc.core.smoothing import SmoothSettings, parse_smoothness, smooth_array, smooth_stack
from eolulc.core.timestack import Grid, open_stack
from eolulc.core.timestack import StackWriter as Writer
from eolulc.core.uncertainty import uncertainty, uncertainty_map


def _utm33() -> str:
    from rasterio.crs import CRS

    return CRS.from_epsg(32633).to_wkt()


GRID = Grid(width=37, height=29, crs_wkt=_utm33(), transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 5100000.0))


def sits_direct(probabilities: np.ndarray, window: int, fraction: float, smoothness) -> np.ndarray:
    """sits's bayes_smoother_fraction written out pixel by pixel (mirror outside the raster, the
    highest ceil(fraction * n) log-odds of the window, sample variance), with our nodata rule."""
    h, w, n_classes = probabilities.shape
    p = np.clip(probabilities.astype(np.float64), 1e-6, 1 - 1e-6)
    logits = np.log(p / (p.sum(axis=-1, keepdims=True) - p))
    leg = window // 2

    def mirror(i: int, size: int) -> int:
        if i < 0:
            return -i - 1
        if i >= size:
            return 2 * size - i - 1
        return i

    out = np.full(logits.shape, np.nan)
    smooth = np.broadcast_to(np.asarray(smoothness, float), (n_classes,))
    for i in range(h):
        for j in range(w):
            for c in range(n_classes):
                x0 = logits[i, j, c]
                if math.isnan(x0):
                    continue
                neigh = [logits[mirror(i + a, h), mirror(j + b, w), c]
                         for a in range(-leg, leg + 1) for b in range(-leg, leg + 1)]
                neigh = sorted((v for v in neigh if not math.isnan(v)), reverse=True)
                high = neigh[:math.ceil(fraction * len(neigh))]
                m0 = sum(high) / len(high)
                s0 = sum((v - m0) ** 2 for v in high) / (len(high) - 1) if len(high) > 1 else 0.0
                if s0 < 1e-4:
                    out[i, j, c] = m0
                else:
                    weight = s0 / (s0 + smooth[c])
                    out[i, j, c] = weight * x0 + (1 - weight) * m0
    return 1 / (1 + np.exp(-out))


def random_probabilities(h: int, w: int, classes: int, seed: int = 1, holes: bool = True) -> np.ndarray:
    """Patchy class fields with noise (like a classifier's output), softmax-normalised, with
    nodata pixels."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 1.5, (h, w, classes))
    scores[: h // 2, : w // 2, 0] += 3
    scores[h // 2:, :, 1 % classes] += 2.5
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    if holes:
        p[3, 4] = np.nan
        p[0, :5] = np.nan
        p[h - 1, w - 1] = np.nan
    return p.astype(np.float32)


@pytest.mark.parametrize("window, fraction, smoothness", [(3, 0.5, 20.0), (5, 0.3, [5.0, 40.0, 10.0]),
                                                          (5, 1.0, 2.0)])
def test_smoothing_agrees_with_a_direct_implementation(window, fraction, smoothness):
    p = random_probabilities(12, 11, 3)
    expected = sits_direct(p, window, fraction, smoothness)
    got = smooth_array(p, SmoothSettings(window_size=window, neighbourhood_fraction=fraction, smoothness=smoothness))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6, equal_nan=True)
    # a lone wrong pixel in a homogeneous field is pulled to its neighbours' class
    field = np.tile(np.array([0.8, 0.15, 0.05], np.float32), (9, 9, 1))
    field[4, 4] = (0.3, 0.6, 0.1)
    smoothed = smooth_array(field, SmoothSettings(window_size=window))
    assert np.argmax(field[4, 4]) == 1 and np.argmax(smoothed[4, 4]) == 0


def _write_probabilities(path, p: np.ndarray, as_float: bool):
    legend = read_legend()
    info = probability_stack_info(GRID, [1, 2, 5], legend, as_float)
    with Writer(str(path), info) as writer:
        writer.write(encode(p, info))
    return path


@pytest.mark.parametrize("as_float", [False, True])
def test_smoothing_by_blocks_equals_the_whole_raster(tmp_path, as_float):
    p = random_probabilities(GRID.height, GRID.width, 3, seed=3)
    source = _write_probabilities(tmp_path / "p.tif", p, as_float)
    stack = describe_probabilities(source)
    assert stack.class_ids == (1, 2, 5) and stack.info.bands[0] == "cultivated land"
    settings = SmoothSettings(window_size=5)
    outputs = {}
    for budget in (None, 150_000):
        rows, cols = block_shape(GRID.height, GRID.width, 3 * 28 + 24 * 25 + 16, budget, halo=2)
        outputs[budget] = [tmp_path / f"{name}{budget}.tif" for name in ("map", "probs", "conf")]
        result = smooth_stack(source, *outputs[budget], settings=settings, budget_bytes=budget)
        assert result.class_pixels[1] > 0 and sum(result.class_pixels.values()) == GRID.width * GRID.height - 7
    assert rows < GRID.height and cols < GRID.width  # the small budget made several blocks
    for whole, blocked in zip(outputs[None], outputs[150_000]):
        with open_stack(str(whole)) as a, open_stack(str(blocked)) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    # the file's smoothing equals the in-memory one (up to the stored precision)
    with open_stack(str(outputs[None][1])) as reader:
        stored = stack.decode(reader.read())
    expected = smooth_array(stack.decode(encode(p, stack.info)), settings)
    np.testing.assert_allclose(stored, expected, atol=0.0051 if not as_float else 1e-7, equal_nan=True)
    with open_stack(str(outputs[None][0])) as reader:
        labels = reader.read()[0, ..., 0]
    assert labels[0, 0] == 0 and set(np.unique(labels)) <= {0, 1, 2, 5}  # nodata stays nodata
    assert 'paletteEntry value="5"' in outputs[None][0].with_suffix(".qml").read_text()
    assert "singlebandpseudocolor" in outputs[None][1].with_suffix(".qml").read_text()


def test_minimum_mapping_unit_sieves_small_regions(tmp_path):
    p = np.tile(np.array([0.9, 0.05, 0.05], np.float32), (GRID.height, GRID.width, 1))
    p[10:12, 10, :] = (0.05, 0.9, 0.05)  # an island of 2 pixels
    p[20:25, 20:25, :] = (0.05, 0.05, 0.9)  # and a field of 25
    source = _write_probabilities(tmp_path / "p.tif", p, True)
    # every window value taken and a tiny smoothness: the pixels keep their own class
    keep = {"window_size": 3, "neighbourhood_fraction": 1.0, "smoothness": 1e-9}
    smooth_stack(source, tmp_path / "plain.tif", settings=SmoothSettings(**keep))
    result = smooth_stack(source, tmp_path / "sieved.tif", settings=SmoothSettings(**keep, min_mapping_unit=3))
    with open_stack(str(tmp_path / "plain.tif")) as a, open_stack(str(tmp_path / "sieved.tif")) as b:
        plain, sieved = a.read()[0, ..., 0], b.read()[0, ..., 0]
    assert (plain[10:12, 10] == 2).all() and (sieved[10:12, 10] == 1).all()
    assert (sieved[20:25, 20:25] == 5).all()
    assert result.class_pixels == {1: GRID.width * GRID.height - 25, 2: 0, 5: 25} and result.changed_pixels == 2


def test_settings_are_checked():
    with pytest.raises(ValueError, match="odd"):
        SmoothSettings(window_size=4).validate(3)
    with pytest.raises(ValueError, match="one per"):
        SmoothSettings(smoothness=[1.0, 2.0]).validate(3)
    assert parse_smoothness("10, 20;40") == [10.0, 20.0, 40.0] and parse_smoothness("") == 20.0
    with pytest.raises(ValueError, match="not a smoothness"):
        parse_smoothness("high")


def test_uncertainty_measures_on_hand_made_probabilities():
    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.3, 0.2], [np.nan] * 3])
    entropy = uncertainty(p, "entropy")
    expected = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)) / math.log(3)
    np.testing.assert_allclose(entropy[:3], [0.0, 1.0, expected], atol=1e-6)
    np.testing.assert_allclose(uncertainty(p, "margin")[:3], [0.0, 1.0, 0.8], atol=1e-6)
    np.testing.assert_allclose(uncertainty(p, "least")[:3], [0.0, 2 / 3, 0.5], atol=1e-6)
    assert all(np.isnan(uncertainty(p, m)[3]) for m in ("entropy", "margin", "least"))
    # a smoothed stack (not summing to 1) is measured as a distribution
    np.testing.assert_allclose(uncertainty(2 * p[:3], "margin"), [0.0, 1.0, 0.8], atol=1e-6)
    with pytest.raises(ValueError, match="unknown uncertainty"):
        uncertainty(p, "variance")


def test_uncertainty_map_is_written_in_percent(tmp_path):
    p = random_probabilities(GRID.height, GRID.width, 3, seed=5)
    source = _write_probabilities(tmp_path / "p.tif", p, False)
    summary = uncertainty_map(source, tmp_path / "u.tif", "least", budget_bytes=50_000)
    stack = describe_probabilities(source)
    with open_stack(str(source)) as reader:
        expected = uncertainty(stack.decode(reader.read()), "least")
    with open_stack(str(tmp_path / "u.tif")) as reader:
        values = reader.read()[0, ..., 0]
    assert (values[np.isnan(expected)] == 255).all()
    np.testing.assert_array_equal(values[~np.isnan(expected)], np.round(100 * expected[~np.isnan(expected)]))
    assert summary["pixels"] == GRID.width * GRID.height - 7 and 0 < summary["mean"] < 1
    assert "singlebandpseudocolor" in (tmp_path / "u.qml").read_text()


@pytest.mark.skipif(kernels() is None, reason="numba is not installed")
@pytest.mark.parametrize("window, holes", [(5, 0.0), (9, 0.3), (33, 0.1)])
def test_compiled_smoothing_equals_numpys(monkeypatch, window, holes):
    """The numba kernel (rows split over threads) gives numpy's posterior up to rounding, nodata
    holes included; without numba the numpy path runs."""
    from eolulc.core import smoothing

    rng = np.random.default_rng(window)
    p = random_probabilities(70, 45, 4)
    p[rng.random(p.shape[:2]) < holes] = np.nan
    settings = SmoothSettings(window_size=window, smoothness=[5.0, 20.0, 40.0, 10.0])
    compiled = smooth_array(p, settings)
    monkeypatch.setattr(smoothing, "kernels", lambda: None)
    plain = smooth_array(p, settings)
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(plain))
    np.testing.assert_allclose(compiled, plain, rtol=0, atol=1e-12, equal_nan=True)
