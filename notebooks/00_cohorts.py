# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Cohorts: simulated ageing on MNI152 anatomy
#
# None of the three papers' cohorts (ABIDE, the DIFF training/clinical/ALS sets,
# NIH-PD, MGHBCH) can be downloaded without an application. This companion therefore
# ships a **simulator built on real anatomy** (the MNI152 2009 template and its GM/WM
# maps from the nilearn wheel) that writes cohorts in the same BIDS-like format a real
# cohort uses, so every notebook reads simulated and real data through one loader.
#
# This notebook shows, for each preset: the age distributions by site and sex, example
# images across the age range, the ground-truth effect maps, whether the regional
# effect is **visible in the normalised images the models see**, the site contrast
# differences, and a sanity check that the age signal is **real but not trivial**.
#
# Papers mirrored: TGB (`abide_like`), DIFF (`lifespan_train`, `clinical_test`,
# `als_like`), LSTM (`nihpd_like`, `mghbch_like`); see `docs/data.md`.
#
# **Parameters.** Core parameters first; every other entry left at None takes the profile's value from
# `notebooks/params/00_cohorts.<PROFILE>.yaml`. Give a value here (or `-p NAME=value`) to override it.

# %% tags=["parameters"]
from typing import Optional

PROFILE: str = "quick"  # smoke | quick | paper | auto (paper with CUDA, else quick)
DATA_DIR: str = ""  # empty: simulated cohorts; else a cohort folder, or a folder with one sub-folder per preset name
DATA_SEED: int = 0  # seeds the simulated cohorts (as the paper notebooks' DATA_SEED)
SEED: int = 0  # seeds the baseline's cross-validation folds
DEVICE: str = "auto"  # no training here; kept so every notebook takes the same core parameters
DEVICES: int = 1  # no training here; kept so every notebook takes the same core parameters
FORCE: bool = False  # no training here; kept so every notebook takes the same core parameters
OUTPUT_DIR: str = ""  # where results/, figures/, rendered/ go; empty: the project root
PRESETS: Optional[str] = None  # comma-separated presets to show; None: the profile's list
N_SUBJECTS: Optional[int] = None  # subjects per simulated preset; None: profile (0 means the preset's full size)
SHAPE: Optional[int] = None  # cubic simulation grid; None: profile (0 means the 2 mm MNI grid, 99x117x95)
BASELINE_SHAPE: Optional[int] = None  # volumes are down-sampled to this cube for the ridge baseline
EFFECT_REGION: Optional[str] = None  # override every preset's effect region, e.g. "occipital" or "sphere:0,-60,10,25"

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from brainage_lib.data import baseline, plots
from brainage_lib.data.cache import cached_array
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.transforms import get_transform
from brainage_lib.notebook import start
from brainage_lib.simulation.presets import get_preset

NB = "00_cohorts"
data_label = DATA_DIR or "simulated"
cfg, _, rec, t_start = start(NB, globals(), data=data_label, train=False)  # profile, seeds, recorder
presets = [p.strip() for p in cfg.PRESETS.split(",") if p.strip()]
sim = {"seed": DATA_SEED, "shape": cfg.SHAPE or None, "effect_region": cfg.EFFECT_REGION}

# %% [markdown]
# ## 1 Data
# Each cohort is generated on first use (then re-used from `data/simulated/`) and read
# back through `load_cohort`, exactly as a real cohort would be. With `DATA_DIR` set,
# the folder is loaded instead.

# %%
cohorts = {}
for name in presets:
    n = min(cfg.N_SUBJECTS, get_preset(name).n) if cfg.N_SUBJECTS else None  # never more than the preset's size
    cohorts[name] = open_cohort(name, DATA_DIR, allow_unlabelled=True, **{**sim, "n": n})
rows = []
for name, c in cohorts.items():
    t = c.table
    row = {"cohort": name, "N": len(t), "labelled": int(t["age"].notna().sum()), "age min": t["age"].min(),
           "age max": t["age"].max(), "age mean": t["age"].mean(), "age sd": t["age"].std(),
           "female": int((t["sex"] == "F").sum()), "male": int((t["sex"] == "M").sum()), "sites": t["site"].nunique()}
    rows.append(row)
    for k in ("N", "labelled", "age mean", "age sd", "female", "male", "sites"):
        rec.record(f"cohort.{name}.{k.replace(' ', '_')}", row[k])
