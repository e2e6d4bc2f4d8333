"""REG: the 3D VGG-like age regressor of the TGB paper (section 2.2).

Five down-sampling levels, each two 3x3x3 convolutions with ReLU wrapped in a
residual connection and followed by a 2x max-pool; the last feature map is
flattened and fed to fully connected layers 2048-1024-64-1. At the paper's input
size (96^3) the flattened vector has 3*3*3*256 = 6912 features.

The same network is the task-guided branch (TGB): attached to the generator's
output it adds beta * L2(age) to the GAN objective (see ``tgb_gan``).

The FC head runs in fp32 with autocast disabled: under bf16 autocast an age in
years would otherwise come out rounded to bf16 (8 significant bits: 16.877 -> 16.75).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from brainage_lib.errors import BrainAgeError

__all__ = ["RegressorConfig", "ResidualLevel", "TGBRegressor", "autocast_off", "he_init"]


@dataclass(frozen=True)
class RegressorConfig:
    """Hyper-parameters of REG; the defaults are the paper's.

    Parameters
    ----------
    input_shape
        Spatial size ``(D, H, W)`` of the input volume; each side must be at least
        ``2 ** len(channels)`` so that every max-pool has something to pool.
    in_channels
        Image channels (1 for a T1 volume).
    channels
        Feature channels of the down-sampling levels, before ``width`` scaling.
    width
        Multiplier applied to ``channels`` (a smaller profile uses e.g. 0.25).
    fc_units
        Hidden fully connected layers between the flattened features and the
        single age output.
    """

    input_shape: tuple[int, int, int] = (96, 96, 96)
    in_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    width: float = 1.0
    fc_units: tuple[int, ...] = (2048, 1024, 64)

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise BrainAgeError(
                f"RegressorConfig.input_shape={self.input_shape!r}: give three "
                "spatial sizes (D, H, W)."
            )
        if not self.channels or self.width <= 0 or self.in_channels < 1:
            raise BrainAgeError(
                f"RegressorConfig: channels={self.channels!r}, width={self.width}, "
                f"in_channels={self.in_channels} must be non-empty / positive."
            )
        smallest = 2 ** len(self.channels)
        if min(self.input_shape) < smallest:
            raise BrainAgeError(
                f"RegressorConfig.input_shape={self.input_shape!r} is too small for "
                f"{len(self.channels)} max-pools; every side must be >= {smallest}."
            )

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Channels of each level after ``width`` scaling (at least 1)."""
        return tuple(max(1, round(c * self.width)) for c in self.channels)

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        """Spatial size after all max-pools (floor division, as ``MaxPool3d``)."""
        n = len(self.channels)
        d, h, w = (s // 2**n for s in self.input_shape)
        return (d, h, w)

    @property
    def flat_features(self) -> int:
        """Length of the flattened feature vector fed to the first FC layer."""
        return self.level_channels[-1] * math.prod(self.pooled_shape)


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Context with autocast disabled on ``device`` (a no-op where autocast does not exist, e.g. meta)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal init, std ``sqrt(2 / fan_in)``, zero bias; use with ``.apply``.

    The paper does not give an initialisation. PyTorch's default shrinks the
    signal of these deep, normalisation-free ReLU stacks (the latents of an
    untrained generator come out almost input-independent), so He init is used.
    A 2x transposed convolution with stride 2 feeds each output voxel from one
    kernel tap, so its fan-in is ``in_channels``.
    """
    if isinstance(module, nn.ConvTranspose3d):
        taps = math.prod(module.kernel_size) // math.prod(module.stride)
        fan_in = module.in_channels * max(1, taps)
    elif isinstance(module, (nn.Conv3d, nn.Linear)):
        fan_in = module.weight[0].numel()
    else:
        return
    nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_in))
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class ResidualLevel(nn.Module):
    """Two 3x3x3 conv + ReLU with a residual connection, then a 2x max-pool.

    ``out = pool(relu(conv2(relu(conv1(x))) + skip(x)))`` where ``skip`` is a
    1x1x1 convolution when the channel count changes and the identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1)
        self.skip: nn.Module = (
            nn.Conv3d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d(kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C_in, D, H, W)`` to ``(B, C_out, D//2, H//2, W//2)``."""
        y = self.relu(self.conv1(x))
        y = self.conv2(y)
        return self.pool(self.relu(y + self.skip(x)))


class TGBRegressor(nn.Module):
    """3D VGG-like residual regressor predicting one age per volume.

    Parameters
    ----------
    config
        Architecture; ``RegressorConfig()`` is the paper's network.

    Notes
    -----
    The paper writes that every FC layer is followed by a ReLU; the final age
    output is left linear here (a ReLU on the output could only clamp the
    prediction and kill its gradient), so ReLUs sit between the FC layers.
    """

    def __init__(self, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.config = config or RegressorConfig()
        cfg = self.config
        chans = (cfg.in_channels, *cfg.level_channels)
        self.features = nn.Sequential(
            *(ResidualLevel(cin, cout) for cin, cout in zip(chans[:-1], chans[1:]))
        )
        units = (cfg.flat_features, *cfg.fc_units)
        layers: list[nn.Module] = []
        for fin, fout in zip(units[:-1], units[1:]):
            layers += [nn.Linear(fin, fout), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(units[-1], 1))
        self.head = nn.Sequential(*layers)
        self.apply(he_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict ages.

        Parameters
        ----------
        x
            Volumes of shape ``(B, in_channels, *input_shape)``.

        Returns
        -------
        torch.Tensor
            Predicted ages, shape ``(B,)``, float32 also under autocast.
        """
        expected = (self.config.in_channels, *self.config.input_shape)
        if tuple(x.shape[1:]) != expected:
            raise BrainAgeError(
                f"TGBRegressor got input of shape {tuple(x.shape)}; expected "
                f"(B, {', '.join(map(str, expected))}). Resize the volumes or build "
                "the regressor with RegressorConfig(input_shape=...)."
            )
        f = self.features(x)  # (B, C_last, D/32, H/32, W/32)
        f = f.flatten(1)  # (B, C_last * D/32 * H/32 * W/32)
        with autocast_off(f.device):
            return self.head(f.float()).squeeze(-1)  # (B,) float32
