"""The temporal deep networks (PyTorch modules): TempCNN and the Lightweight Temporal Attention
Encoder. Imported only by :mod:`.deep`, and only once it has checked that PyTorch is there: the
rest of the plugin never imports torch.

Both take ``(pixels, dates, channels)`` float32 input (normalised per channel) and return class
logits ``(pixels, classes)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TempCNN(nn.Module):
    """Pelletier, Webb and Petitjean (2019), *Temporal Convolutional Neural Network for the
    Classification of Satellite Image Time Series*: three 1-D convolutions over time (kernel 5,
    batch norm, ReLU, dropout), flattened into a dense layer (batch norm, ReLU, dropout), then
    the class layer. The paper's sizes: 64 filters, 256 dense units, dropout 0.2."""

    def __init__(self, channels: int, dates: int, n_classes: int, filters: int = 64, kernel: int = 5,
                 dense: int = 256, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = channels
        for _ in range(3):
            layers += [nn.Conv1d(width, filters, kernel, padding=kernel // 2), nn.BatchNorm1d(filters), nn.ReLU(),
                       nn.Dropout(dropout)]
            width = filters
        self.convolutions = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(filters * dates, dense), nn.BatchNorm1d(dense), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(dense, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convolutions(x.transpose(1, 2)))


def sinusoid_table(positions: list[float], size: int, period: float = 1000.0) -> torch.Tensor:
    """Transformer positional encoding of the day positions, ``(dates, size)``."""
    pos = torch.tensor(positions, dtype=torch.float64)[:, None]
    i = torch.arange(size, dtype=torch.float64)[None, :]
    angles = pos / period ** (2 * torch.div(i, 2, rounding_mode="floor") / size)
    table = torch.where(i.long() % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.float()


class LTAE(nn.Module):
    """Garnot and Landrieu (2020), *Lightweight Temporal Self-Attention for Classifying Satellite
    Image Time Series*, for single pixels: each date's channels are projected to ``d_model``
    (layer norm) and get a sinusoidal encoding of their day of the series (period 1000, per head,
    repeated over the heads); each head has one learnt *master query* that attends over the dates
    through keys of size ``d_k``, and pools its own group of ``d_model / n_head`` channels (the
    channel grouping that makes the encoder lightweight); the heads' outputs are concatenated,
    passed through an MLP (batch norm, ReLU), dropout and layer norm, and a small decoder MLP gives
    the classes. The paper's encoder sizes: 16 heads, ``d_k`` 8; ``d_model`` 128 here (256 there)."""

    def __init__(self, channels: int, positions: list[float], n_classes: int, d_model: int = 128, n_head: int = 16,
                 d_k: int = 8, mlp: int = 64, decoder: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError("d_model must be a multiple of the number of heads")
        self.n_head, self.d_k = n_head, d_k
        self.inconv = nn.Linear(channels, d_model)
        self.inlayernorm = nn.LayerNorm(d_model)
        self.register_buffer("positional", sinusoid_table(positions, d_model // n_head).repeat(1, n_head))
        self.query = nn.Parameter(torch.empty(n_head, d_k))
        nn.init.normal_(self.query, mean=0.0, std=math.sqrt(2.0 / d_k))
        self.fc_k = nn.Linear(d_model, n_head * d_k)
        nn.init.normal_(self.fc_k.weight, mean=0.0, std=math.sqrt(2.0 / d_k))
        self.attention_dropout = nn.Dropout(0.1)
        self.outmlp = nn.Sequential(nn.Linear(d_model, mlp), nn.BatchNorm1d(mlp), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.outlayernorm = nn.LayerNorm(mlp)
        self.decoder = nn.Sequential(nn.Linear(mlp, decoder), nn.BatchNorm1d(decoder), nn.ReLU(),
                                     nn.Linear(decoder, n_classes))

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled encoding ``(pixels, d_model)`` and the attention ``(pixels, heads, dates)``."""
        n, t, _ = x.shape
        e = self.inlayernorm(self.inconv(x)) + self.positional
        keys = self.fc_k(e).view(n, t, self.n_head, self.d_k)
        scores = torch.einsum("hd,nthd->nht", self.query, keys) / math.sqrt(self.d_k)
        weights = self.attention_dropout(torch.softmax(scores, dim=-1))
        values = e.view(n, t, self.n_head, -1)
        return torch.einsum("nht,nthc->nhc", weights, values).reshape(n, -1), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.attention(x)
        return self.decoder(self.outlayernorm(self.dropout(self.outmlp(pooled))))


def for_inference(module: nn.Module) -> nn.Module:
    """``module`` (its own copy of the weights) made cheaper to apply, same logits up to float
    rounding: each batch norm folded into the convolution or dense layer before it (in eval mode it
    is an affine map of that layer's output; that step was ~15 % of TempCNN's prediction), dropout
    removed, ReLU in place. Never trained further: a fitted network only."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    module.eval()
    for sequence in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        layers = list(sequence)
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.BatchNorm1d) and i and isinstance(layers[i - 1], (nn.Conv1d, nn.Linear)):
                fuse = fuse_conv_bn_eval if isinstance(layers[i - 1], nn.Conv1d) else fuse_linear_bn_eval
                layers[i - 1], layers[i] = fuse(layers[i - 1], layer), nn.Identity()
            elif isinstance(layer, nn.ReLU):
                layers[i] = nn.ReLU(inplace=True)
        for i, layer in enumerate(layers):
            sequence[i] = layer
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Dropout):
                setattr(parent, name, nn.Identity())
    return module


def build_network(architecture: dict) -> nn.Module:
    """The module an architecture record (see :func:`.deep.fit_network`) describes."""
    name = architecture["name"]
    if name == "tempcnn":
        return TempCNN(architecture["channels"], len(architecture["positions"]), architecture["n_classes"],
                       **architecture.get("sizes", {}))
    if name == "ltae":
        return LTAE(architecture["channels"], architecture["positions"], architecture["n_classes"],
                    **architecture.get("sizes", {}))
    raise ValueError(f"unknown network '{name}'")
