"""The DIFF paper's claims, the checks against the simulator's truth, and their verdict rules.

``claims`` is a pure function of the recorded numbers (``evaluation.numbers`` with
``evaluation.magnitude_numbers``, or a results file's records): no claim reads a prediction
or a model. What keeps a verdict from following by accident:

- **gates** (``gates``, ``metrics.verdicts``): a claim naming models is judged only when every
  one of them learned age where it should have, on the held-out healthy set of its training
  distribution (MAE below 0.8 x that of predicting the set's own mean age), and its predictions
  still track age on the clinical test set, a shifted cohort (Pearson r > 0 with p < 0.01). A
  constant or noise predictor passes neither, and a model whose clinical-grade predictions carry
  an offset (the paper's DenseNet121, MAE 8.63 y) still counts;
- a NaN statistic makes a claim "not testable", never "not significant";
- comparisons test the difference on the same subjects: Steiger's test of ours' PAD-survival
  correlation against each baseline's, the Pitman-Morgan test of the paired ALS PAD spreads;
- every claim with a paper number carries its **magnitudes** (the paper's value or difference
  beside this run's 95 % paired bootstrap interval, ``mag.*``): reproduced needs them inside in
  the paper profile (``metrics.verdicts.decide``);
- on simulated data, a claim whose truth is the simulator's choice (the sign of the
  PAD-survival correlation, the sign of the ALS group's mean gap) is not testable; a check of
  the simulator's answer (``kind="check"``) goes beside it;
- without ALS patients the ALS claims are not testable, and on a test set split from the
  training cohort (``JudgedOn.split``) so are the clinical-grade MAE and R² rankings.

Each verdict names the data it was judged on (``JudgedOn``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from brainage_lib.metrics.verdicts import (LEARNED_FRACTION, TRACK_ALPHA, Claim, Gate, Magnitude, is_finite,
                                           learned_mae, nan_reason, not_learned_reason, not_tracking_reason,
                                           tracks_age)
from brainage_lib.papers.diff.evaluation import MAGNITUDES, MODELS, OURS, paper_magnitude
from brainage_lib.papers.diff.roles import JudgedOn
from brainage_lib.papers.diff.rules import (ALPHA, CLAIMS, HELDOUT, JOINT_R_MARGIN, MONOTONE_RHO, NO_ALS,
                                            NOT_CLINICAL, PAPER_SURVIVAL_SIGN, R_ON_SPLIT, RECON_SHARE,
                                            SIMULATED_CHOICE, SIMULATED_SURVIVAL_SIGN, ZSEM_AGE_SHARE)
from brainage_lib.run.results import Recorder

__all__ = ["claims", "gates", "record_gates"]


def _f(v: Any, spec: str = ".2f") -> str:
    """A recorded number for a sentence; ``n/a`` for a missing (non-finite) one."""
    return format(float(v), spec) if is_finite(v) else "n/a"


def _judge(key: str, on: str | None, evidence: str, rule: Callable[[], bool], *reasons: str | None,
           magnitudes: list[Magnitude] | tuple[Magnitude, ...] = ()) -> Claim:
    """``rule()`` on the data ``on`` (None where this data has none) unless one of ``reasons`` says why the claim
    cannot be judged (the first is kept); its text, paper and rule from ``rules.CLAIMS``, a ``sim_*`` key a check
    of the simulator's truth."""
    reason = next((r for r in reasons if r), None)
    text, paper, rule_text = CLAIMS[key]
    return Claim(key, text, paper, None if reason else bool(rule()), evidence, rule_text, reason,
                 "check" if key.startswith("sim_") else "claim", on, tuple(magnitudes))


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
        """Why a claim naming ``models`` cannot be judged: one did not learn age on the held-out healthy set, or its
        predictions do not track age on the test set (none named: no baseline ran)."""
        if not models:
            return "no baseline was evaluated"
        ref = self.n.get("gate.heldout_mean_prediction_mae")
        if not is_finite(ref):
            return "the MAE of predicting the held-out healthy set's mean age was not recorded"
        rp = {MODELS[m]: (self.n.get(f"table1.{m}.test_r"), self.n.get(f"table1.{m}.test_r_p")) for m in models}
        return (not_learned_reason({MODELS[m]: self.n.get(f"heldout.{m}.mae") for m in models}, float(ref), HELDOUT)
                or not_tracking_reason(rp, self.data.where))

    def gate_all(self) -> str | None:
        """The gate of a claim comparing ours with every baseline."""
        return self.gate([OURS, *self.base]) if self.base else self.gate([])

    def mags(self, q: str, models: list[str]) -> list[Magnitude]:
        """The paper's value of ``mag.<q>.<model>`` beside this run's interval, per model (NaN where not
        recorded: the paper's value cannot lie inside)."""
        nan = float("nan")
        out = []
        for m in models:
            k = f"mag.{q}.{m}"
            v = [self.n.get(x) for x in (k, f"{k}.low", f"{k}.high")]
            v = [float(x) if is_finite(x) else nan for x in v]
            what = MAGNITUDES[q][0].replace("baseline", MODELS[m]) if m != OURS else MAGNITUDES[q][0]
            out.append(Magnitude(what, paper_magnitude(q, m), *v))
        return out

    def vs(self, d: Mapping[str, Any], spec: str = ".2f") -> str:
        """``Baseline value, ...`` for a sentence."""
        return ", ".join(f"{MODELS[m]} {_f(d[m], spec)}" for m in self.base)


