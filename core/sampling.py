"""Which training pixels are drawn: stratified (proportional), balanced, or counts per class.

Proportional sampling is *stratified*, as eo-learn's ``FractionSamplingTask``: every class gets
exactly its share of the request, ``count x n / total`` rounded, the pixels left over by rounding
going to the classes with the largest fractional parts (largest-remainder apportionment), so the
total is exactly ``n``. A plain random draw of ``n`` pixels gets the shares right only on
average (tens of pixels off per class on TestEOPatch) and varies from seed to seed.

Per-class counts (``"1:500, 2:2000"``) override the rule for the classes listed; the others
share what is left of ``n`` by the rule (``3:0`` leaves class 3 out, as eo-learn's
``exclude_values``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .limits import MAX_SAMPLES

SAMPLINGS = ("proportional", "balanced")


def parse_class_samples(text: str | None) -> dict[int, int]:
    """``"1:500, 2:2000"`` -> ``{1: 500, 2: 2000}``; an empty text is no per-class counts. Refuses
    anything else with a message that shows the form to write."""
    counts: dict[int, int] = {}
    for part in (p.strip() for p in str(text or "").replace(";", ",").split(",")):
        if not part:
            continue
        key, sep, value = part.partition(":")
        try:
            class_id, count = int(key.strip()), int(value.strip())
        except ValueError:
            class_id = count = None
        if not sep or class_id is None or count is None:
            raise ValueError(f"'{part}' is not a class count; write class:pixels pairs like '1:500, 2:2000'")
        if class_id in counts:
            raise ValueError(f"class {class_id} is given twice ('{text}')")
        if not 0 <= count <= MAX_SAMPLES:
            raise ValueError(f"class {class_id}: {count} pixels is outside 0..{MAX_SAMPLES} (0 leaves the class out)")
        counts[class_id] = count
    return counts


def check_class_samples(counts: Mapping[int, int], samples: int) -> None:
    """The listed counts must fit in the total request (the other classes share what is left)."""
    listed = sum(counts.values())
    if listed > samples:
        raise ValueError(f"the per-class counts add up to {listed} pixels, more than the {samples} training pixels "
                         "asked for; raise the training pixels or lower the counts")


def check_known_classes(counts: Mapping[int, int], class_ids: Sequence[int]) -> None:
    """Every listed class must be a class of the reference."""
    unknown = sorted(set(counts) - {int(c) for c in class_ids})
    if unknown:
        raise ValueError(f"class(es) {', '.join(map(str, unknown))} are not in the reference (it has "
                         f"{', '.join(str(int(c)) for c in sorted(class_ids))})")


def stratified_counts(available: Mapping[int, int], n: int) -> dict[int, int]:
    """Each class's share of ``n`` pixels, proportional to ``available`` (pixels per class):
    ``floor(count x n / total)`` plus one for the classes with the largest fractional parts until
    the total is ``min(n, total)``; ties go to the smaller class id."""
    ids = sorted(available)
    counts = np.array([int(available[c]) for c in ids], np.int64)
    total = int(counts.sum())
    if total == 0 or n <= 0:
        return {c: 0 for c in ids}
    if n >= total:
        return {c: int(k) for c, k in zip(ids, counts)}
    exact = counts * n  # integer arithmetic: no float rounding decides a tie
    base = exact // total
    remainder = exact - base * total
    left = n - int(base.sum())
    order = np.lexsort((np.arange(len(ids)), -remainder))  # largest remainder first, then class order
    base[order[:left]] += 1
    return {c: int(k) for c, k in zip(ids, base)}


def class_quotas(available: Mapping[int, int], n: int, sampling: str,
                 class_samples: Mapping[int, int] | None = None) -> dict[int, int]:
    """Pixels to draw per class: the listed counts (at most what a class has), and for the other
    classes their share of what is left of ``n`` by ``sampling``."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling '{sampling}'; use one of {', '.join(SAMPLINGS)}")
    listed = dict(class_samples or {})
    quotas = {c: min(int(listed[c]), int(k)) for c, k in available.items() if c in listed}
    rest = {c: int(k) for c, k in available.items() if c not in listed}
    budget = max(0, n - sum(listed.values()))
    if rest and sampling == "proportional":
        quotas.update(stratified_counts(rest, budget))
    elif rest:
        per_class = max(1, budget // len(rest)) if budget else 0
        quotas.update({c: min(per_class, k) for c, k in rest.items()})
    return quotas


def sample_pixels(candidates: np.ndarray, classes: np.ndarray, n: int, sampling: str, rng: np.random.Generator,
                  class_samples: Mapping[int, int] | None = None) -> np.ndarray:
    """Sorted flat indices of the training pixels drawn among ``candidates`` (a boolean mask, or
    all of ``classes`` when it is all True) with :func:`class_quotas`."""
    flat = np.flatnonzero(candidates)
    labels = classes.ravel()[flat]
    ids, sizes = np.unique(labels, return_counts=True)
    quotas = class_quotas({int(c): int(k) for c, k in zip(ids, sizes)}, n, sampling, class_samples)
    chosen = []
    for class_id in ids:
        take = quotas[int(class_id)]
        members = flat[labels == class_id]
        chosen.append(members if take >= members.size else rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else flat[:0]


def shortfall(counts: Mapping[int, int], available: Mapping[int, int]) -> dict[int, int]:
    """Listed classes whose training part holds fewer pixels than asked for: class -> pixels there."""
    return {c: int(available.get(c, 0)) for c, k in counts.items() if int(available.get(c, 0)) < k}

