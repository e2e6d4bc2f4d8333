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
# # 02 · DIFF: a semi-supervised diffusion autoencoder for brain age
#
# Ijishakin A., Martin S., Townend F., Agosta F., Spinelli E. G., Basaia S., Schito P.,
# Falzone Y., Filippi M., Cole J., Malaspina A. *Semi-Supervised Diffusion Model for Brain
# Age Prediction* (`../shared/papers/001_*`).
#
# A diffusion autoencoder (semantic encoder → `z_sem` ∈ R^512, a noise-predicting U-Net
# conditioned on `z_sem` at every timestep, an age MLP on `z_sem`) is trained on 2D
# mid-axial T1w slices, partly unlabelled, and compared with DenseNet121, a
# DeepBrainNet-style CNN and a brainageR-style Gaussian process on a clinical-grade test
# set (Table 1) and on the brain-PADs of ALS patients (Table 1 survival row, Table 2,
# Fig. 2). Decoded latent interpolations (Fig. 3) and reconstructions (Fig. 4) are real
# model outputs: deterministic DDIM encoding to `x_T` and decoding from `(x_T, z_sem)`.
#
# **Simulated data and the signs the simulator chooses.** The simulator shortens ALS
# survival with the hidden brain-age gap and with disease severity (its survival model is
# printed in section 4 from `ground_truth/simulation.json`, beside the correlation of the
# true gap with survival), and draws the ALS patients' gaps with a positive mean. A
# brain-PAD that captures the gap should then correlate **negatively** with survival and
# have a positive mean here, whereas the paper reports a **positive** correlation and a
# **negative** mean on its patients (Tables 1-2). On simulated data those two claims are therefore not testable; checks of the
# simulator's own signs stand beside them in the closing cell.
#
# **Parameters.** Core parameters first; every other entry left at None takes the profile's value from
# `notebooks/params/02_diff.<PROFILE>.yaml`. Give a value here (or `-p NAME=value`) to override it.

# %% tags=["parameters"]
from typing import Optional

PROFILE: str = "quick"  # smoke | quick | paper | auto (paper with CUDA, else quick)
DATA_DIR: str = ""  # empty: simulated; a folder with lifespan_train/, clinical_test/, als_like/; or one cohort folder
DATA_SEED: int = 0  # seeds the simulated cohorts, the same for every model seed
SEED: int = 0  # the first model seed: splits, weights, noise and batch order
DEVICE: str = "auto"  # auto | cpu | cuda
DEVICES: int = 1  # processes (GPUs) per training stage; above 1: DDP, the global batch unchanged
FORCE: bool = False  # retrain finished stages instead of loading their checkpoints
COMPILE: str = "auto"  # torch.compile the generators and regressors: auto (gpu-check decides; off on a CPU), on, off
OUTPUT_DIR: str = ""  # where results/, figures/, rendered/ go; empty: the project root
N_TRAIN: Optional[int] = None  # lifespan_train subjects, unlabelled share included (0: the preset size, 4600)
N_TEST: Optional[int] = None  # clinical_test subjects (0: 470)
N_ALS: Optional[int] = None  # als_like patients (0: the preset size, the paper's)
SHAPE: Optional[int] = None  # cubic simulation grid (0: the 2 mm MNI grid, 99x117x95)
SLICE_SIZE: Optional[int] = None  # side of the mid-axial slice (paper: 128)
VAL_FRACTION: Optional[float] = None  # labelled lifespan_train share for model selection
HELDOUT_FRACTION: Optional[float] = None  # labelled lifespan_train share held out to fit the age-bias correction
CHANNELS: Optional[str] = None  # U-Net level widths (paper: "32,32,64,96,128")
NUM_RES_BLOCKS: Optional[int] = None  # residual blocks per level (paper: 3 conv layers per level)
NORM_GROUPS: Optional[int] = None  # GroupNorm groups (divides every width)
MID_ATTENTION_BLOCKS: Optional[int] = None  # self-attention blocks in the middle (paper: 3)
Z_DIM: Optional[int] = None  # size of z_sem (paper: 512)
EPOCHS: Optional[int] = None  # diffusion-autoencoder epochs (paper: not stated)
BATCH_SIZE: Optional[int] = None  # images per batch (paper: not stated)
LR: Optional[float] = None  # Adam learning rate (paper: Adam, rate not stated)
AGE_LOSS: Optional[str] = None  # units of the age MSE in the loss: years (paper eq. 6) | standardised
DDIM_STEPS: Optional[int] = None  # DDIM steps for encoding/decoding in figs 3-4
BASELINE_EPOCHS: Optional[int] = None  # DenseNet121 and DeepBrainNet-style CNN epochs
BASELINE_BATCH_SIZE: Optional[int] = None
BASELINE_LR: Optional[float] = None
DBN_CHANNELS: Optional[str] = None  # DeepBrainNet-style stage widths
N_RECON: Optional[int] = None  # images in fig 4 (half held-out healthy, half clinical test)
N_INTERP: Optional[int] = None  # frames per interpolation in fig 3
ALLOW_UNREGISTERED: Optional[bool] = None  # train on DATA_DIR images that are not skull-stripped in MNI space
SEEDS: Optional[int] = None  # model seeds SEED, SEED+1, ... each trained on the same cohort; verdicts combined over them
DRY_RUN: Optional[bool] = None  # True: a rehearsal of the profile on a tiny cohort, 2 optimiser steps per training stage

