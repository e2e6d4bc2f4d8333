"""The shared verdict vocabulary: gates, magnitudes, verdict words and the agreement over seeds.

Every paper's ``claims`` is a pure function of recorded numbers; the pieces here are what
the three wings share, so a rule reads the same way in every notebook:

Gates (a claim naming a model that fails its gate is "not testable", with the gate's numbers):

- **learned** is decided where a model should have learned, on held-out subjects of its
  training distribution (a validation split, DIFF's held-out healthy set): its MAE there is
  below ``LEARNED_FRACTION`` x the MAE of predicting that set's own mean age. No constant or
  noise predictor passes.
- on a **shifted test cohort** (another scanner grade, another age range) a model counts only
  while its predictions still track age: Pearson r > 0 with p < ``TRACK_ALPHA``. An offset or
  a compressed scale under domain shift is what such a cohort tests, not whether the model
  learned.
- a generator **learned to reconstruct** when, for at least ``RECONSTRUCTION_SHARE`` of the test
  images, its reconstruction is closer (L1) to its own input than to the median other test
  subject's image (:func:`reconstruction_share`).

Verdicts (:func:`decide`): **reproduced** when the rule holds and, for a claim with a paper
number, the paper's value lies inside this run's 95 % bootstrap interval in the paper profile;
**direction only** when the rule holds but the paper's value lies outside the interval, or the
profile is reduced (smoke, quick: smaller networks and cohorts cannot be held to the paper's
magnitudes); **not reproduced** when the rule fails; **not testable** with the reason when the
data cannot decide. Over several model seeds the reported verdict is the one shared by at least
``SEED_AGREEMENT`` of the seeds, else **unstable** (:func:`combine_seeds`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

REPRODUCED, DIRECTION_ONLY, NOT_REPRODUCED, NOT_TESTABLE, UNSTABLE = (
    "reproduced", "direction only", "not reproduced", "not testable", "unstable")
PASSED, FAILED = "passed", "failed"  # the words of a check against the simulator's truth

LEARNED_FRACTION = 0.8  # learned age: held-out MAE < 0.8 x the MAE of predicting that set's own mean age
TRACK_ALPHA = 0.01  # on a shifted cohort: Pearson r > 0 with p below this
RECONSTRUCTION_SHARE = 0.9  # share of test images a generator must reconstruct closer to their own input
SEED_AGREEMENT = 0.8  # the reported verdict is shared by at least this share of the model seeds
CI_LEVEL = 0.95  # bootstrap interval of every magnitude
N_BOOT = 2000  # bootstrap resamples of a magnitude

GATE_TEXT = (f"Gates. Learned: a model's MAE on held-out subjects of its training distribution (validation split, "
             f"held-out healthy set) below {LEARNED_FRACTION:g} x the MAE of predicting that set's own mean age. "
             f"Tracks age: on a shifted test cohort, Pearson r of predicted with true age > 0 with "
             f"p < {TRACK_ALPHA:g}. Reconstructs: a generator's reconstruction closer (L1) to its own input than to "
             f"the median other test subject's image, for at least {100 * RECONSTRUCTION_SHARE:g} % of the test "
             "images. A claim naming a model that fails a gate is not testable, with the gate's numbers.")


def is_finite(x: object) -> bool:
    """True for a finite number; False for None, NaN, inf or anything else."""
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def nan_reason(values: Mapping[str, object]) -> str | None:
    """Why a claim resting on ``values`` cannot be judged (one of them is not a finite number), or None."""
    bad = [k for k, v in values.items() if not is_finite(v)]
    return f"{', '.join(bad)} could not be computed (NaN)" if bad else None


# --- gates -----------------------------------------------------------------------------------------------------

def mean_prediction_mae(ages: Sequence[float] | np.ndarray) -> float:
    """MAE of predicting the cohort's own mean age for every subject (NaN for an empty cohort)."""
    a = np.asarray(ages, dtype=float)
    return float(np.mean(np.abs(a - a.mean()))) if a.size else float("nan")


