"""Reproducible age-stratified splits of a cohort."""
from __future__ import annotations

import numpy as np

from brainage_lib.errors import BrainAgeError


def stratified_split(ages: np.ndarray, sizes: tuple[float, ...] | tuple[int, ...], seed: int = 0,
                     n_strata: int = 10) -> list[np.ndarray]:
    """Split indices into parts of the given ``sizes`` (fractions summing to 1, or counts), stratified by age.

    Subjects are sorted by age into ``n_strata`` quantile strata; each stratum is shuffled
    and dealt to the parts in proportion, so every part spans the whole age range.
    Returns one sorted index array per part; together they cover every index once.
    """
    ages = np.asarray(ages, dtype=float)
    n = len(ages)
    sizes_arr = np.asarray(sizes, dtype=float)
    if np.isclose(sizes_arr.sum(), 1.0) and (sizes_arr <= 1).all():
        counts = np.floor(sizes_arr * n).astype(int)
        counts[np.argmax(sizes_arr)] += n - counts.sum()
    else:
        counts = sizes_arr.astype(int)
        if counts.sum() > n:
            raise BrainAgeError(f"Split sizes {list(counts)} need {counts.sum()} subjects but the cohort has {n}.")
    if (counts < 0).any():
        raise BrainAgeError(f"Split sizes must be non-negative, got {sizes}.")
    rng = np.random.default_rng(seed)
    order = np.argsort(ages + rng.uniform(0, 1e-6, n), kind="stable")
    strata = np.array_split(order, min(n_strata, max(n, 1)))
    target = counts / max(counts.sum(), 1)
    parts: list[list[int]] = [[] for _ in counts]
    # deal each stratum in proportion, carrying rounding so the totals match the requested counts
    owed = np.zeros(len(counts))
    for stratum in strata:
        stratum = rng.permutation(stratum)
        owed += target * len(stratum)
        take = np.floor(owed).astype(int)
        while take.sum() < len(stratum) and (counts - np.array([len(p) for p in parts]) - take > 0).any():
            take[np.argmax(owed - take)] += 1
        start = 0
        for k, t in enumerate(take):
            t = min(t, counts[k] - len(parts[k]))
            parts[k].extend(stratum[start:start + t])
            start += t
        owed -= take
    assigned = set(i for p in parts for i in p)
    rest = [i for i in rng.permutation(n) if i not in assigned]
    for k in range(len(parts)):  # top up any part left short by rounding
        while len(parts[k]) < counts[k] and rest:
            parts[k].append(rest.pop())
    return [np.sort(np.asarray(p, dtype=int)) for p in parts]