def _nan(values: Mapping[str, Mapping[str, Any]]) -> str | None:
    """``nan_reason`` over ``{quantity: {model: value}}``, naming each as ``<model> <quantity>``."""
    return nan_reason({f"{MODELS[m]} {q}": v for q, d in values.items() for m, v in d.items()})


def gates(n: Mapping[str, Any], data: JudgedOn | None = None) -> list[Gate]:
    """Every model's gates with the numbers that passed or failed them: ``learned.<model>`` on the held-out healthy
    set, ``tracks_age.<model>`` on the test set."""
    data = data or JudgedOn()
    ref = n.get("gate.heldout_mean_prediction_mae")
    out = []
    for m in [x for x in MODELS if f"table1.{x}.test_mae" in n]:
        mae, r, p = n.get(f"heldout.{m}.mae"), n.get(f"table1.{m}.test_r"), n.get(f"table1.{m}.test_r_p")
        cut = LEARNED_FRACTION * float(ref) if is_finite(ref) else float("nan")
        out.append(Gate(f"learned.{m}", MODELS[m],
                        f"MAE on {HELDOUT} below {LEARNED_FRACTION:g} x the MAE of predicting that set's own mean age",
                        f"MAE {_f(mae)} y vs {LEARNED_FRACTION:g} x {_f(ref)} = {_f(cut)} y",
                        bool(is_finite(ref) and learned_mae(mae, float(ref))), HELDOUT))
        out.append(Gate(f"tracks_age.{m}", MODELS[m],
                        f"on {data.where}: Pearson r of predicted with true age > 0 with p < {TRACK_ALPHA:g}",
                        f"r = {_f(r, '+.2f')}, p = {_f(p, '.2g')}", tracks_age(r, p), data.test))
    return out


def _ranking(x: _Numbers) -> list[Claim]:
    """Table 1: ours has the (joint) highest r, the lowest MAE and the highest R² (the last two on a clinical-grade
    test set only: ``NOT_CLINICAL``)."""
    every, base, on = [OURS, *x.base], x.base, x.data.test
    gate, grade = x.gate_all(), NOT_CLINICAL if x.data.split else None
    r, mae, r2 = (x.per("table1", q, every) for q in ("test_r", "test_mae", "test_r2"))
    return [
        _judge("ours_joint_highest_r", on, f"Test r: ours {_f(r[OURS])} vs {x.vs(r)} (paper 0.83 vs 0.83/0.46/0.81; "
               f"'joint' = within {JOINT_R_MARGIN:g})." + (f" {R_ON_SPLIT}" if x.data.split else ""),
               lambda: all(r[OURS] >= r[m] - JOINT_R_MARGIN for m in base), gate, _nan({"test r": r}),
               magnitudes=x.mags("r_diff", base)),
        _judge("ours_lowest_mae", on, f"Test MAE: ours {_f(mae[OURS])} y vs {x.vs(mae)} (paper 5 vs 8.63/11.7/5.55).",
               lambda: all(mae[OURS] < mae[m] for m in base), grade, gate, _nan({"test MAE": mae}),
               magnitudes=x.mags("mae_diff", base)),
        _judge("ours_highest_r2", on, f"Test R²: ours {_f(r2[OURS])} vs {x.vs(r2)} (paper 0.65 vs 0.12/-1.14/0.56).",
               lambda: all(r2[OURS] > r2[m] for m in base), grade, gate, _nan({"test R²": r2}),
               magnitudes=x.mags("r2_diff", base)),
    ]