# %%
from brainage_lib.papers.diff import notebook as diff  # the wing: its parts and the shared ones it uses

NB = "02_diff"
cfg, engine, rec, t_start = diff.start(NB, globals(), data=DATA_DIR or "simulated")  # profile, seeds, stages
device = engine.device

# %% [markdown]
# ## 1 Data
# Three roles, as in the paper: **training** (`lifespan_train`, 18-95 y, 8 research
# sites; part of its ages are unknown, counted below, and those images enter training
# through the diffusion loss only), **test** (`clinical_test`, clinical grade, mean age ~68) and
# **ALS** (`als_like`, as many patients as the paper's, with `survival_months`). Each image becomes its
# mid-axial slice, resized to `SLICE_SIZE`² and min-max scaled to [0, 1], cached once.
#
# The labelled training subjects are split, stratified by age, into *train*, *validation*
# (selects the diffusion autoencoder's and the CNNs' best epoch) and a **held-out healthy
# set** that no model sees while training or selecting: it fits the linear age-bias
# correction of every model (the paper gives no bias correction; we add it beside the raw
# PAD, following de Lange & Cole 2020).
#
# **One cohort.** `DATA_DIR` may also be a single cohort folder (its own `participants.tsv`).
# Its rows of `group` ALS, if any, become the ALS role; an age-stratified 20 % of its other
# labelled subjects stands in for the test set and the rest is the training cohort, split
# as above. What was done, with the sizes, and what is then not testable is printed below.

# %%
dd = diff.open_data(DATA_DIR, DATA_SEED, SEED, cfg)  # cohorts in their roles, cached slices, training split

# %%
diff.record_data(rec, dd, DATA_SEED)

# %% [markdown]
# ## 2 Models
# **Diffusion autoencoder** (`brainage_lib.papers.diff.diffae`): MONAI's `DiffusionModelUNet`
# as the noise predictor (levels `CHANNELS`, `NUM_RES_BLOCKS` residual blocks per level,
# GroupNorm + SiLU, skips between levels of equal width, a middle block of
# `MID_ATTENTION_BLOCKS` self-attention blocks); the semantic encoder is a second copy of
# the down path + middle block without timestep input, pooled and projected to `z_sem`;
# every residual block of the noise U-Net, at every timestep, scales its normalised
# features by `1 + W_b SiLU(z_sem)` with its own projection `W_b` (DiffAE's conditioning;
# the paper only says the noise predictor takes `z_sem` at every step); the age head is
# the MLP 512-128-32-1 with ReLU, BatchNorm and dropout 0.5. Linear β schedule 1e-4 to
# 0.02 over 1000 steps (not stated in the paper: DDPM's). **Baselines** on the same
# slices: MONAI DenseNet121; a DeepBrainNet-style slice CNN (residual VGG-like stages +
# dense 1024, dropout 0.8, trained from scratch); a brainageR-style GP on the PCA (80 %
# variance) of soft GM/WM/CSF maps, each slice segmented by its own 3-class intensity
# mixture (as SPM segments each image with its own intensity model).

