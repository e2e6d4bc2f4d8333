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
# # 01 · TGB: a GAN with a task-guided branch for brain-age estimation
#
# Reproduces the TGB paper (`../shared/papers/000_*`, "GAN with a task-guided branch for
# brain age", ABIDE I+II, 3D MRI): a regressor **REG** trained on real images; **REG-GAN**,
# the same regressor trained on real images plus images synthesised by interpolating the
# latent space of an image-to-image WGAN-GP (eqs. 1-3, 6-7); and **REG-GAN-TGB**, where the
# GAN was trained jointly with an age regressor attached to the generator's output
# (eqs. 4-5), so that its latent space and its syntheses carry age.
#
# Shown: Table 1 (L1, MSE, MAE) beside the paper's, Wilcoxon signed-rank tests between
# every pair of methods, Fig. 2 (MSE per 1-year age group), Fig. 3 (real and synthesised
# slices at ages 8 and 20, and |mean(age 20) - mean(age 8)| maps), the MAE per age group
# of the paper's discussion, and, on simulated data, how well each difference map finds
# the region where the simulator made the cortex thin faster. Every claim is then judged from
# the recorded numbers, with the gates that decide whether a model learned and the paper's numbers
# beside this run's bootstrap intervals, once per model seed.
#
# **Parameters.** Core parameters first; every other entry left at None takes the profile's value from
# `notebooks/params/01_tgb.<PROFILE>.yaml`. Give a value here (or `-p NAME=value`) to override it.

# %% tags=["parameters"]
from typing import Optional

PROFILE: str = "quick"  # smoke | quick | paper | auto (paper with CUDA, else quick)
DATA_DIR: str = ""  # empty: the simulated abide_like cohort; else a cohort folder (or one holding abide_like/)
DATA_SEED: int = 0  # seeds the simulated cohort and its sex balancing, the same for every model seed
SEED: int = 0  # the first model seed: split, networks, batch order and synthesis
DEVICE: str = "auto"  # auto | cpu | cuda | cuda:1 ...
DEVICES: int = 1  # processes (GPUs) per training stage; above 1: DDP, the global batch unchanged
FORCE: bool = False  # retrain finished stages instead of loading their checkpoints
COMPILE: str = "auto"  # torch.compile the generators and regressors: auto (gpu-check decides; off on a CPU), on, off
OUTPUT_DIR: str = ""  # where results/, figures/, rendered/ go; empty: the project root
N_SUBJECTS: Optional[int] = None  # simulated subjects before sex balancing (0 means the preset's 1150)
SHAPE: Optional[int] = None  # simulation grid cube (0 means the 2 mm MNI grid, 99x117x95)
EFFECT_REGION: Optional[str] = None  # region of faster cortical thinning, e.g. "occipital" (profile null: the preset's)
SIZE: Optional[int] = None  # network input cube (paper: 96)
REG_WIDTH: Optional[float] = None  # multiplier on REG's channels 16-32-64-128-256 (paper: 1.0)
GAN_WIDTH: Optional[float] = None  # multiplier on the GAN's channels 64-128-256-512-512 (paper: 1.0)
GAN_OUTPUT: Optional[str] = None  # generator head after its 1x1x1 conv: linear (paper) | relu (authors' code)
GAN_EPOCHS: Optional[int] = None  # paper: 100
REG_EPOCHS: Optional[int] = None  # paper: 200
BATCH_SIZE: Optional[int] = None  # paper: 20
REG_LR: Optional[float] = None  # Adam learning rate of the regressors (paper: 1e-4)
GAN_LR: Optional[float] = None  # Adam learning rate of generator, critic and branch (paper: 1e-4)
LR_STEP: Optional[int] = None  # epochs between decays (paper: 10)
LR_GAMMA: Optional[float] = None  # decay factor (paper: 0.8)
N_CRITIC: Optional[int] = None  # 1: one joint update per batch, as the authors' trainer; k: k critic updates per generator update
ALPHA: Optional[float] = None  # L1 weight (paper: 10)
BETA: Optional[float] = None  # task-guided weight (paper: 0.1)
LAMBDA_GP: Optional[float] = None  # gradient-penalty weight (WGAN-GP: 10)
MIN_PER_BIN: Optional[int] = None  # synthesis fills every 1-year bin to this many (paper: 50)
N_DIFF: Optional[int] = None  # images per age in the difference maps (paper: 20)
TOP_PERCENT: Optional[float] = None  # top-k% voxels compared in the recovery Dice
N_PERM: Optional[int] = None  # age permutations of the null each difference map is tested against
ALLOW_UNREGISTERED: Optional[bool] = None  # train on DATA_DIR images that are not skull-stripped in MNI space
SEEDS: Optional[int] = None  # model seeds SEED, SEED+1, ... each trained on the same cohort; verdicts combined over them
DRY_RUN: Optional[bool] = None  # True: a rehearsal of the profile on a tiny cohort, 2 optimiser steps per training stage