def learned(pred: Sequence[float] | np.ndarray, ages: Sequence[float] | np.ndarray,
            fraction: float = LEARNED_FRACTION) -> bool:
    """Whether predictions on held-out in-distribution subjects beat ``fraction`` x the MAE of predicting their
    own mean age."""
    p, a = np.asarray(pred, dtype=float), np.asarray(ages, dtype=float)
    if a.size == 0 or not np.all(np.isfinite(p)):
        return False
    return bool(np.mean(np.abs(p - a)) < fraction * mean_prediction_mae(a))


def learned_mae(mae: float, reference_mae: float, fraction: float = LEARNED_FRACTION) -> bool:
    """:func:`learned` from recorded numbers: a model's held-out MAE and that set's mean-prediction MAE."""
    return is_finite(mae) and is_finite(reference_mae) and mae < fraction * reference_mae


def not_learned_reason(maes: Mapping[str, float], reference_mae: float, where: str,
                       fraction: float = LEARNED_FRACTION) -> str | None:
    """Why a claim naming the models of ``maes`` cannot be judged, or None when all of them learned age on ``where``
    (held-out subjects of their training distribution)."""
    failed = [m for m, v in maes.items() if not learned_mae(v, reference_mae, fraction)]
    if not failed:
        return None
    shown = ", ".join(f"{m} {float(maes[m]):.2f} y" if is_finite(maes[m]) else f"{m} n/a" for m in failed)
    ref = f"{float(reference_mae):.2f}" if is_finite(reference_mae) else "n/a"
    return (f"{', '.join(failed)} did not learn age: MAE on {where} ({shown}) not below {fraction:g} x {ref} y, "
            "the MAE of predicting that set's own mean age")


def tracks_age(r: float, p: float, alpha: float = TRACK_ALPHA) -> bool:
    """On a shifted cohort: predictions still track age (Pearson r > 0 with p < ``alpha``)."""
    return is_finite(r) and is_finite(p) and r > 0 and p < alpha


def not_tracking_reason(rp: Mapping[str, tuple[float, float]], where: str, alpha: float = TRACK_ALPHA) -> str | None:
    """Why a claim naming the models of ``rp`` (``{model: (r, p)}``) on the shifted cohort ``where`` cannot be
    judged, or None when every model's predictions track age there."""
    failed = {m: v for m, v in rp.items() if not tracks_age(*v, alpha=alpha)}
    if not failed:
        return None

    def show(r: float, p: float) -> str:
        return f"r = {float(r):+.2f}, p = {float(p):.2g}" if is_finite(r) and is_finite(p) else "r n/a"

    return (f"{', '.join(failed)} do not track age on {where} ("
            + "; ".join(f"{m}: {show(*v)}" for m, v in failed.items()) + f"; needs r > 0 with p < {alpha:g})")


