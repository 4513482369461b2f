"""The temporal deep classifiers (TempCNN, L-TAE) on the real TestEOPatch (NDVI on a 16-day grid):
accuracy, the model file (round trip, pickles refused), reproducibility, and the plugin without
PyTorch."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from eolulc.core.classify import classify
from eolulc.core.deep import temporal_layout
from eolulc.core.eopatch import import_eopatch
from eolulc.core.interpolate import interpolate_stack
from eolulc.core.legend import read_legend
from eolulc.core.model import load_model, predict_probabilities
from eolulc.core.reference import read_reference_raster
from eolulc.core.timestack import open_stack, read_info
from eolulc.core.train import TrainSettings, train_model

#: Small and quick: a few epochs on 3000 pixels train each network in seconds.
QUICK = TrainSettings(samples=3000, epochs=8, batch_size=256, threads=2, device="cpu")
SENTINEL = Path(__file__).with_name("unpickled.sentinel")


class Sentinel:
    """Unpickling it would create SENTINEL: the pickle tests check that it never exists."""

    def __reduce__(self):
        return (Path.touch, (SENTINEL,))


@pytest.fixture(scope="module")
def ndvi16(eopatch_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deep")
    import_eopatch(eopatch_dir, ["NDVI"], folder / "ndvi.tif", "CLM", folder / "clm.tif", "LULC", folder / "lulc.tif")
    interpolate_stack(folder / "ndvi.tif", folder / "ndvi16.tif", start="2016-01-01", end="2016-12-31",
                      interval_days=16, mask_path=folder / "clm.tif", min_valid_fraction=0.8)
    return folder


@pytest.fixture(scope="module")
def reference(ndvi16):
    return read_reference_raster(str(ndvi16 / "lulc.tif"), read_info(str(ndvi16 / "ndvi16.tif")).grid)


@pytest.fixture(scope="module", params=["tempcnn", "ltae"])
def trained(request, ndvi16, reference):
    return train_model([str(ndvi16 / "ndvi16.tif")], reference, read_legend(), replace(QUICK, classifier=request.param))


def stack_rows(path: Path) -> np.ndarray:
    with open_stack(str(path)) as stack:
        data = stack.read()
    return data.transpose(1, 2, 0, 3).reshape(-1, data.shape[0] * data.shape[3]).astype(np.float32)


def test_network_learns_the_classes(trained):
    report = trained.report
    majority = max(np.bincount(trained.test_truth)) / trained.test_truth.size
    assert report["overall_accuracy"] >= max(0.85, majority + 0.2) and report["f1_weighted"] >= 0.8
    parameters = trained.model.metadata["parameters"]
    assert parameters["dates"] == 23 and parameters["channels"] == 1 and parameters["device"] == "cpu"
    assert 1 <= parameters["epochs_kept"] <= parameters["epochs_run"] <= 8
    assert report["feature_importance"] == []  # a network has no gain per feature


def test_model_file_round_trip_and_block_by_block_map(trained, ndvi16, tmp_path):
    path = tmp_path / "model.json"
    trained.model.save(path)
    document = json.loads(path.read_text())
    assert document["version"] == 2 and "lightgbm" not in document
    assert document["network"]["architecture"]["name"] == trained.model.kind
    assert len(document["network"]["normalisation"]["mean"]) == 1
    model = load_model(path)
    rows = stack_rows(ndvi16 / "ndvi16.tif")
    valid = ~np.all(np.isnan(rows), axis=1)
    before = predict_probabilities(trained.model.ensemble(2), rows[valid])
    after = predict_probabilities(model.ensemble(2), rows[valid])
    assert after.shape == (valid.sum(), len(model.class_ids))
    np.testing.assert_array_equal(before, after)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, rtol=1e-5)
    # the map, in many small blocks, is the prediction of the whole image at once
    result = classify([str(ndvi16 / "ndvi16.tif")], model, tmp_path / "map.tif", tmp_path / "conf.tif",
                      budget_bytes=100_000, threads=2)
    with open_stack(str(tmp_path / "map.tif")) as stack:
        labels = stack.read()[0, ..., 0].ravel()
    with open_stack(str(tmp_path / "conf.tif")) as stack:
        confidence = stack.read()[0, ..., 0].ravel()
    np.testing.assert_array_equal(labels[valid], np.asarray(model.class_ids)[after.argmax(axis=1)])
    assert (labels[~valid] == result.nodata).all()
    np.testing.assert_array_equal(confidence[valid], np.round(100 * after.max(axis=1)).astype(np.uint8))


def test_prediction_folds_batch_norm_with_the_same_logits(trained, ndvi16):
    """The predictor's network (batch norm folded into the layer before it, no dropout) gives the
    trained network's logits, up to float rounding, and the same classes."""
    import torch

    from eolulc.core.deep import check_network, to_sequences
    from eolulc.core.deep_models import build_network

    network = trained.model.network
    plain = build_network(network["architecture"])
    plain.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in check_network(network, "test").items()})
    rows = stack_rows(ndvi16 / "ndvi16.tif")
    rows = rows[~np.all(np.isnan(rows), axis=1)]
    with torch.no_grad():
        expected = plain.eval()(torch.from_numpy(to_sequences(rows, network))).numpy()
    predictor = trained.model.ensemble(2)
    got = predictor.raw_scores(rows)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    kinds = {type(m).__name__ for m in predictor.module.modules()}
    assert not kinds & {"BatchNorm1d", "Dropout"}