# %%
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from torch.utils.data import ConcatDataset

from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import balance_by_sex
from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.space import check_input_space
from brainage_lib.data.splits import stratified_split
from brainage_lib.papers.tgb.transforms import TGBVolume
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.errors import BrainAgeError
from brainage_lib.inference.cards import cohort_space, fitted_bias_correction, save_model, transform_spec
from brainage_lib.metrics.scores import mae_by_group
from brainage_lib.metrics.stats import wilcoxon_p
from brainage_lib.metrics.verdicts import GATE_TEXT, mean_prediction_mae, reconstruction_share
from brainage_lib.papers.tgb.gan import GANConfig, TGBCritic, TGBGenerator
from brainage_lib.papers.tgb.regressor import RegressorConfig, TGBRegressor
from brainage_lib.papers import fidelity
from brainage_lib.papers.tgb import figures as tgb_plots
from brainage_lib.papers.tgb import magnitudes as mag
from brainage_lib.papers.tgb import regions
from brainage_lib.papers.tgb.claims import claims, gates
from brainage_lib.papers.tgb.deviations import DEVIATIONS
from brainage_lib.papers.tgb import paper as P  # the paper's numbers
from brainage_lib.papers.tgb.evaluation import GROUP_EDGES, error_summary, split_counts, table1_frame
from brainage_lib.papers.tgb.synthesis import bin_fill, load_synthetic, synthesise, synthesise_at_age
from brainage_lib.papers.tgb.training import GANTrainConfig, reconstruct, to_memory_format, train_gan
from brainage_lib.notebook import start
from brainage_lib.run.seeds import combine, mean_sd, run_other_seeds

# %%
NB = "01_tgb"
METHODS = ("REG", "REG-GAN", "REG-GAN-TGB")
GANS = ("REG-GAN", "REG-GAN-TGB")
cfg, engine, rec, t_start = start(NB, globals(), data=DATA_DIR or "simulated abide_like")  # profile, seeds, stages
device = engine.device
artefacts = cfg.checkpoint_dir  # stages/, models/ and synthetic/<method>/ sets

# %% [markdown]
# ## 1 Data
# The simulated `abide_like` cohort (ages 5-24, uneven: few at 5-6 and 18-24, many at
# 9-12, male-heavy) is generated on first use and read back through the cohort loader,
# as a real ABIDE folder given as `DATA_DIR` would be. As in the paper, the numbers of
# males and females are balanced in every 1-year age bin (the cohort and the balancing are
# drawn from `DATA_SEED`, the same for every model seed), then the subjects are split,
# stratified by age, in the paper's proportions (640/62/160 of 862), once per model seed
# (`SEED`); all three methods use this split. Images are resized to `SIZE`^3 and min-max normalised to
# [0, 1], cached once as a float16 memory map.
#
# **Simulated stand-in for ABIDE (`abide_like`).** The paper's images were brain-
# extracted, bias-corrected and nonlinearly registered to MNI, which removed brain-volume
# and geometric differences between subjects. So the simulator leaves no head-size
# variation (`head_scale_sd = 0`) and only a smooth residual misalignment of 0.8 mm on
# average, under one voxel of the 1 mm images.
#
# Its 17 sites are all 3T, like ABIDE I's 17 scanners. Each site has its own contrast, but
# 1.5T and 3T are never mixed: that mix would shift normalised GM by about 0.13, several
# times the whole 8→20 y change. Sites are drawn independently of age, so site and age are
# less confounded than in ABIDE.
#
# The effect to recover: the effect region (default `frontal`) loses an extra 1.5 % of its
# GM to CSF per year of biological age, so from 8 to 20 y it thins about 2.5 times as fast
# as the cortex as a whole. `effect_map.nii.gz` is that region's weight times the template
# GM fraction. `expected_change.nii.gz` is |minmax(reference_old) −
# minmax(reference_young)| of two noise-free population images at 8 and 20 y, in the same
# min-max units as the network inputs.
#
# `00_cohorts` measures how visible the effect is in these images (records `visibility.*`);
# section 4 below scores the oracle and the real-image map of this run against it.

