"""Where notebook 03_lstm reads the LSTM paper (He et al., ISBI 2020) or departs from it, listed once.

Each entry gives the paper's setting (or "not stated"), ours in the paper profile, and why. The
notebook renders the list (``papers.fidelity.markdown``) and records it (``fidelity.record``); the
index page links it. Where the paper is explicit, the code follows it and there is no entry.
"""
from __future__ import annotations

from brainage_lib.papers.fidelity import Deviation

__all__ = ["DEVIATIONS"]

DEVIATIONS: list[Deviation] = [
    Deviation("Pooling window k of the 2D-ResNet18+LSTM",
              "average pooling over k adjacent slices; the value of k is missing from the text (\"we set .\")",
              "k = 4 (`POOL_K`)", "4 divides the 112 slices of the 128x160x112 grid, giving 28 LSTM steps."),
    Deviation("3D-ResNet18 stem",
              "\"3D-convolutional layers with kernel size of 3x3x3\" for \"the corresponding 3D-ResNet18\" of ResNet18",
              "7x7x7 stride-2 stem, 3x3x3 in every residual block (`STEM_KERNEL` = 7; 3 gives the literal reading)",
              "ResNet18's stem is 7x7 stride 2 and its 1x1 shortcuts cannot be 3x3x3 either, so the sentence is read "
              "as describing the blocks."),
    Deviation("Slicing axis and number of slices", "not stated",
              "the last axis of the 128x160x112 grid (axial), 112 slices",
              "inferred from the paper's atlas grid; each slice is resized to 50x50 as the paper says."),
    Deviation("Intensity normalisation", "subtract the subject's mean and divide \"by the variance\"",
              "divide by the standard deviation (z-score per subject)",
              "dividing by the variance is read as a slip for the standard deviation."),
    Deviation("Atlas", "SRI24 atlas, 128x160x112 (registration of every T1 to it)",
              "simulated heads in MNI space on the same 128x160x112 grid; `brainage preprocess --recipe lstm` "
              "registers real data to the MNI152 field of view sampled on that grid",
              "SRI24 cannot be had offline; the paper found little difference between an adult and a 2-year-old "
              "atlas."),
    Deviation("Cohorts", "NIH-PD, 1212 subjects 0-22 y (12 sites, 1.5T); MGHBCH, 428 subjects 0-6 y (3T MPRAGE)",
              "simulated nihpd_like (1200, 0-22 y, 12 sites, 1.5T-like) and mghbch_like (430, 0-6 y, one unseen "
              "3T-like site), or the same folders under `DATA_DIR`",
              "the paper's data are not public in this form; the simulator mirrors their ages, sites and scanners."),
    Deviation("Discovery split", "80/20 into training and test, how drawn not stated",
              "80/20 stratified by age, drawn from the model seed `SEED`",
              "stratifying keeps every age group in the test set; the paper does not fix the split, so each model "
              "seed redraws it."),
    Deviation("Regression target", "MAE loss on age",
              "MAE loss on the age standardised by the training subjects' mean and sd, predictions mapped back to "
              "years",
              "an L1 loss on a rescaled target has the same minimiser, and Adam's steps do not depend on the loss "
              "scale; it spares the output layer from climbing to the mean age at a 1e-4 learning rate."),
    Deviation("Adam's betas and epsilon", "not stated", "PyTorch defaults: betas (0.9, 0.999), eps 1e-8",
              "the common defaults."),
    Deviation("Checkpoint evaluated", "no validation set; the network trained for 60 epochs",
              "the last epoch's weights (no model selection)", "follows the paper."),
    Deviation("Numerical precision", "fp32 on an NVIDIA K80 (which has no bf16)", "bf16 autocast on CUDA, fp32 on CPU",
              "speed on current GPUs; the training-time claim compares the two models on the same hardware and "
              "precision."),
    Deviation("Did a model learn (verdict gates)", "not part of the paper",
              "a model counts where its MAE on its held-out discovery test subjects is below 0.8 x that of "
              "predicting their mean age and, on the replication cohort, where its predictions track age "
              "(r > 0, p < 0.01)",
              "the paper has no validation set; its discovery test split is the held-out set of the training "
              "distribution, the replication cohort a shifted one."),
    Deviation("Smoke and quick profiles", "the paper's sizes",
              "smaller cohorts, grids, slices and channel widths (`WIDTH`), fewer epochs, batch 8, learning rate "
              "1e-3 (see params/03_lstm.<profile>.yaml)",
              "minutes on a CPU; their verdicts are at best \"direction only\" for a claim with a paper number."),
]
