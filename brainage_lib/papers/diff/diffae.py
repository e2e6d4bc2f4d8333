"""Semi-supervised diffusion autoencoder for brain age (DIFF paper, sec. 3, app. C/D).

Trained jointly on 2D slices in [0, 1] (mapped to [-1, 1] for the diffusion):

* semantic encoder ``s_phi``: the U-Net's down path + middle block (own weights, no
  timestep, as in DiffAE) -> GroupNorm, SiLU, global average pool, linear -> ``z_sem``;
* noise predictor ``eps_theta(x_t, t, z_sem)``: MONAI's ``DiffusionModelUNet`` with the
  paper's level widths (32, 32, 64, 96, 128) (its channel expansion "(32 -> 32 -> 32) ->
  (32 -> 32 -> 32) -> (64 ...) -> (96 ...) -> (128 ...)", DiffAE's channel multipliers
  (1, 1, 2, 3, 4) on 32), GroupNorm + SiLU, skips between equal-width levels, a middle
  block of three self-attention blocks. "Three convolutional layers per level" is read
  as ``num_res_blocks=3``, of MONAI's settings the closest to the paper's 10.12 M
  parameters (11.0 M here, 1.4 M of them the ``z_sem`` projections; 2 blocks give 8.5 M;
  the notebook prints ours);
* age head ``f_psi``: MLP 512-128-32-1, each hidden layer + ReLU, BatchNorm, dropout 0.5.

Loss: noise MSE (eq. 4, ``t`` uniform on 0..T-1) + age MSE (eq. 6) over the labelled
images of the batch; unlabelled images (age NaN) enter only the diffusion term.

``z_sem`` conditioning follows DiffAE's ResBlock (Preechakul et al. 2022): every MONAI
``DiffusionUNetResnetBlock`` of the noise U-Net (down, middle, up) gets its own
``W_b = Linear(z_dim, out_channels)`` and scales its features after the second
GroupNorm, ``h = norm2(h) * (1 + W_b SiLU(z_sem))`` (DiffAE: SiLU, linear, scale only).
The timestep path stays MONAI's (a projection added before ``norm2``; DiffAE scales and
shifts). ``z_sem`` rides on the timestep embedding (concatenated, split off in each
block), so MONAI's down/up blocks pass it on unchanged. ``W_b`` keeps PyTorch's default
initialisation, as in DiffAE's code: MONAI already zero-initialises each block's last
conv and the output conv, so the U-Net starts as a zero predictor whatever ``z_sem``;
a zero ``W_b`` would only block the decoder's gradient to the encoder until it moved.

Hand-written because MONAI cannot express them: the middle block (MONAI's
``AttnMidBlock`` has one attention block), the time-free encoder (MONAI blocks fed a
zero embedding), the ``z_sem`` scaling and the DDIM loop: ``DDIMScheduler.set_timesteps``
rounds a linspace (999, 888, ...) while ``step``/``reversed_step`` assume a spacing of
``T // steps`` and ``reversed_step`` indexes past ``T - 1``, so they are no inverse pair;
we apply the scheduler's ``alphas_cumprod`` on one grid. MONAI's attention needs einops.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from monai.networks.blocks import SpatialAttentionBlock
from monai.networks.nets import DiffusionModelUNet
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock, DownBlock, get_timestep_embedding
from monai.networks.schedulers import DDPMScheduler, Scheduler
from torch import nn

from brainage_lib.errors import BrainAgeError

__all__ = ["AGE_LOSSES", "DiffAE", "DiffAEConfig", "DiffAELoss", "NoiseUNet", "SemanticEncoder", "ddim_decode",
           "ddim_encode", "diffae_loss", "interpolate", "make_scheduler", "predict_age"]


@dataclass(frozen=True)
class DiffAEConfig:
    """Hyper-parameters of the diffusion autoencoder; defaults are the paper's or DiffAE's.

    Parameters
    ----------
    image_size, channels, num_res_blocks, norm_groups
        Slice side (any multiple of ``2**(len(channels)-1)`` runs), U-Net level widths
        (multiples of ``norm_groups``) and residual blocks per level; smaller profiles
        change these explicitly.
    mid_attention_blocks, attention_heads
        Self-attention blocks in the middle (3) and heads per block (1, as DiffAE).
    z_dim, head_hidden, head_dropout
        Size of ``z_sem``; the age MLP's hidden widths and dropout.
    train_timesteps, beta_start, beta_end, ddim_steps
        DDPM linear schedule (unstated in the paper: DDPM's/DiffAE's values) and the
        default DDIM steps for encoding and decoding (DiffAE reconstructs with 100).
    age_offset, age_scale
        The head predicts ``(age - offset) / scale`` (``train_diffae``: the labelled
        training ages' mean and sd); ``diffae_loss`` takes the age MSE in years or these units.
    """

    image_size: int = 128
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 32, 64, 96, 128)
    num_res_blocks: int = 3
    norm_groups: int = 32
    mid_attention_blocks: int = 3
    attention_heads: int = 1
    z_dim: int = 512
    head_hidden: tuple[int, ...] = (128, 32)
    head_dropout: float = 0.5
    train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    ddim_steps: int = 100
    age_offset: float = 0.0
    age_scale: float = 1.0

    def __post_init__(self) -> None:
        ch, g = self.channels, self.norm_groups
        problems: list[str] = []
        if not ch or g < 1 or any(c % g for c in ch):
            problems.append(f"channels={ch!r} must be non-empty multiples of norm_groups={g}")
        if self.image_size % self.downsample:
            problems.append(f"image_size={self.image_size} must be divisible by {self.downsample}")
        if ch and (self.attention_heads < 1 or ch[-1] % self.attention_heads):
            problems.append(f"channels[-1]={ch[-1]} must be divisible by attention_heads={self.attention_heads}")
        if not 1 <= self.ddim_steps < self.train_timesteps:
            problems.append(f"ddim_steps={self.ddim_steps} must lie in [1, train_timesteps)")
        if not 0 <= self.head_dropout < 1 or self.age_scale <= 0 or self.num_res_blocks < 1:
            problems.append("head_dropout must lie in [0, 1), age_scale > 0, num_res_blocks >= 1")
        if problems:
            raise BrainAgeError("DiffAEConfig: " + "; ".join(problems) + ".")

    @property
    def downsample(self) -> int:
        """Total down-sampling of the U-Net (16 for the paper's five levels)."""
        return 2 ** (len(self.channels) - 1)


class _AttentionMidBlock(nn.Module):
    """ResBlock -> ``n`` MONAI self-attention blocks -> ResBlock, at the bottleneck."""

    def __init__(self, channels: int, temb_channels: int, cfg: DiffAEConfig) -> None:
        super().__init__()
        res = dict(spatial_dims=2, in_channels=channels, temb_channels=temb_channels,
                   norm_num_groups=cfg.norm_groups)
        self.resnet_1 = DiffusionUNetResnetBlock(**res)
        self.attentions = nn.ModuleList(
            SpatialAttentionBlock(2, channels, num_head_channels=channels // cfg.attention_heads,
                                  norm_num_groups=cfg.norm_groups)
            for _ in range(cfg.mid_attention_blocks))
        self.resnet_2 = DiffusionUNetResnetBlock(**res)

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor,
                context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.resnet_1(hidden_states, temb)
        for attention in self.attentions:  # GroupNorm, attention over the H*W tokens, residual
            h = attention(h)
        return self.resnet_2(h, temb)


class SemanticEncoder(nn.Module):
    """``s_phi``: the U-Net down path + middle block, pooled to ``z_sem`` ``(B, z_dim)``.

    Not time-conditioned (DiffAE); MONAI's blocks require an embedding, so they get a
    1-d zero vector and their embedding projections reduce to learned biases.

    Initialised as DiffAE's time-free encoder blocks (``skip(x) + conv(SiLU(GN(x)))``, no
    zero-initialised conv, no embedding term), not as MONAI's generator blocks: each
    block's ``conv2`` gets PyTorch's default initialisation instead of MONAI's zeros, and
    the embedding projection starts at zero instead of a U(-1, 1) per-channel offset.
    With MONAI's init every residual branch is exactly 0, the encoder is linear up to
    the attention, and a linear convolutional map averaged over the image carries little
    more than the image's mean intensity, so ``z_sem`` hardly differed between images
    (relative spread ~1e-2 at init on brain slices, ~1e-4 within a few hundred steps);
    the random offsets, normalised by each block's GroupNorm, added image-independent
    features on top.
    """

    def __init__(self, cfg: DiffAEConfig) -> None:
        super().__init__()
        ch = cfg.channels
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownBlock(spatial_dims=2, in_channels=cin, out_channels=cout, temb_channels=1,
                      num_res_blocks=cfg.num_res_blocks, norm_num_groups=cfg.norm_groups,
                      add_downsample=k < len(ch) - 1)
            for k, (cin, cout) in enumerate(zip((ch[0], *ch[:-1]), ch)))
        self.middle_block = _AttentionMidBlock(ch[-1], 1, cfg)
        self.out = nn.Sequential(nn.GroupNorm(cfg.norm_groups, ch[-1]), nn.SiLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch[-1], cfg.z_dim))
        for block in self.modules():
            if isinstance(block, DiffusionUNetResnetBlock):
                block.conv2.conv.reset_parameters()  # MONAI zero-initialises it: the branch would be 0
                nn.init.zeros_(block.time_emb_proj.weight)  # sees a zero embedding: only its bias acts,
                nn.init.zeros_(block.time_emb_proj.bias)  # an image-independent offset before norm2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        temb = x.new_zeros(x.shape[0], 1)
        h = self.conv_in(x)
        for block in self.down_blocks:
            h, _ = block(h, temb)
        h = self.middle_block(h, temb)  # (B, C_last, H/8, W/8)
        return self.out(h)  # (B, z_dim)