# %%
sim = {"n": cfg.N_SUBJECTS or None, "seed": DATA_SEED, "shape": cfg.SHAPE or None, "effect_region": cfg.EFFECT_REGION}
cohort = open_cohort("abide_like", DATA_DIR, **sim)
check_input_space([cohort], "tgb", DATA_DIR, cfg.ALLOW_UNREGISTERED)  # real data: stop unless preprocessed
balanced = balance_by_sex(cohort.table, seed=DATA_SEED)
data = cohort.subset(cohort.table["participant_id"].isin(set(balanced["participant_id"])))
ages = data.ages
sizes = split_counts(len(data))
train_idx, val_idx, test_idx = stratified_split(ages, sizes, seed=SEED)
volumes = cached_array(data, TGBVolume(size=cfg.SIZE))  # (N, S, S, S) float16 memmap, rows = data.table rows
train_ds, val_ds, test_ds = (VolumeDataset(volumes, ages, idx) for idx in (train_idx, val_idx, test_idx))
rec.record("data.N", len(cohort), paper=P.N_SUBJECTS)
rec.record("data.N_balanced", len(data), paper=P.N_BALANCED)
for sex, name in (("M", "male"), ("F", "female")):
    rec.record(f"data.{name}", int((data.table["sex"] == sex).sum()), paper=P.N_PER_SEX)
for part, idx, paper in zip(("train", "val", "test"), (train_idx, val_idx, test_idx), P.SPLIT):
    rec.record(f"split.{part}", len(idx), paper=paper)
year = np.floor(ages).astype(int)
counts = pd.DataFrame({part: pd.Series(year[idx]).value_counts() for part, idx in
                       (("train", train_idx), ("val", val_idx), ("test", test_idx))}).fillna(0).astype(int).sort_index()
counts.index = [f"{y}-{y + 1}" for y in counts.index]
print(f"{len(cohort)} subjects -> {len(data)} after balancing sex per 1-year bin -> split {sizes} (paper: "
      f"{P.N_SUBJECTS} -> {P.N_BALANCED} -> {'/'.join(map(str, P.SPLIT))}); input {volumes.shape[1:]} ({volumes.dtype}).")
counts.T

# %% [markdown]
# ## 2 Models
# REG (sec. 2.2): five residual levels of two 3x3x3 conv + ReLU, max-pool, FC
# 2048-1024-64-1. GAN (sec. 2.1): an encoder of five 3x3x3 conv + ReLU levels (64-512
# channels) to a latent map and a decoder of transposed convolutions without skip
# connections, so a latent alone decodes, ending in the paper's 1x1x1 convolution (`GAN_OUTPUT`
# linear; the authors' code adds a ReLU: relu); the critic is the encoder plus a 1x1x1 conv.
# The task-guided branch is a second REG attached to the generator's output. A reduced
# profile scales only the channel widths (and the input size), through the parameters
# printed here.

# %%
reg_cfg = RegressorConfig(input_shape=(cfg.SIZE,) * 3, width=cfg.REG_WIDTH)
gan_cfg = GANConfig(width=cfg.GAN_WIDTH, alpha=cfg.ALPHA, beta=cfg.BETA, lambda_gp=cfg.LAMBDA_GP, output=cfg.GAN_OUTPUT)
reg_train = TrainConfig(epochs=cfg.REG_EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.REG_LR, lr_step=cfg.LR_STEP,
                        lr_gamma=cfg.LR_GAMMA, loss="mse", seed=SEED, max_steps=cfg.max_steps)
gan_train = GANTrainConfig(epochs=cfg.GAN_EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.GAN_LR, lr_step=cfg.LR_STEP,
                           lr_gamma=cfg.LR_GAMMA, n_critic=cfg.N_CRITIC, seed=SEED, max_steps=cfg.max_steps)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


with torch.device("meta"):  # shapes only, no memory: this run's networks and the paper's (default configs)
    shapes = {"REG (and the task-guided branch)": (TGBRegressor(reg_cfg), TGBRegressor()),
              "generator": (TGBGenerator(gan_cfg), TGBGenerator()), "critic": (TGBCritic(gan_cfg), TGBCritic())}
pd.DataFrame({"channels": [reg_cfg.level_channels, (gan_cfg.enc, gan_cfg.dec), gan_cfg.enc],
              "parameters": [n_params(ours) for ours, _ in shapes.values()],
              "paper-size parameters": [n_params(paper) for _, paper in shapes.values()]}, index=list(shapes))

