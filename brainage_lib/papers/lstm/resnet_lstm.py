"""2D-ResNet18+LSTM of He et al., "Brain Age Estimation Using LSTM on Children's Brain
MRI" (ISBI 2020, arXiv:2002.09045), Sec. 2.

A volume is read as a stack of S slices, each resized to 50x50 (Sec. 3). The paper names
neither the slicing orientation nor S. We slice along the last axis of the SRI24 atlas
grid, "image size [128,160,112]" (Sec. 3), i.e. axially (inferior-superior), which gives
S = 112 slices of 128x160: an inference from the grid, not something the paper states.

1. every slice goes through a ResNet18 without its FC (eq. 1) -> 512-d feature;
2. features of k adjacent slices are average-pooled (eq. 2) -> S // k steps;
3. a bidirectional LSTM, hidden size 64 (eq. 3), reads the pooled sequence;
4. all LSTM outputs, every step and both directions, are concatenated and one FC
   maps the (S // k) * 128 values to the age.

Instance normalisation follows every convolution (Sec. 2, eq. 4); see
``resnet3d.instance_norm_resnet`` for how that is obtained from MONAI 1.6.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.lstm.resnet3d import RESNET_INPLANES, check_backbone_fields, instance_norm_resnet


def pool_adjacent_slices(features: torch.Tensor, k: int) -> torch.Tensor:
    """Average features over non-overlapping windows of ``k`` adjacent slices (paper eq. 2).

    Window ``m`` averages slices ``m*k, ..., m*k + k - 1``. When ``S`` is not a multiple
    of ``k`` the last ``S % k`` slices are dropped (as ``avg_pool1d`` with
    ``ceil_mode=False``), so there are exactly ``S // k`` outputs.

    Parameters
    ----------
    features
        Per-slice features ``(B, S, C)``.
    k
        Window length, ``1 <= k <= S``.

    Returns
    -------
    torch.Tensor
        Pooled features ``(B, S // k, C)``.
    """
    if features.ndim != 3:
        raise BrainAgeError(f"pool_adjacent_slices expects (B, S, C) features, got {tuple(features.shape)}.")
    b, s, c = features.shape
    if not 1 <= k <= s:
        raise BrainAgeError(f"pool_adjacent_slices: k={k} must lie in [1, S={s}].")
    m = s // k
    windows = features[:, : m * k].reshape(b, m, k, c)  # (B, S // k, k, C)
    return windows.mean(dim=2)  # (B, S // k, C)


@dataclass(frozen=True)
class ResNetLSTMConfig:
    """Paper defaults of the 2D-ResNet18+LSTM (He et al., ISBI 2020, Sec. 2-3)."""

    n_slices: int = 112  # last axis of the 128x160x112 SRI24 grid (axial; inferred, not stated)
    slice_size: int = 50  # each slice resized to 50x50 (Sec. 3)
    # Pooling window k. The paper says "In the experiments, we set k = ..." but the
    # value is missing from the paper's text (its equations did not survive extraction).
    # 4 is this project's choice, not the paper's: it divides 112, giving 28 LSTM steps
    # with no dropped slice.
    pool_k: int = 4
    lstm_hidden: int = 64  # "Bidirectional LSTM with the hidden dimension size of 64"
    block_layers: tuple[int, int, int, int] = (2, 2, 2, 2)  # ResNet18
    widen_factor: float = 1.0  # 1.0 -> 512-d slice features
    stem_kernel: int = 7  # standard ResNet18 stem (He et al. 2016)
    stem_stride: int = 2  # standard stem: 50 -> 25 -> 13 -> 7 -> 4 -> 2 in layer4
    norm_affine: bool = False  # paper eq. 4 is (x - E[x]) / sqrt(Var[x] + eps), no scale/shift

    def __post_init__(self) -> None:
        check_backbone_fields(
            (self.slice_size,), self.block_layers, self.widen_factor,
            self.stem_kernel, self.stem_stride, where="ResNetLSTMConfig",
        )
        if not 1 <= self.pool_k <= self.n_slices:
            raise BrainAgeError(
                f"ResNetLSTMConfig: pool_k={self.pool_k} must lie in [1, n_slices={self.n_slices}]."
            )
        if self.lstm_hidden < 1:
            raise BrainAgeError(f"ResNetLSTMConfig: lstm_hidden={self.lstm_hidden} must be >= 1.")

    @property
    def feature_dim(self) -> int:
        """Width of one slice feature (512 for ResNet18)."""
        return int(RESNET_INPLANES[-1] * self.widen_factor)

    @property
    def n_steps(self) -> int:
        """LSTM sequence length after pooling, ``n_slices // pool_k``."""
        return self.n_slices // self.pool_k

    @property
    def fc_in_features(self) -> int:
        """Concatenated LSTM outputs: ``n_steps * 2 * lstm_hidden``."""
        return self.n_steps * 2 * self.lstm_hidden


class ResNetLSTM(nn.Module):
    """2D-ResNet18+LSTM regressor: slice stack ``(B, S, H, W)`` -> age ``(B, 1)``."""

    def __init__(self, config: ResNetLSTMConfig | None = None) -> None:
        super().__init__()
        config = config or ResNetLSTMConfig()
        self.config = config
        self.encoder = instance_norm_resnet(
            spatial_dims=2,
            block_layers=config.block_layers,
            widen_factor=config.widen_factor,
            stem_kernel=config.stem_kernel,
            stem_stride=config.stem_stride,
            norm_affine=config.norm_affine,
            num_classes=None,  # no FC: global-average-pooled features
        )
        self.lstm = nn.LSTM(
            input_size=config.feature_dim,
            hidden_size=config.lstm_hidden,
            batch_first=True,
            bidirectional=True,
        )
        self.head = nn.Linear(config.fc_in_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict age.

        Parameters
        ----------
        x
            Slice stacks ``(B, S, H, W)`` with ``S == n_slices`` and
            ``H == W == slice_size``.

        Returns
        -------
        torch.Tensor
            Predicted ages ``(B, 1)``.
        """
        cfg = self.config
        expected = (cfg.n_slices, cfg.slice_size, cfg.slice_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise BrainAgeError(
                f"ResNetLSTM expects input (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; resample slices to config.slice_size or change the config."
            )
        b, s, h, w = x.shape
        feats = self.encoder(x.reshape(b * s, 1, h, w))  # (B*S, C)
        feats = feats.reshape(b, s, -1)  # (B, S, C)
        pooled = pool_adjacent_slices(feats, cfg.pool_k)  # (B, S // k, C)
        # the LSTM outside autocast, in fp32: under CUDA autocast cuDNN's RNN would run in fp16 (its autocast
        # policy), with no gradient scaler; it is small (S // k steps), so fp32 costs little
        with torch.autocast(device_type=pooled.device.type, enabled=False):
            seq, _ = self.lstm(pooled.float())  # (B, S // k, 2 * hidden): forward and backward outputs
        return self.head(seq.flatten(start_dim=1))  # (B, 1)