def test_same_seed_same_network(ndvi16, reference):
    settings = replace(QUICK, classifier="ltae", epochs=3, samples=1500, seed=7)
    runs = [train_model([str(ndvi16 / "ndvi16.tif")], reference, read_legend(), settings) for _ in range(2)]
    assert runs[0].model.network == runs[1].model.network  # weights byte for byte
    np.testing.assert_array_equal(runs[0].test_predicted, runs[1].test_predicted)
    other = train_model([str(ndvi16 / "ndvi16.tif")], reference, read_legend(), replace(settings, seed=8))
    assert other.model.network["weights"] != runs[0].model.network["weights"]


def with_weights(trained, tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "model.json"
    trained.model.save(path)
    document = json.loads(path.read_text())
    document["network"]["weights"] = base64.b64encode(payload).decode("ascii")
    path.write_text(json.dumps(document))
    return path


def test_weights_with_a_pickle_inside_are_refused_unopened(trained, tmp_path):
    import torch

    SENTINEL.unlink(missing_ok=True)
    arrays = np.load(io.BytesIO(base64.b64decode(trained.model.network["weights"])))
    poisoned = {name: arrays[name] for name in arrays.files}
    poisoned["extra"] = np.array([Sentinel()], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **poisoned)
    with pytest.raises(ValueError, match="never loads pickles.*'extra' holds Python objects"):
        load_model(with_weights(trained, tmp_path, buffer.getvalue()))
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(2), "sentinel": Sentinel()}, buffer)
    with pytest.raises(ValueError, match="never loads pickles or PyTorch files.*data.pkl"):
        load_model(with_weights(trained, tmp_path, buffer.getvalue()))
    torch_file = tmp_path / "torch-model.json"
    torch_file.write_bytes(buffer.getvalue())  # a torch.save'd file renamed as a model file
    with pytest.raises(ValueError, match="not an EO LULC model file"):
        load_model(torch_file)
    torch.save(Sentinel(), torch_file, _use_new_zipfile_serialization=False)  # the legacy format: a bare pickle
    with pytest.raises(ValueError, match="is a Python pickle"):
        load_model(torch_file)
    assert not SENTINEL.exists()


def test_plugin_without_pytorch(trained, ndvi16, reference, plugins_dir, tmp_path):
    """With torch unimportable: the plugin's modules load (and never import torch), a deep model
    file opens, and training or applying a network says how to get PyTorch."""
    model_path = tmp_path / "model.json"
    trained.model.save(model_path)
    script = f"""
import sys
sys.path.insert(0, {str(plugins_dir)!r})
import eolulc.core.batch, eolulc.core.classify, eolulc.core.experiment, eolulc.core.pipeline
from eolulc.core.legend import read_legend
from eolulc.core.model import load_model
from eolulc.core.reference import read_reference_raster
from eolulc.core.timestack import read_info
from eolulc.core.train import TrainSettings, train_model
assert "torch" not in sys.modules, "the plugin imported torch"
sys.modules["torch"] = None  # import torch now fails as if it were not installed
model = load_model({str(model_path)!r})
for attempt in (lambda: model.ensemble(1),
                lambda: train_model([{str(ndvi16 / "ndvi16.tif")!r}],
                                    read_reference_raster({str(ndvi16 / "lulc.tif")!r},
                                                          read_info({str(ndvi16 / "ndvi16.tif")!r}).grid),
                                    read_legend(), TrainSettings(classifier="ltae", samples=100))):
    try:
        attempt()
    except ValueError as error:
        print("REFUSED:", error)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refusals = [line for line in done.stdout.splitlines() if line.startswith("REFUSED:")]
    assert len(refusals) == 2
    for line in refusals:
        assert "need PyTorch" in line and "Install Python dependencies" in line and "pip install torch" in line


def test_temporal_layout_of_dated_and_undated_stacks():
    inputs = [{"dates": ["2016-01-01T00:00:00", "2016-01-17T00:00:00"], "bands": ["B04", "B08"]},
              {"dates": ["2016-01-01T00:00:00", "2016-01-17T00:00:00"], "bands": ["NDVI"]},
              {"dates": [None], "bands": ["NDVI_max", "NDVI_mean"]}]
    layout, positions = temporal_layout(inputs)
    # date 1: B04, B08 of stack 1, NDVI of stack 2, then the undated statistics on every date
    assert layout.tolist() == [[0, 1, 4, 6, 7], [2, 3, 5, 6, 7]]
    assert positions == [0.0, 16.0]
    with pytest.raises(ValueError, match="same dates"):
        temporal_layout([inputs[0], {"dates": ["2016-02-01T00:00:00"], "bands": ["NDVI"]}])