# %% [markdown]
# ## 3 Training
# Paper protocol: GANs 100 epochs, regressors 200 epochs, batch 20, Adam 1e-4 multiplied
# by 0.8 every 10 epochs; REG's loss is L2. Each model keeps the weights of its best
# validation epoch (regressors: validation MAE; GANs: validation `alpha*L1 + beta*task`).
# The GAN step follows the authors' public trainer (`core/trainer_tf.py` of
# `ruizhe-l/tgb-gan`): for every batch, the critic, generator and branch gradients are
# computed from the same batch and one `G(x)` and applied together (`N_CRITIC` = 1 in
# every profile; a larger value switches to WGAN-GP's `N_CRITIC` critic updates per
# generator update). What the paper leaves open (Adam betas, initialisation, the checkpoint
# tested, precision) and how it is read here is listed once, in the table of deviations at the
# end. Each training is a stage: its checkpoint (`checkpoints/01_tgb/stages/`) holds the weights,
# optimisers and data order it resumes from. Each regressor is saved once more, as a model with its
# card, at the end.

# %%
def new_regressor(k: int) -> TGBRegressor:
    torch.manual_seed(SEED + k)
    return to_memory_format(TGBRegressor(reg_cfg), device, channels_last=True)



results = {"REG": train_regressor(new_regressor(0), train_ds, val_ds, reg_train, engine, desc="REG")}

# %% [markdown]
# ### GANs, synthesis, and regressors on the augmented sets
# For each GAN: train it (REG-GAN: eq. 3; REG-GAN-TGB: eq. 5, the branch trained jointly),
# then fill every 1-year bin of the training set to at least `MIN_PER_BIN` images by
# eqs. 6-7 (a younger and an older training image within 1 year of a target age,
# `eps ~ U(0, 1)`, the label interpolated with the same `eps`). Both GANs get the same
# planned pairs and `eps`, so only the generator differs. The set is written to
# `checkpoints/01_tgb/synthetic/<method>/` (images.npy + pairs.tsv), read back from disk and
# used with the real training images to train a fresh REG. Each GAN is a training stage of the
# engine (resumed or loaded as the REG stages are), and its set is reused as long as the stage's
# identity (parameters, data, code) is the same.

# %%
train_images = np.asarray(volumes[train_idx])  # (N_train, S, S, S) float16
train_ids = data.table["participant_id"].iloc[train_idx].tolist()
gans, synth, fills = {}, {}, {}
for k, method in enumerate(GANS):
    torch.manual_seed(SEED + 10 + k)
    branch = TGBRegressor(reg_cfg) if method == "REG-GAN-TGB" else None
    gans[method] = g = train_gan(TGBGenerator(gan_cfg), TGBCritic(gan_cfg), train_ds, gan_train, engine,
                                 regressor=branch, val=val_ds, desc=method)
    saved = synthesise(g.generator, train_images, ages[train_idx], artefacts / "synthetic" / method, device,
                       min_per_bin=cfg.MIN_PER_BIN, seed=SEED, ids=train_ids, stage_key=None if FORCE else g.stage_key)
    synth[method] = load_synthetic(saved.root)
    fills[method] = bin_fill(ages[train_idx], synth[method].ages, cfg.MIN_PER_BIN)
    augmented = ConcatDataset([train_ds, VolumeDataset(synth[method].images, synth[method].ages)])
    results[method] = train_regressor(new_regressor(1 + k), augmented, val_ds, reg_train, engine, desc=f"REG on {method}")
    rec.record(f"synthesis.{method}.n_synthetic", len(synth[method]), paper=P.N_SYNTHETIC)
    rec.record(f"synthesis.{method}.n_training_total", len(train_idx) + len(synth[method]), paper=P.N_TRAINING_TOTAL)
    rec.record(f"synthesis.{method}.bins_below_min", int((~fills[method]["filled"]).sum()), paper=P.BINS_BELOW_MIN)
    rec.record(f"training.{method}.gan_best_epoch", g.best_epoch)
    rec.record(f"training.{method}.gan_wall_time_s", g.wall_time_s, unit="s")
for m in METHODS:
    rec.record(f"training.{m}.reg_best_epoch", results[m].best_epoch)
    rec.record(f"training.{m}.reg_wall_time_s", results[m].wall_time_s, unit="s")
short = {m: f["bin"][~f["filled"]].tolist() for m, f in fills.items() if (~f["filled"]).any()}
print("Every 1-year bin reached the minimum." if not short else
      f"Bins no training pair within 1 year can reach (left short): {short}")
pd.concat({m: f.set_index("bin")[["real", "synthetic", "total"]] for m, f in fills.items()}, axis=1).T