def reconstruction_share(inputs: np.ndarray, reconstructions: np.ndarray, chunk: int | None = None) -> float:
    """Share of images whose reconstruction is closer (mean L1) to its own input than to the median other image.

    ``inputs`` and ``reconstructions`` are ``(N, ...)`` arrays of the same N >= 2 test images, row i the
    reconstruction of input i; ``chunk`` inputs are compared at a time (default: 256 MB of differences, so a
    paper-size 96^3 test set fits). A generator that ignores its input (a mean image) is as far from the image it was
    given as from any other, so it passes for about half of them; a faithful one for nearly all.
    """
    x = np.asarray(inputs, dtype=np.float32).reshape(len(inputs), -1)
    y = np.asarray(reconstructions, dtype=np.float32).reshape(len(reconstructions), -1)
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"reconstruction_share: need N >= 2 inputs and as many reconstructions, got {x.shape} and "
                         f"{y.shape}")
    chunk = chunk or max(1, int(2 ** 26 // max(x.shape[1], 1)))  # inputs compared at once: <= 256 MB of differences
    d = np.stack([np.concatenate([np.abs(y[i][None, :] - x[j:j + chunk]).mean(1) for j in range(0, len(x), chunk)])
                  for i in range(len(x))])  # d[i, j] = L1(recon i, input j)
    own = np.diag(d)
    others = np.array([np.median(np.delete(d[i], i)) for i in range(len(x))])
    return float(np.mean(own < others))


def reconstructs(share: float, threshold: float = RECONSTRUCTION_SHARE) -> bool:
    """A generator learned to reconstruct: :func:`reconstruction_share` at least ``threshold``."""
    return is_finite(share) and share >= threshold


def not_reconstructing_reason(shares: Mapping[str, float], where: str = "the test images",
                              threshold: float = RECONSTRUCTION_SHARE) -> str | None:
    """Why a claim naming the generators of ``shares`` cannot be judged, or None when every one reconstructs."""
    failed = {m: s for m, s in shares.items() if not reconstructs(s, threshold)}
    if not failed:
        return None
    shown = ", ".join(f"{m} {100 * float(s):.0f} %" if is_finite(s) else f"{m} n/a" for m, s in failed.items())
    return (f"{', '.join(failed)} did not learn to reconstruct: reconstructions closer to their own input than to the "
            f"median other image for {shown} of {where} (needs {100 * threshold:g} %)")


@dataclass(frozen=True)
class Gate:
    """One gate applied to one model, with the numbers that passed or failed it (recorded as ``gates.<key>``)."""

    key: str  # e.g. "learned.REG"
    model: str
    rule: str  # what it asks, with the threshold
    evidence: str  # this run's numbers
    passed: bool
    judged_on: str


# --- magnitudes ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Magnitude:
    """A paper number beside this run's 95 % bootstrap interval of the same quantity."""

    quantity: str  # e.g. "MAE(REG-GAN) - MAE(REG)"
    paper: float
    value: float  # this run's estimate
    low: float
    high: float

    @property
    def inside(self) -> bool | None:
        """Whether the paper's value lies inside this run's interval (None when a bound is not finite)."""
        if not all(map(is_finite, (self.paper, self.low, self.high))):
            return None
        return bool(self.low <= self.paper <= self.high)

    def text(self) -> str:
        where = {True: "inside", False: "outside", None: "not comparable with"}[self.inside]
        return (f"{self.quantity}: paper {_g(self.paper)} {where} this run's {100 * CI_LEVEL:g} % interval "
                f"[{_g(self.low)}, {_g(self.high)}] (estimate {_g(self.value)})")

    def as_dict(self) -> dict:
        return {**asdict(self), "inside": self.inside}


def _g(x: float) -> str:
    return format(float(x), ".3g") if is_finite(x) else "n/a"


def paired_bootstrap(stat: Callable[..., float], *columns: Sequence[float] | np.ndarray, n_boot: int = N_BOOT,
                     level: float = CI_LEVEL, seed: int = 0) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of ``stat(*columns)`` with a percentile interval at ``level``.

    The columns are per-subject arrays of one length (ages, two models' predictions, ...); every
    replicate draws the subjects with replacement and evaluates ``stat`` on the same draw of every
    column (paired over subjects). Non-finite replicates are dropped.
    """
    cols = [np.asarray(c, dtype=float) for c in columns]
    n = len(cols[0])
    if any(len(c) != n for c in cols) or n < 3:
        raise ValueError(f"paired_bootstrap: columns of one length >= 3 needed, got {[len(c) for c in cols]}")
    est = float(stat(*cols))
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    reps = np.array([stat(*(c[i] for c in cols)) for i in idx], dtype=float)
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return est, float("nan"), float("nan")
    lo, hi = np.quantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2])
    return est, float(lo), float(hi)


def magnitude(quantity: str, paper: float, stat: Callable[..., float], *columns, seed: int = 0,
              n_boot: int = N_BOOT) -> Magnitude:
    """:class:`Magnitude` of ``stat`` over per-subject ``columns`` (:func:`paired_bootstrap`)."""
    est, lo, hi = paired_bootstrap(stat, *columns, n_boot=n_boot, seed=seed)
    return Magnitude(quantity, float(paper), est, lo, hi)


def mae_stat(age: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - age)))


def mae_difference(age: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MAE(a) - MAE(b): a statistic for :func:`magnitude`."""
    return float(np.mean(np.abs(a - age)) - np.mean(np.abs(b - age)))


def pearson_stat(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def steiger_z(r_xa: float, r_xb: float, r_ab: float, n: int) -> tuple[float, float]:
    """Steiger's (1980) z test of two dependent correlations sharing the variable x: ``(z, two-sided p)``.

    ``r_xa`` and ``r_xb`` are the correlations of x with a and with b over the same ``n`` subjects, ``r_ab``
    the correlation of a with b (Meng, Rosenthal & Rubin's form of Steiger's test)."""
    if not all(map(is_finite, (r_xa, r_xb, r_ab))) or n < 4:
        return float("nan"), float("nan")
    z_a, z_b = np.arctanh(np.clip([r_xa, r_xb], -0.999999, 0.999999))
    r2 = (r_xa ** 2 + r_xb ** 2) / 2
    f = min((1 - r_ab) / (2 * (1 - r2)), 1.0)
    h = (1 - f * r2) / (1 - r2)
    z = (z_a - z_b) * math.sqrt((n - 3) / (2 * (1 - r_ab) * h)) if r_ab < 1 else float("nan")
    return float(z), float(2 * sps.norm.sf(abs(z))) if is_finite(z) else float("nan")


def pitman_morgan(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Pitman-Morgan test of equal variances of two paired samples: ``(r of (a+b) with (a-b), two-sided p)``.

    The variances are equal exactly when the sum and the difference are uncorrelated; r > 0 means a spreads
    more than b."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) < 4 or np.ptp(x + y) == 0 or np.ptp(x - y) == 0:
        return float("nan"), float("nan")
    res = sps.pearsonr(x + y, x - y)
    return float(res.statistic), float(res.pvalue)


# --- verdicts --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    """One of a paper's claims (or, ``kind="check"``, a check against the simulator's truth) judged on one run.

    Every wing's ``claims(...)`` returns a list of these; ``Recorder.record_claims`` records them as
    ``claims.<key>``. ``outcome`` is the rule's direction on this run's numbers (True/False), None with
    ``reason`` (why the data cannot decide it) when not testable; ``evidence`` states this run's numbers and
    ``judged_on`` the data they come from; ``magnitudes`` put the paper's numbers beside this run's intervals.
    """

    key: str
    claim: str  # what the paper claims (or what the check asks)
    paper: str | None  # what the paper reports for it
    outcome: bool | None
    evidence: str  # this run's numbers
    rule: str  # how ``outcome`` follows from them
    reason: str | None = None  # why not testable
    kind: str = "claim"  # "claim" or "check"
    judged_on: str | None = None
    magnitudes: tuple[Magnitude, ...] = ()

    def verdict(self, paper_profile: bool = True) -> str:
        """The verdict word :func:`decide` gives this claim (as ``Recorder.claim`` records it)."""
        return decide(self.outcome, self.reason, self.magnitudes, paper_profile, self.kind)


def decide(outcome: bool | None, reason: str | None = None, magnitudes: Sequence[Magnitude] = (),
           paper_profile: bool = True, kind: str = "claim") -> str:
    """The verdict word of one claim (or ``kind="check"``) on one seed.

    ``outcome`` is the rule's direction (True/False; None: not testable), ``reason`` why the data cannot decide
    it. A claim with paper numbers (``magnitudes``) is **reproduced** only when every paper value lies inside this
    run's interval and ``paper_profile``; with the direction right otherwise it is **direction only**. A claim
    without a paper number (the paper shows it by eye) is reproduced on its rule.
    """
    if reason or outcome is None or (isinstance(outcome, float) and math.isnan(outcome)):
        return NOT_TESTABLE
    if kind == "check":
        return PASSED if outcome else FAILED
    if not outcome:
        return NOT_REPRODUCED
    if not magnitudes:
        return REPRODUCED
    return REPRODUCED if paper_profile and all(m.inside for m in magnitudes) else DIRECTION_ONLY


def combine_seeds(verdicts: Sequence[str], share: float = SEED_AGREEMENT) -> tuple[str, str]:
    """The reported verdict over model seeds and its agreement, e.g. ``("unstable", "reproduced in 2 of 3 seeds")``.

    The verdict shared by at least ``share`` of the seeds is reported; otherwise **unstable**. "Not testable"
    counts as a verdict like the others, so a claim testable on some seeds only is unstable."""
    if not verdicts:
        return NOT_TESTABLE, "no seed"
    counts = {v: list(verdicts).count(v) for v in dict.fromkeys(verdicts)}
    top, n = max(counts.items(), key=lambda kv: kv[1])
    text = "; ".join(f"{v} in {c} of {len(verdicts)} seeds" for v, c in counts.items())
    return (top if n >= share * len(verdicts) else UNSTABLE), text
