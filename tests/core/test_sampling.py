"""Stratified, balanced and per-class sampling (core.sampling).

The expectations of eo-learn's own sampling tests (``tests/ml_tools/test_sampling.py``:
``sample_by_values`` and ``FractionSamplingTask``) are ported here: the same small image and the
real TestEOPatch LULC map, exact per-value counts, per-class shares within one pixel of
``count x fraction``, excluded classes never drawn, per-class fractions drawing only the listed
classes, sampled pixels matching the mask of samples, and reproducibility per seed. Where our
semantics differ it is said at the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from eolulc.core.reference import Reference
from eolulc.core.sampling import (
    check_class_samples,
    check_known_classes,
    class_quotas,
    parse_class_samples,
    sample_pixels,
    shortfall,
    stratified_counts,
)
from eolulc.core.train import TrainSettings, plan_samples, touching


@pytest.fixture(name="small_image")
def small_image_fixture() -> np.ndarray:
    """eo-learn's ``small_image``: 100 x 75 px, value 1 in a square, 2 in an overlapping rectangle."""
    image = np.zeros((100, 75), dtype=np.uint8)
    image[40:60, 40:60] = 1
    image[50:80, 55:70] = 2
    return image


@pytest.fixture(name="lulc", scope="module")
def lulc_fixture(eopatch_dir) -> np.ndarray:
    """The real TestEOPatch LULC map (eo-learn's fraction-sampling tests sample it)."""
    return np.load(eopatch_dir / "mask_timeless/LULC.npy")[..., 0]


def _counts(values: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(values, return_counts=True)
    return dict(zip(ids.tolist(), counts.tolist()))


def _draw(image: np.ndarray, n: int, seed: int, sampling: str = "proportional", counts=None) -> np.ndarray:
    return sample_pixels(np.ones(image.shape, bool), image, n, sampling, np.random.default_rng(seed), counts)


# ---------------------------------------------------------------- eo-learn: sample_by_values
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("counts", [{0: 100, 1: 200, 2: 30}, {1: 200}])
def test_exact_counts_per_value(small_image, seed, counts):
    """eo-learn's test_sample_by_values: exactly the asked number of each value (here: the classes
    not listed share what is left of the total, nothing when the counts use it all)."""
    chosen = _draw(small_image, sum(counts.values()), seed, counts=counts)
    labels = _counts(small_image.ravel()[chosen])
    assert labels == {c: k for c, k in counts.items() if k}
    assert np.unique(chosen).size == chosen.size  # without replacement


def test_unknown_value_is_refused():
    """eo-learn: asking for a value the image lacks ({2: 100} on ones) is a ValueError."""
    with pytest.raises(ValueError, match="class.*2.*not in the reference"):
        check_known_classes({2: 100}, [1])


def test_more_than_available_takes_all_and_says_so():
    """eo-learn raises for 10001 samples of 10000 pixels. Here the training part depends on the
    split's seed, so a count above it takes every pixel of the class and the shortfall is reported."""
    image = np.ones((100, 100), np.uint8)
    chosen = _draw(image, 10001, 0, counts={1: 10001})
    assert chosen.size == 10000
    assert shortfall({1: 10001}, _counts(image)) == {1: 10000}


# ---------------------------------------------------------------- eo-learn: FractionSamplingTask
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fraction, exclude", [(0.2, []), (0.4, [0, 1])])
def test_fraction_of_every_class(lulc, seed, fraction, exclude):
    """eo-learn's test_fraction_sampling_input_fraction: each class within one pixel of
    count x fraction, excluded values never drawn (here: 'class:0')."""
    full = _counts(lulc)
    kept = {c: k for c, k in full.items() if c not in exclude}
    n = round(sum(kept.values()) * fraction)
    chosen = _draw(lulc, n, seed, counts={c: 0 for c in exclude})
    assert chosen.size == n  # stratified: the total is the request, exactly
    samples = _counts(lulc.ravel()[chosen])
    assert set(exclude).isdisjoint(samples)
    for value, count in kept.items():
        assert samples[value] == pytest.approx(count * fraction, abs=1)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fractions, exclude", [({1: 0.1, 3: 0.4}, []), ({2: 0.1, 3: 1, 5: 1}, []),
                                                ({2: 0.1, 3: 1, 5: 1}, [0, 2])])
def test_fraction_per_class(lulc, seed, fractions, exclude):
    """eo-learn's test_fraction_sampling_input_dict: only the listed classes are drawn, each within
    one pixel of its fraction, excluded ones not at all (class 5 is not on this patch: none drawn)."""
    full = _counts(lulc)
    counts = {c: round(full.get(c, 0) * f) for c, f in fractions.items()}
    counts.update({c: 0 for c in exclude})
    chosen = _draw(lulc, sum(counts.values()), seed, counts=counts)
    samples = _counts(lulc.ravel()[chosen])
    assert set(exclude).isdisjoint(samples)
    assert set(samples) <= set(fractions)
    assert all(k == pytest.approx(full[c] * fractions[c], abs=1) for c, k in samples.items())