# %% [markdown]
# ## 4 Evaluation
# ### Table 1: L1 reconstruction error, MSE and MAE over the test subjects (mean ± sd)
# L1 is `mean |x - G(x)|` per test image (eq. 2); MSE and MAE are over test subjects.
#
# **Gates.** Whether a regressor learned age is decided where it should have: on the
# validation subjects, held out from its training distribution (MAE below 0.8 x that of
# predicting their own mean age). Whether a generator learned to reconstruct: for at least
# 90 % of the test images, its reconstruction is closer (L1) to that image than to the median
# other test image; a generator ignoring its input (a mean image) manages about half. A claim
# naming a model that fails its gate is not testable; the gates are tabled with their numbers
# before the verdicts.

# %%
test_age, val_age = ages[test_idx], ages[val_idx]
preds = {m: results[m].predict(test_ds, device) for m in METHODS}
val_preds = {m: results[m].predict(val_ds, device) for m in METHODS}
abs_err = {m: np.abs(preds[m] - test_age) for m in METHODS}
test_images = np.asarray(volumes[test_idx])
for m in METHODS:
    summary = error_summary(preds[m], test_age)
    for metric in ("mse", "mae"):
        for i, stat in enumerate(("mean", "sd")):
            rec.record(f"table1.{m}.{metric}_{stat}", summary[f"{metric}_{stat}"], paper=P.PAPER_TABLE1[m][metric][i],
                       unit="years²" if metric == "mse" else "years")
l1, shares = {}, {}
for m in GANS:
    test_recon = reconstruct(gans[m].generator, test_images, device)  # (N_test, S, S, S) float32
    l1[m] = np.abs(test_recon - test_images.astype(np.float32)).reshape(len(test_images), -1).mean(1)
    shares[m] = reconstruction_share(test_images, test_recon)
    rec.record(f"table1.{m}.l1_mean", l1[m].mean(), paper=P.PAPER_TABLE1[m]["l1"][0])
    rec.record(f"table1.{m}.l1_sd", l1[m].std(ddof=1), paper=P.PAPER_TABLE1[m]["l1"][1])
    rec.record(f"reconstruction.{m}.share", shares[m], note="share of test images whose reconstruction is closer (L1) "
               "to its own input than to the median other test image")
del test_recon
mean_mae = rec.record("baseline.mean_prediction.mae", mean_prediction_mae(test_age), unit="years")
mean_l1 = rec.record("baseline.mean_image.l1", np.abs(test_images - train_images.mean(0, dtype=np.float32)).mean())
val_ref = rec.record("baseline.validation_mean_prediction.mae", mean_prediction_mae(val_age), unit="years")
for m in METHODS:
    rec.record(f"validation.{m}.mae", np.abs(val_preds[m] - val_age).mean(), unit="years")
display(Markdown(
    f"Profile **{cfg.profile}**, data **{rec.doc['data']}**, {len(test_idx)} test subjects (paper: {P.SPLIT[2]}). "
    f"Validation ({len(val_idx)} subjects): predicting their own mean age gives MAE {val_ref:.2f} y; "
    + ", ".join(f"{m} {rec.get(f'validation.{m}.mae'):.2f} y" for m in METHODS)
    + f" (learned: below {0.8 * val_ref:.2f} y). Test images: reconstructions closer to their own input than to the "
    "median other image for " + ", ".join(f"{m} {100 * shares[m]:.0f} %" for m in GANS)
    + " (needs 90 %); mean test L1 " + ", ".join(f"{m} {l1[m].mean():.4f}" for m in GANS)
    + f", of the mean training image {mean_l1:.4f}; predicting the test subjects' own mean age gives MAE "
    f"{mean_mae:.2f} y."))
table1_frame(rec.doc["records"])

# %% [markdown]
# ### Saved models
# Each regressor is saved with a model card (paper, profile, training data and its grid,
# input transform, test MAE, and an age-bias correction fitted on the validation subjects,
# who were used to select the epoch but never to fit weights) to
# `checkpoints/01_tgb/models/<method>.model.pt`; `brainage predict --model <file> DIR` applies it
# to a cohort preprocessed as the training data were.

# %%
space = cohort_space(data)
for m in METHODS:
    bc = fitted_bias_correction(val_preds[m], val_age, "the validation subjects")
    training = {"config": asdict(reg_train), "best_epoch": results[m].best_epoch + 1,
                "gan": {"config": asdict(gan_train), "best_epoch": gans[m].best_epoch + 1} if m in gans else None}
    print(save_model(cfg, rec, m, results[m].model, architecture="TGBRegressor", config=asdict(reg_cfg),
                     transform=transform_spec(TGBVolume(size=cfg.SIZE)), inputs="volume", space=space,
                     test_mae=rec.get(f"table1.{m}.mae_mean"), target_mean=results[m].target_mean,
                     target_sd=results[m].target_sd, bias_correction=bc, training=training))

