"""The numbers beside TGB's claims: each paper number against this run's 95 % bootstrap interval, and the error
pattern left after the age trend of the errors is taken out.

The notebook computes these from per-subject predictions, per-image reconstruction errors and the
reconstructions of the Fig. 3 age groups, and records them; ``claims`` reads them back from the records
(:func:`magnitudes_from_records`), so the verdicts stay a pure function of recorded numbers.

Every interval is a paired bootstrap over subjects (``metrics.verdicts.paired_bootstrap``): a difference
between two methods resamples the same test subjects for both; the two L1 values resample the same test
images; the ratio of the two difference maps resamples, within each age group, the same training subjects
for both generators.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from brainage_lib.metrics.verdicts import N_BOOT, CI_LEVEL, Magnitude, is_finite, magnitude, mae_difference, mae_stat
from brainage_lib.papers.tgb.evaluation import GROUP_EDGES
from brainage_lib.papers.tgb.paper import PAPER_DIFF_MAX, PAPER_GROUP_MAE, PAPER_TABLE1
from brainage_lib.papers.tgb.regions import STRENGTH_PERCENTILE

__all__ = ["PREFIX", "PAPER_DIFF_RATIO", "detrended_group_mae", "diffmap_ratio", "diffmap_ratio_magnitude",
           "group_magnitudes", "magnitudes_from_records", "record_magnitudes", "table1_magnitudes"]

PREFIX = "magnitude"  # records magnitude.<claim>.<name>
PAPER_DIFF_RATIO = PAPER_DIFF_MAX["REG-GAN-TGB"] / PAPER_DIFF_MAX["REG-GAN"]  # 0.49 / 0.05 = 9.8


def _mse_difference(age: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - age) ** 2) - np.mean((b - age) ** 2))


def _paper(method: str, metric: str) -> float:
    return float(PAPER_TABLE1[method][metric][0])  # type: ignore[index]


def table1_magnitudes(age: np.ndarray, preds: Mapping[str, np.ndarray], l1: Mapping[str, np.ndarray] | None = None,
                      seed: int = 0, n_boot: int = N_BOOT) -> dict[str, Magnitude]:
    """Table 1's numbers beside this run's intervals, keyed ``<claim>.<name>``.

    ``preds`` holds each method's test predictions (REG, REG-GAN, REG-GAN-TGB) in the order of ``age``; ``l1``
    each generator's per-test-image L1 (``mean |x - G(x)|``). Differences are paired over the test subjects.
    """
    age = np.asarray(age, float)
    p = {m: np.asarray(v, float) for m, v in preds.items()}
    kw = {"seed": seed, "n_boot": n_boot}
    out = {"reg_learns.mae": magnitude("MAE(REG) (y)", _paper("REG", "mae"), mae_stat, age, p["REG"], **kw)}
    pairs = {"reg_gan_worse": ("REG-GAN", "REG"), "tgb_beats_reg": ("REG-GAN-TGB", "REG"),
             "tgb_beats_reg_gan": ("REG-GAN-TGB", "REG-GAN")}
    for claim, (a, b) in pairs.items():
        out[f"{claim}.mae"] = magnitude(f"MAE({a}) - MAE({b}) (y)", _paper(a, "mae") - _paper(b, "mae"), mae_difference,
                                        age, p[a], p[b], **kw)
        out[f"{claim}.mse"] = magnitude(f"MSE({a}) - MSE({b}) (y²)", _paper(a, "mse") - _paper(b, "mse"),
                                        _mse_difference, age, p[a], p[b], **kw)
    if l1:
        for m in ("REG-GAN", "REG-GAN-TGB"):  # the same seed and length: the same images in every replicate
            out[f"tgb_higher_l1.l1_{m}"] = magnitude(f"mean test L1 of {m}", _paper(m, "l1"), np.mean,
                                                     np.asarray(l1[m], float), **kw)
    return out


def _group_mae(age: np.ndarray, abs_err: np.ndarray, lo: float, hi: float, closed: bool) -> float:
    inside = (age >= lo) & ((age <= hi) if closed else (age < hi))
    return float(abs_err[inside].mean()) if inside.any() else float("nan")


def _groups(edges: Sequence[float] = GROUP_EDGES) -> dict[str, tuple[float, float, bool]]:
    """The paper's groups as ``{label: (lo, hi, closed)}``, as ``metrics.scores.mae_by_group`` reads the edges."""
    labels = tuple(PAPER_GROUP_MAE)
    return {lab: (edges[i], edges[i + 1], i == len(labels) - 1) for i, lab in enumerate(labels)}