@pytest.mark.parametrize("seed", range(3))
def test_sampled_pixels_are_the_mask_of_samples(lulc, seed):
    """eo-learn's test_fraction_sampling_mask: the drawn values are exactly those under the mask of
    the drawn pixels, inside the candidates."""
    candidates = np.zeros(lulc.shape, bool)
    candidates[:, : lulc.shape[1] // 2] = True
    chosen = sample_pixels(candidates, lulc, 3000, "proportional", np.random.default_rng(seed))
    mask = np.zeros(lulc.size, bool)
    mask[chosen] = True
    assert candidates.ravel()[chosen].all()
    assert _counts(lulc.ravel()[chosen]) == _counts(lulc.ravel()[mask])


@pytest.mark.parametrize("seed", range(3))
def test_reproducible_per_seed(lulc, seed):
    """eo-learn's test_fraction_sampling_reproducibility."""
    first, again, other = (_draw(lulc, 5000, s) for s in (seed, seed, seed + 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("text", ["1:-5", "2:1.5", "1:500, 1:600", "one:5", "5", f"1:{10**9}"])
def test_absurd_counts_refused(text):
    """eo-learn's test_fraction_sampling_errors (negative or impossible fractions); here counts."""
    with pytest.raises(ValueError):
        parse_class_samples(text)


# ---------------------------------------------------------------- the rule itself
def test_largest_remainder():
    # exact shares 2.5, 1.5, 1.0: floors 2, 1, 1 and one left, to the first of the tied .5 parts
    assert stratified_counts({1: 5, 2: 3, 3: 2}, 5) == {1: 3, 2: 1, 3: 1}
    # exact shares 0.3, 0.3, 0.4 of 1 pixel: it goes to the largest fraction
    assert stratified_counts({1: 3, 2: 3, 3: 4}, 1) == {1: 0, 2: 0, 3: 1}
    assert stratified_counts({1: 3, 2: 3}, 10) == {1: 3, 2: 3}  # more than there is: all


@pytest.mark.parametrize("n", [10, 97, 1000, 9999])
def test_total_is_the_request_and_shares_within_one(lulc, n):
    full = _counts(lulc)
    quotas = stratified_counts(full, n)
    assert sum(quotas.values()) == n
    total = sum(full.values())
    assert all(abs(quotas[c] - k * n / total) < 1 for c, k in full.items())


def test_balanced_stays():
    assert class_quotas({1: 1000, 2: 10, 3: 500}, 300, "balanced") == {1: 100, 2: 10, 3: 100}


def test_listed_classes_and_the_rest():
    available = {1: 1000, 2: 3000, 3: 6000}
    # class 1 gets 500; classes 2 and 3 share the other 500 as 1:2
    assert class_quotas(available, 1000, "proportional", {1: 500}) == {1: 500, 2: 167, 3: 333}
    assert class_quotas(available, 1000, "balanced", {1: 500}) == {1: 500, 2: 250, 3: 250}
    with pytest.raises(ValueError, match="add up to 2500.*more than the 1000"):
        check_class_samples({1: 500, 2: 2000}, 1000)


def test_plan_is_stratified_on_the_training_part(lulc):
    """The training pixels of a spatial split keep the training part's class shares exactly."""
    reference = Reference(classes=lulc.astype(np.int32), names={})
    settings = TrainSettings(samples=4000, seed=3)
    plan = plan_samples(reference, settings, np.random.default_rng(3))
    test = np.zeros(lulc.size, bool)
    test[plan.test] = True
    candidates = (plan.classes != 0) & ~touching(test.reshape(lulc.shape))
    available = _counts(plan.classes[candidates])
    assert plan.train.size == 4000
    assert _counts(plan.classes.ravel()[plan.train]) == {c: k for c, k in stratified_counts(available, 4000).items()
                                                          if k}


def test_plan_refuses_unknown_and_notes_short_classes(lulc):
    reference = Reference(classes=lulc.astype(np.int32), names={})
    with pytest.raises(ValueError, match="class.*99.*not in the reference"):
        plan_samples(reference, TrainSettings(class_samples="99:10"), np.random.default_rng(0))
    rare = min((c for c in reference.class_ids), key=lambda c: int((lulc == c).sum()))
    plan = plan_samples(reference, TrainSettings(class_samples=f"{rare}:5000"), np.random.default_rng(0))
    assert any("fewer pixels than the per-class counts" in note for note in plan.notes)
    with pytest.raises(ValueError, match="add up to"):
        TrainSettings(samples=100, class_samples="1:101").validate()