# %%
diff_config, dbn_config = diff.configs(cfg)
diff.model_sizes(rec, diff_config, dbn_config)

# %% [markdown]
# ## 3 Training
# The paper states only "Adam" and "all components trained simultaneously"; epochs, batch
# size and learning rate are this profile's (printed above). Each shuffled batch mixes
# labelled and unlabelled slices in the cohort's proportion; the loss is noise MSE +
# age MSE over the batch's labelled slices (in `AGE_LOSS` units, see below). A training
# batch with fewer than two labelled slices contributes no age term (the head's BatchNorm
# needs two rows, and batch statistics over unlabelled rows would leak age gradient into
# their `z_sem`). Before each validation the age head's BatchNorm statistics are re-estimated on the
# labelled training slices with the current weights (`recalibrate_head_bn`: `z_sem` varies
# little across these registered slices, and running averages that lag behind the moving
# encoder shift eval-mode predictions by decades). The epoch with the lowest validation MAE
# is kept; the checkpoint (weights, both configs, provenance) is written and **re-loaded**
# for evaluation. Like every training here it is a resumable stage of the engine set up
# above: an interrupted run continues from its last checkpoint, a finished one is loaded,
# and `DEVICES > 1` trains with DDP on the same global batches (the head's BatchNorm then
# synchronised across GPUs). The CNN baselines use
# the same splits, Adam at `BASELINE_LR`, MSE on standardised ages (the paper does not
# give their training), best validation epoch; the GP fits the labelled training slices.
# `AGE_LOSS = years` (default) adds the age MSE in years², the paper's eq. 6 summed with
# the noise MSE; `AGE_LOSS = standardised` adds it in the head's standardised units, i.e.
# weighted by 1/sd² (sd ≈ 20 y: ~1/400), shifting the shared encoder's gradient from age
# towards reconstruction.
#
# **Paper fidelity.** Every deviation from the paper (and every reading of what it leaves
# unstated) is listed once, with the paper's setting, ours (the paper profile's) and why
# (`brainage_lib/papers/diff/deviations.py`); the values in force in this profile are
# printed with the parameters above.

# %%
diff.deviations(rec)

# %%
tcfg, diff_res = diff.train_diffusion_autoencoder(cfg, rec, diff_config, dd, engine, SEED)
diffae = diff_res.model  # the weights of the best validation epoch

# %%
bcfg, cnns, gp = diff.train_baselines(cfg, rec, dd, dbn_config, engine, SEED)

# %% [markdown]
# ## 4 Evaluation
# Predictions on the clinical test set, the ALS patients and the held-out healthy set.
# Table 1: Pearson r (with p), MAE and R² (1 - SS_res/SS_tot, negative when worse than
# the mean) on the test set, and Pearson r of the ALS brain-PAD (predicted - chronological
# age) with survival months. Table 2: mean and sd of the ALS PADs and the two-sample KS
# statistic of ours against each baseline, with the paired tests the claims use (the
# PADs come from the same patients): the Pitman-Morgan test of the spreads (`pm_r`, `pm_p`)
# and, below, Steiger's test of ours' survival correlation against each baseline's. Every
# number is recorded beside the paper's. Also recorded: each model's MAE and r on the
# held-out healthy set (`heldout.*`), the MAE of predicting that set's own mean age and the
# test set's (`gate.*`), and, on simulated data, the ALS patients' true gaps
# (`simulator.als_gap_*`).

# %%
models = diff.Models(tcfg, diff_res, bcfg, cnns, gp, dbn_config)
p = diff.predict(rec, models, dd, device)  # every model on every set, recorded beside the reference numbers
diff.format_table(diff.wide_table(rec, "table1"))