# %% [markdown]
# ### Wilcoxon signed-rank tests between methods
# Paired over the test subjects, on absolute errors (and on squared errors). The paper
# reports REG-GAN-TGB better than both others with p < 0.01.

# %%
rows = []
for a, b in (("REG", "REG-GAN"), ("REG", "REG-GAN-TGB"), ("REG-GAN", "REG-GAN-TGB")):
    p_abs, p_sq = wilcoxon_p(abs_err[a], abs_err[b]), wilcoxon_p(abs_err[a] ** 2, abs_err[b] ** 2)
    paper = P.WILCOXON_P if b == "REG-GAN-TGB" else None
    rec.record(f"wilcoxon.{a}_vs_{b}.p", p_abs, paper=paper)
    rec.record(f"wilcoxon.{a}_vs_{b}.p_squared_error", p_sq, paper=paper)
    rec.record(f"wilcoxon.{a}_vs_{b}.median_abs_error_difference", float(np.median(abs_err[b] - abs_err[a])), unit="years")
    rows.append({"pair": f"{a} vs {b}", "p (|error|)": p_abs, "p (error²)": p_sq, "paper": paper or "not reported",
                 "median |e_b| - |e_a| (years)": np.median(abs_err[b] - abs_err[a])})
pd.DataFrame(rows).set_index("pair")

# %% [markdown]
# ### MAE per age group
# The paper's discussion gives REG-GAN-TGB's MAE for the groups 6-10, 11-15 and 16-22
# (read as [6, 11), [11, 16), [16, 23) years); shown here for all three methods, beside
# predicting the training mean age for everyone. That constant errs most at the oldest,
# farthest ages, and so does any model that regresses towards the mean: its errors are a
# straight line in age. The second table takes the straight line fitted to each model's
# errors out first; what stays is the error that regression to the mean does not explain.

# %%
group_rows = {}
for m in METHODS:
    g = mae_by_group(test_age, abs_err[m], GROUP_EDGES, labels=tuple(P.PAPER_GROUP_MAE), include_all=False)
    for _, row in g.iterrows():
        rec.record(f"group_mae.{m}.{row['group']}", row["mae"], paper=P.PAPER_GROUP_MAE[row["group"]] if m == "REG-GAN-TGB" else None,
                   unit="years")
    group_rows[m] = g.set_index("group")["mae"]
group_table = pd.DataFrame(group_rows).T
constant = mae_by_group(test_age, np.abs(ages[train_idx].mean() - test_age), GROUP_EDGES, labels=tuple(P.PAPER_GROUP_MAE),
                        include_all=False)
group_table.loc["training mean age (constant)"] = constant.set_index("group")["mae"]
group_table.loc["REG-GAN-TGB (paper)"] = pd.Series(P.PAPER_GROUP_MAE)
detrended = {}
for m in METHODS:
    detrended[m] = mag.detrended_group_mae(test_age, preds[m])
    for grp, v in detrended[m].items():
        rec.record(f"group_mae_detrended.{m}.{grp}", v, unit="years")
names = {grp: f"{grp} (n = {n} test)" for grp, n in zip(g["group"], g["n"])}
display(group_table.rename(columns=names).round(2))
pd.DataFrame(detrended).T.rename(columns=names).round(2).rename_axis("errors' linear age trend taken out")

# %% [markdown]
# ### Difference maps and region recovery
# As in Fig. 3: the `N_DIFF` training images closest to age 8 and to age 20, averaged,
# and `|mean(age 20) - mean(age 8)|`: for the real images, and for their reconstructions
# `G(x)` by each GAN. A map's strength is its 99th percentile over brain voxels (the
# paper quotes a maximum, which one noisy voxel decides). On simulated data each map is
# scored against the simulator's effect map (`ground_truth/effect_map.nii.gz`, resized to
# the input grid as the images were): Pearson r over brain voxels, and the Dice overlap
# of the top `TOP_PERCENT` % voxels of each map, or as many as the effect region's core holds
# when that is fewer (chance: that share of the brain, printed). Two controls:
# the **oracle**, the same difference of the simulator's noise-free images at ages 8 and
# 20 through the input transform (what a perfect method could find), and an
# **age-permutation null** for every other map: the map rebuilt `N_PERM` times with the
# training ages shuffled; p is the share of shuffled maps scoring at least as well.