summary = pd.DataFrame(rows).set_index("cohort").round(2)
summary

# %% [markdown]
# ## 2 Age distributions by site and sex
# `abide_like` is uneven by design (few children at 5-6 and young adults at 18-24,
# many at 9-12) and male-heavy, so that balancing by sex per 1-year bin keeps about
# 75 % of it, as in the TGB paper (862 of 1150).

# %%
fig = plots.age_histograms(cohorts)
rec.figure(fig, "age_histograms", "Age histograms per cohort, stacked by site (left) and by sex (right).")

# %%
from brainage_lib.data.cohort import balance_by_sex
from brainage_lib.papers.tgb import paper as tgb_paper  # the TGB paper's ABIDE numbers

if "abide_like" in cohorts:
    balanced = balance_by_sex(cohorts["abide_like"].table, seed=DATA_SEED)
    rec.record("cohort.abide_like.sex_balanced_N", len(balanced), paper=tgb_paper.N_BALANCED)
    rec.record("cohort.abide_like.sex_balanced_fraction", len(balanced) / len(cohorts["abide_like"]),
               paper=tgb_paper.N_BALANCED / tgb_paper.N_SUBJECTS)
    print(f"abide_like: {len(balanced)} of {len(cohorts['abide_like'])} kept after balancing sex per 1-year bin "
          f"({len(balanced) / len(cohorts['abide_like']):.1%}; paper: {tgb_paper.N_BALANCED} of {tgb_paper.N_SUBJECTS} "
          f"= {tgb_paper.N_BALANCED / tgb_paper.N_SUBJECTS:.1%})")

# %% [markdown]
# ## 3 Example images across the age range
# Axial slices from the youngest to the oldest subject of each cohort. In infants
# (`nihpd_like`, `mghbch_like`) the WM is darker than GM (unmyelinated); ventricles and
# sulci widen in old age (`lifespan_train`); clinical-grade images (`clinical_test`,
# `als_like`) are noisier and blurred across thick slices.

# %%
fig = plots.example_slices(cohorts)
rec.figure(fig, "example_slices", "Axial slices of subjects spread over each cohort's age range.")

# %% [markdown]
# ## 4 Ground truth: where the extra ageing acts
# Left: the effect map. The effect region (a parameter: a lobe box, a sphere, or a
# union) loses an extra share of its GM to CSF every year of biological age
# (`effect_rate`, applied after the tissue limits so none of it is clipped); the map is
# the region's weight times the template GM fraction, i.e. where that loss happens.
# Right: the expected change between the preset's two reference ages (e.g. 8 and 20
# years for `abide_like`): |minmax(old) − minmax(young)| of two noise-free population
# images (template anatomy, mean site contrast, no individual warp, bias or noise),
# in the units of the min-max normalised images the models see. The TGB notebook's
# difference maps are scored against both. Real cohorts have no ground truth.

# %%
fig = plots.ground_truth_maps(cohorts)
if fig is None:
    print("No cohort here has a ground_truth/ folder (real data): nothing to show.")
else:
    rec.figure(fig, "ground_truth_maps",
               "Simulator effect maps and expected age-related change (min-max normalised units) over the MNI152 template.")