class _ZResnetBlock(DiffusionUNetResnetBlock):
    """MONAI's ResBlock, ``emb = cat(timestep embedding, z_sem)``, ``norm2(h) * (1 + W_b SiLU(z_sem))``."""

    def __init__(self, block: DiffusionUNetResnetBlock, z_dim: int) -> None:
        super().__init__(spatial_dims=block.spatial_dims, in_channels=block.channels,
                         temb_channels=block.emb_channels, out_channels=block.out_channels, up=block.up,
                         down=block.down, norm_num_groups=block.norm1.num_groups, norm_eps=block.norm1.eps)
        self.load_state_dict(block.state_dict())  # the swapped-out block's weights, then W_b
        self.z_proj = nn.Linear(z_dim, self.out_channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        emb, z_sem = emb[:, :self.emb_channels], emb[:, self.emb_channels:]
        h = self.nonlinearity(self.norm1(x))
        if self.upsample is not None:
            x, h = self.upsample(x), self.upsample(h)
        elif self.downsample is not None:
            x, h = self.downsample(x), self.downsample(h)
        spatial = (None,) * self.spatial_dims
        h = self.conv1(h) + self.time_emb_proj(self.nonlinearity(emb))[(..., *spatial)]
        h = self.norm2(h) * (1 + self.z_proj(self.nonlinearity(z_sem))[(..., *spatial)])
        return self.skip_connection(x) + self.conv2(self.nonlinearity(h))


def _swap_resnets(module: nn.Module, z_dim: int) -> None:
    """Replace every ``DiffusionUNetResnetBlock`` below ``module`` by a ``_ZResnetBlock``."""
    for name, child in module.named_children():
        if type(child) is DiffusionUNetResnetBlock:
            setattr(module, name, _ZResnetBlock(child, z_dim))
        else:
            _swap_resnets(child, z_dim)


class NoiseUNet(DiffusionModelUNet):
    """``eps_theta(x_t, t, z_sem)``: MONAI's U-Net whose ResBlocks are scaled by ``z_sem``."""

    def __init__(self, cfg: DiffAEConfig) -> None:
        ch = cfg.channels
        super().__init__(spatial_dims=2, in_channels=cfg.in_channels, out_channels=cfg.in_channels,
                         num_res_blocks=cfg.num_res_blocks, channels=ch,
                         attention_levels=(False,) * len(ch), norm_num_groups=cfg.norm_groups,
                         num_head_channels=ch[-1] // cfg.attention_heads)
        self.z_dim = cfg.z_dim
        self.middle_block = _AttentionMidBlock(ch[-1], 4 * ch[0], cfg)  # 4*C0: MONAI's embedding width
        for blocks in (self.down_blocks, self.middle_block, self.up_blocks):
            _swap_resnets(blocks, cfg.z_dim)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor,  # type: ignore[override]
                z_sem: torch.Tensor) -> torch.Tensor:
        """Noise ``(B, C, H, W)`` like ``x``: MONAI's forward, ``z_sem`` ``(B, z_dim)`` appended to the embedding."""
        if z_sem.shape != (x.shape[0], self.z_dim):
            raise BrainAgeError(f"NoiseUNet: z_sem of shape {tuple(z_sem.shape)} for {x.shape[0]} images; "
                                f"expected ({x.shape[0]}, {self.z_dim}).")
        t_emb = get_timestep_embedding(timesteps, self.block_out_channels[0]).to(dtype=x.dtype)
        emb = torch.cat([self.time_embed(t_emb), z_sem.to(x.dtype)], dim=1)  # (B, 4*C0 + z_dim)
        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            h, res = block(hidden_states=h, temb=emb)
            skips += res
        h = self.middle_block(h, emb)
        for block in self.up_blocks:
            n = len(block.resnets)  # MONAI's forward: each up block takes the last n skips
            h = block(hidden_states=h, res_hidden_states_list=skips[-n:], temb=emb)
            skips = skips[:-n]
        return self.out(h)


class DiffAE(nn.Module):
    """Semantic encoder + conditional noise predictor + age head (paper fig. 1).

    ``encode`` takes images in [0, 1]; ``forward`` works in the diffusion space [-1, 1].
    """

    def __init__(self, config: DiffAEConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiffAEConfig()
        self.encoder = SemanticEncoder(cfg)
        self.unet = NoiseUNet(cfg)
        layers: list[nn.Module] = []
        for fin, fout in zip((cfg.z_dim, *cfg.head_hidden), cfg.head_hidden):
            layers += [nn.Linear(fin, fout), nn.ReLU(), nn.BatchNorm1d(fout), nn.Dropout(cfg.head_dropout)]
        self.age_head = nn.Sequential(*layers, nn.Linear((cfg.z_dim, *cfg.head_hidden)[-1], 1))

    def check_images(self, x: torch.Tensor) -> None:
        """Raise BrainAgeError unless ``x`` is ``(B, in_channels, H, W)`` with H, W divisible."""
        cfg = self.config
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or any(s % cfg.downsample for s in x.shape[2:]):
            raise BrainAgeError(
                f"DiffAE input of shape {tuple(x.shape)}: expected (B, {cfg.in_channels}, H, W) "
                f"with H, W divisible by {cfg.downsample}; resize the slices (paper: 128x128).")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z_sem`` ``(B, z_dim)`` of images ``x`` in [0, 1]."""
        self.check_images(x)
        return self.encoder(2 * x - 1)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        """Noise predicted for noisy images ``x_t`` (diffusion space) at timesteps ``t``."""
        return self.unet(x_t, t, z_sem)

    def age_from_latent(self, z_sem: torch.Tensor) -> torch.Tensor:
        """Ages in years ``(B,)`` from ``z_sem`` (uses the head's current train/eval mode)."""
        return self.age_head(z_sem).squeeze(1) * self.config.age_scale + self.config.age_offset

    def predict_age(self, x: torch.Tensor) -> torch.Tensor:
        """The age head's output for images ``x`` (eval mode, no grad): what ``brainage predict`` calls on a
        network that has this method, instead of its ``forward`` (here the denoiser)."""
        return predict_age(self, x)


def make_scheduler(config: DiffAEConfig | None = None) -> DDPMScheduler:
    """MONAI DDPM scheduler with the config's linear beta schedule."""
    cfg = config or DiffAEConfig()
    return DDPMScheduler(num_train_timesteps=cfg.train_timesteps, schedule="linear_beta",
                         beta_start=cfg.beta_start, beta_end=cfg.beta_end)


AGE_LOSSES = ("years", "standardised")


class DiffAELoss(NamedTuple):
    """Total objective and its parts (``age_mse`` in ``diffae_loss``'s ``age_loss`` units)."""

    total: torch.Tensor
    noise_mse: torch.Tensor
    age_mse: torch.Tensor


def diffae_loss(model: DiffAE, x: torch.Tensor, age: torch.Tensor | None, scheduler: Scheduler,
                generator: torch.Generator | None = None, age_loss: str = "years", noise: torch.Tensor | None = None,
                t: torch.Tensor | None = None, head: bool | None = None) -> DiffAELoss:
    """Noise MSE + age MSE on a batch; NaN ages (or ``age=None``) mark unlabelled images.

    ``x`` ``(B, 1, H, W)`` in [0, 1], ``age`` ``(B,)`` in years; ``scheduler.add_noise``
    makes ``x_t``; ``generator`` (on ``x``'s device) fixes noise and timesteps, unless
    ``noise`` ``(B, 1, H, W)`` and ``t`` ``(B,)`` are given (a process's rows of a global
    batch's draw). The age term averages over the labelled images, and the head sees only
    their ``z_sem`` rows; ``age_loss="years"`` takes it in years² (paper eq. 6),
    ``"standardised"`` in the head's units (years² / ``age_scale**2``). With no labelled
    image, or in training mode with one (BatchNorm needs two rows; batch statistics over
    the whole batch would carry age gradient into the unlabelled images' ``z_sem``), it is
    an exact 0, head not called. ``head`` overrides that rule for one process's share of a
    global batch, judged on the whole batch: True calls the head on the labelled rows, however
    few (none: the term is an exact 0 that still runs the head, whose synchronised BatchNorm
    every process must enter), False never calls it.
    """
    z_sem, x0 = model.encode(x), 2 * x - 1
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x.device, dtype=x.dtype)
    if t is None:
        t = torch.randint(0, scheduler.num_train_timesteps, (x.shape[0],), generator=generator, device=x.device)
    noise_mse = F.mse_loss(model(scheduler.add_noise(x0, noise, t), t, z_sem), noise)
    age = torch.full((x.shape[0],), float("nan")) if age is None else torch.as_tensor(age)
    age = age.to(device=x.device, dtype=x.dtype).reshape(-1)  # (B,)
    if age.shape[0] != x.shape[0] or age_loss not in AGE_LOSSES:
        raise BrainAgeError(f"diffae_loss: {age.shape[0]} ages for {x.shape[0]} images and age_loss={age_loss!r}; "
                            f"give one age per image and age_loss in {AGE_LOSSES}.")
    labelled = ~torch.isnan(age)
    n_labelled, cfg = int(labelled.sum()), model.config
    if not (n_labelled >= (2 if model.training else 1) if head is None else head):
        age_mse = noise_mse.new_zeros(())
    else:
        pred = model.age_head(z_sem[labelled]).squeeze(1)
        age_mse = (F.mse_loss(pred, (age[labelled] - cfg.age_offset) / cfg.age_scale) if n_labelled else
                   pred.float().sum() * 0.0)
        if age_loss == "years":
            age_mse = age_mse * cfg.age_scale**2
    return DiffAELoss(noise_mse + age_mse, noise_mse, age_mse)


# ---- deterministic DDIM encoding / decoding --------------------------------------

@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _ddim_grid(model: DiffAE, scheduler: Scheduler | None, steps: int | None,
               like: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """Ascending timesteps ``0 = t_0 < ... < t_steps = T-1`` and ``alphas_cumprod``."""
    sched = scheduler if scheduler is not None else make_scheduler(model.config)
    steps = model.config.ddim_steps if steps is None else steps
    n_train = sched.num_train_timesteps
    if not 1 <= steps < n_train:
        raise BrainAgeError(f"DDIM steps={steps}: choose 1 <= steps < {n_train} (the training timesteps).")
    grid = torch.linspace(0, n_train - 1, steps + 1).round().long().tolist()
    return grid, sched.alphas_cumprod.to(device=like.device, dtype=like.dtype)


def _ddim_move(x: torch.Tensor, eps: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor) -> torch.Tensor:
    """DDIM (eta = 0) update from noise level ``a_from`` to ``a_to`` (Song et al., eq. 12)."""
    x0 = (x - (1 - a_from).sqrt() * eps) / a_from.sqrt()
    return a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps


def ddim_encode(model: DiffAE, x: torch.Tensor, z_sem: torch.Tensor | None = None,
                scheduler: Scheduler | None = None, steps: int | None = None) -> torch.Tensor:
    """Deterministic DDIM inversion of images ``x`` in [0, 1] to their noise maps ``x_T``.

    ``z_sem`` defaults to ``model.encode(x)``; ``scheduler`` to ``make_scheduler``; ``steps``
    to ``config.ddim_steps``. The clean image is taken as the state at ``t_0 = 0``.
    """
    model.check_images(x)
    with _eval_mode(model):
        z_sem = model.encode(x) if z_sem is None else z_sem
        grid, a = _ddim_grid(model, scheduler, steps, x)
        h = 2 * x - 1
        for t_cur, t_next in zip(grid[:-1], grid[1:]):
            eps = model(h, torch.full((x.shape[0],), t_cur, device=x.device), z_sem)
            h = _ddim_move(h, eps, a[t_cur], a[t_next])
    return h  # (B, 1, H, W)


def ddim_decode(model: DiffAE, x_t: torch.Tensor, z_sem: torch.Tensor,
                scheduler: Scheduler | None = None, steps: int | None = None) -> torch.Tensor:
    """Deterministic DDIM decoding of noise maps ``x_T`` given ``z_sem``; images in [0, 1].

    Start from ``torch.randn`` instead of an encoded map to sample new images for ``z_sem``.
    """
    model.check_images(x_t)
    with _eval_mode(model):
        grid, a = _ddim_grid(model, scheduler, steps, x_t)
        h = x_t
        for t_cur, t_prev in zip(grid[:0:-1], grid[-2::-1]):
            eps = model(h, torch.full((x_t.shape[0],), t_cur, device=x_t.device), z_sem)
            h = _ddim_move(h, eps, a[t_cur], a[t_prev])
    return ((h + 1) / 2).clamp(0, 1)


def _slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation per sample between noise maps (DiffAE); lerp when parallel."""
    af, bf = a.flatten(1), b.flatten(1)  # (B, D)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1, 1))  # (B,)
    sin = torch.sin(theta)
    parallel = sin < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, torch.full_like(sin, 1 - w), torch.sin((1 - w) * theta) / safe)
    wb = torch.where(parallel, torch.full_like(sin, w), torch.sin(w * theta) / safe)
    shape = (-1,) + (1,) * (a.ndim - 1)  # (B, 1, 1, 1)
    return wa.reshape(shape) * a + wb.reshape(shape) * b


def interpolate(model: DiffAE, x_a: torch.Tensor, x_b: torch.Tensor, alphas: Sequence[float],
                steps: int | None = None, scheduler: Scheduler | None = None) -> torch.Tensor:
    """Images ``(len(alphas), B, 1, H, W)`` decoded from ``x_a`` (alpha 0) to ``x_b`` (alpha 1).

    ``z_sem`` is interpolated linearly and ``x_T`` spherically, as in DiffAE.
    """
    if x_a.shape != x_b.shape:
        raise BrainAgeError(f"interpolate: x_a {tuple(x_a.shape)} and x_b {tuple(x_b.shape)} must match.")
    with _eval_mode(model):
        z_a, z_b = model.encode(x_a), model.encode(x_b)
    xt_a = ddim_encode(model, x_a, z_a, scheduler, steps)
    xt_b = ddim_encode(model, x_b, z_b, scheduler, steps)
    frames = [ddim_decode(model, _slerp(xt_a, xt_b, float(w)), torch.lerp(z_a, z_b, float(w)), scheduler, steps)
              for w in alphas]
    return torch.stack(frames)  # (A, B, 1, H, W)


def predict_age(model: DiffAE, x: torch.Tensor) -> torch.Tensor:
    """Brain-predicted ages in years ``(B,)`` for images ``x`` in [0, 1] (eval mode, no grad)."""
    with _eval_mode(model):
        return model.age_from_latent(model.encode(x))
