"""Experiment variants: a name and the settings it changes, the two studies' variant grids
(cloud handling, temporal resampling), the extra factors crossed with them (cloud-mask
resolutions, classifiers), and the parsing of the lists a user types for them.

What a variant *is* lives here, apart from how variants are run (:mod:`core.experiment`) and
compared (:mod:`core.experiment_stats`), so that the Processing algorithm can build and check
the variants before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Sequence

from .limits import MAX_INTERVAL_DAYS, check_range
from .pipeline import PipelineSettings
from .train import CLASSIFIERS, TrainSettings

_TRAIN_FIELDS = frozenset(f.name for f in fields(TrainSettings))


@dataclass
class Variant:
    """A name and the settings it changes: :class:`PipelineSettings` fields (e.g.
    ``{"interval_days": 8}``) or :class:`TrainSettings` fields (e.g. ``{"classifier": "rf"}``)."""

    name: str
    changes: dict[str, Any] = field(default_factory=dict)

    def settings(self, base: PipelineSettings) -> PipelineSettings:
        own = {k: v for k, v in self.changes.items() if k not in _TRAIN_FIELDS}
        train = {k: v for k, v in self.changes.items() if k in _TRAIN_FIELDS}
        return replace(base, **own, train=replace(base.train, **train))


def cloud_variants() -> list[Variant]:
    """The 2 x 2 grid of the cloud study (the base settings' interval)."""
    out = []
    for scene_filter in (True, False):
        for mask in (True, False):
            out.append(Variant(f"filter {'on' if scene_filter else 'off'}, cloud mask {'on' if mask else 'off'}",
                               {"scene_filter": scene_filter, "cloud_mask_in_interpolation": mask}))
    return out


def interval_variants(days: Sequence[int] = (8, 16, 32)) -> list[Variant]:
    """The resampling study: one variant per interval (the base settings' cloud handling)."""
    return [Variant(f"{int(d)}-day interval", {"interval_days": int(d)}) for d in days]


def with_factors(variants: Sequence[Variant], base: PipelineSettings,
                 processing_resolutions: Sequence[float | None] | None = None,
                 classifiers: Sequence[str] | None = None) -> list[Variant]:
    """``variants`` crossed with the extra factors. A factor with one value sets it for every
    variant (names unchanged); with several, each variant is repeated per value and its name gets
    ``", cloud mask at 40 m"`` or ``", rf"``. A variant that does not use the cloud mask in
    interpolation is not repeated per resolution (the resolution only acts through the mask)."""
    resolutions = list(processing_resolutions or [base.processing_resolution])
    classifiers = list(classifiers or [base.train.classifier])
    out = []
    for variant in variants:
        uses_mask = variant.settings(base).cloud_mask_in_interpolation
        for classifier in classifiers:
            for k, resolution in enumerate(resolutions):
                if k and not uses_mask:
                    continue
                name = variant.name
                if len(resolutions) > 1 and uses_mask:
                    name += f", cloud mask at {resolution_text(resolution)}"
                if len(classifiers) > 1:
                    name += f", {classifier}"
                out.append(Variant(name, {**variant.changes, "processing_resolution": resolution,
                                          "classifier": classifier}))
    return out


def resolution_text(resolution: float | None) -> str:
    """A cloud-mask processing resolution in words, for names and reports."""
    return "native resolution" if not resolution else f"{resolution:g} m"


def parse_intervals(text: str) -> list[int]:
    """``"8, 16,32"`` -> [8, 16, 32]."""
    try:
        days = [int(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"'{text}' is not a list of whole days such as 8,16,32") from None
    if not days:
        raise ValueError("give at least one interval in days, e.g. 8,16,32")
    for day in days:
        check_range("an interval", day, 1, MAX_INTERVAL_DAYS, "write whole days such as 8,16,32")
    return days


def parse_resolutions(text: str) -> list[float] | None:
    """``"160, 40"`` -> [160.0, 40.0]; empty -> ``None`` (the pipeline's default)."""
    parts = [p.strip() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    if not parts:
        return None
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"'{text}' is not a list of resolutions in metres such as 160,40") from None
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"resolutions must be positive metres, got '{text}'")
    if len(set(values)) != len(values):
        raise ValueError(f"a resolution is listed twice in '{text}'")
    return values


def parse_classifiers(text: str) -> list[str] | None:
    """``"gbdt, rf"`` -> ["gbdt", "rf"]; empty -> ``None`` (the pipeline's default)."""
    names = [p.strip().lower() for p in str(text or "").replace(";", ",").split(",") if p.strip()]
    if not names:
        return None
    unknown = [n for n in names if n not in CLASSIFIERS]
    if unknown:
        raise ValueError(f"unknown classifier(s) {', '.join(unknown)}; use {' and/or '.join(CLASSIFIERS)}, "
                         "e.g. gbdt,tempcnn,ltae")
    if len(set(names)) != len(names):
        raise ValueError(f"a classifier is listed twice in '{text}'")
    return names
