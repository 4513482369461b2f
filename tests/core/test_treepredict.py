"""The tree predictor against LightGBM's own ``predict``, on real LightGBM models: the compiled
kernel must give LightGBM's raw scores bit for bit, whatever the values (NaN, 0, -0, values
LightGBM reads as 0, values on and next to every threshold) and the model's missing-value rules."""

from __future__ import annotations

from pathlib import Path

import lightgbm
import numpy as np
import pytest

from eolulc.core import treepredict
from eolulc.core.cloudmask import model_path
from eolulc.core.treepredict import TreeEnsemble

needs_numba = pytest.mark.usefixtures("numba_kernels")


def _training_data(seed: int, rows: int = 3000, features: int = 12, classes: int = 3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, rows)
    x = (rng.normal(size=(rows, features)) + labels[:, None] * 0.7).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values, as cloudy dates leave them
    x[rng.random(x.shape) < 0.05] = 0.0
    x[:, 0] = np.abs(x[:, 0])  # a feature with thresholds only above 0
    x[:, 1] = -np.abs(x[:, 1])  # and one with thresholds only below 0 (NaN read as 0 goes right)
    return x, labels


def _test_rows(booster: lightgbm.Booster, seed: int, features: int = 12) -> np.ndarray:
    """Random rows plus, for every threshold of the model, rows holding the float32 values on and
    around it; with NaN, 0, -0 and 1e-36 (which LightGBM reads as 0) mixed in."""
    rng = np.random.default_rng(seed)
    thresholds = {f: [] for f in range(features)}
    for tree in booster.dump_model()["tree_info"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                thresholds[node["split_feature"]].append(node["threshold"])
                stack += [node["left_child"], node["right_child"]]
    random_rows = rng.normal(scale=1.5, size=(2000, features)).astype(np.float32)
    edge_rows = np.empty((0, features), np.float32)
    for feature, values in thresholds.items():
        with np.errstate(over="ignore"):  # LightGBM's thresholds may exceed float32 (the split at 0 is 1e-35)
            near = np.float32(values)
        candidates = np.concatenate([near, np.nextafter(near, np.float32(np.inf)),
                                     np.nextafter(near, np.float32(-np.inf))])
        block = rng.normal(scale=1.5, size=(candidates.size, features)).astype(np.float32)
        block[:, feature] = candidates
        edge_rows = np.concatenate([edge_rows, block])
    rows = np.concatenate([random_rows, edge_rows])
    special = np.array([np.nan, 0.0, -0.0, 1e-36, -1e-36], np.float32)
    hits = rng.random(rows.shape) < 0.1
    rows[hits] = rng.choice(special, hits.sum())
    return rows


def _train(params: dict, seed: int = 0, rounds: int = 30) -> lightgbm.Booster:
    x, labels = _training_data(seed)
    if params.get("objective") == "binary":
        labels = (labels > 0).astype(int)
    base = {"verbosity": -1, "num_threads": 1, "seed": seed, "min_data_in_leaf": 5}
    return lightgbm.train({**base, **params}, lightgbm.Dataset(x, labels), num_boost_round=rounds)


MODELS = {
    "multiclass, 15 leaves (the LULC default, 16-bit masks)": {"objective": "multiclass", "num_class": 3,
                                                               "num_leaves": 15},
    "multiclass, 31 leaves (32-bit masks)": {"objective": "multiclass", "num_class": 3, "num_leaves": 31},
    "multiclass, 40 leaves (64-bit masks)": {"objective": "multiclass", "num_class": 3, "num_leaves": 40},
    "binary": {"objective": "binary", "num_leaves": 8},
    "zero as missing": {"objective": "multiclass", "num_class": 3, "zero_as_missing": True},
    "missing values not handled": {"objective": "multiclass", "num_class": 3, "use_missing": False},
    "trees of one leaf": {"objective": "multiclass", "num_class": 3, "min_data_in_leaf": 2000},
}


@needs_numba
@pytest.mark.parametrize("name", MODELS)
def test_compiled_scores_equal_lightgbm_bit_for_bit(name):
    booster = _train(MODELS[name])
    rows = _test_rows(booster, seed=1)
    ensemble = TreeEnsemble(booster.model_to_string(), threads=2)
    assert ensemble.compiled
    leaves = max(tree["num_leaves"] for tree in booster.dump_model()["tree_info"])
    assert ensemble.flat.node_keep.dtype == (np.uint16 if leaves <= 16 else np.uint32 if leaves <= 32 else np.uint64)
    np.testing.assert_array_equal(ensemble.raw_scores(rows), booster.predict(rows, raw_score=True))


@needs_numba
def test_random_forest_scores_are_lightgbms_average():
    booster = _train({"objective": "multiclass", "num_class": 3, "boosting": "rf", "bagging_fraction": 0.6,
                      "bagging_freq": 1, "feature_fraction": 0.7})
    rows = _test_rows(booster, seed=2)
    ensemble = TreeEnsemble(booster.model_to_string(), threads=1, average=True)
    assert ensemble.compiled
    # LightGBM's raw score is the trees' sum; its probabilities average it over the iterations
    expected = booster.predict(rows, raw_score=True) / booster.current_iteration()
    np.testing.assert_array_equal(ensemble.raw_scores(rows), expected)


@needs_numba
def test_threads_layouts_and_row_counts_do_not_change_scores(monkeypatch):
    booster = _train(MODELS["multiclass, 15 leaves (the LULC default, 16-bit masks)"])
    rows = _test_rows(booster, seed=3)
    one = TreeEnsemble(booster.model_to_string(), threads=1).raw_scores(rows)
    monkeypatch.setattr(treepredict, "MIN_ROW_TREES_PER_THREAD", 1)  # threads even for a few rows
    calls = []
    original = treepredict.FlatTrees.add_scores
    monkeypatch.setattr(treepredict.FlatTrees, "add_scores", lambda self, *a: calls.append(1) or original(self, *a))
    three = TreeEnsemble(booster.model_to_string(), threads=3)
    np.testing.assert_array_equal(three.raw_scores(rows), one)
    assert len(calls) == 3
    # feature rows as a strided view (what the pipeline hands over), and float64 rows
    np.testing.assert_array_equal(three.raw_scores(np.asfortranarray(rows)), one)
    np.testing.assert_array_equal(three.raw_scores(rows.astype(np.float64)), one)
    for count in (0, 1, 2, treepredict.BLOCK_ROWS - 1, treepredict.BLOCK_ROWS + 1):  # partial blocks
        np.testing.assert_array_equal(three.raw_scores(rows[:count]), one[:count])
    with pytest.raises(ValueError, match="the rows have 5 features, the model 12"):
        three.raw_scores(rows[:, :5])


def test_lightgbm_fallback_gives_the_same_scores():
    """Without numba (here: compiled=False) LightGBM's predict evaluates the model."""
    booster = _train(MODELS["multiclass, 15 leaves (the LULC default, 16-bit masks)"])
    rows = _test_rows(booster, seed=4)
    ensemble = TreeEnsemble(booster.model_to_string(), threads=2, compiled=False)
    assert not ensemble.compiled
    np.testing.assert_allclose(ensemble.raw_scores(rows), booster.predict(rows, raw_score=True), rtol=0, atol=1e-12)


def test_models_the_kernel_does_not_evaluate_go_to_lightgbm():
    x, labels = _training_data(5)
    x[:, 2] = labels * 2 + np.arange(labels.size) % 2  # a category per class, split as categories
    categorical = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbosity": -1, "num_threads": 1},
                                 lightgbm.Dataset(x, labels, categorical_feature=[2]), num_boost_round=10)
    assert any(line.startswith("num_cat=") and line != "num_cat=0" for line in categorical.model_to_string().split())
    ensemble = TreeEnsemble(categorical.model_to_string(), threads=1)
    assert not ensemble.compiled
    np.testing.assert_allclose(ensemble.raw_scores(x[:500]), categorical.predict(x[:500], raw_score=True), atol=1e-12)
    # big trees that send NaN to a default side: the walk compares "v > t" only, so LightGBM
    big_nan_aware = _train({"objective": "multiclass", "num_class": 3, "num_leaves": 100}, rounds=5)
    ensemble = TreeEnsemble(big_nan_aware.model_to_string(), threads=1)
    assert not ensemble.compiled
    rows = _test_rows(big_nan_aware, seed=6)
    np.testing.assert_allclose(ensemble.raw_scores(rows), big_nan_aware.predict(rows, raw_score=True), atol=1e-12)