# %% [markdown]
# ### Gates: did each model learn?
# A claim naming a model is judged only when the model **learned** age where it should
# have, on the held-out healthy set (subjects of its training distribution that no model
# saw): MAE below 0.8 x the MAE of predicting that set's own mean age. The clinical test
# set is a shifted cohort (clinical grade, older): a model's predictions there may carry
# an offset or a compressed scale (the paper's own DenseNet121: a high r, a large MAE; Table 1),
# so there it counts while its predictions still **track age** (Pearson r > 0 with
# p < 0.01). Each gate with the numbers that passed or failed it:

# %%
diff.gates(rec, dd)

# %% [markdown]
# ### Magnitudes
# Each claim with a paper number puts the paper's value (ours minus each baseline, or ours
# alone) beside this run's 95 % bootstrap interval, paired over subjects: every replicate
# redraws the test subjects (or the ALS patients) and evaluates both models on the same
# draw. In the paper profile a claim is **reproduced** only when the paper's values lie
# inside; otherwise, or in a reduced profile, the right direction is **direction only**.

# %%
diff.magnitudes(rec, p, dd)

# %%
diff.table2(rec, dd)

# %% [markdown]
# ### Age-bias-corrected brain-PAD
# Predicted age regresses towards the training mean, so raw PAD correlates negatively with
# age. For each model, `pred = slope · age + intercept` is fitted on the held-out healthy
# set and the corrected PAD is the residual `pred - (slope · age + intercept)`; below, the
# raw and corrected PAD side by side, with the survival correlation for both and the
# PAD-age correlation on the test set (near 0 once corrected, if the bias transfers).

# %%
diff.format_table(diff.wide_table(rec, "pad", paper=False))

# %% [markdown]
# ### Saved models
# The diffusion autoencoder and the two CNN baselines are saved with a model card (paper,
# profile, training data and its grid, the slice transform, the test MAE, and the age-bias
# correction fitted above on the held-out healthy set) to
# `checkpoints/02_diff/models/<model>.model.pt`; `brainage predict --model <file> DIR` applies
# one to a cohort preprocessed as the training data were (`brainage preprocess --recipe diff`).
# The brainageR-style GP is not a network and is not saved.

# %%
diff.save_models(cfg, rec, models, p, dd)

# %% [markdown]
# ### On simulated data: does each PAD track the hidden brain-age gap?
# The simulator knows every subject's biological-minus-chronological age. Pearson r of
# each model's PAD with it, on the test set and the ALS patients (absent for real data);
# on the ALS patients also the part of the PAD spread that follows the gap,
# `als_gap_spread` = cov(PAD, gap) / sd(gap) in years (the true gap's sd for a perfect PAD,
# unchanged by noise unrelated to the gap), and `als_mae_gap` = mean |PAD - gap|.
# For reference, `simulator.als_gap_survival_r` is the survival correlation of the true gap
# itself: the best a PAD could do on these patients (disease severity adds the rest).

# %%
diff.truth(rec, p, dd)

# %%
diff.test_scatter(rec, p, dd)

# %% [markdown]
# ## 5 Figures
# **Fig. 2**: the ALS brain-PADs per model, raw (as in the paper) and bias-corrected.

# %%
diff.als_boxplot(rec, p, dd)

# %% [markdown]
# **Fig. 3**: latent interpolation. Both end images are DDIM-encoded to `(x_T, z_sem)`;
# `z_sem` is interpolated linearly and `x_T` spherically, and each frame is decoded by
# the model. Under each frame: the age head's prediction from the interpolated `z_sem`
# ("z") and from the decoded image re-encoded ("img"). Top: held-out healthy subjects
# nearest 25 and 75 years (the paper's first row); bottom: the oldest to the youngest
# clinical test subject (the paper's second row runs from 92 to 20 years).
# `fig3.z_sem_share` measures how much the decoder relies on `z_sem`: decoding subject
# A's `x_T` with subject B's `z_sem` instead of its own changes the image by this fraction
# of the squared difference between the two subjects (the sentence under the figure reads
# it for this run). The claim that the semantic latent carries age is judged on the second
# figure below, where only `z_sem` moves.

# %%
f3 = diff.fig3_interpolation(cfg, rec, diffae, p, dd, device)

