"""The DIFF paper's claims, the checks against the simulator's truth, and their verdict rules.

``claims`` is a pure function of the recorded numbers (``evaluation.numbers``, or a
results file's records): no claim reads a prediction or a model. Three gates keep a
verdict from following by accident:

- a claim naming models is judged only when every one of them learned age on the
  clinical test set (``metrics.verdicts``): a constant or noise predictor cannot win a
  ranking, widen a spread or make a KS test significant;
- a NaN statistic makes a claim "not testable", never "not significant";
- on simulated data, a claim whose truth is the simulator's choice (the sign of the
  PAD-survival correlation, the sign of the ALS group's mean gap) is not testable; a
  check of the simulator's answer (``kind="check"``) goes beside it;
- without ALS patients the ALS claims are not testable, and on a test set split from the
  training cohort (``JudgedOn.split``) so are the clinical-grade MAE and R² rankings.

Each verdict names the data it was judged on (``JudgedOn``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from brainage_lib.metrics.verdicts import is_finite, nan_reason, not_learned_reason
from brainage_lib.papers.diff.evaluation import MODELS, OURS
from brainage_lib.papers.diff.roles import JudgedOn
from brainage_lib.papers.diff.rules import (ALPHA, CLAIMS, JOINT_R_MARGIN, MONOTONE_RHO, NO_ALS, NOT_CLINICAL,
                                            R_ON_SPLIT, RECON_SHARE, SIMULATED_CHOICE, SIMULATED_SURVIVAL_SIGN)
from brainage_lib.run.results import Recorder

__all__ = ["Verdict", "claims", "record_claims"]


@dataclass(frozen=True)
class Verdict:
    """One claim's outcome: True/False by its rule, or None with the reason it is not testable."""

    key: str
    outcome: bool | None
    evidence: str
    reason: str | None = None
    judged_on: str | None = None  # the data the claim was judged on; None where this data has none


def _f(v: Any, spec: str = ".2f") -> str:
    """A recorded number for a sentence; ``n/a`` for a missing (non-finite) one."""
    return format(float(v), spec) if is_finite(v) else "n/a"


def _judge(key: str, on: str | None, evidence: str, rule: Callable[[], bool], *reasons: str | None) -> Verdict:
    """``rule()`` on the data ``on`` unless one of ``reasons`` says why the claim cannot be judged (the first is
    kept)."""
    reason = next((r for r in reasons if r), None)
    return Verdict(key, None if reason else bool(rule()), evidence, reason, on)


class _Numbers:
    """Read access to the recorded numbers of one run."""

    def __init__(self, n: Mapping[str, Any], data: JudgedOn) -> None:
        self.n, self.data = n, data
        self.no_als = None if data.als else NO_ALS
        self.base = [m for m in MODELS if m != OURS and f"table1.{m}.test_mae" in n]

    def get(self, key: str) -> Any:
        return self.n.get(key)

    def per(self, table: str, q: str, models: list[str]) -> dict[str, Any]:
        """``table.<model>.q`` for each model."""
        return {m: self.n.get(f"{table}.{m}.{q}") for m in models}

    def gate(self, models: list[str]) -> str | None:
        """Why a claim naming ``models`` cannot be judged: one did not learn age (none named: no baseline ran)."""
        if not models:
            return "no baseline was evaluated"
        ref = self.n.get("gate.test_mean_prediction_mae")
        if not is_finite(ref):
            return "the MAE of predicting the clinical test set's mean age was not recorded"
        return not_learned_reason({MODELS[m]: self.n.get(f"table1.{m}.test_mae") for m in models}, float(ref),
                                  self.data.where)

    def gate_all(self) -> str | None:
        """The gate of a claim comparing ours with every baseline."""
        return self.gate([OURS, *self.base]) if self.base else self.gate([])

    def vs(self, d: Mapping[str, Any], spec: str = ".2f") -> str:
        """``Baseline value, ...`` for a sentence."""
        return ", ".join(f"{MODELS[m]} {_f(d[m], spec)}" for m in self.base)


