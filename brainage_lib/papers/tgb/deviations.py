"""Where 01_tgb's paper profile differs from the TGB paper, or reads what the paper leaves open.

The paper: "GAN with a task-guided branch for brain age estimation" (``shared/papers/000_*``); the authors'
public code: ``ruizhe-l/tgb-gan`` (``nets/gan_reg.py``, ``core/trainer_tf.py``). The reduced profiles' own
settings (sizes, widths, epochs, learning rates) are printed in each run's banner, not listed here.
"""
from __future__ import annotations

from brainage_lib.papers.fidelity import Deviation

__all__ = ["DEVIATIONS"]

DEVIATIONS: list[Deviation] = [
    Deviation("Data", "ABIDE I+II, 3D T1, 1 mm MNI (182x218x182), 862 subjects after sex balancing",
              "the simulated abide_like cohort (default 1150 subjects, about 862 after balancing, 2 mm MNI grid), "
              "or the folder given as DATA_DIR",
              "ABIDE cannot be redistributed here; the simulator knows the region whose ageing it made faster, so "
              "the Fig. 3 maps can be scored against the truth"),
    Deviation("Generator output head", "a 1x1x1 convolution converts the decoder's output to the input's "
              "dimensions (no activation named); the authors' code follows it with a ReLU",
              "the plain 1x1x1 convolution (GAN_OUTPUT = linear); GAN_OUTPUT = relu gives the authors' head",
              "the paper's text; an earlier sigmoid head could not reach the exact-zero background of min-max "
              "normalised images in a short schedule"),
    Deviation("Generator and critic layers", "one 3x3x3 convolution and ReLU per level, max-pooling between "
              "encoder levels, de-convolutions between decoder levels; the authors' code uses strided convolutions "
              "with optional batch normalisation",
              "the paper's text: 3x3x3 convolution + ReLU per level, 2x max-pool, 2x transposed convolution, no "
              "normalisation", "the paper is explicit; WGAN-GP's per-sample penalty also rules out batch "
              "normalisation in the critic"),
    Deviation("Critic updates per generator update", "WGAN-GP's loss (WGAN-GP itself: 5 critic updates per "
              "generator update); the authors' trainer: one joint update per batch",
              "one joint critic + generator (+ branch) update per batch (N_CRITIC = 1)",
              "the authors' trainer; N_CRITIC = k switches to k critic updates per generator update"),
    Deviation("Adam betas", "not stated (Adam, learning rate 1e-4)",
              "GAN: (0.5, 0.9), WGAN-GP's; regressors and the branch: PyTorch's (0.9, 0.999)",
              "the usual settings of each kind of network"),
    Deviation("Initialisation", "not stated", "He normal (std sqrt(2 / fan-in)), zero biases; the branch's output "
              "bias starts at the mean training age",
              "PyTorch's default shrinks the signal of these deep normalisation-free ReLU stacks; the age bias makes "
              "the task term start near beta x var(age), as the paper balanced the terms"),
    Deviation("Checkpoint tested", "not stated (validation set used for tuning); the authors' trainer writes the "
              "best-validation and the final weights",
              "the best validation epoch (regressors: validation MAE; GANs: validation alpha x L1 + beta x task)",
              "guards the reduced profiles against an unlucky last epoch; the paper does not say which it tested"),
    Deviation("Synthesis pairs (eqs. 6-7)", "latent vectors of images in nearby age groups; the authors' code "
              "pairs two images of the same 1-year group",
              "a younger and an older training image within 1 year of a target age in the bin, eps ~ U(0, 1)",
              "eq. 7's label then stays within the bin being filled, also at its edges"),
    Deviation("Difference-map strength (Fig. 3)", "the maximum of |mean(age 20) - mean(age 8)| (0.49 vs 0.05)",
              "the 99th percentile over brain voxels (the maximum is recorded too); the claim compares the ratio "
              "of strengths with the paper's 9.8",
              "one noisy voxel decides a maximum"),
    Deviation("Age groups of the discussion", "6-10, 11-15, 16-22", "[6, 11), [11, 16), [16, 23) years",
              "the paper's groups read as whole years of age"),
    Deviation("Wilcoxon signed-rank test", "p < 0.01, on what is not stated",
              "on the paired absolute errors (squared errors recorded too)", "the errors Table 1 reports"),
    Deviation("Sex balancing", "equal numbers of males and females per 1-year bin (which subjects were dropped: "
              "not stated)", "dropped at random, drawn from DATA_SEED", "the same cohort for every model seed"),
    Deviation("Split and seeds", "one split (640/62/160) shared by the three methods; one training run each",
              "the paper's proportions, one split per model seed shared by the three methods; SEEDS = 3 model "
              "seeds, each claim's verdict the one shared by at least 80 % of them",
              "the paper does not fix the split; a verdict on one seed is not stable"),
    Deviation("Precision", "not stated (TensorFlow)", "bf16 autocast on CUDA, except the regressors' FC heads and "
              "the generator's output layer (fp32); fp32 on CPU", "speed; ages and images are not rounded to bf16"),
]