def _survival(x: _Numbers, simulated: bool) -> list[Claim]:
    """Table 1's survival row: ours positive and significant, and more strongly associated with survival than every
    baseline (Steiger's test of the dependent correlations); on simulated data the same two in the simulator's
    sign, as checks."""
    every, base, on = [OURS, *x.base], x.base, x.data.als
    s_r, s_p = x.per("table1", "survival_r", every), x.per("table1", "survival_p", every)
    st_z, st_p = x.per("pad", "survival_steiger_z", base), x.per("pad", "survival_steiger_p", base)
    ours = {"survival r": {OURS: s_r[OURS]}, "survival p": {OURS: s_p[OURS]}}
    corrected = (f"bias-corrected r = {_f(x.get(f'pad.{OURS}.survival_r_corrected'), '+.2f')} "
                 f"(p = {_f(x.get(f'pad.{OURS}.survival_p_corrected'), '.3g')})")
    steiger = ("Ours' ALS PAD-survival r = " + _f(s_r[OURS], "+.2f") + " vs " + ", ".join(
        f"{MODELS[m]} {_f(s_r[m], '+.2f')} (p = {_f(s_p[m], '.2g')}; Steiger z = {_f(st_z[m], '+.2f')}, "
        f"p = {_f(st_p[m], '.2g')})" for m in base))
    stronger = lambda sign: all(sign * st_z[m] > 0 for m in base)  # noqa: E731
    steiger_nan = _nan({"Steiger z": st_z})
    out = [
        _judge("ours_survival_positive_significant", on,
               f"Ours: ALS brain-PAD vs survival r = {_f(s_r[OURS], '+.2f')} (p = {_f(s_p[OURS], '.3g')}), "
               f"{corrected}; paper +0.24 (p < 0.05).",
               lambda: s_r[OURS] > 0 and s_p[OURS] < ALPHA,
               x.no_als, SIMULATED_CHOICE["survival"] if simulated else None, x.gate([OURS]), _nan(ours),
               magnitudes=x.mags("survival_r", [OURS])),
        _judge("survival_stronger_than_baselines", on,
               f"{steiger}; paper +0.24 vs -0.05/+0.17/-0.12 (the baselines' p = 0.61/0.14/0.28).",
               lambda: stronger(PAPER_SURVIVAL_SIGN), x.no_als, SIMULATED_CHOICE["survival"] if simulated else None,
               x.gate_all(), steiger_nan, magnitudes=x.mags("survival_r_diff", base)),
    ]
    if simulated:
        truth = (f"the true gap itself: r = {_f(x.get('simulator.als_gap_survival_r'), '+.2f')} "
                 f"(p = {_f(x.get('simulator.als_gap_survival_p'), '.3g')})")
        out.append(_judge("sim_survival_sign", on,
                          f"Ours: r = {_f(s_r[OURS], '+.2f')} (p = {_f(s_p[OURS], '.3g')}); {truth}.",
                          lambda: s_r[OURS] * SIMULATED_SURVIVAL_SIGN > 0 and s_p[OURS] < ALPHA,
                          x.no_als, x.gate([OURS]), _nan(ours)))
        out.append(_judge("sim_survival_stronger_than_baselines", on, f"{steiger}; {truth}.",
                          lambda: stronger(SIMULATED_SURVIVAL_SIGN), x.no_als, x.gate_all(), steiger_nan))
    return out


def _distribution(x: _Numbers, simulated: bool) -> list[Claim]:
    """Table 2: ours has the widest ALS PAD spread, significantly wider than each baseline's on the same patients
    (Pitman-Morgan), and a negative mean."""
    every, base, on = [OURS, *x.base], x.base, x.data.als
    gate = x.gate_all()
    sd, ks = x.per("table2", "pad_sd", every), x.per("table2", "ks", base)
    pm_r, pm_p = x.per("table2", "pm_r", base), x.per("table2", "pm_p", base)
    mean_c, p_c = x.get(f"pad.{OURS}.pad_mean_corrected"), x.get(f"pad.{OURS}.pad_mean_corrected_p")
    return [
        _judge("ours_largest_pad_spread", on, f"ALS PAD sd: ours {_f(sd[OURS])} y vs {x.vs(sd)} "
               "(paper 27.29 vs 7.74/10.97/8.06).", lambda: all(sd[OURS] > sd[m] for m in base),
               x.no_als, gate, _nan({"PAD sd": sd}), magnitudes=x.mags("pad_sd_diff", base)),
        _judge("pad_spread_wider_significantly", on, "Pitman-Morgan test of our ALS PADs' spread against each "
               "baseline's on the same patients: " + ", ".join(
                   f"{MODELS[m]} r = {_f(pm_r[m], '+.2f')} (p = {_f(pm_p[m], '.2g')}; KS D = {_f(ks[m])})"
                   for m in base) + " (paper: KS D = 0.32/0.47/0.31, all p < 0.05).",
               lambda: all(pm_r[m] > 0 and pm_p[m] < ALPHA for m in base), x.no_als, gate,
               _nan({"Pitman-Morgan r": pm_r, "Pitman-Morgan p": pm_p}), magnitudes=x.mags("ks", base)),
        _judge("ours_negative_mean_pad", on, f"Our mean ALS brain-PAD: bias-corrected {_f(mean_c, '+.2f')} y "
               f"(t-test p = {_f(p_c, '.3g')}), raw {_f(x.get(f'table2.{OURS}.pad_mean'), '+.2f')} y; paper -6.19 y "
               "(raw), which its authors call the opposite of the expected direction.",
               lambda: mean_c < 0, x.no_als, SIMULATED_CHOICE["mean_pad"] if simulated else None, x.gate([OURS]),
               _nan({"bias-corrected PAD mean": {OURS: mean_c}}), magnitudes=x.mags("pad_mean", [OURS])),
    ]