def _nan(values: Mapping[str, Mapping[str, Any]]) -> str | None:
    """``nan_reason`` over ``{quantity: {model: value}}``, naming each as ``<model> <quantity>``."""
    return nan_reason({f"{MODELS[m]} {q}": v for q, d in values.items() for m, v in d.items()})


def _ranking(x: _Numbers) -> list[Verdict]:
    """Table 1: ours has the (joint) highest r, the lowest MAE and the highest R² (the last two on a clinical-grade
    test set only: ``NOT_CLINICAL``)."""
    every, base, on = [OURS, *x.base], x.base, x.data.test
    gate, grade = x.gate_all(), NOT_CLINICAL if x.data.split else None
    r, mae, r2 = (x.per("table1", q, every) for q in ("test_r", "test_mae", "test_r2"))
    return [
        _judge("ours_joint_highest_r", on, f"Test r: ours {_f(r[OURS])} vs {x.vs(r)} (paper 0.83 vs 0.83/0.46/0.81; "
               f"'joint' = within {JOINT_R_MARGIN:g})." + (f" {R_ON_SPLIT}" if x.data.split else ""),
               lambda: all(r[OURS] >= r[m] - JOINT_R_MARGIN for m in base), gate, _nan({"test r": r})),
        _judge("ours_lowest_mae", on, f"Test MAE: ours {_f(mae[OURS])} y vs {x.vs(mae)} (paper 5 vs 8.63/11.7/5.55).",
               lambda: all(mae[OURS] < mae[m] for m in base), grade, gate, _nan({"test MAE": mae})),
        _judge("ours_highest_r2", on, f"Test R²: ours {_f(r2[OURS])} vs {x.vs(r2)} (paper 0.65 vs 0.12/-1.14/0.56).",
               lambda: all(r2[OURS] > r2[m] for m in base), grade, gate, _nan({"test R²": r2})),
    ]


def _survival(x: _Numbers, simulated: bool) -> list[Verdict]:
    """Table 1's survival row: ours positive and significant, no baseline significant; on simulated data the sign
    check against the simulator's survival model."""
    every, base, on = [OURS, *x.base], x.base, x.data.als
    s_r, s_p = x.per("table1", "survival_r", every), x.per("table1", "survival_p", every)
    ours = {"survival r": {OURS: s_r[OURS]}, "survival p": {OURS: s_p[OURS]}}
    corrected = (f"bias-corrected r = {_f(x.get(f'pad.{OURS}.survival_r_corrected'), '+.2f')} "
                 f"(p = {_f(x.get(f'pad.{OURS}.survival_p_corrected'), '.3g')})")
    out = [
        _judge("ours_survival_positive_significant", on,
               f"Ours: ALS brain-PAD vs survival r = {_f(s_r[OURS], '+.2f')} (p = {_f(s_p[OURS], '.3g')}), "
               f"{corrected}; paper +0.24 (p < 0.05).",
               lambda: s_r[OURS] > 0 and s_p[OURS] < ALPHA,
               x.no_als, SIMULATED_CHOICE["survival"] if simulated else None, x.gate([OURS]), _nan(ours)),
        _judge("baselines_survival_not_significant", on,
               "Baselines' ALS brain-PAD vs survival: " + ", ".join(
                   f"{MODELS[m]} r = {_f(s_r[m], '+.2f')} (p = {_f(s_p[m], '.3g')})" for m in base)
               + " (paper: p = 0.61/0.14/0.28).",
               lambda: all(s_p[m] >= ALPHA for m in base), x.no_als, x.gate(base),
               _nan({"survival p": {m: s_p[m] for m in base}})),
    ]
    if simulated:
        truth = (f"the true gap itself: r = {_f(x.get('simulator.als_gap_survival_r'), '+.2f')} "
                 f"(p = {_f(x.get('simulator.als_gap_survival_p'), '.3g')})")
        out.append(_judge("sim_survival_sign", on,
                          f"Ours: r = {_f(s_r[OURS], '+.2f')} (p = {_f(s_p[OURS], '.3g')}); {truth}.",
                          lambda: s_r[OURS] * SIMULATED_SURVIVAL_SIGN > 0 and s_p[OURS] < ALPHA,
                          x.no_als, x.gate([OURS]), _nan(ours)))
    return out


