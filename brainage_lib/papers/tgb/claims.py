"""The TGB paper's claims, each judged from a run's recorded numbers by a rule that cannot pass by accident.

Gates (a claim failing one is "not testable", with the reason):

- a claim that compares or ranks regressors is judged only when every regressor it names
  learned age: test MAE below ``LEARNED_FRACTION`` x the MAE of predicting the test
  cohort's own mean age (``metrics.verdicts``);
- a claim about the GANs' reconstructions or difference maps is judged only when every
  generator it names learned to reconstruct its input: test L1 below that of the mean
  training image, the output of a generator that ignores its input
  (``RECONSTRUCTION_FRACTION``; an untrained or noisy generator has a high L1 and a
  strong, meaningless difference map);
- the region claim is judged only when the data show the region at all: the real-image
  map beats its age-permutation null (``p < REGION_ALPHA``);
- a number that could not be computed (NaN, recorded as null) makes its claim not testable.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from brainage_lib.metrics.verdicts import LEARNED_FRACTION, is_finite
from brainage_lib.papers.tgb.evaluation import PAPER_TABLE1
from brainage_lib.papers.tgb.regions import STRENGTH_PERCENTILE

__all__ = ["claims", "WILCOXON_LEVEL", "REGION_ALPHA", "STRONGER_FACTOR", "ORACLE_DICE", "RECONSTRUCTION_FRACTION"]

WILCOXON_LEVEL = 0.01  # "significantly" in the paper: p < 0.01
REGION_ALPHA = 0.05  # a map finds the region when its Dice beats the age-permutation null at this level
STRONGER_FACTOR = 2.0  # "much stronger" difference map: robust strength more than twice the other's
ORACLE_DICE = 0.6  # the simulated effect is visible when the oracle map's top-voxel Dice reaches this
RECONSTRUCTION_FRACTION = 1.0  # a generator learned to reconstruct: test L1 < this x the mean training image's L1

GANS = ("REG-GAN", "REG-GAN-TGB")


def claims(records: dict[str, dict]) -> pd.DataFrame:
    """The paper's claims and the ground-truth checks, judged from ``records`` (a Recorder's ``doc["records"]``).

    Columns: key, kind ("claim" or "check"), claim, paper, this run, rule, reproduced
    (True/False, None when not testable), reason (why not testable) and judged_on (which data).
    """
    v = {k: e.get("value") for k, e in records.items()}
    mean_mae, mean_l1 = v.get("baseline.mean_prediction.mae"), v.get("baseline.mean_image.l1")

    def regressor_fails(m: str) -> bool:
        mae = v.get(f"table1.{m}.mae_mean")
        return not (is_finite(mae) and is_finite(mean_mae) and mae < LEARNED_FRACTION * mean_mae)

    def generator_fails(m: str) -> bool:
        l1 = v.get(f"table1.{m}.l1_mean")
        return not (is_finite(l1) and is_finite(mean_l1) and l1 < RECONSTRUCTION_FRACTION * mean_l1)

    rows = []

    def add(key: str, claim: str, paper: str, keys: tuple[str, ...], test: Callable[..., bool],
            show: Callable[..., str], rule: str, regressors: tuple[str, ...] = (), generators: tuple[str, ...] = (),
            gate: Callable[[], str | None] = lambda: None, kind: str = "claim", on: str = "the test split") -> None:
        vals = [v.get(k) for k in keys]
        missing = [k for k, x in zip(keys, vals) if not is_finite(x)]
        reason = None
        if missing:
            reason = "not measured or not computable (NaN) on this data: " + ", ".join(missing)
        elif [m for m in regressors if regressor_fails(m)]:
            reason = (", ".join(m for m in regressors if regressor_fails(m)) + f" did not learn age (test MAE not below "
                      f"{LEARNED_FRACTION:g} x {mean_mae:.2f} y, the MAE of predicting the test cohort's mean age)")
        elif [m for m in generators if generator_fails(m)]:
            reason = (", ".join(m for m in generators if generator_fails(m)) + " did not learn to reconstruct (test L1 "
                      f"not below {RECONSTRUCTION_FRACTION:g} x {mean_l1 if is_finite(mean_l1) else float('nan'):.4f}, "
                      "the L1 of the mean training image)")
        else:
            reason = gate()
        rows.append({"key": key, "kind": kind, "claim": claim, "paper": paper,
                     "this run": show(*vals) if not missing else "not measured", "rule": rule,
                     "reproduced": None if reason else bool(test(*vals)), "reason": reason, "judged_on": on})

    m = "table1.{}.{}_mean".format
    add("reg_learns", "REG learns age: its test MAE is well below that of predicting the mean age",
        "MAE 1.71 (ages 6-24)", (m("REG", "mae"), "baseline.mean_prediction.mae"), lambda a, b: a < LEARNED_FRACTION * b,
        lambda a, b: f"MAE {a:.2f} vs {b:.2f} predicting the test cohort's mean age",
        f"REG's test MAE < {LEARNED_FRACTION:g} x the MAE of predicting the test cohort's own mean age")
    add("reg_gan_worse", "REG-GAN is worse than REG (higher MSE and MAE)", "MSE 6.71 vs 5.19, MAE 1.94 vs 1.71",
        (m("REG-GAN", "mse"), m("REG", "mse"), m("REG-GAN", "mae"), m("REG", "mae")),
        lambda a, b, c, d: a > b and c > d, lambda a, b, c, d: f"MSE {a:.2f} vs {b:.2f}, MAE {c:.2f} vs {d:.2f}",
        "both test MSE and MAE of REG-GAN above REG's", regressors=("REG", "REG-GAN"))
    for other in ("REG", "REG-GAN"):
        add(f"tgb_beats_{other.lower().replace('-', '_')}",
            f"REG-GAN-TGB beats {other}, significantly (Wilcoxon p < {WILCOXON_LEVEL:g})",
            f"MAE 1.54 vs {PAPER_TABLE1[other]['mae'][0]:.2f}, p < 0.01",
            (m("REG-GAN-TGB", "mae"), m(other, "mae"), f"wilcoxon.{other}_vs_REG-GAN-TGB.p"),
            lambda a, b, p: a < b and p < WILCOXON_LEVEL, lambda a, b, p: f"MAE {a:.2f} vs {b:.2f}, p = {p:.2g}",
            f"lower test MAE and Wilcoxon signed-rank p < {WILCOXON_LEVEL:g} on the paired absolute errors",
            regressors=(other, "REG-GAN-TGB"))
    add("tgb_higher_l1", "REG-GAN-TGB reconstructs less faithfully than REG-GAN (higher L1)", "L1 0.0264 vs 0.0168",
        (m("REG-GAN-TGB", "l1"), m("REG-GAN", "l1")), lambda a, b: a > b, lambda a, b: f"L1 {a:.4f} vs {b:.4f}",
        "mean test L1 of REG-GAN-TGB above REG-GAN's, both generators having learned to reconstruct",
        generators=GANS, on="the test images")
    p = f"p{STRENGTH_PERCENTILE:g}"
    add("tgb_stronger_diffmap", "the REG-GAN-TGB difference map |age 20 - age 8| is much stronger than REG-GAN's",
        "max 0.49 vs 0.05", (f"diffmap.REG-GAN-TGB.{p}", f"diffmap.REG-GAN.{p}"),
        lambda a, b: a > STRONGER_FACTOR * b, lambda a, b: f"{STRENGTH_PERCENTILE:g}th percentile {a:.3f} vs {b:.3f}",
        f"the {STRENGTH_PERCENTILE:g}th percentile over brain voxels of the REG-GAN-TGB map more than "
        f"{STRONGER_FACTOR:g} x REG-GAN's (a robust maximum), both generators having learned to reconstruct",
        generators=GANS, on="the training images (ages 8 and 20)")
    d, pd_ = "recovery.{}.effect.dice_top".format, "recovery.{}.effect.p_dice".format

    def data_show_region() -> str | None:
        p_real = v.get(pd_("real"))
        if is_finite(p_real) and p_real < REGION_ALPHA:
            return None
        return (f"the real-image map does not find the simulated region beyond its age-permutation null (p = "
                f"{p_real:.3g}, needs < {REGION_ALPHA:g}): the data cannot show whether a GAN finds it"
                if is_finite(p_real) else "no permutation test of the real-image map")

    add("tgb_finds_region",
        "the REG-GAN-TGB difference map points at the age-related region better than REG-GAN's and the real images'",
        "shown by eye (occipital lobe)", (d("REG-GAN-TGB"), d("REG-GAN"), d("real"), pd_("REG-GAN-TGB")),
        lambda a, b, c, q: a > max(b, c) and q < REGION_ALPHA,
        lambda a, b, c, q: f"top-voxel Dice against the effect map {a:.2f} (permutation p {q:.3g}) vs {b:.2f} "
                           f"(REG-GAN) and {c:.2f} (real)",
        f"REG-GAN-TGB's top-voxel Dice against the simulator's effect map above REG-GAN's and the real images', and "
        f"beyond its age-permutation null (p < {REGION_ALPHA:g}); judged only when the real-image map beats its null "
        f"(p < {REGION_ALPHA:g}) and both generators learned to reconstruct",
        generators=GANS, gate=data_show_region, on="the training images (ages 8 and 20) and the simulator's effect map")
    add("oracle_finds_region", "the simulated effect is visible in the model inputs (oracle map finds the region)",
        "-", (d("oracle"),), lambda a: a >= ORACLE_DICE, lambda a: f"oracle top-voxel Dice {a:.2f}",
        f"top-voxel Dice of the noise-free expected change (through the input transform) against the effect map "
        f">= {ORACLE_DICE:g}", kind="check", on="the simulator's noise-free images at ages 8 and 20")
    g = "group_mae.REG-GAN-TGB.{}".format
    add("tgb_oldest_group_worst", "REG-GAN-TGB's error is largest in the 16-22 group (fewest images)",
        "MAE 2.11 vs 1.32 (6-10), 1.37 (11-15)", (g("16-22"), g("6-10"), g("11-15")), lambda a, b, c: a > b and a > c,
        lambda a, b, c: f"MAE {a:.2f} vs {b:.2f} (6-10), {c:.2f} (11-15)",
        "REG-GAN-TGB's MAE in 16-22 above both other groups'", regressors=("REG-GAN-TGB",))
    return pd.DataFrame(rows)
