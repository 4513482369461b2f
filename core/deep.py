"""Temporal deep classifiers (TempCNN, L-TAE) next to LightGBM: fit, predict, and their safe
record in the model file.

PyTorch is optional: this module imports it only inside the functions that need it, and says how
to get it when it is missing; nothing else in the plugin imports torch. The networks see the same
feature rows as LightGBM, reshaped to ``(pixels, dates, channels)`` (the channels of a date are
the bands of every dated stack; an undated stack's features, e.g. temporal statistics, are
repeated on every date), normalised per channel with the training pixels' mean and standard
deviation (stored in the model), nodata as the mean.

The model file keeps the JSON format of :mod:`.model`: a ``"network"`` record holds the
architecture, the layout, the normalisation and the weights as a base64 numpy ``.npz`` that is
read with ``allow_pickle=False`` and must hold numeric arrays only. Never a pickle, never
``torch.load`` of a user's file.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import time
import zipfile
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from .progress import Progress

DEEP_CLASSIFIERS = ("tempcnn", "ltae")
DEVICES = ("auto", "cpu", "cuda")
#: Early stopping: epochs without a better validation loss before the fit stops.
PATIENCE = 5
#: Rows per forward pass when predicting: bounds the activations' memory whatever the block, and
#: keeps them in the CPU's caches (TempCNN's ~6 MB a layer at 1024 rows): 512-2048 rows predicted
#: 1.3-1.5x faster than 4096 on 2 cores (TestEOPatch, bench/README.md).
PREDICT_ROWS = 1024
#: Largest layer size a model file may ask for (a file must not make the plugin allocate gigabytes).
MAX_LAYER = 4096
SIZE_KEYS = {"tempcnn": {"filters", "kernel", "dense", "dropout"},
             "ltae": {"d_model", "n_head", "d_k", "mlp", "decoder", "dropout"}}


def require_torch():
    """The torch module, or a ``ValueError`` that says how to install it."""
    try:
        import torch
    except ImportError:
        raise ValueError("the deep classifiers (tempcnn, ltae) need PyTorch, which is not installed: use "
                         "Plugins > EO LULC > Install Python dependencies... and tick the optional extra "
                         "'deep classifiers', or run `pip install torch` with QGIS's Python; or choose the "
                         "LightGBM classifier (gbdt)") from None
    return torch


def temporal_layout(inputs: list[dict]) -> tuple[np.ndarray, list[float]]:
    """Column of each (date, channel) in a feature row, ``(dates, channels)``, and each date's day
    in the series (days after the first date; 0, 1, 2... without dates). ``inputs`` is what a
    model remembers of its stacks (``featureset.describe_stack``)."""
    from .timestack import parse_datetime

    dated, static, start = [], [], 0
    for stack in inputs:
        dates, n_bands = stack["dates"], len(stack["bands"])
        columns = np.arange(start, start + len(dates) * n_bands).reshape(len(dates), n_bands)
        start += columns.size
        if len(dates) == 1 and dates[0] is None:
            static.extend(columns.ravel())
        else:
            dated.append((dates, columns))
    if not dated:
        return np.asarray(static, np.int64).reshape(1, -1), [0.0]
    dates = dated[0][0]
    for other, _ in dated[1:]:
        if other != dates:
            raise ValueError("the deep classifiers need every dated feature stack on the same dates (one date "
                             "grid): interpolate them onto one grid, or use the LightGBM classifier")
    per_date = np.concatenate([c for _, c in dated], axis=1)
    if static:
        per_date = np.concatenate([per_date, np.tile(np.asarray(static, np.int64), (len(dates), 1))], axis=1)
    days = [parse_datetime(d) for d in dates]
    positions = [(d - days[0]).total_seconds() / 86400.0 for d in days]
    return per_date.astype(np.int64), positions


def to_sequences(rows: np.ndarray, network: dict) -> np.ndarray:
    """Feature rows -> normalised ``(pixels, dates, channels)`` float32, nodata as 0 (the mean)."""
    columns = np.asarray(network["layout"], np.int64)
    mean = np.asarray(network["normalisation"]["mean"], np.float32)
    std = np.asarray(network["normalisation"]["std"], np.float32)
    x = rows[:, columns].astype(np.float32, copy=False)  # a new array (fancy indexing): worked on in place
    x -= mean
    x /= std
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return x


@contextmanager
def torch_threads(torch, threads: int | None) -> Iterator[None]:
    """PyTorch's intra-op threads bounded to ``threads`` for the duration (restored afterwards)."""
    before = torch.get_num_threads()
    wanted = max(1, int(threads)) if threads else before
    if wanted != before:  # setting it, even to the same value, may restart the thread pool
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != before:
            torch.set_num_threads(before)