def _distribution(x: _Numbers, simulated: bool) -> list[Verdict]:
    """Table 2: ours has the widest ALS PAD spread, a PAD distribution unlike each baseline's, a negative mean."""
    every, base, on = [OURS, *x.base], x.base, x.data.als
    gate = x.gate_all()
    sd, ks, ks_p = x.per("table2", "pad_sd", every), x.per("table2", "ks", base), x.per("table2", "ks_p", base)
    mean_c, p_c = x.get(f"pad.{OURS}.pad_mean_corrected"), x.get(f"pad.{OURS}.pad_mean_corrected_p")
    return [
        _judge("ours_largest_pad_spread", on, f"ALS PAD sd: ours {_f(sd[OURS])} y vs {x.vs(sd)} "
               "(paper 27.29 vs 7.74/10.97/8.06).", lambda: all(sd[OURS] > sd[m] for m in base),
               x.no_als, gate, _nan({"PAD sd": sd})),
        _judge("ks_all_significant", on, "KS of our ALS PADs against each baseline's: " + ", ".join(
            f"{MODELS[m]} D = {_f(ks[m])} (p = {_f(ks_p[m], '.3g')})" for m in base)
               + " (paper D = 0.32/0.47/0.31, all p < 0.05).", lambda: all(ks_p[m] < ALPHA for m in base),
               x.no_als, gate, _nan({"KS p": ks_p})),
        _judge("ours_negative_mean_pad", on, f"Our mean ALS brain-PAD: bias-corrected {_f(mean_c, '+.2f')} y "
               f"(t-test p = {_f(p_c, '.3g')}), raw {_f(x.get(f'table2.{OURS}.pad_mean'), '+.2f')} y; paper -6.19 y "
               "(raw), which its authors call the opposite of the expected direction.",
               lambda: mean_c < 0, x.no_als, SIMULATED_CHOICE["mean_pad"] if simulated else None, x.gate([OURS]),
               _nan({"bias-corrected PAD mean": {OURS: mean_c}})),
    ]


def _truth_checks(x: _Numbers) -> list[Verdict]:
    """Checks against the simulator's hidden gaps behind the spread, KS, mean-PAD and biomarker claims."""
    every, base, on = [OURS, *x.base], x.base, x.data.als
    gate = x.gate_all()
    sd, spread, err = (x.per(t, q, every) for t, q in (("table2", "pad_sd"), ("truth", "als_gap_spread"),
                                                       ("truth", "als_mae_gap")))
    r_gap = x.per("truth", "test_r_gap_corrected", every)
    g_mean, g_sd = x.get("simulator.als_gap_mean"), x.get("simulator.als_gap_sd")
    mean_c, p_c = x.get(f"pad.{OURS}.pad_mean_corrected"), x.get(f"pad.{OURS}.pad_mean_corrected_p")
    per_model = ", ".join(f"{MODELS[m]} sd {_f(sd[m])} of which {_f(spread[m])} follows the gap" for m in every)
    truth_nan = nan_reason({"the ALS subjects' true gap mean": g_mean, "the ALS subjects' true gap sd": g_sd})
    return [
        _judge("sim_spread_follows_gap", on, f"ALS PAD spread (y): {per_model}; the true gap's sd is {_f(g_sd)} y.",
               lambda: all(spread[OURS] > spread[m] for m in base), x.no_als, gate, truth_nan,
               _nan({"gap spread": spread})),
        _judge("sim_als_pad_nearest_gap", on, f"Mean |PAD - true gap| over the ALS patients: ours {_f(err[OURS])} y vs "
               f"{x.vs(err)}.", lambda: all(err[OURS] < err[m] for m in base), x.no_als, gate,
               _nan({"|PAD - gap|": err})),
        _judge("sim_mean_pad_sign", on, f"Our bias-corrected mean ALS PAD {_f(mean_c, '+.2f')} y (t-test p = "
               f"{_f(p_c, '.3g')}); the ALS subjects' true mean gap {_f(g_mean, '+.2f')} y.",
               lambda: mean_c * g_mean > 0 and p_c < ALPHA, x.no_als, x.gate([OURS]), truth_nan,
               _nan({"bias-corrected PAD mean": {OURS: mean_c}, "PAD mean t-test p": {OURS: p_c}})),
        _judge("sim_ours_tracks_gap_best", x.data.test, "Bias-corrected test PAD vs the hidden gap: ours r = "
               f"{_f(r_gap[OURS])} vs {x.vs(r_gap)}.", lambda: all(r_gap[OURS] > r_gap[m] for m in base), gate,
               _nan({"r with the gap": r_gap})),
    ]


