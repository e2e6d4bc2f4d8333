"""The TGB paper's claims, each judged from a run's recorded numbers by a rule that cannot pass by accident.

Gates (:func:`gates`; a claim naming a model that fails its gate is "not testable", with the gate's numbers):

- **learned** (every regressor a claim compares or ranks): its MAE on the validation split, held-out subjects of
  its own training distribution, below ``LEARNED_FRACTION`` x the MAE of predicting the validation subjects' own
  mean age (``metrics.verdicts``);
- **reconstructs** (every generator whose reconstructions, maps or syntheses a claim rests on, including the
  regressors trained on its syntheses): its
  reconstruction of a test image is closer (L1) to that image than to the median other test image for at least
  ``RECONSTRUCTION_SHARE`` of the test images. A generator that ignores its input (a mean image, a blur of
  one) passes for about half of them;
- **region visible** (the region claim): the real-image map beats its age-permutation null
  (``p < REGION_ALPHA``), so the data show the simulated region at all;
- a number that could not be computed (NaN, recorded as null) makes its claim not testable.

Magnitudes: every claim with a paper number carries the paper's value (or difference, or ratio) beside this
run's 95 % bootstrap interval (``papers.tgb.magnitudes``, recorded as ``magnitude.<claim>.*``); the verdict
word follows ``metrics.verdicts.decide``.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from brainage_lib.metrics.verdicts import (LEARNED_FRACTION, RECONSTRUCTION_SHARE, Claim, Gate, is_finite,
                                           learned_mae, not_learned_reason, not_reconstructing_reason, reconstructs)
from brainage_lib.papers.tgb.paper import PAPER_GROUP_MAE, PAPER_TABLE1
from brainage_lib.papers.tgb.magnitudes import PAPER_DIFF_RATIO, magnitudes_from_records
from brainage_lib.papers.tgb.regions import STRENGTH_PERCENTILE

__all__ = ["claims", "gates", "WILCOXON_LEVEL", "REGION_ALPHA", "STRONGER_RATIO", "ORACLE_DICE", "TIE_YEARS",
           "METHODS", "GANS", "VALIDATION"]

WILCOXON_LEVEL = 0.01  # "significantly" in the paper: p < 0.01
REGION_ALPHA = 0.05  # a map finds the region when its Dice beats the age-permutation null at this level
# "much stronger" difference map: a ratio of strengths nearer (on a log scale) to the paper's 0.49 / 0.05 than to
# equal strength, i.e. above sqrt(9.8) = 3.1; the magnitude puts 9.8 itself beside this run's interval
STRONGER_RATIO = math.sqrt(PAPER_DIFF_RATIO)
ORACLE_DICE = 0.6  # the simulated effect is visible when the oracle map's top-voxel Dice reaches this
TIE_YEARS = 0.01  # group MAEs closer than this are a tie (a constant prediction's detrended errors are all ~0)

METHODS = ("REG", "REG-GAN", "REG-GAN-TGB")
GANS = ("REG-GAN", "REG-GAN-TGB")
VALIDATION = "the validation split"


def _values(records: dict[str, dict]) -> dict[str, object]:
    return {k: e.get("value") for k, e in records.items()}


def gates(records: dict[str, dict]) -> list[Gate]:
    """Every gate this run's claims depend on, with the numbers that passed or failed it (``gates.<key>``)."""
    v = _values(records)
    out = []
    ref = v.get("baseline.validation_mean_prediction.mae")
    ref_s = f"{float(ref):.2f} y" if is_finite(ref) else "n/a"
    for m in METHODS:
        mae = v.get(f"validation.{m}.mae")
        shown = f"{float(mae):.2f} y" if is_finite(mae) else "n/a"
        out.append(Gate(f"learned.{m}", m, f"validation MAE < {LEARNED_FRACTION:g} x the MAE of predicting the "
                        "validation subjects' own mean age",
                        f"validation MAE {shown} vs {LEARNED_FRACTION:g} x {ref_s}",
                        learned_mae(mae, ref), VALIDATION))  # type: ignore[arg-type]
    for g in GANS:
        share = v.get(f"reconstruction.{g}.share")
        shown = f"{100 * float(share):.0f} %" if is_finite(share) else "n/a"
        l1 = v.get(f"table1.{g}.l1_mean")
        out.append(Gate(f"reconstructs.{g}", g, f"reconstruction closer (L1) to its own input than to the median "
                        f"other test image for >= {100 * RECONSTRUCTION_SHARE:g} % of the test images",
                        f"{shown} of the test images" + (f" (mean L1 {float(l1):.4f})" if is_finite(l1) else ""),
                        reconstructs(share), "the test images"))  # type: ignore[arg-type]
    p_real = v.get("recovery.real.effect.p_dice")
    if "recovery.real.effect.p_dice" in v:
        out.append(Gate("region_visible.real", "real images", f"the real-image age map's top-voxel Dice against the "
                        f"simulator's effect map beats its age-permutation null (p < {REGION_ALPHA:g})",
                        f"p = {float(p_real):.3g}" if is_finite(p_real) else "p n/a",
                        is_finite(p_real) and float(p_real) < REGION_ALPHA,  # type: ignore[arg-type]
                        "the training images (ages 8 and 20)"))
    return out