# %% [markdown]
# **Does the semantic latent carry age?** Each row's first image is decoded from its own
# `x_T` held fixed while `z_sem` is interpolated linearly to the other end's: only the
# semantic latent changes. Under each frame: the age head's prediction from the
# interpolated `z_sem` ("z") and from the decoded frame re-encoded ("img"). Recorded per row:
# the Spearman correlation of the decoded frames' predicted age with α
# (`fig3.row*.zsem_age_spearman`), their ages at both ends (`zsem_age_first/last`), the age
# head's at the two ends' `z_sem` (`latent_age_first/last`) and the share of that difference
# the decoded frames cover (`zsem_age_share`: 0 when the decoder ignores `z_sem`, about 1
# when `z_sem` carries the age the head reads). The Fig. 3 claim is judged on these.

# %%
diff.fig3_zsem(cfg, rec, diffae, f3)

# %% [markdown]
# **Fig. 4**: originals beside their reconstructions, decoded from the image's own DDIM
# noise map and `z_sem`. The recorded reconstruction MSE is compared with the MSE between
# each original and another subject's image (what a decoder that ignored its input would
# reach at best).

# %%
diff.fig4_reconstructions(cfg, rec, diffae, p, dd, device)

# %% [markdown]
# ## What reproduced and what did not
# Decided from the recorded numbers above by the rule recorded with each claim
# (`claims.<key>`, with the reason where a claim is not testable); lines marked
# PASSED/FAILED are checks against the simulator's ground truth, not claims of the paper.
# The gates (section 4) keep a claim about a model that has not learned age from being
# judged. Each claim with a paper number lists its magnitudes: **reproduced** needs the
# paper's values inside this run's intervals in the paper profile, else the right direction
# is **direction only**. The comparisons test differences on the same subjects: Steiger's
# test of the survival correlations, the Pitman-Morgan test of the PAD spreads. On
# simulated data a wider spread can be made of noise, so checks ask whether ours' spread
# follows the hidden gap and whether its PADs lie nearest to it; the paper's survival sign
# and negative mean PAD are the simulator's choice there and are replaced by checks of the
# simulator's signs. These are this model seed's verdicts; the verdicts over all seeds follow.

# %%
diff.judge_claims(cfg, rec, p, dd)

# %% [markdown]
# ### Model seeds
# With `SEEDS` > 1 the notebook is run again, headless, once per further model seed
# (`SEED+1`, ...: new initialisation, batch order and training splits, on the same cohort)
# into `seeds/seed-<s>/` of the output folder. Each claim's reported verdict is the one
# shared by at least 80 % of the seeds, else **unstable**, with the count; every number
# with a paper value gets its mean and sd over the seeds.

# %%
diff.over_seeds(cfg, rec)

# %%
diff.finish(rec, p, t_start)

# %% [markdown]
# ## References
# - Ijishakin A. et al. Semi-Supervised Diffusion Model for Brain Age Prediction (the DIFF paper).
# - Preechakul K. et al. (2022) Diffusion autoencoders: toward a meaningful and decodable representation. CVPR.
# - Song J., Meng C., Ermon S. (2021) Denoising diffusion implicit models. ICLR.
# - Ho J., Jain A., Abbeel P. (2020) Denoising diffusion probabilistic models. NeurIPS.
# - Wood D. A. et al. (2022) Accurate brain-age models for routine clinical MRI examinations. NeuroImage 249:118871.
# - Bashyam V. M. et al. (2020) MRI signatures of brain age and disease over the lifespan based on a deep brain
#   network and 14 468 individuals worldwide (DeepBrainNet). Brain 143:2312-2324.
# - Biondo F. et al. (2022) Brain-age is associated with progression to dementia in memory clinic patients
#   (brainageR). NeuroImage: Clinical 36:103175.
# - de Lange A.-M. G., Cole J. H. (2020) Commentary: correction procedures in brain-age prediction.
#   NeuroImage: Clinical 26:102229.
# - Pinaya W. H. L. et al. (2023) Generative AI for medical imaging: extending the MONAI framework (MONAI Generative).