def _s2cloudless_rows() -> np.ndarray:
    """The real L1C scenes' pixels as s2cloudless's 10 band rows, with NaN, 0, -0 and 1e-36 mixed in."""
    scenes = np.load(Path(__file__).parents[1] / "data" / "REFERENCE_SCENES.npy")
    rows = scenes[..., [0, 1, 3, 4, 7, 8, 9, 10, 11, 12]].reshape(-1, 10).astype(np.float32)
    rng = np.random.default_rng(7)
    hits = rng.random(rows.shape) < 0.02
    rows[hits] = rng.choice(np.array([np.nan, 0.0, -0.0, 1e-36], np.float32), hits.sum())
    return rows


@needs_numba
def test_s2cloudless_trees_are_walked_with_lightgbms_scores_bit_for_bit():
    """s2cloudless's 770-leaf trees read NaN as 0 (missing type None): the compiled walk."""
    ensemble = TreeEnsemble.from_file(str(model_path()), threads=2)
    assert isinstance(ensemble.flat, treepredict.WalkTrees)
    rows = _s2cloudless_rows()
    np.testing.assert_array_equal(ensemble.raw_scores(rows), ensemble.booster.predict(rows, raw_score=True))


@needs_numba
def test_walked_big_trees_equal_lightgbm_for_every_row_count_and_layout(monkeypatch):
    """Multiclass trees of 100 leaves without missing-value handling, some of one leaf only."""
    booster = _train({"objective": "multiclass", "num_class": 3, "num_leaves": 100, "use_missing": False,
                      "min_data_in_leaf": 3}, rounds=8)
    booster = lightgbm.Booster(model_str=booster.model_to_string())
    assert max(tree["num_leaves"] for tree in booster.dump_model()["tree_info"]) > treepredict.MAX_LEAVES
    rows = _test_rows(booster, seed=8)
    expected = booster.predict(rows, raw_score=True)
    monkeypatch.setattr(treepredict, "MIN_ROW_TREES_PER_THREAD", 1)  # threads even for a few rows
    ensemble = TreeEnsemble(booster.model_to_string(), threads=3)
    assert isinstance(ensemble.flat, treepredict.WalkTrees)
    np.testing.assert_array_equal(ensemble.raw_scores(rows), expected)
    np.testing.assert_array_equal(ensemble.raw_scores(np.asfortranarray(rows)), expected)
    np.testing.assert_array_equal(ensemble.raw_scores(rows.astype(np.float64)), expected)
    chunk = treepredict.WalkTrees.CHUNK_ROWS
    for count in (0, 1, 7, 8, 9, chunk - 1, chunk, chunk + 1, 2 * chunk + 5):  # partial groups and chunks
        np.testing.assert_array_equal(ensemble.raw_scores(rows[:count]), expected[:count])
    # small trees and trees of a single leaf walk too (where the bit masks don't take them)
    monkeypatch.setattr(treepredict, "MAX_LEAVES", 0)
    for params in ({"num_leaves": 4}, {"min_data_in_leaf": 5000}):
        small = _train({"objective": "binary", "use_missing": False, **params}, rounds=3)
        walked = TreeEnsemble(small.model_to_string(), threads=1)
        assert isinstance(walked.flat, treepredict.WalkTrees)
        np.testing.assert_array_equal(walked.raw_scores(rows), small.predict(rows, raw_score=True))
    assert walked.flat.packed.size == walked.booster.num_trees()  # one node (a leaf) per tree
