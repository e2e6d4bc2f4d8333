"""Image-to-image WGAN-GP with a task-guided branch (TGB paper, sections 2.1-2.3).

Generator: an encoder of 5 levels (64, 128, 256, 512, 512 channels; one 3x3x3
conv + ReLU each, 2x max-pool between levels) to a latent feature map, and a
decoder of 5 levels (512, 512, 256, 128, 64; one 3x3x3 conv + ReLU each, a
2x transposed convolution between levels) with NO skip connections, so a latent
alone decodes and latents can be interpolated (eqs. 6-7). Critic: the same
encoder architecture (own weights) + a 1x1x1 conv to a score map, averaged.

Losses: WGAN-GP (eq. 1), alpha * L1 reconstruction (eq. 2-3) and, for TGB,
beta * L2 of the regressor REG applied to the generator's output (eqs. 4-5).

The generator's output head is the paper's plain 1x1x1 convolution (``output="linear"``;
the authors' public code, ``nets/gan_reg.py`` of ``ruizhe-l/tgb-gan``, follows it with a
ReLU: ``output="relu"``). It runs in fp32 with autocast disabled, so images come out
float32 also under bf16 autocast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.regressor import autocast_off, he_init

__all__ = ["OUTPUT_HEADS", "CriticLoss", "GANConfig", "GeneratorLoss", "SynthesisPair", "TGBCritic",
           "TGBGenerator", "critic_loss", "generator_loss", "gradient_penalty",
           "interpolate_latents", "plan_synthesis"]


OUTPUT_HEADS = ("linear", "relu")  # the paper's plain 1x1x1 convolution; the authors' code adds a ReLU


@dataclass(frozen=True)
class GANConfig:
    """Hyper-parameters of the GAN and its losses; the defaults are the paper's.

    Parameters
    ----------
    in_channels
        Image channels (1 for a T1 volume).
    encoder_channels, decoder_channels, width
        Channels of the encoder / decoder levels and a multiplier applied to
        all of them (a smaller profile uses e.g. 0.125).
    alpha, beta, lambda_gp
        Weights of the L1 term, the task (age L2) term and the gradient penalty.
    output
        The generator's output head after its 1x1x1 convolution: ``"linear"`` (none, the paper's
        text) or ``"relu"`` (the authors' code).
    """

    in_channels: int = 1
    encoder_channels: tuple[int, ...] = (64, 128, 256, 512, 512)
    decoder_channels: tuple[int, ...] = (512, 512, 256, 128, 64)
    width: float = 1.0
    alpha: float = 10.0
    beta: float = 0.1
    lambda_gp: float = 10.0
    output: str = "linear"

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_HEADS:
            raise BrainAgeError(f"GANConfig: output={self.output!r}; use one of {list(OUTPUT_HEADS)}.")
        enc, dec = self.encoder_channels, self.decoder_channels
        if not enc or len(enc) != len(dec) or self.width <= 0:
            raise BrainAgeError(
                f"GANConfig: encoder_channels={enc!r} and decoder_channels={dec!r} "
                f"must be non-empty and of equal length, width={self.width} > 0."
            )

    @property
    def enc(self) -> tuple[int, ...]:
        """Encoder channels after ``width`` scaling (at least 1)."""
        return tuple(max(1, round(c * self.width)) for c in self.encoder_channels)

    @property
    def dec(self) -> tuple[int, ...]:
        """Decoder channels after ``width`` scaling (at least 1)."""
        return tuple(max(1, round(c * self.width)) for c in self.decoder_channels)

    @property
    def downsample(self) -> int:
        """Total down-sampling factor of the encoder (16 for 5 levels)."""
        return 2 ** (len(self.encoder_channels) - 1)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True))


class _Encoder(nn.Module):
    """Conv3x3x3+ReLU levels with a 2x max-pool between consecutive levels."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.downsample = cfg.downsample
        chans = (cfg.in_channels, *cfg.enc)
        layers: list[nn.Module] = []
        for k, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            if k > 0:
                layers.append(nn.MaxPool3d(kernel_size=2))
            layers.append(_conv_relu(cin, cout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or any(s % self.downsample for s in x.shape[2:]):
            raise BrainAgeError(
                f"GAN input of shape {tuple(x.shape)}: expected (B, C, D, H, W) with "
                f"D, H, W divisible by {self.downsample}; resize or pad the volumes."
            )
        return self.net(x)  # (B, C_last, D/16, H/16, W/16)


class TGBGenerator(nn.Module):
    """Encoder-decoder generator without skip connections.

    The decoder ends in the paper's 1x1x1 convolution to one channel, with no bound on
    its output (``output="linear"``) or a ReLU (``output="relu"``, the authors' code).
    Real images are min-max normalised to [0, 1] with a background of exactly 0, which an
    unbounded head reaches exactly; a sigmoid reaches 0 only at an infinite logit, so a
    short schedule leaves a grey background that dominates the L1 of a mostly empty volume.
    """

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GANConfig()
        self.encoder = _Encoder(cfg)
        dec = cfg.dec
        layers: list[nn.Module] = [_conv_relu(cfg.enc[-1], dec[0])]
        for cin, cout in zip(dec[:-1], dec[1:]):
            layers += [nn.ConvTranspose3d(cin, cout, kernel_size=2, stride=2), _conv_relu(cout, cout)]
        self.decoder = nn.Sequential(*layers)
        self.head = nn.Conv3d(dec[-1], cfg.in_channels, kernel_size=1)
        self.apply(he_init)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent feature map ``(B, C_enc[-1], D/16, H/16, W/16)`` of images ``x``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Float32 images ``(B, in_channels, 16*d, 16*h, 16*w)`` from latents ``z`` (non-negative with
        ``output="relu"``)."""
        h = self.decoder(z)
        with autocast_off(h.device):
            out = self.head(h.float())
            return torch.relu(out) if self.config.output == "relu" else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x``: ``decode(encode(x))``, same shape as ``x``."""
        return self.decode(self.encode(x))


class TGBCritic(nn.Module):
    """WGAN critic: the generator's encoder architecture + a 1x1x1 conv, averaged.

    No normalisation layers, as WGAN-GP requires (the penalty is per sample).
    """

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GANConfig()
        self.encoder = _Encoder(cfg)
        self.head = nn.Conv3d(cfg.enc[-1], 1, kernel_size=1)
        self.apply(he_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One unbounded score per image, shape ``(B,)``."""
        score = self.head(self.encoder(x))  # (B, 1, D/16, H/16, W/16)
        return score.flatten(1).mean(1)  # (B,)


# ---- losses ---------------------------------------------------------------------

class GeneratorLoss(NamedTuple):
    """Total generator objective and its unweighted parts."""

    total: torch.Tensor
    adversarial: torch.Tensor
    l1: torch.Tensor
    task: torch.Tensor


class CriticLoss(NamedTuple):
    """Total critic objective, the Wasserstein term and the gradient penalty."""

    total: torch.Tensor
    wasserstein: torch.Tensor
    gp: torch.Tensor


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_gp: float = 10.0,
    rng: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``lambda * mean_b (||grad_x critic(x_hat_b)||_2 - 1)^2``.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per
    sample, drawn from ``rng`` (if given) unless ``eps`` ``(B, 1, 1, 1, 1)`` is
    given (e.g. a process's share of the draws for a global batch split over
    processes). The graph is kept so the penalty back-propagates into the
    critic's parameters.
    """
    if eps is None:
        eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)  # (B, 1, 1, 1, 1)
        eps = torch.rand(eps_shape, generator=rng, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)  # (B,)
    return lambda_gp * (norm - 1).pow(2).mean()


def critic_loss(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_gp: float = 10.0,
    rng: torch.Generator | None = None,
    eps: torch.Tensor | None = None,
) -> CriticLoss:
    """Critic objective to minimise: ``E[D(fake)] - E[D(real)] + GP``.

    ``fake`` is detached, so this step does not update the generator. ``rng``
    and ``eps`` go to :func:`gradient_penalty`.
    """
    wasserstein = critic(fake.detach()).mean() - critic(real).mean()
    gp = gradient_penalty(critic, real, fake, lambda_gp, rng, eps)
    return CriticLoss(wasserstein + gp, wasserstein, gp)


def generator_loss(
    critic: nn.Module,
    fake: torch.Tensor,
    real: torch.Tensor,
    alpha: float = 10.0,
    regressor: nn.Module | None = None,
    age: torch.Tensor | None = None,
    beta: float = 0.1,
) -> GeneratorLoss:
    """Generator objective (eq. 5): ``-E[D(fake)] + alpha*L1 [+ beta*MSE(R(fake), age)]``.

    ``fake = G(real)``. ``regressor`` is the task-guided branch REG and ``age``
    the true ages ``(B,)``; without a regressor the task term is 0 (REG-GAN).
    The task gradient reaches both REG and the generator (joint training).
    """
    adversarial = -critic(fake).mean()
    l1 = F.l1_loss(fake, real)
    if regressor is None:
        task = fake.new_zeros(())
    elif age is None:
        raise BrainAgeError("generator_loss: a regressor was given without `age`; pass the batch's ages.")
    else:
        # in fp32 (the regressor's head runs in fp32): under bf16 autocast the ages would be rounded
        task = F.mse_loss(regressor(fake).reshape(-1), age.to(fake.device).reshape(-1).float())
    total = adversarial + alpha * l1 + beta * task
    return GeneratorLoss(total, adversarial, l1, task)


# ---- synthesis (eqs. 6-7) -------------------------------------------------------

def interpolate_latents(
    generator: TGBGenerator,
    x_i: torch.Tensor,
    x_j: torch.Tensor,
    eps: float | torch.Tensor,
) -> torch.Tensor:
    """Eq. 6: ``decode(eps * E(x_i) + (1 - eps) * E(x_j))``.

    ``eps`` is a scalar or one value per sample ``(B,)``. Wrap the call in
    ``torch.no_grad()`` when only synthesising.
    """
    z_i, z_j = generator.encode(x_i), generator.encode(x_j)
    eps = torch.as_tensor(eps, dtype=z_i.dtype, device=z_i.device)
    if eps.ndim == 1:
        eps = eps.reshape(-1, *(1,) * (z_i.ndim - 1))  # (B, 1, 1, 1, 1)
    return generator.decode(eps * z_i + (1 - eps) * z_j)


class SynthesisPair(NamedTuple):
    """One planned synthesis: images ``i`` (younger) and ``j`` (older).

    ``target_age`` is the eq. 7 label ``eps * y_i + (1 - eps) * y_j`` given to
    the image ``decode(eps * E(x_i) + (1 - eps) * E(x_j))``.
    """

    i: int
    j: int
    eps: float
    target_age: float


def plan_synthesis(
    ages: np.ndarray,
    min_per_bin: int = 50,
    bin_width: float = 1.0,
    max_pair_gap: float = 1.0,
    rng: np.random.Generator | int | None = None,
    skip_unreachable: bool = False,
) -> list[SynthesisPair]:
    """Plan latent interpolations that fill every age bin to ``min_per_bin`` (sec. 2.3).

    Bins are ``[k * bin_width, (k + 1) * bin_width)`` from the youngest to the
    oldest training age. For each bin short of ``min_per_bin`` (real plus
    already planned images), repeat: draw an anchor age ``y_s`` uniformly among
    the ages of the bin that have a younger image ``i`` and an older image ``j``
    with ``0 < y_s - y_i < max_pair_gap`` and ``0 < y_j - y_s < max_pair_gap``;
    pick such ``i`` and ``j`` uniformly, ``eps ~ U(0, 1)``, and label the result
    ``eps * y_i + (1 - eps) * y_j``. The label counts towards its own bin,
    which may be a neighbour of the bin being filled.

    Parameters
    ----------
    ages
        Training ages ``(N,)``; the returned indices refer to this array.
    min_per_bin, bin_width, max_pair_gap
        Target count per bin, bin width and the pair-to-anchor distance (years).
    rng
        Seed or generator for the draws.
    skip_unreachable
        Leave a short bin that no pair can reach as it is (the caller reports
        it) instead of raising; useful for sparse age ranges in small cohorts.

    Returns
    -------
    list of SynthesisPair
        ``(i, j, eps, target_age)`` per synthetic image, in planning order.
        Raises BrainAgeError on invalid input or when a short bin has no pair
        straddling any age in it (e.g. the oldest bin when its only image sits
        on the bin's lower edge).
    """
    a = np.asarray(ages, dtype=float)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise BrainAgeError("plan_synthesis: `ages` must be a non-empty 1-D array of finite ages.")
    if min_per_bin < 0 or bin_width <= 0 or max_pair_gap <= 0:
        raise BrainAgeError(
            f"plan_synthesis: need min_per_bin >= 0 (got {min_per_bin}), bin_width > 0 "
            f"(got {bin_width}) and max_pair_gap > 0 (got {max_pair_gap})."
        )
    gen = np.random.default_rng(rng)
    bin_idx = np.floor(a / bin_width).astype(int)
    first = int(bin_idx.min())
    counts = np.bincount(bin_idx - first)  # one entry per bin, youngest to oldest
    # Anchors are feasible strictly between consecutive distinct ages u[k] < u[k+1]
    # that are both within max_pair_gap: (max(u[k], u[k+1]-gap), min(u[k+1], u[k]+gap)).
    u = np.unique(a)
    feas_lo = np.maximum(u[:-1], u[1:] - max_pair_gap)
    feas_hi = np.minimum(u[1:], u[:-1] + max_pair_gap)
    plan: list[SynthesisPair] = []
    for b in range(counts.size):
        if counts[b] >= min_per_bin:
            continue
        b_lo, b_hi = (first + b) * bin_width, (first + b + 1) * bin_width
        seg_lo, seg_hi = np.maximum(feas_lo, b_lo), np.minimum(feas_hi, b_hi)
        length = np.clip(seg_hi - seg_lo, 0.0, None)
        where = f"age bin [{b_lo:g}, {b_hi:g}) with {counts[b]} image(s) (< min_per_bin={min_per_bin})"
        if length.sum() <= 0:
            if skip_unreachable:
                continue
            raise BrainAgeError(
                f"plan_synthesis: {where} cannot be filled: no younger/older training pair "
                f"lies within max_pair_gap={max_pair_gap:g} years of any age in it. Lower "
                "min_per_bin, widen max_pair_gap, or drop the subjects of this age range."
            )
        p = length / length.sum()
        attempts = 0
        while counts[b] < min_per_bin:
            attempts += 1
            if attempts > 1000 + 100 * min_per_bin:
                if skip_unreachable:
                    break
                raise BrainAgeError(
                    f"plan_synthesis: {where} is only reachable by pairs whose labels rarely "
                    "fall inside it; widen max_pair_gap or lower min_per_bin."
                )
            s = gen.choice(p.size, p=p)
            y_s = gen.uniform(seg_lo[s], seg_hi[s])
            younger = np.flatnonzero((a < y_s) & (y_s - a < max_pair_gap))
            older = np.flatnonzero((a > y_s) & (a - y_s < max_pair_gap))
            if younger.size == 0 or older.size == 0:  # y_s fell on an interval edge
                continue
            i, j = int(gen.choice(younger)), int(gen.choice(older))
            eps = float(gen.uniform())
            label = eps * a[i] + (1 - eps) * a[j]
            counts[np.clip(int(np.floor(label / bin_width)) - first, 0, counts.size - 1)] += 1
            plan.append(SynthesisPair(i, j, eps, float(label)))
    return plan