def _figures(x: _Numbers) -> list[Verdict]:
    """Figs. 3-4: monotone predicted ages along the interpolation, faithful reconstructions (where recorded)."""
    out, on = [], f"held-out healthy set and {x.data.test}"
    rows = sorted({k.split(".")[1] for k in x.n if k.startswith("fig3.") and k.endswith(".age_spearman")})
    if rows:  # Spearman of predicted age vs alpha, signed so that +1 runs from the first end's age to the second's
        rho = {r: x.get(f"fig3.{r}.age_spearman") for r in rows}
        ends = {r: (x.get(f"fig3.{r}.true_age_first"), x.get(f"fig3.{r}.true_age_last")) for r in rows}
        signed = {r: rho[r] * (1 if ends[r][1] > ends[r][0] else -1)
                  if is_finite(rho[r]) and all(map(is_finite, ends[r])) else None for r in rows}
        share = x.get("fig3.z_sem_share")
        out.append(_judge("interpolation_ages_monotone", on,
                          "Signed Spearman of the decoded frames' predicted age vs α: "
                          f"{', '.join(_f(v) for v in signed.values())}. Swapping z_sem changes a decoded image by "
                          f"{_f(100 * share if is_finite(share) else None, '.1f')} % of the squared difference "
                          "between the two subjects.", lambda: all(v >= MONOTONE_RHO for v in signed.values()),
                          x.gate([OURS]), nan_reason({f"{r} Spearman": v for r, v in signed.items()})))
    if "fig4.recon_mse" in x.n:
        mse, other = x.get("fig4.recon_mse"), x.get("fig4.other_image_mse")
        out.append(_judge("reconstructions_faithful", on, f"Reconstruction MSE {_f(mse, '.4f')} vs {_f(other, '.4f')} "
                          "to another subject's image.", lambda: mse < RECON_SHARE * other,
                          nan_reason({"reconstruction MSE": mse, "MSE to another image": other})))
    return out


def claims(n: Mapping[str, Any], simulated: bool, data: JudgedOn | None = None) -> list[Verdict]:
    """The paper's claims and, on simulated data, the checks against the simulator's truth (keys ``sim_*``).

    ``n`` maps recorded keys to values (``evaluation.numbers`` or a results file's records);
    every verdict follows from it by the rule in ``rules.CLAIMS``, on the data ``data`` describes
    (default: the paper's layout, ``JudgedOn()``).
    """
    x = _Numbers(n, data or JudgedOn())
    out = [*_ranking(x), *_survival(x, simulated), *_distribution(x, simulated)]
    if simulated:
        out += _truth_checks(x)
    return out + _figures(x)


def record_claims(rec: Recorder, simulated: bool, data: JudgedOn | None = None) -> list[str]:
    """Judge every claim on the numbers recorded so far and record it, with the data it was judged on, through
    ``Recorder.claim``; Markdown lines."""
    lines = []
    for v in claims({k: e["value"] for k, e in rec.doc["records"].items()}, simulated, data):
        text, paper, rule = CLAIMS[v.key]
        kind = "check" if v.key.startswith("sim_") else "claim"
        word = rec.claim(v.key, text, v.outcome, v.evidence, rule, paper=paper, kind=kind,
                         untestable_because=v.reason, judged_on=v.judged_on)
        why = f" *Not testable: {v.reason}.*" if v.reason else ""
        lines.append(f"- **{word.upper()}** {text}. {v.evidence}{why}")
    return lines
