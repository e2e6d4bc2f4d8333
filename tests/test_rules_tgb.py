"""TGB's verdict rules, fed the numbers a constant, a noise and a perfect set of models would record.

The records are computed here from synthetic predictions and images with the notebook's own
functions (errors, L1, difference maps, permutation nulls), not written by hand.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from brainage_lib.metrics.scores import mae_by_group
from brainage_lib.metrics.stats import wilcoxon_p
from brainage_lib.metrics.verdicts import mean_prediction_mae
from brainage_lib.papers.tgb import regions
from brainage_lib.papers.tgb.claims import claims
from brainage_lib.papers.tgb.evaluation import GROUP_EDGES, PAPER_GROUP_MAE, error_summary

S = 16  # image grid
METHODS, GANS = ("REG", "REG-GAN", "REG-GAN-TGB"), ("REG-GAN", "REG-GAN-TGB")


def world(seed: int = 0):
    """A brain, an effect region whose intensity changes with age, subjects with their own anatomy and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:S, :S, :S]
    mask = (z - 7.5) ** 2 + (y - 7.5) ** 2 + (x - 7.5) ** 2 < 7 ** 2
    effect = ((z - 5) ** 2 + (y - 9) ** 2 + (x - 9) ** 2 < 4 ** 2) & mask
    base = np.where(mask, 0.5, 0.0)
    ages = np.concatenate([rng.uniform(6, 24, 140), rng.uniform(7, 9, 15), rng.uniform(19, 21, 15)])
    change = (ages - 8) / 12  # 0 at 8 y, 1 at 20 y
    anat = np.stack([ndimage.gaussian_filter(rng.normal(0, 1, (S, S, S)), 2) * 4.5 for _ in ages]) * mask
    images = base + anat + 0.2 * change[:, None, None, None] * effect
    images = (images + rng.normal(0, 0.05, images.shape) * mask).astype(np.float32)
    return rng, ages, images, mask.astype(bool), effect.astype(float), base, anat, change


def records(kind: str) -> dict[str, dict]:
    """What the notebook records for models of ``kind`` (constant, noise, perfect) on the world above."""
    rng, ages, images, mask, effect, base, anat, change = world()
    test, train = np.arange(50), np.arange(50, len(ages))  # the subjects drawn near 8 y and 20 y are all in training
    age_tr, age_te = ages[train], ages[test]
    if kind == "constant":
        preds = {m: np.full(test.size, age_tr.mean()) for m in METHODS}
        recon = {m: np.broadcast_to(images[train].mean(0), images.shape).copy() for m in GANS}
    elif kind == "noise":
        preds = {m: rng.uniform(6, 24, test.size) for m in METHODS}
        recon = {m: rng.uniform(0, 1, images.shape).astype(np.float32) for m in GANS}
    else:  # REG-GAN-TGB best, REG-GAN worst, oldest group hardest; the TGB generator keeps and sharpens the age change
        noise = {"REG": 0.8, "REG-GAN": 1.1, "REG-GAN-TGB": 0.2}
        preds = {m: age_te + rng.normal(0, s, test.size) + (m == "REG-GAN-TGB") * 0.5 * (age_te >= 16)
                 for m, s in noise.items()}
        recon = {"REG-GAN": (base + anat + rng.normal(0, 0.01, images.shape) * mask).astype(np.float32),
                 "REG-GAN-TGB": (base + anat + 0.6 * change[:, None, None, None] * effect
                                 + rng.normal(0, 0.01, images.shape) * mask).astype(np.float32)}
    out = {"baseline.mean_prediction.mae": mean_prediction_mae(age_te),
           "baseline.mean_image.l1": float(np.abs(images[test] - images[train].mean(0)).mean())}
    for m in METHODS:
        summary = error_summary(preds[m], age_te)
        out |= {f"table1.{m}.mse_mean": summary["mse_mean"], f"table1.{m}.mae_mean": summary["mae_mean"]}
        g = mae_by_group(age_te, np.abs(preds[m] - age_te), GROUP_EDGES, labels=tuple(PAPER_GROUP_MAE), include_all=False)
        out |= {f"group_mae.{m}.{r['group']}": r["mae"] for _, r in g.iterrows()}
    for a, b in (("REG", "REG-GAN-TGB"), ("REG-GAN", "REG-GAN-TGB")):
        out[f"wilcoxon.{a}_vs_{b}.p"] = wilcoxon_p(np.abs(preds[a] - age_te), np.abs(preds[b] - age_te))
    sets = {"real": images[train], **{m: recon[m][train] for m in GANS}}
    young = regions.nearest_age_indices(age_tr, 8, 10)
    old = regions.nearest_age_indices(age_tr, 20, 10)
    for m in GANS:
        out[f"table1.{m}.l1_mean"] = float(np.abs(recon[m][test] - images[test]).mean())
    for src, imgs in sets.items():
        out[f"diffmap.{src}.p99"] = regions.robust_strength(regions.mean_difference_map(imgs[young], imgs[old]), mask)
    refs = {"effect": effect, "mask": mask, "oracle": 0.2 * effect}
    table = regions.score_maps(sets, age_tr, refs, n_diff=10, top_percent=10, n_perm=60, seed=1)
    for src, row in table.iterrows():
        out |= {f"recovery.{src}.effect.{k}": row[k] for k in ("pearson_r", "dice_top", "p_dice")}
    return {k: {"value": None if isinstance(v, float) and not np.isfinite(v) else float(v)} for k, v in out.items()}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, pd.DataFrame]:
    return {kind: claims(records(kind)).set_index("key") for kind in ("constant", "noise", "perfect")}


COMPARISONS = ("reg_gan_worse", "tgb_beats_reg", "tgb_beats_reg_gan", "tgb_higher_l1", "tgb_stronger_diffmap",
               "tgb_finds_region", "tgb_oldest_group_worst")


@pytest.mark.parametrize("kind, expected", [
    ("constant", {"reg_learns": False, **{k: None for k in COMPARISONS}}),
    ("noise", {"reg_learns": False, **{k: None for k in COMPARISONS}}),
    ("perfect", {"reg_learns": True, **{k: True for k in COMPARISONS}}),
])
def test_rules(verdicts, kind, expected):
    v = verdicts[kind]
    got = {k: v.loc[k, "reproduced"] for k in expected}
    assert got == expected, v.loc[list(expected), ["reproduced", "this run", "reason"]].to_string()
    claim_rows = v[v["kind"] == "claim"]
    if kind != "perfect":
        assert not claim_rows["reproduced"].eq(True).any()  # nothing reproduced by a model that learned nothing
        assert claim_rows.loc[list(COMPARISONS), "reason"].str.len().gt(10).all()
    assert v.loc["oracle_finds_region", "kind"] == "check" and v.loc["oracle_finds_region", "reproduced"] == True  # noqa: E712


def test_region_claim_needs_the_data_to_show_the_region(verdicts):
    recs = records("perfect")
    recs["recovery.real.effect.p_dice"] = {"value": 0.4}  # the real images do not show the region beyond chance
    row = claims(recs).set_index("key").loc["tgb_finds_region"]
    assert row["reproduced"] is None and "real-image map does not find" in row["reason"]
