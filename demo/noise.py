"""Deterministic randomness for the synthetic scenes: a counter-based hash for per-pixel noise
and smooth value noise from random lattices, both functions of global pixel coordinates, so any
window of a scene is generated on its own and equals the same window of the whole."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def hash32(x: np.ndarray) -> np.ndarray:
    """lowbias32 integer hash of uint32 values (wrapping arithmetic)."""
    x = x.astype(np.uint32, copy=True)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def centred(x: np.ndarray) -> np.ndarray:
    """Near-Gaussian noise (sum of two 16-bit uniforms) with mean 0 and standard deviation 1
    from uint32 hashes."""
    low = (x & np.uint32(0xFFFF)).astype(np.float32)
    high = (x >> np.uint32(16)).astype(np.float32)
    return (low + high - np.float32(65535.0)) * np.float32(math.sqrt(6.0) / 65536.0)


class ValueNoise:
    """Smooth noise: octaves of random lattices interpolated with smoothstep weights. Lattices
    cover the scene grown by ``pad`` pixels, so the noise can be looked up at shifted positions."""

    def __init__(self, rng: np.random.Generator, height: int, width: int,
                 octaves: Sequence[tuple[float, float, float]], pad: int = 0) -> None:
        self.pad = pad
        self.octaves = []
        for cell_rows, cell_cols, amplitude in octaves:
            shape = (int(math.ceil((height + 2 * pad) / cell_rows)) + 2,
                     int(math.ceil((width + 2 * pad) / cell_cols)) + 2)
            lattice = rng.standard_normal(shape).astype(np.float32)
            self.octaves.append((lattice, float(cell_rows), float(cell_cols), np.float32(amplitude)))

    @staticmethod
    def _axis(coords: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
        position = coords.astype(np.float64) / cell
        index = np.floor(position)
        fraction = position - index
        weight = (fraction * fraction * (3.0 - 2.0 * fraction)).astype(np.float32)
        return index.astype(np.intp), weight

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Noise at global pixel ``rows`` (1-D) x ``cols`` (1-D): a ``(len(rows), len(cols))`` array.
        Separable: the lattice rows needed are interpolated along the columns first."""
        total = np.zeros((len(rows), len(cols)), np.float32)
        for lattice, cell_rows, cell_cols, amplitude in self.octaves:
            iy, wy = self._axis(rows + self.pad, cell_rows)
            ix, wx = self._axis(cols + self.pad, cell_cols)
            first = int(iy.min()) if len(iy) else 0
            sub = lattice[first:int(iy.max()) + 2] if len(iy) else lattice[:0]
            along = sub[:, ix] * (1 - wx) + sub[:, ix + 1] * wx
            local = iy - first
            wy = wy[:, None]
            total += amplitude * (along[local] * (1 - wy) + along[local + 1] * wy)
        return total

    def quantile(self, height: int, width: int, q: float | np.ndarray) -> np.ndarray:
        """Quantile(s) of the noise over a fixed 64 x 64 sample of the scene."""
        rows = np.linspace(0, height - 1, 64).round().astype(np.int64)
        cols = np.linspace(0, width - 1, 64).round().astype(np.int64)
        return np.quantile(self(rows, cols).astype(np.float64), q)