# %% [markdown]
# ## 5 Is the effect visible in what a model sees?
# A known answer that the images cannot show is no known answer. So each simulated
# cohort's expected change is put on the TGB input grid (96^3) and asked: what share
# of it lies inside the effect region (effect map ≥ 0.5), against the region's share
# of the brain; and how well its top 10 % brain voxels overlap the effect map's top
# 10 % (Dice; chance 0.10; a region whose core holds fewer voxels compares that many), for
# the stored expected change and for the two reference
# images put through the input transform (oracle). For `abide_like` the same score is
# computed on the real images: |mean(age ≥ 18) − mean(age ≤ 9)| of the cached inputs.
#
# **What was chosen, and why.**
# - *The effect.* Extra GM loss to CSF of `effect_rate` × age × weight, applied after
#   the global tissue changes so that it is never clipped. `abide_like`: 1.5 %/y from
#   birth, so between 8 and 20 y the region thins about 2.5 times as fast as the cortex
#   as a whole (1 %/y, SPEC §1), at the steep end of the regional differences reported
#   for adolescence; weaker rates (1 %/y) leave the region's top-10 % Dice near 0.6 even
#   without noise. `nihpd_like`, `mghbch_like`: 1 %/y from birth. Adult presets: 0.5 %/y
#   from 25 y (the template's age), about twice the adult global thinning.
# - *`abide_like` images as the TGB paper describes them* (nonlinear registration to
#   MNI removed brain volume and geometric differences): no head-size jitter
#   (`head_scale_sd=0`; other presets 2 %); a smooth residual misalignment of 0.8 mm
#   on average (`deform_mm=1`, 0.5 mm sd per axis), under one voxel of the 1 mm images,
#   what nonlinear registration leaves at tissue boundaries; 17 sites, all 3T like ABIDE I's 17 scanners, each with
#   its own contrast (±0.01 per tissue intensity for vendor and sequence) but no
#   1.5T/3T mix, whose normalised GM difference (~0.13) is several times the whole
#   8→20 y change. Sites are drawn independently of age, so site and age are less
#   confounded than in ABIDE, where some sites scanned only children.
# - Regions much smaller than a lobe (GM filling fewer voxels than the top 10 % that
#   the Dice compares, e.g. the `occipital` and `motor` boxes) cannot reach a high
#   top-10 % Dice even when fully visible; their share inside the region still is.

# %%
from brainage_lib.simulation.visibility import (difference_visibility, ground_truth_maps, visibility_figure,
                                                visibility_scores)

tgb = get_transform("tgb")
volumes = {name: cached_array(c, tgb) for name, c in cohorts.items()}  # (N, 96, 96, 96), also used in section 6
panels, rows = {}, []
for name, c in cohorts.items():
    if c.ground_truth_dir is None:
        continue
    maps = ground_truth_maps(c.ground_truth_dir, tgb.size)
    s = visibility_scores(maps)
    panels[name] = (maps, s)
    rows.append({"cohort": name, **s})
    rec.record(f"visibility.{name}.share_inside", s["share_inside"])
    rec.record(f"visibility.{name}.region_fraction", s["region_fraction"])
    rec.record(f"visibility.{name}.dice_top10", s["dice_top"], note="chance 0.10")
    rec.record(f"visibility.{name}.oracle_dice_top10", s["oracle_dice_top"], note="chance 0.10")
if "abide_like" in panels:
    maps, c = panels["abide_like"][0], cohorts["abide_like"]
    real = difference_visibility(volumes["abide_like"], c.ages, maps["effect"], maps["mask"], young_max=9, old_min=18)
    rec.record("visibility.abide_like.real_dice_top10", real["dice_top"], note="chance 0.10",
               n_young=real["n_young"], n_old=real["n_old"])
    rows[list(panels).index("abide_like")]["real images"] = real["dice_top"]
if panels:
    fig = visibility_figure(panels)
    rec.figure(fig, "effect_visibility", "Expected change (min-max normalised units) on slices through the effect "
               "region (cyan outline), its share inside the region and its top-10 % Dice against the effect map.")
visibility = pd.DataFrame(rows).set_index("cohort").round(3) if rows else "No simulated cohort: nothing to score."
visibility

# %% [markdown]
# ## 6 Site contrast
# Median intensity in template WM over template GM, per subject, grouped by site
# (images resampled to 96^3 and min-max normalised as for TGB, read from the cache).

# %%
contrast = {name: baseline.tissue_contrast(c, volumes[name]) for name, c in cohorts.items()}
for name, df in contrast.items():
    per_site = df.groupby("site")["wm_gm_ratio"].median()
    rec.record(f"contrast.{name}.wm_gm_ratio_site_min", per_site.min())
    rec.record(f"contrast.{name}.wm_gm_ratio_site_max", per_site.max())
fig = plots.site_contrast(contrast)
rec.figure(fig, "site_contrast", "WM/GM median intensity ratio per site.")

# %% [markdown]
# ## 7 Is the age signal real but not trivial?
# A ridge regression on voxels down-sampled to `BASELINE_SHAPE`^3 (5-fold
# cross-validated) should beat predicting the training mean, and stay above the floor
# that the hidden brain-age gap sets: a model that recovered each subject's biological
# age exactly would still miss chronological age by mean |gap|.

