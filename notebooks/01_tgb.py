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
N_SUBJECTS: Optional[int] = None  # simulated subjects before sex balancing (0 means the preset's, as many as the paper's)
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

import numpy as np

from brainage_lib.papers.tgb import notebook as tgb  # the wing: its parts and the shared ones it uses

NB = "01_tgb"
cfg, engine, rec, t_start = tgb.start(NB, globals(), data=DATA_DIR or "simulated abide_like")  # profile, seeds, stages
device = engine.device

# %% [markdown]
# ## 1 Data
# The simulated `abide_like` cohort (ages 5-24, uneven: few at 5-6 and 18-24, many at
# 9-12, male-heavy) is generated on first use and read back through the cohort loader,
# as a real ABIDE folder given as `DATA_DIR` would be. As in the paper, the numbers of
# males and females are balanced in every 1-year age bin (the cohort and the balancing are
# drawn from `DATA_SEED`, the same for every model seed), then the subjects are split,
# stratified by age, in the paper's proportions (its sizes are printed below), once per model seed
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
d = tgb.open_data(DATA_DIR, DATA_SEED, SEED, cfg)  # cohort, sex balancing, split and cached inputs
tgb.record_data(rec, d)  # subjects per 1-year bin and part

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
c = tgb.configs(cfg, SEED)  # networks (c.reg, c.gan) and trainings (c.reg_train, c.gan_train)
tgb.network_sizes(c)

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
results = {"REG": tgb.train_regressor(tgb.new_regressor(c, SEED, 0, device), d.train_ds, d.val_ds, c.reg_train,
                                     engine, desc="REG")}

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
train_images = np.asarray(d.volumes[d.train_idx])  # (N_train, S, S, S) float16
gans, synth, fills = {}, {}, {}
for k, method in enumerate(tgb.GANS):
    gans[method] = tgb.gan_of(method, k, c, d, engine, SEED)  # eq. 3 (REG-GAN) or eq. 5 (REG-GAN-TGB)
    synth[method], fills[method] = tgb.synthetic_set(method, gans[method], train_images, d, cfg, SEED, FORCE, device)
    results[method] = tgb.train_regressor(tgb.new_regressor(c, SEED, 1 + k, device), tgb.augmented(d, synth[method]),
                                          d.val_ds, c.reg_train, engine, desc=f"REG on {method}")
    tgb.record_gan(rec, method, gans[method], synth[method], fills[method], len(d.train_idx))
tgb.record_training(rec, results, fills)

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
ev = tgb.table1(rec, cfg, results, gans, d, train_images, device)  # predictions, L1 and the gates' numbers
tgb.table1_frame(rec.doc["records"])

# %% [markdown]
# ### Saved models
# Each regressor is saved with a model card (paper, profile, training data and its grid,
# input transform, test MAE, and an age-bias correction fitted on the validation subjects,
# who were used to select the epoch but never to fit weights) to
# `checkpoints/01_tgb/models/<method>.model.pt`; `brainage predict --model <file> DIR` applies it
# to a cohort preprocessed as the training data were.

# %%
tgb.save_models(cfg, rec, results, gans, c, ev, d)

# %% [markdown]
# ### Wilcoxon signed-rank tests between methods
# Paired over the test subjects, on absolute errors (and on squared errors). The paper
# reports REG-GAN-TGB better than both others with p < 0.01.

# %%
tgb.wilcoxon(rec, ev.abs_err)

# %% [markdown]
# ### MAE per age group
# The paper's discussion gives REG-GAN-TGB's MAE for the groups 6-10, 11-15 and 16-22
# (read as [6, 11), [11, 16), [16, 23) years); shown here for all three methods, beside
# predicting the training mean age for everyone. That constant errs most at the oldest,
# farthest ages, and so does any model that regresses towards the mean: its errors are a
# straight line in age. The second table takes the straight line fitted to each model's
# errors out first; what stays is the error that regression to the mean does not explain.

# %%
tgb.group_mae(rec, ev, d)

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
maps = tgb.difference_maps(rec, cfg, gans, train_images, d, device, SEED)
maps.recovery.round(3)

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
tgb.magnitudes(rec, ev, maps, SEED)