def group_magnitudes(age: np.ndarray, pred: np.ndarray, seed: int = 0, n_boot: int = N_BOOT) -> dict[str, Magnitude]:
    """REG-GAN-TGB's MAE in 16-22 minus that in each other group (sec. 4: 2.11 vs 1.32 and 1.37), keyed
    ``tgb_oldest_group_worst.<name>``; the interval resamples the test subjects."""
    g = _groups()
    oldest = "16-22"

    def excess(other: str):
        def stat(a: np.ndarray, p: np.ndarray) -> float:
            e = np.abs(p - a)
            return _group_mae(a, e, *g[oldest]) - _group_mae(a, e, *g[other])
        return stat

    return {f"tgb_oldest_group_worst.{oldest}_minus_{other}":
            magnitude(f"MAE(REG-GAN-TGB, {oldest}) - MAE(REG-GAN-TGB, {other}) (y)",
                      PAPER_GROUP_MAE[oldest] - PAPER_GROUP_MAE[other], excess(other), np.asarray(age, float),
                      np.asarray(pred, float), seed=seed, n_boot=n_boot)
            for other in g if other != oldest}


def detrended_group_mae(age: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE per paper group of the errors left after their linear trend with age is taken out.

    A model that regresses towards the mean age errs by ``(1 - k) * (mean - age)``, a straight line in age; so
    does a constant prediction (k = 0), whose errors this leaves at 0 in every group. What stays is the error a
    straight line in age does not explain (fitted by least squares over all the given subjects).
    """
    a, p = np.asarray(age, float), np.asarray(pred, float)
    e = p - a
    if a.size < 3 or np.ptp(a) == 0 or not np.all(np.isfinite(e)):
        return {lab: float("nan") for lab in PAPER_GROUP_MAE}
    slope, intercept = np.polyfit(a, e, 1)
    rest = np.abs(e - (intercept + slope * a))
    return {lab: _group_mae(a, rest, *spec) for lab, spec in _groups().items()}


def _strength(maps: np.ndarray) -> np.ndarray:
    """Robust strength (the ``STRENGTH_PERCENTILE`` th percentile) of each row of ``(R, V)`` masked maps."""
    return np.percentile(maps, STRENGTH_PERCENTILE, axis=-1)


def diffmap_ratio(a: np.ndarray, b: np.ndarray, young: np.ndarray, old: np.ndarray, mask: np.ndarray) -> float:
    """Strength of ``a``'s ``|mean(old) - mean(young)|`` map over that of ``b``'s (robust strengths over ``mask``)."""
    m = np.asarray(mask, bool)

    def strength(x: np.ndarray) -> float:
        x = np.asarray(x)
        d = np.abs(x[old].astype(np.float32).mean(0) - x[young].astype(np.float32).mean(0))
        return float(_strength(d[m]))

    sb = strength(b)
    return strength(a) / sb if sb > 0 else float("nan")


def diffmap_ratio_magnitude(a: np.ndarray, b: np.ndarray, young: np.ndarray, old: np.ndarray, mask: np.ndarray,
                            paper: float = PAPER_DIFF_RATIO, seed: int = 0, n_boot: int = N_BOOT,
                            chunk: int = 100) -> Magnitude:
    """The paper's ratio of difference-map strengths (0.49 / 0.05) beside this run's bootstrap interval.

    ``a`` and ``b`` are the two generators' reconstructions ``(N, D, H, W)`` of the same training images;
    ``young`` and ``old`` index the Fig. 3 groups (nearest to ages 8 and 20). Each replicate redraws, with
    replacement, the subjects of each group, the same ones for both generators, and recomputes both maps.

    A map's strength is a high percentile of a difference of two means of 20 images, so each replicate's map is
    noisier than the run's own (a resample repeats subjects), the weak REG-GAN map most: the replicates' ratios
    fall below the estimate, and a plain percentile interval can miss the estimate itself. The interval is
    therefore the percentile interval of log(ratio) shifted so that its median is this run's estimate: its
    width is the bootstrap's, its centre the run's.
    """
    young, old, m = np.asarray(young), np.asarray(old), np.asarray(mask, bool)
    est = diffmap_ratio(a, b, young, old, m)
    if len(young) < 2 or len(old) < 2:
        return Magnitude("strength(REG-GAN-TGB map) / strength(REG-GAN map)", paper, est, float("nan"), float("nan"))
    sets = {k: (np.asarray(x)[young][:, m].astype(np.float32), np.asarray(x)[old][:, m].astype(np.float32))
            for k, x in (("a", a), ("b", b))}
    rng = np.random.default_rng(seed)
    draws_y = rng.integers(0, len(young), size=(n_boot, len(young)))
    draws_o = rng.integers(0, len(old), size=(n_boot, len(old)))

    def weights(draws: np.ndarray, n: int) -> np.ndarray:  # (R, n) resampling weights, rows summing to 1
        w = np.zeros((len(draws), n), np.float32)
        np.add.at(w, (np.repeat(np.arange(len(draws)), draws.shape[1]), draws.ravel()), 1.0)
        return w / draws.shape[1]

    reps = []
    for s in range(0, n_boot, chunk):
        wy, wo = weights(draws_y[s:s + chunk], len(young)), weights(draws_o[s:s + chunk], len(old))
        st = {k: _strength(np.abs(wo @ yo - wy @ yy)) for k, (yy, yo) in sets.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            reps.append(st["a"] / st["b"])
    r = np.concatenate(reps)
    r = r[np.isfinite(r) & (r > 0)]
    if not r.size or not (is_finite(est) and est > 0):
        lo = hi = float("nan")
    else:  # the percentile interval of log(ratio), recentred on this run's estimate (see above)
        q = np.quantile(np.log(r), [(1 - CI_LEVEL) / 2, 0.5, 1 - (1 - CI_LEVEL) / 2])
        lo, hi = (float(np.exp(x - q[1] + np.log(est))) for x in (q[0], q[2]))
    return Magnitude(f"strength(REG-GAN-TGB map) / strength(REG-GAN map), {STRENGTH_PERCENTILE:g}th percentile",
                     float(paper), float(est), float(lo), float(hi))


def record_magnitudes(rec, mags: Mapping[str, Magnitude]) -> None:
    """Record each magnitude as ``magnitude.<claim>.<name>``: this run's estimate with the paper's value and the
    interval's bounds."""
    for key, m in mags.items():
        rec.record(f"{PREFIX}.{key}", m.value, paper=m.paper, low=m.low, high=m.high, quantity=m.quantity)


def magnitudes_from_records(records: Mapping[str, Mapping], claim: str) -> list[Magnitude]:
    """The magnitudes recorded for ``claim`` (``magnitude.<claim>.*``), in the order recorded."""
    out = []
    for key, e in records.items():
        if key.startswith(f"{PREFIX}.{claim}."):
            num = {k: float(e[k]) if is_finite(e.get(k)) else float("nan") for k in ("paper", "value", "low", "high")}
            out.append(Magnitude(str(e.get("quantity", key)), num["paper"], num["value"], num["low"], num["high"]))
    return out
