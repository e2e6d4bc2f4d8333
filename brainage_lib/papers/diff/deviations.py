"""Where the DIFF companion's defaults (the paper profile) differ from the paper, or read what it leaves unstated.

One list, rendered by notebook 02_diff and recorded with its results (``papers.fidelity``). Where the paper is
explicit the code follows it (the U-Net's level widths, the age head, z_sem of size 512, 128x128 slices); what
remains is listed here with the paper's setting, ours and why.
"""
from __future__ import annotations

from brainage_lib.papers.fidelity import Deviation

__all__ = ["DEVIATIONS"]

DEVIATIONS = [
    Deviation("Noise U-Net blocks and parameter count",
              "levels 32-32-64-96-128, 'three convolutional layers' per level, three attention blocks in the middle; "
              "10.12 M parameters in total",
              "MONAI's DiffusionModelUNet at those widths with 3 residual blocks (2 convolutions each) per level, "
              "4 on the way up, and a z_sem projection in every block: 11.0 M in total (1.4 M of them the z_sem "
              "projections)",
              "The paper gives widths, not blocks; of MONAI's settings 3 blocks per level comes nearest its total "
              "(2 give 8.5 M). The notebook prints each part's size."),
    Deviation("How the noise predictor takes z_sem",
              "conditioned on z_sem at every timestep (how is not stated)",
              "DiffAE's ResBlock: each block scales its normalised features by 1 + W_b SiLU(z_sem)",
              "The diffusion autoencoder the paper builds on (Preechakul et al. 2022)."),
    Deviation("Semantic encoder", "the U-Net's down path and middle block",
              "the same blocks with their own weights and no timestep input, pooled and projected to z_sem (512)",
              "DiffAE's encoder; the paper does not say whether weights are shared."),
    Deviation("Noise schedule and DDIM steps", "not stated",
              "linear beta 1e-4 to 0.02 over 1000 steps; 100 deterministic DDIM steps to encode and decode (Figs. 3-4)",
              "DDPM's schedule and DiffAE's reconstruction setting."),
    Deviation("Optimiser", "Adam (PyTorch Lightning); rate, betas, epochs and batch size not stated",
              "Adam with PyTorch's default betas (0.9, 0.999), rate 1e-4, 200 epochs, batch 32; bf16 autocast on CUDA",
              "Common DiffAE-scale settings; the paper names Adam only."),
    Deviation("Checkpoint tested", "not stated (the model after training)",
              "the epoch with the lowest validation MAE of the age head",
              "The paper does not say which weights it tests; selecting on a validation split no test subject is in "
              "keeps the test set untouched."),
    Deviation("Validation and held-out healthy sets", "not stated: all 4631 training images are trained on",
              "10 % of the labelled training subjects select the epoch, another 10 % (the held-out healthy set) fit "
              "the age-bias correction and decide the learning gate; neither is trained on",
              "Model selection, and a gate decided on subjects of the training distribution, need subjects no "
              "model saw."),
    Deviation("Age head output", "the MLP maps to the age (units not stated); age MSE summed with the noise MSE",
              "the head predicts standardised age, mapped back to years; the age MSE in years² (the paper's eq. 6); "
              "the head's BatchNorm statistics re-estimated on the labelled training slices before each validation",
              "An untrained head then starts at the training mean; stale running statistics of a moving encoder "
              "shifted eval-mode predictions by decades."),
    Deviation("Baselines", "DenseNet121 [27], brainageR [28], DeepBrainNet [29]: published models, their training "
              "on this data not described",
              "retrained from scratch on the same mid-axial slice and splits: MONAI's 2D DenseNet121, a "
              "DeepBrainNet-style 2D CNN, a brainageR-style Gaussian process on the PCA of the slice's tissue maps; "
              "CNNs: Adam 1e-4, 100 epochs, MSE on standardised ages, best validation epoch",
              "The published models are 3D and their weights cannot be fetched here; one training recipe on the same "
              "input compares the architectures, not the training data."),
    Deviation("Cohorts", "8 public research datasets (4631 scans, 56 ± 20.9 y), 473 clinical-grade scans "
              "(68 ± 10 y), 72 ALS patients from Milan with survival",
              "simulated cohorts of the same roles and sizes (4600 with a share unlabelled, 470, 72) on the 2 mm MNI "
              "grid, or DATA_DIR",
              "The cohorts cannot be downloaded; the simulator knows every subject's brain-age gap."),
    Deviation("Preprocessing", "affine to MNI, resampled to 130³, N4, HD-BET; mid-axial slice resized to 128², "
              "scaled to [0, 1]",
              "simulated heads are already in MNI space (brainage preprocess --recipe diff for real scans); the same "
              "slice, size and scaling",
              "As the paper, from the simulator's grid."),
    Deviation("Survival and mean-PAD signs", "PAD-survival r = +0.24; mean ALS PAD -6.19 y",
              "on simulated data the simulator's signs (survival falls with the hidden gap; the ALS gaps' mean is "
              "positive): those claims are not testable there, and checks of the simulator's signs stand beside them",
              "On simulated data the sign is the simulator's choice, not a finding."),
    Deviation("Tests of the ALS PADs", "two-sample KS tests of ours against each baseline; 'no baseline significant' "
              "for survival",
              "the PADs are paired (same patients): Pitman-Morgan test of the spreads (KS D still reported) and "
              "Steiger's test of the difference between the survival correlations",
              "KS assumes independent samples; 'not significant' is absence of evidence, not a difference."),
    Deviation("Age-bias correction", "none (raw PAD)",
              "raw PAD as the paper; a linear age-bias correction fitted on the held-out healthy set shown beside it, "
              "and used for the negative-mean claim",
              "Regression to the mean alone makes the raw PAD of patients older than the training mean negative "
              "(de Lange & Cole 2020)."),
]