# %%
train_age = ages[train_idx]
young = regions.nearest_age_indices(train_age, regions.YOUNG_AGE, cfg.N_DIFF)
old = regions.nearest_age_indices(train_age, regions.OLD_AGE, cfg.N_DIFF)
rec.record("diffmap.age8_group_mean_age", train_age[young].mean(), paper=P.DIFFMAP_AGES["age8"], unit="years")
rec.record("diffmap.age20_group_mean_age", train_age[old].mean(), paper=P.DIFFMAP_AGES["age20"], unit="years")
image_sets = {"real": train_images.astype(np.float32)}  # (N_train, S, S, S): real images and their reconstructions
image_sets.update({m: reconstruct(gans[m].generator, train_images, device).astype(np.float16) for m in GANS})
diff = {src: regions.mean_difference_map(imgs[young], imgs[old]) for src, imgs in image_sets.items()}
refs = regions.reference_maps(data.ground_truth_dir, TGBVolume(size=cfg.SIZE))
brain = refs["mask"] if refs is not None else image_sets["real"].mean(0) > 0.1
for src, d in diff.items():
    rec.record(f"diffmap.{src}.max", float(d.max()), paper=P.PAPER_DIFF_MAX.get(src))
    rec.record(f"diffmap.{src}.p{regions.STRENGTH_PERCENTILE:g}", regions.robust_strength(d, brain))
if refs is None:
    print("No ground_truth/ folder in this cohort (real data): region recovery cannot be scored and is skipped.")
    recovery = pd.DataFrame()
else:
    recovery = regions.score_maps(image_sets, train_age, refs, cfg.N_DIFF, cfg.TOP_PERCENT, cfg.N_PERM, seed=SEED)
    for src, row in recovery.iterrows():
        for stat in ("pearson_r", "dice_top", "p_dice", "p_r", "null_dice_95"):
            rec.record(f"recovery.{src}.effect.{stat}", row[stat])
    rec.record("recovery.chance_dice", float(recovery["chance"].iloc[0]))
    if "oracle" in refs:
        diff["oracle"] = refs["oracle"]
ratio_magnitude = mag.diffmap_ratio_magnitude(image_sets["REG-GAN-TGB"], image_sets["REG-GAN"], young, old, brain,
                                              seed=SEED)
del image_sets
recovery.round(3)

# %% [markdown]
# ### The paper's numbers beside this run's 95 % intervals
# Each number a claim rests on, with the paper's value (or difference, or ratio) beside this
# run's 95 % bootstrap interval: MAE and MSE differences resample the test subjects (the same
# ones for both methods), the two L1 values the test images, the ratio of the two difference
# maps the subjects of each Fig. 3 age group (the same ones for both generators; the interval is
# recentred on the estimate, see `papers/tgb/magnitudes.py`). In the paper profile a claim is
# reproduced only when every paper number lies inside its interval; a reduced profile (smaller
# networks and cohorts) can show the direction only.

# %%
magnitudes = {**mag.table1_magnitudes(test_age, preds, l1, seed=SEED),
              **mag.group_magnitudes(test_age, preds["REG-GAN-TGB"], seed=SEED),
              "tgb_stronger_diffmap.ratio": ratio_magnitude}
mag.record_magnitudes(rec, magnitudes)
pd.DataFrame([{"claim": k.split(".")[0], "quantity": m.quantity, "paper": m.paper, "this run": m.value,
               "95 % low": m.low, "95 % high": m.high, "paper inside": m.inside} for k, m in magnitudes.items()]
             ).set_index(["claim", "quantity"]).round(4)

# %% [markdown]
# ## 5 Figures
# ### Fig. 2: MSE per 1-year age group (mean ± sd over test subjects), real train/test counts as bars

# %%
fig = tgb_plots.fig2_mse_by_age(test_age, preds, train_age)
rec.figure(fig, "fig2_mse_by_age",
           "MSE of age estimation per 1-year group for REG (black), REG-GAN (blue), REG-GAN-TGB (red); "
           "bars: real training (grey) and test (pink) images.")

# %% [markdown]
# ### Fig. 3: real and synthesised images at ages 8 and 20, and the difference maps
# Synthesised images are eq. 6 interpolations of a training pair straddling the age
# (within 1 year), with `eps` chosen so that eq. 7 gives exactly 8 or 20. Slices at
# 50/96 of each axis, as the paper's slice 50.

# %%
examples = {"real": {a: train_images[regions.nearest_age_indices(train_age, a, 1)[0]].astype(np.float32) for a in (8.0, 20.0)}}
for m in GANS:
    examples[m] = {}
    for a in (8.0, 20.0):
        try:
            examples[m][a] = synthesise_at_age(gans[m].generator, train_images, train_age, a, 1, device, seed=SEED)[0][0]
        except BrainAgeError as exc:
            print(f"{m}, age {a:g}: {exc} Showing the reconstruction of the nearest real image instead.")
            examples[m][a] = reconstruct(gans[m].generator, examples["real"][a][None], device)[0]
