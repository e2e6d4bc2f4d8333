"""3D-ResNet18 baseline of He et al. (ISBI 2020), with instance normalisation.

The paper's baseline is "the corresponding 3D-ResNet18 ... 3D-convolutional layers
with kernel size of 3x3x3, global average pooling and a fully connected layer for
age prediction", and "Instance Normalization is applied after each 2D/3D
convolutional layer" (Sec. 2-3). Both networks in this paper (this one and the
2D slice encoder in ``resnet_lstm.py``) are MONAI ResNets built by
:func:`instance_norm_resnet`, which lives here so the two share one builder.

Stem. Read literally, "kernel size of 3x3x3" covers every conv, the stem included; but
the paper calls the network "the corresponding 3D-ResNet18" of ResNet18 [8], whose stem is
7x7 (stride 2), and the sentence cannot be literal for the 1x1 shortcut convs either. We
read it as describing the residual blocks and keep the standard 7x7x7 stride-2 stem by
default; ``ResNet3DConfig.stem_kernel`` (notebook parameter ``STEM_KERNEL``) gives 3 for
the literal reading.

MONAI 1.6.1 caveat (the reason for :func:`replace_batchnorm_with_instancenorm`):
``monai.networks.nets.ResNet`` takes a ``norm`` argument, but it reaches only the
stem; ``_make_layer`` is called without it, so the 16 block norms and the 3
shortcut norms stay BatchNorm, and a non-affine instance norm crashes the weight
init (``torch.as_tensor(None)``). See Project-MONAI/MONAI PR #9028. We therefore
build the network with MONAI's default norm and swap every BatchNorm for an
InstanceNorm afterwards, which gives "instance norm after every conv" (stem conv,
both 3x3 convs of every block, and every 1x1 shortcut conv) whatever MONAI's
version does with ``norm``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import ResNet
from torch import nn

from brainage_lib.errors import BrainAgeError

# Channel widths of the four ResNet18 stages before ``widen_factor`` (He et al. 2016).
RESNET_INPLANES: tuple[int, int, int, int] = (64, 128, 256, 512)

_INSTANCE_NORM_FOR: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: nn.InstanceNorm1d,
    nn.BatchNorm2d: nn.InstanceNorm2d,
    nn.BatchNorm3d: nn.InstanceNorm3d,
}


def replace_batchnorm_with_instancenorm(module: nn.Module, affine: bool) -> int:
    """Swap every BatchNorm{1,2,3}d in ``module`` for the matching InstanceNorm, in place.

    Parameters
    ----------
    module
        Network to modify.
    affine
        Whether the instance norms get a learnable per-channel scale and shift.

    Returns
    -------
    int
        Number of layers replaced.
    """
    targets = [
        (parent, name, child)
        for parent in module.modules()
        for name, child in parent.named_children()
        if type(child) in _INSTANCE_NORM_FOR
    ]
    for parent, name, child in targets:
        norm_cls = _INSTANCE_NORM_FOR[type(child)]
        setattr(parent, name, norm_cls(child.num_features, affine=affine, track_running_stats=False))
    return len(targets)


def final_feature_map_size(size: int, stem_kernel: int, stem_stride: int) -> int:
    """Spatial extent of the ResNet18 layer4 output for an input extent ``size``.

    Stem conv (``stem_kernel``, ``stem_stride``, padding ``stem_kernel // 2``), 3x3
    stride-2 max-pool, then three stride-2 stages.
    """
    out = (size + 2 * (stem_kernel // 2) - stem_kernel) // stem_stride + 1
    for _ in range(4):
        out = (out - 1) // 2 + 1
    return out


def check_backbone_fields(
    sizes: tuple[int, ...],
    block_layers: tuple[int, ...],
    widen_factor: float,
    stem_kernel: int,
    stem_stride: int,
    where: str,
) -> None:
    """Raise :class:`BrainAgeError` if a backbone config cannot be built or run."""
    if len(block_layers) != 4 or any(n < 1 for n in block_layers):
        raise BrainAgeError(f"{where}: block_layers must be four positive ints, got {block_layers}.")
    if int(RESNET_INPLANES[0] * widen_factor) < 1:
        raise BrainAgeError(f"{where}: widen_factor={widen_factor} leaves no channels; use >= 1/64.")
    if stem_kernel < 1 or stem_stride < 1:
        raise BrainAgeError(f"{where}: stem_kernel and stem_stride must be >= 1.")
    for size in sizes:
        # InstanceNorm needs more than one spatial element in the last stage.
        if final_feature_map_size(size, stem_kernel, stem_stride) < 2:
            raise BrainAgeError(
                f"{where}: input extent {size} shrinks to 1 voxel in layer4, where instance "
                "norm is undefined; use larger inputs (>= 33 voxels per axis with the default stem)."
            )


def instance_norm_resnet(
    spatial_dims: int,
    block_layers: tuple[int, int, int, int],
    widen_factor: float,
    stem_kernel: int,
    stem_stride: int,
    norm_affine: bool,
    num_classes: int | None,
) -> ResNet:
    """MONAI basic-block ResNet with one input channel and instance norm after every conv.

    Parameters
    ----------
    spatial_dims
        2 or 3.
    block_layers
        Basic blocks per stage; ``(2, 2, 2, 2)`` is ResNet18.
    widen_factor
        Multiplies the stage widths (64, 128, 256, 512).
    stem_kernel, stem_stride
        First convolution; 7 and 2 as in He et al. (2016).
    norm_affine
        Learnable scale/shift in the instance norms.
    num_classes
        Size of the final FC after global average pooling; ``None`` drops the FC
        and the network returns the pooled features ``(N, 512 * widen_factor)``.
    """
    net = ResNet(
        block="basic",
        layers=list(block_layers),
        block_inplanes=list(RESNET_INPLANES),
        spatial_dims=spatial_dims,
        n_input_channels=1,
        conv1_t_size=stem_kernel,
        conv1_t_stride=stem_stride,
        shortcut_type="B",  # 1x1 conv + norm on stage changes, as in torchvision's resnet18
        bias_downsample=False,  # a norm follows the 1x1 conv, so its bias is redundant
        widen_factor=widen_factor,
        num_classes=num_classes or 1,
        feed_forward=num_classes is not None,
    )
    replace_batchnorm_with_instancenorm(net, affine=norm_affine)
    return net


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ResNet3DConfig:
    """Paper defaults of the 3D-ResNet18 baseline (He et al., ISBI 2020, Sec. 3)."""

    input_shape: tuple[int, int, int] = (128, 160, 112)  # SRI24 atlas grid
    block_layers: tuple[int, int, int, int] = (2, 2, 2, 2)  # ResNet18
    widen_factor: float = 1.0  # 1.0 -> stage widths 64, 128, 256, 512
    stem_kernel: int = 7  # standard ResNet18 stem; 3 = the paper's literal "3x3x3" (module docstring)
    stem_stride: int = 2  # standard ResNet stem; MONAI's default 1 costs ~8x the compute
    norm_affine: bool = False  # paper eq. 4 is (x - E[x]) / sqrt(Var[x] + eps), no scale/shift

    def __post_init__(self) -> None:
        check_backbone_fields(
            self.input_shape, self.block_layers, self.widen_factor,
            self.stem_kernel, self.stem_stride, where="ResNet3DConfig",
        )


class ResNet3D(nn.Module):
    """3D-ResNet18 regressor: volume ``(B, 1, D, H, W)`` -> age ``(B, 1)``."""

    def __init__(self, config: ResNet3DConfig | None = None) -> None:
        super().__init__()
        config = config or ResNet3DConfig()
        self.config = config
        self.net = instance_norm_resnet(
            spatial_dims=3,
            block_layers=config.block_layers,
            widen_factor=config.widen_factor,
            stem_kernel=config.stem_kernel,
            stem_stride=config.stem_stride,
            norm_affine=config.norm_affine,
            num_classes=1,  # conv stages -> global average pool -> FC(512, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict age.

        Parameters
        ----------
        x
            Volumes ``(B, 1, D, H, W)`` with ``(D, H, W) == config.input_shape``.

        Returns
        -------
        torch.Tensor
            Predicted ages ``(B, 1)``.
        """
        expected = (1, *self.config.input_shape)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise BrainAgeError(
                f"ResNet3D expects input (B, {', '.join(map(str, expected))}), got "
                f"{tuple(x.shape)}; resample volumes to config.input_shape or change the config."
            )
        return self.net(x)  # (B, 1)