def _truth_checks(x: _Numbers) -> list[Claim]:
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


def _figures(x: _Numbers) -> list[Claim]:
    """Figs. 3-4: the semantic latent carries age (decoding along z_sem with x_T held fixed moves the predicted age
    monotonically towards the other end), faithful reconstructions (where recorded)."""
    out, on = [], f"held-out healthy set and {x.data.test}"
    rows = sorted({k.split(".")[1] for k in x.n if k.startswith("fig3.") and k.endswith(".zsem_age_spearman")})
    if rows:  # Spearman of predicted age vs alpha, signed so that +1 runs from the first end's age to the second's
        def signed(r: str, q: str) -> float | None:
            rho, a, b = x.get(f"fig3.{r}.{q}"), x.get(f"fig3.{r}.true_age_first"), x.get(f"fig3.{r}.true_age_last")
            return rho * (1 if b > a else -1) if is_finite(rho) and is_finite(a) and is_finite(b) else None

        zsem = {r: signed(r, "zsem_age_spearman") for r in rows}
        full = {r: signed(r, "age_spearman") for r in rows}
        share = {r: x.get(f"fig3.{r}.zsem_age_share") for r in rows}
        pct = {r: 100 * share[r] if is_finite(share[r]) else None for r in rows}
        swap = x.get("fig3.z_sem_share")
        rows_text = "; ".join(
            f"{r}: {_f(x.get(f'fig3.{r}.true_age_first'), '.0f')} → {_f(x.get(f'fig3.{r}.true_age_last'), '.0f')} y, "
            f"signed Spearman {_f(zsem[r])}, predicted age {_f(x.get(f'fig3.{r}.zsem_age_first'), '.1f')} → "
            f"{_f(x.get(f'fig3.{r}.zsem_age_last'), '.1f')} y = {_f(pct[r], '.0f')}"
            f" % of the age head's {_f(x.get(f'fig3.{r}.latent_age_first'), '.1f')} → "
            f"{_f(x.get(f'fig3.{r}.latent_age_last'), '.1f')} y" for r in rows)
        out.append(_judge(
            "interpolation_ages_monotone", on,
            f"Decoding along z_sem with x_T held fixed: {rows_text}. The full interpolation (z_sem and x_T): signed "
            f"Spearman {', '.join(_f(v) for v in full.values())}; swapping z_sem changes a decoded image by "
            f"{_f(100 * swap if is_finite(swap) else None, '.1f')} % of the squared difference between the two "
            "subjects.", lambda: all(zsem[r] >= MONOTONE_RHO and share[r] >= ZSEM_AGE_SHARE for r in rows),
            x.gate([OURS]), nan_reason({**{f"{r} Spearman along z_sem": v for r, v in zsem.items()},
                                         **{f"{r} share of the age difference": v for r, v in share.items()}})))
    if "fig4.recon_mse" in x.n:
        mse, other = x.get("fig4.recon_mse"), x.get("fig4.other_image_mse")
        out.append(_judge("reconstructions_faithful", on, f"Reconstruction MSE {_f(mse, '.4f')} vs {_f(other, '.4f')} "
                          "to another subject's image.", lambda: mse < RECON_SHARE * other,
                          nan_reason({"reconstruction MSE": mse, "MSE to another image": other})))
    return out


def claims(n: Mapping[str, Any], simulated: bool, data: JudgedOn | None = None) -> list[Claim]:
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


def record_gates(rec: Recorder, data: JudgedOn | None = None) -> list[Gate]:
    """Record every model's gates (``gates``) from the numbers recorded so far as ``gates.<gate>.<model>``."""
    found = gates(rec.values(), data)
    for g in found:
        rec.gate(g)
    return found