# %% [markdown]
# ## 5 Figures
# ### Fig. 2: MSE per 1-year age group (mean ± sd over test subjects), real train/test counts as bars

# %%
fig = tgb.figures.fig2_mse_by_age(ev.test_age, ev.preds, d.train_age)
rec.figure(fig, "fig2_mse_by_age",
           "MSE of age estimation per 1-year group for REG (black), REG-GAN (blue), REG-GAN-TGB (red); "
           "bars: real training (grey) and test (pink) images.")

# %% [markdown]
# ### Fig. 3: real and synthesised images at ages 8 and 20, and the difference maps
# Synthesised images are eq. 6 interpolations of a training pair straddling the age
# (within 1 year), with `eps` chosen so that eq. 7 gives exactly 8 or 20. Slices at
# 50/96 of each axis, as the paper's slice 50.

# %%
examples = tgb.fig3_examples(gans, train_images, d.train_age, device, SEED)
fig = tgb.figures.fig3_slices_and_maps(examples, maps.diff, None if maps.refs is None else maps.refs["effect"])
rec.figure(fig, "fig3_slices_and_maps",
           "Real and synthesised images at ages 8 and 20 (axial and sagittal), |mean(age 20) - mean(age 8)| "
           f"over {cfg.N_DIFF} real/reconstructed images each, and the simulator's effect map.")

# %% [markdown]
# ### Training curves and the synthesised sets

# %%
fig = tgb.figures.gan_history({m: gans[m].history for m in tgb.GANS})
rec.figure(fig, "gan_training",
           "GAN training: L1, task loss, critic's Wasserstein estimate and validation objective per epoch.")
fig = tgb.figures.synthesis_fill(fills, cfg.MIN_PER_BIN)
rec.figure(fig, "synthesis_fill", "Real and synthesised training images per 1-year bin for each GAN.")

# %% [markdown]
# ## 6 What reproduced and what did not
# ### Gates
# Which model passed which gate, with the numbers that decided it. A claim naming a model
# that failed is *not testable*, with that reason; the region claim also needs the real
# images to show the simulated region beyond their age-permutation null.

# %%
tgb.record_gates(rec)

# %% [markdown]
# ### Claims
# Each claim of the paper, judged from the numbers recorded above by the rule stated with
# it, and its paper numbers beside this run's intervals: **reproduced** (the rule holds and,
# in the paper profile, every paper number lies inside its interval), **direction only**
# (the rule holds, but a paper number lies outside or the profile is reduced), **not
# reproduced**, or **not testable** (with the reason). Checks against the simulator's truth
# are marked passed/failed.

# %%
tgb.judge_claims(rec, cfg, SEED, d, ev)
_ = rec.record("wall_time_s", time.time() - t_start, unit="s")

# %% [markdown]
# ### Model seeds
# With `SEEDS` > 1 the notebook runs again, headless, once per further model seed (`SEED+1`,
# ...: a new split, initialisation, batch order and synthesis on the same cohort) into
# `seeds/seed-<s>/`. Each claim's reported verdict is the one shared by at least 80 % of the
# seeds, else **unstable**; every number with a paper value is shown as mean ± sd over the seeds.

# %%
tgb.over_seeds(cfg, rec)

# %% [markdown]
# ## 7 Deviations from the paper
# Every place where this notebook's paper profile differs from the paper, or reads what the
# paper leaves open (the reduced profiles' own settings are in the banner at the top).

# %%
tgb.deviations(rec)
print("results:", rec.finalize())

# %% [markdown]
# ## References
# - TGB paper: "GAN with a task-guided branch for brain age estimation" (ABIDE I+II, 3D MRI), full text in
#   `../shared/papers/000_ef1136763654116b.txt`.
# - Gulrajani I. et al. (2017) Improved training of Wasserstein GANs. NeurIPS (WGAN-GP, the adversarial loss).
# - Isola P. et al. (2017) Image-to-image translation with conditional adversarial networks. CVPR (the GAN design).
# - Di Martino A. et al. (2014, 2017) The Autism Brain Imaging Data Exchange I and II. Mol Psychiatry; Sci Data.
# - Fonov V. et al. (2011) Unbiased average age-appropriate atlases for pediatric studies. NeuroImage 54:313-327.
