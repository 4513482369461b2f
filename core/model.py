"""The EO LULC model file: LightGBM's own text format (or a deep network) plus JSON metadata, in
one JSON document.

Never a pickle: a model file may come from anyone, and opening it must not run code. The file is
``{"format": "eolulc-model", "version": 1, "metadata": {...}, "lightgbm": "<LightGBM model text>"}``;
LightGBM parses its text (trees and numbers only). ``metadata`` holds what classification needs
to check its inputs (feature names, the stacks' dates and bands, the grid's CRS), the class ids
with names and colours, the training parameters, sample counts and package versions. A deep
classifier (:mod:`.deep`) has ``"network"`` (architecture, normalisation, weights as numeric
arrays in a base64 ``.npz``) instead of ``"lightgbm"``, and version 2 (older plugins say to update).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .atomic import atomic_outputs
from .legend import Legend
from .treepredict import TreeEnsemble, softmax

if TYPE_CHECKING:
    from .deep import DeepPredictor

FORMAT = "eolulc-model"
VERSION = 2


@dataclass
class LulcModel:
    model_text: str
    metadata: dict
    #: a deep classifier's record (``core.deep``); None for LightGBM
    network: dict | None = None

    @property
    def class_ids(self) -> list[int]:
        """Class id of each model output, in LightGBM's label order."""
        return [int(c) for c in self.metadata["class_ids"]]

    @property
    def legend(self) -> Legend:
        return Legend.from_json(self.metadata["legend"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def is_random_forest(self) -> bool:
        return self.metadata.get("parameters", {}).get("boosting") == "rf"

    @property
    def kind(self) -> str:
        """``lightgbm``, or the deep network's name (``tempcnn``, ``ltae``)."""
        return "lightgbm" if self.network is None else str(self.network["architecture"]["name"])

    def ensemble(self, threads: int | None = None) -> TreeEnsemble | DeepPredictor:
        """The predictor: LightGBM's trees, or a deep network (``core.deep.DeepPredictor``, same
        ``raw_scores``); :func:`predict_probabilities` turns either into class probabilities."""
        if self.network is not None:
            from .deep import DeepPredictor

            # the training's CPU choice holds; a model trained on a GPU still applies where there is none
            device = "cpu" if self.metadata.get("settings", {}).get("device") == "cpu" else "auto"
            return DeepPredictor(self.network, threads, device)
        return TreeEnsemble(self.model_text, threads, average=self.is_random_forest)

    def save(self, path: str | Path) -> None:
        document = {"format": FORMAT, "version": 1, "metadata": self.metadata, "lightgbm": self.model_text}
        if self.network is not None:
            document = {"format": FORMAT, "version": 2, "metadata": self.metadata, "network": self.network}
        with atomic_outputs([path]) as (temp,):
            Path(temp).write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")


def load_model(path: str | Path) -> LulcModel:
    """Read a model file; anything else (a pickle, another JSON, a broken file) is a ``ValueError``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the model file '{path}': {error}") from error
    if raw[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise ValueError(f"'{path.name}' is a Python pickle; EO LULC never loads pickles (they can run code). "
                         "Train the model with 'Train LULC classifier' to get a model file")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"'{path.name}' is not an EO LULC model file (not JSON: {error})") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"'{path.name}' is not an EO LULC model file (no \"format\": \"{FORMAT}\")")
    if int(document.get("version", 0)) > VERSION:
        raise ValueError(f"'{path.name}' was written by a newer EO LULC (model format {document.get('version')}); "
                         "update the plugin")
    metadata, text, network = document.get("metadata"), document.get("lightgbm"), document.get("network")
    required = ("class_ids", "feature_names", "inputs", "legend")
    if network is not None and text is None and isinstance(metadata, dict):
        from .deep import check_network

        check_network(network, path.name)  # numpy only; the weights are never unpickled
        text = ""
    if not isinstance(metadata, dict) or not isinstance(text, str) or any(k not in metadata for k in required):
        raise ValueError(f"'{path.name}' is an incomplete EO LULC model file")
    if network is not None:
        if network["architecture"].get("n_classes") != len(metadata["class_ids"]) \
                or max(max(row) for row in network["layout"]) >= len(metadata["feature_names"]):
            raise ValueError(f"'{path.name}' is inconsistent: its network does not match its classes or features")
        return LulcModel(model_text="", metadata=metadata, network=network)
    model = LulcModel(model_text=text, metadata=metadata)
    try:
        booster = model.ensemble(threads=1).booster
    except Exception as error:  # LightGBM raises its own error type for a broken model text
        raise ValueError(f"the LightGBM model in '{path.name}' cannot be read: {error}") from error
    if booster.num_feature() != len(model.feature_names):
        raise ValueError(f"'{path.name}' is inconsistent: {booster.num_feature()} model inputs but "
                         f"{len(model.feature_names)} feature names")
    return model


def predict_probabilities(ensemble: TreeEnsemble | DeepPredictor, rows: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n, classes)`` in the model's label order (models are trained with
    LightGBM's multiclass objective, also for two classes: one output per class, softmax)."""
    return softmax(ensemble.raw_scores(rows))