def choose_device(torch, device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device '{device}'; use one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but PyTorch sees no GPU; use 'auto' or 'cpu'")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_sizes(name: str, dates: int) -> dict:
    if name == "tempcnn":
        return {"filters": 64, "kernel": 5, "dense": 256, "dropout": 0.2}
    return {"d_model": 128, "n_head": 16, "d_k": 8, "mlp": 64, "decoder": 32, "dropout": 0.2}


def fit_network(x: np.ndarray, y_ids: np.ndarray, class_ids: list[int], inputs: list[dict], settings,
                rng: np.random.Generator, progress: Progress) -> tuple[dict, dict]:
    """Train ``settings.classifier`` on the rows ``x`` (class ids ``y_ids``): Adam, cross-entropy
    (class-weighted when ``settings.class_weight`` is balanced), early stopping on 10 % of the
    rows held out for validation (best epoch kept), as LightGBM's fit. Returns the model file's
    network record and the parameters to report. Same seed, same network on the CPU."""
    torch = require_torch()
    from .deep_models import build_network

    name = settings.classifier
    layout, positions = temporal_layout(inputs)
    sequences_raw = x[:, layout]
    with np.errstate(all="ignore"):
        mean = np.nanmean(sequences_raw, axis=(0, 1))
        std = np.nanstd(sequences_raw, axis=(0, 1))
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    del sequences_raw
    architecture = {"name": name, "channels": int(layout.shape[1]), "n_classes": len(class_ids),
                    "positions": positions, "sizes": default_sizes(name, layout.shape[0])}
    network = {"architecture": architecture, "layout": layout.tolist(),
               "normalisation": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}}
    sequences = to_sequences(x, network)
    index_of = {c: i for i, c in enumerate(class_ids)}
    y = np.array([index_of[int(c)] for c in y_ids], np.int64)
    order = rng.permutation(len(y))
    early = settings.early_stopping and len(y) >= 50
    n_valid = max(len(class_ids), len(y) // 10) if early else 0
    valid, train = order[:n_valid], order[n_valid:]
    weights = None
    if settings.class_weight == "balanced":
        counts = np.bincount(y[train], minlength=len(class_ids)).astype(float)
        weights = np.where(counts > 0, len(train) / (len(class_ids) * np.maximum(counts, 1)), 0.0)
    device = choose_device(torch, settings.device)
    seed = int(rng.integers(2**31 - 1))
    started = time.perf_counter()
    with torch_threads(torch, settings.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_network(architecture).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=settings.deep_learning_rate, weight_decay=1e-6)
        loss_of = torch.nn.CrossEntropyLoss(
            weight=None if weights is None else torch.tensor(weights, dtype=torch.float32, device=device))
        x_train = torch.from_numpy(sequences[train]).to(device)
        y_train = torch.from_numpy(y[train]).to(device)
        x_valid = torch.from_numpy(sequences[valid]).to(device)
        y_valid = torch.from_numpy(y[valid]).to(device)
        shuffler = torch.Generator().manual_seed(seed)
        best, best_epoch, best_state, epochs_run = math.inf, 0, None, 0
        for epoch in range(settings.epochs):
            progress.check()
            model.train()
            permutation = torch.randperm(len(train), generator=shuffler).to(device)
            for start in range(0, len(train), settings.batch_size):
                batch = permutation[start:start + settings.batch_size]
                if batch.numel() < 2:  # batch norm needs two rows
                    continue
                optimiser.zero_grad()
                loss = loss_of(model(x_train[batch]), y_train[batch])
                loss.backward()
                optimiser.step()
            epochs_run = epoch + 1
            progress.report(0.4 + 0.5 * epochs_run / settings.epochs)
            if early:
                model.eval()
                with torch.no_grad():
                    value = float(loss_of(model(x_valid), y_valid))
                if value < best - 1e-4:
                    best, best_epoch = value, epochs_run
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epochs_run - best_epoch >= PATIENCE:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        network["weights"] = encode_weights({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    parameters = {"classifier": name, "epochs": settings.epochs, "epochs_run": epochs_run,
                  "epochs_kept": best_epoch if best_state is not None else epochs_run,
                  "batch_size": settings.batch_size, "learning_rate": settings.deep_learning_rate,
                  "class_weight": settings.class_weight, "seed": settings.seed, "device": device,
                  "dates": int(layout.shape[0]), "channels": int(layout.shape[1]),
                  "torch": torch.__version__}
    progress.log(f"{name}: {epochs_run} epochs on {device} ({time.perf_counter() - started:.1f} s), kept epoch "
                 f"{parameters['epochs_kept']}; {layout.shape[0]} dates x {layout.shape[1]} channels.")
    return network, parameters


def encode_weights(arrays: dict[str, np.ndarray]) -> str:
    """Base64 of a compressed ``.npz`` of numeric arrays (byte for byte the same for the same arrays)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_weights(text: str, source: str) -> dict[str, np.ndarray]:
    """The arrays of :func:`encode_weights`, refusing anything that is not plain numeric ``.npy``
    members: a pickle inside (an object array, a PyTorch file) is never unpickled."""
    refused = (f"the network weights in '{source}' are not plain numeric arrays; EO LULC never loads pickles or "
               "PyTorch files (they can run code). Train the model with 'Train LULC classifier'")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (AttributeError, UnicodeEncodeError, binascii.Error):
        raise ValueError(f"the network weights in '{source}' are not base64 text") from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.namelist()
    except zipfile.BadZipFile:
        raise ValueError(refused + " (not an .npz archive)") from None
    others = [m for m in members if not m.endswith(".npy")]
    if others:
        raise ValueError(refused + f" (it holds {', '.join(others[:3])})")
    arrays = {}
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        for name in npz.files:
            try:
                array = npz[name]
            except ValueError:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
                raise ValueError(refused + f" ('{name}' holds Python objects)") from None
            if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
                raise ValueError(refused + f" ('{name}' is not numeric)")
            arrays[name] = array
    return arrays


def check_network(network: object, source: str) -> dict[str, np.ndarray]:
    """A ``ValueError`` unless ``network`` is a complete, bounded network record; its weights.
    Numpy only: a model file is checked on opening, PyTorch or not."""
    if not isinstance(network, dict) or not all(k in network for k in ("architecture", "layout", "normalisation",
                                                                       "weights")):
        raise ValueError(f"'{source}' has an incomplete network record")
    architecture = network["architecture"]
    name = architecture.get("name") if isinstance(architecture, dict) else None
    if name not in DEEP_CLASSIFIERS:
        raise ValueError(f"'{source}' holds an unknown network '{name}'; this plugin knows "
                         f"{', '.join(DEEP_CLASSIFIERS)}")
    sizes = architecture.get("sizes", {})
    if not isinstance(sizes, dict) or set(sizes) - SIZE_KEYS[name] \
            or not all(isinstance(v, (int, float)) and 0 <= v <= MAX_LAYER for v in sizes.values()):
        raise ValueError(f"'{source}' has network sizes outside what EO LULC writes: {sizes}")
    try:
        layout = np.asarray(network["layout"], np.int64)
        mean = np.asarray(network["normalisation"]["mean"], np.float64)
        std = np.asarray(network["normalisation"]["std"], np.float64)
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"'{source}' has a broken network layout or normalisation") from None
    channels = int(architecture.get("channels", -1))
    if layout.ndim != 2 or layout.shape != (len(architecture.get("positions", [])), channels) \
            or mean.shape != (channels,) or std.shape != (channels,) or not (std > 0).all():
        raise ValueError(f"'{source}' is inconsistent: its network layout, positions and normalisation disagree")
    return decode_weights(network["weights"], source)


class DeepPredictor:
    """A fitted network applied to feature rows; ``raw_scores`` are the class logits (their softmax
    is the probabilities, as for the LightGBM ensemble it stands in for)."""

    def __init__(self, network: dict, threads: int | None = None, device: str = "auto") -> None:
        torch = require_torch()
        from .deep_models import build_network, for_inference

        self.torch, self.network, self.threads = torch, network, threads
        self.device = choose_device(torch, device)
        arrays = check_network(network, "the model")
        module = build_network(network["architecture"])
        try:
            module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()}, strict=True)
        except RuntimeError as error:
            raise ValueError(f"the network weights do not fit its architecture: {error}") from None
        self.module = for_inference(module).to(self.device)

    def raw_scores(self, rows: np.ndarray) -> np.ndarray:
        """Class logits ``(rows, classes)``, float32, computed ``PREDICT_ROWS`` rows at a time
        (without autograd's bookkeeping), written straight into the result."""
        torch = self.torch
        out = np.empty((rows.shape[0], self.network["architecture"]["n_classes"]), np.float32)
        with torch_threads(torch, self.threads), torch.inference_mode():
            for start in range(0, rows.shape[0], PREDICT_ROWS):
                part = torch.from_numpy(to_sequences(rows[start:start + PREDICT_ROWS], self.network))
                logits = self.module(part.to(self.device))
                torch.from_numpy(out[start:start + PREDICT_ROWS]).copy_(logits)
        return out

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities ``(rows, classes)``, float32."""
        logits = self.raw_scores(rows)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)