def claims(records: dict[str, dict], data: str | None = None) -> list[Claim]:
    """The paper's claims and the ground-truth checks (``kind="check"``), judged from ``records`` (a Recorder's
    ``doc["records"]``), each with the paper's numbers beside this run's intervals (``magnitudes``).

    ``data`` (e.g. ``"simulated"``) names the data in each claim's ``judged_on`` ("the test split of simulated").
    """
    v = _values(records)
    ref = v.get("baseline.validation_mean_prediction.mae")

    def learned_reason(models: tuple[str, ...]) -> str | None:
        maes = {m: v.get(f"validation.{m}.mae") for m in models}
        return not_learned_reason(maes, ref, VALIDATION)  # type: ignore[arg-type]

    def reconstruct_reason(models: tuple[str, ...]) -> str | None:
        return not_reconstructing_reason({m: v.get(f"reconstruction.{m}.share") for m in models})  # type: ignore[misc]

    rows: list[Claim] = []

    def add(key: str, claim: str, paper: str, keys: tuple[str, ...], test: Callable[..., bool],
            show: Callable[..., str], rule: str, regressors: tuple[str, ...] = (), generators: tuple[str, ...] = (),
            gate: Callable[[], str | None] = lambda: None, kind: str = "claim", on: str = "the test split") -> None:
        vals = [v.get(k) for k in keys]
        missing = [k for k, x in zip(keys, vals) if not is_finite(x)]
        reason = None
        if missing:
            reason = "not measured or not computable (NaN) on this data: " + ", ".join(missing)
        else:
            reasons = [r for r in ((learned_reason(regressors) if regressors else None),
                                   (reconstruct_reason(generators) if generators else None)) if r]
            reason = "; ".join(reasons) or gate()
        rows.append(Claim(key, claim, paper, None if reason else bool(test(*vals)),
                          show(*vals) if not missing else "not measured", rule, reason or None, kind,
                          f"{on} of {data}" if data else on, tuple(magnitudes_from_records(records, key))))

    m = "table1.{}.{}_mean".format
    add("reg_learns", "REG learns age: its test MAE is well below that of predicting the mean age",
        "MAE 1.71 (ages 6-24)", (m("REG", "mae"), "baseline.mean_prediction.mae"),
        lambda a, b: a < LEARNED_FRACTION * b,
        lambda a, b: f"MAE {a:.2f} vs {b:.2f} predicting the test cohort's mean age",
        f"REG's test MAE < {LEARNED_FRACTION:g} x the MAE of predicting the test cohort's own mean age")
    add("reg_gan_worse", "REG-GAN is worse than REG (higher MSE and MAE)", "MSE 6.71 vs 5.19, MAE 1.94 vs 1.71",
        (m("REG-GAN", "mse"), m("REG", "mse"), m("REG-GAN", "mae"), m("REG", "mae")),
        lambda a, b, c, d: a > b and c > d, lambda a, b, c, d: f"MSE {a:.2f} vs {b:.2f}, MAE {c:.2f} vs {d:.2f}",
        "both test MSE and MAE of REG-GAN above REG's, both regressors having learned age on the validation split and "
        "REG-GAN's generator having learned to reconstruct (else its syntheses test nothing of the method)",
        regressors=("REG", "REG-GAN"), generators=("REG-GAN",))
    for other in ("REG", "REG-GAN"):
        add(f"tgb_beats_{other.lower().replace('-', '_')}",
            f"REG-GAN-TGB beats {other}, significantly (Wilcoxon p < {WILCOXON_LEVEL:g})",
            f"MSE 4.07 vs {PAPER_TABLE1[other]['mse'][0]:.2f}, MAE 1.54 vs {PAPER_TABLE1[other]['mae'][0]:.2f}, "
            "p < 0.01",
            (m("REG-GAN-TGB", "mse"), m(other, "mse"), m("REG-GAN-TGB", "mae"), m(other, "mae"),
             f"wilcoxon.{other}_vs_REG-GAN-TGB.p"),
            lambda a, b, c, d, p: a < b and c < d and p < WILCOXON_LEVEL,
            lambda a, b, c, d, p: f"MSE {a:.2f} vs {b:.2f}, MAE {c:.2f} vs {d:.2f}, p = {p:.2g}",
            f"lower test MSE and MAE and Wilcoxon signed-rank p < {WILCOXON_LEVEL:g} on the paired absolute errors, "
            "both regressors having learned age on the validation split and the generators of their syntheses having "
            "learned to reconstruct",
            regressors=(other, "REG-GAN-TGB"), generators=tuple(g for g in GANS if g in (other, "REG-GAN-TGB")))
    add("tgb_higher_l1", "REG-GAN-TGB reconstructs less faithfully than REG-GAN (higher L1)", "L1 0.0264 vs 0.0168",
        (m("REG-GAN-TGB", "l1"), m("REG-GAN", "l1")), lambda a, b: a > b, lambda a, b: f"L1 {a:.4f} vs {b:.4f}",
        "mean test L1 of REG-GAN-TGB above REG-GAN's, both generators having learned to reconstruct",
        generators=GANS, on="the test images")
    p = f"p{STRENGTH_PERCENTILE:g}"
    add("tgb_stronger_diffmap", "the REG-GAN-TGB difference map |age 20 - age 8| is much stronger than REG-GAN's",
        f"max 0.49 vs 0.05 (ratio {PAPER_DIFF_RATIO:.1f})", (f"diffmap.REG-GAN-TGB.{p}", f"diffmap.REG-GAN.{p}"),
        lambda a, b: b > 0 and a / b > STRONGER_RATIO,
        lambda a, b: (f"{STRENGTH_PERCENTILE:g}th percentile {a:.3f} vs {b:.3f}"
                      + (f" (ratio {a / b:.1f})" if b > 0 else "")),
        f"the ratio of the maps' strengths ({STRENGTH_PERCENTILE:g}th percentile over brain voxels, a robust maximum), "
        f"REG-GAN-TGB's over REG-GAN's, above {STRONGER_RATIO:.2f} = sqrt({PAPER_DIFF_RATIO:.1f}): nearer on a log "
        f"scale to the paper's {PAPER_DIFF_RATIO:.1f} x than to equal strength; both generators having learned to "
        "reconstruct", generators=GANS, on="the training images (ages 8 and 20)")
    d, pd_ = "recovery.{}.effect.dice_top".format, "recovery.{}.effect.p_dice".format

    def data_show_region() -> str | None:
        p_real = v.get(pd_("real"))
        if is_finite(p_real) and p_real < REGION_ALPHA:  # type: ignore[operator]
            return None
        return (f"the real-image map does not find the simulated region beyond its age-permutation null (p = "
                f"{p_real:.3g}, needs < {REGION_ALPHA:g}): the data cannot show whether a GAN finds it"
                if is_finite(p_real) else "no permutation test of the real-image map")

    add("tgb_finds_region",
        "the REG-GAN-TGB difference map points at the age-related region better than REG-GAN's and the real images'",
        "shown by eye (occipital lobe)", (d("REG-GAN-TGB"), d("REG-GAN"), d("real")),
        lambda a, b, c: a > max(b, c),
        lambda a, b, c: f"top-voxel Dice against the effect map {a:.2f} vs {b:.2f} (REG-GAN) and {c:.2f} (real)",
        f"REG-GAN-TGB's top-voxel Dice against the simulator's effect map above REG-GAN's and the real images' "
        f"(which itself beats its age-permutation null, p < {REGION_ALPHA:g}: judged only then, and when both "
        "generators learned to reconstruct). REG-GAN-TGB's own permutation p is recorded but not asked for: in a map "
        "that carries age strongly, shuffled groups still differ in mean age and show the same top voxels",
        generators=GANS, gate=data_show_region, on="the training images (ages 8 and 20) and the simulator's effect map")
    add("oracle_finds_region", "the simulated effect is visible in the model inputs (oracle map finds the region)",
        "-", (d("oracle"),), lambda a: a >= ORACLE_DICE, lambda a: f"oracle top-voxel Dice {a:.2f}",
        f"top-voxel Dice of the noise-free expected change (through the input transform) against the effect map "
        f">= {ORACLE_DICE:g}", kind="check", on="the simulator's noise-free images at ages 8 and 20")
    g, gd = "group_mae.REG-GAN-TGB.{}".format, "group_mae_detrended.REG-GAN-TGB.{}".format
    old, young, mid = "16-22", "6-10", "11-15"
    add("tgb_oldest_group_worst", "REG-GAN-TGB's error is largest in the 16-22 group (fewest images)",
        f"MAE {PAPER_GROUP_MAE[old]} vs {PAPER_GROUP_MAE[young]} (6-10), {PAPER_GROUP_MAE[mid]} (11-15)",
        (g(old), g(young), g(mid), gd(old), gd(young), gd(mid)),
        lambda a, b, c, x, y, z: a > b and a > c and x > y + TIE_YEARS and x > z + TIE_YEARS,
        lambda a, b, c, x, y, z: (f"MAE {a:.2f} vs {b:.2f} (6-10), {c:.2f} (11-15); with the errors' linear age "
                                  f"trend taken out {x:.2f} vs {y:.2f}, {z:.2f}"),
        "REG-GAN-TGB's test MAE in 16-22 above both other groups', and still above both (by more than "
        f"{TIE_YEARS:g} y) once the straight line in age fitted to its errors is taken out: regression towards the "
        "mean age (a constant prediction's pattern, scaled) errs most at the oldest, farthest ages and is such a "
        "line, so it alone does not pass; REG-GAN-TGB having learned age on the validation split",
        regressors=("REG-GAN-TGB",))
    return rows