fig = tgb_plots.fig3_slices_and_maps(examples, diff, None if refs is None else refs["effect"])
rec.figure(fig, "fig3_slices_and_maps",
           "Real and synthesised images at ages 8 and 20 (axial and sagittal), |mean(age 20) - mean(age 8)| "
           f"over {cfg.N_DIFF} real/reconstructed images each, and the simulator's effect map.")

# %% [markdown]
# ### Training curves and the synthesised sets

# %%
fig = tgb_plots.gan_history({m: gans[m].history for m in GANS})
rec.figure(fig, "gan_training",
           "GAN training: L1, task loss, critic's Wasserstein estimate and validation objective per epoch.")
fig = tgb_plots.synthesis_fill(fills, cfg.MIN_PER_BIN)
rec.figure(fig, "synthesis_fill", "Real and synthesised training images per 1-year bin for each GAN.")

# %% [markdown]
# ## 6 What reproduced and what did not
# ### Gates
# Which model passed which gate, with the numbers that decided it. A claim naming a model
# that failed is *not testable*, with that reason; the region claim also needs the real
# images to show the simulated region beyond their age-permutation null.

# %%
for gate in gates(rec.doc["records"]):
    rec.gate(gate)
display(Markdown(GATE_TEXT))
rec.gates()

# %% [markdown]
# ### Claims
# Each claim of the paper, judged from the numbers recorded above by the rule stated with
# it, and its paper numbers beside this run's intervals: **reproduced** (the rule holds and,
# in the paper profile, every paper number lies inside its interval), **direction only**
# (the rule holds, but a paper number lies outside or the profile is reduced), **not
# reproduced**, or **not testable** (with the reason). Checks against the simulator's truth
# are marked passed/failed.

# %%
lines = rec.record_claims(claims(rec.doc["records"], rec.doc["data"]))
display(Markdown(f"Profile **{cfg.profile}** on **{rec.doc['data']}**, model seed {SEED}:\n\n" + "\n".join(lines)))
test_ids = data.table["participant_id"].iloc[test_idx].to_numpy()
rec.save_predictions(pd.DataFrame({"evaluation": "test", "participant_id": test_ids, "age": test_age,
                                   **{m: preds[m] for m in METHODS}}))
_ = rec.record("wall_time_s", time.time() - t_start, unit="s")

# %% [markdown]
# ### Model seeds
# With `SEEDS` > 1 the notebook runs again, headless, once per further model seed (`SEED+1`,
# ...: a new split, initialisation, batch order and synthesis on the same cohort) into
# `seeds/seed-<s>/`. Each claim's reported verdict is the one shared by at least 80 % of the
# seeds, else **unstable**; every number with a paper value is shown as mean ± sd over the seeds.

# %%
others = run_other_seeds(cfg)
per_seed = combine(rec, others)
display(per_seed)
if others:
    display(Markdown("Table 1 over the model seeds (mean ± sd of each seed's value):"))
    display(table1_frame(rec.doc["records"], over_seeds=True))
    display(pd.DataFrame([{"quantity": k, "paper": e["paper"], f"this run ({len(others) + 1} seeds)": mean_sd(e)}
                          for k, e in rec.doc["records"].items()
                          if "paper" in e and "seeds_mean" in e and not k.startswith(("claims.", "table1."))]
                         ).set_index("quantity"))
rec.claims()[["key", "kind", "verdict", "seeds", "reason"]].set_index("key")

# %% [markdown]
# ## 7 Deviations from the paper
# Every place where this notebook's paper profile differs from the paper, or reads what the
# paper leaves open (the reduced profiles' own settings are in the banner at the top).

# %%
fidelity.record(rec, DEVIATIONS)
display(Markdown(fidelity.markdown(DEVIATIONS)))
print("results:", rec.finalize())

# %% [markdown]
# ## References
# - TGB paper: "GAN with a task-guided branch for brain age estimation" (ABIDE I+II, 3D MRI), full text in
#   `../shared/papers/000_ef1136763654116b.txt`.
# - Gulrajani I. et al. (2017) Improved training of Wasserstein GANs. NeurIPS (WGAN-GP, the adversarial loss).
# - Isola P. et al. (2017) Image-to-image translation with conditional adversarial networks. CVPR (the GAN design).
# - Di Martino A. et al. (2014, 2017) The Autism Brain Imaging Data Exchange I and II. Mol Psychiatry; Sci Data.
# - Fonov V. et al. (2011) Unbiased average age-appropriate atlases for pediatric studies. NeuroImage 54:313-327.