# %%
rows = []
scatter = {}
for name, c in cohorts.items():
    lab = c.table["age"].notna().to_numpy()
    feats = baseline.downsample_features(volumes[name][lab], cfg.BASELINE_SHAPE)
    ages = c.ages[lab]
    if len(ages) < 10:
        print(f"{name}: only {len(ages)} labelled subjects; skipping the baseline.")
        continue
    res = baseline.ridge_age_baseline(feats, ages, seed=SEED)
    truth = c.ground_truth()
    floor = float(np.mean(np.abs(truth["gap"].to_numpy()[lab]))) if truth is not None else np.nan
    rows.append({"cohort": name, "N": len(ages), "MAE mean-prediction": res["mae_mean"], "MAE ridge": res["mae_ridge"],
                 "r ridge": res["r_ridge"], "gap floor (mean |gap|)": floor})
    for k, v in (("mae_mean", res["mae_mean"]), ("mae_ridge", res["mae_ridge"]), ("r_ridge", res["r_ridge"]), ("gap_floor", floor)):
        rec.record(f"baseline.{name}.{k}", v, unit="years" if k != "r_ridge" else None)
    scatter[name] = (ages, res["pred"])
baseline_table = pd.DataFrame(rows).set_index("cohort").round(3)
baseline_table

# %%
fig = plots.predicted_vs_true(scatter, title="Ridge baseline, out-of-fold predictions")
rec.figure(fig, "baseline_scatter", "Ridge baseline: out-of-fold predicted vs chronological age.")

# %% [markdown]
# ## What this shows
# Computed from the recorded numbers above.

# %%
lines = []
for name, r in baseline_table.iterrows():
    beats_mean = r["MAE ridge"] < 0.9 * r["MAE mean-prediction"]
    above_floor = np.isnan(r["gap floor (mean |gap|)"]) or r["MAE ridge"] > r["gap floor (mean |gap|)"]
    rec.record(f"check.{name}.ridge_beats_mean", bool(beats_mean))
    rec.record(f"check.{name}.ridge_above_gap_floor", bool(above_floor))
    verdict = "real but not trivial" if beats_mean and above_floor else (
        "TOO WEAK: the baseline does not beat the mean" if not beats_mean else "suspiciously easy: below the gap floor")
    lines.append(f"- **{name}**: ridge MAE {r['MAE ridge']:.2f} y vs mean-prediction {r['MAE mean-prediction']:.2f} y "
                 f"and gap floor {r['gap floor (mean |gap|)']:.2f} y: age signal {verdict}.")
for name, (_, s) in panels.items():
    lines.append(f"- **{name}** effect: {s['share_inside']:.0%} of the expected change lies in a region holding "
                 f"{s['region_fraction']:.0%} of the brain; top-10 % Dice {s['dice_top']:.2f} (chance 0.10)"
                 + (f", {real['dice_top']:.2f} on the real images" if name == "abide_like" else "") + ".")
display(Markdown("\n".join(lines) if lines else "No baseline was run."))
rec.record("wall_time_s", time.time() - t_start, unit="s")
print("results:", rec.finalize())

# %% [markdown]
# ## Using your own data
# Point `DATA_DIR` at a cohort folder:
#
# ```
# DATA_DIR/participants.tsv            participant_id  age  sex  site  [session group survival_months split]
# DATA_DIR/sub-<id>/anat/sub-<id>_T1w.nii.gz       (or sub-<id>/ses-<s>/anat/sub-<id>_ses-<s>_T1w.nii.gz)
# ```
#
# The images should be what the papers' pipelines produced: skull-stripped T1w volumes
# registered to MNI152 space. Check a folder first with `brainage validate DATA_DIR`;
# it lists every problem at once and never modifies the folder. Then run, e.g.,
# `make 00_cohorts DATA_DIR=/path/to/cohort` or set `DATA_DIR` in the parameters cell.
# A folder holding one sub-folder per preset name (`DATA_DIR/abide_like/`, ...) fills
# each role with a real cohort.
#
# ## References
# - Fonov V. et al. (2011) Unbiased average age-appropriate atlases for pediatric studies. NeuroImage 54:313-327 (MNI152 2009).
# - The three papers reproduced here: see `README.md` (TGB, DIFF, LSTM).
