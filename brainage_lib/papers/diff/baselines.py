"""The DIFF paper's baselines on the same 2D slices (table 1).

* DenseNet121 (Wood et al. 2022): MONAI's ``DenseNet121`` with 2 spatial dims.
* DeepBrainNet-style CNN (Bashyam et al. 2020). DeepBrainNet is a 2D network
  (InceptionResNetV2 or VGG16, ImageNet-initialised) + dense 1024 (ReLU, dropout 0.8)
  + a linear age output, trained on axial slices as independent samples; a subject's
  age is the median of its slice predictions. ``DeepBrainNet2D`` keeps the slice-wise
  design, the 1024-unit head and the median, but its backbone is a compact residual
  VGG-like CNN trained from scratch (no Inception modules, no ImageNet weights), and
  here each subject has one mid-axial slice, so the median is over one slice.
* brainageR-style GPR (Cole's brainageR v2): SPM12 GM/WM/CSF maps, each masked where
  the training-average map exceeds 0.3, standardised, PCA keeping 80 % of the
  variance, Gaussian-process regression (kernlab). SPM segments every image with its
  own intensity model, so site and scanner contrast do not shift the tissue classes.
  With T1 slices only and no SPM, each slice's tissue maps here are the soft posteriors
  of its own 3-class scikit-learn ``GaussianMixture`` over its brain-pixel intensities
  (classes ordered by mean: CSF < GM < WM on T1; no spatial priors or bias-field
  model), smoothed with a Gaussian; scikit-learn ``PCA`` and
  ``GaussianProcessRegressor`` do the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.networks.nets import DenseNet121
from scipy.ndimage import gaussian_filter
from sklearn.decomposition import PCA
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, WhiteKernel
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from brainage_lib.errors import BrainAgeError

__all__ = ["BrainAgeRGP", "DeepBrainNet2D", "SliceCNNConfig", "densenet121_2d", "tissue_posteriors"]


def densenet121_2d(in_channels: int = 1, out_channels: int = 1) -> DenseNet121:
    """MONAI DenseNet121 for 2D slices; output ``(B, out_channels)``."""
    return DenseNet121(spatial_dims=2, in_channels=in_channels, out_channels=out_channels)


@dataclass(frozen=True)
class SliceCNNConfig:
    """Hyper-parameters of ``DeepBrainNet2D``.

    Parameters
    ----------
    channels
        Widths of the residual stages; each stage halves the resolution.
    fc_units, dropout
        DeepBrainNet's dense layer (1024, ReLU) and its dropout (0.8).
    """

    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    fc_units: int = 1024
    dropout: float = 0.8

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1 or not 0 <= self.dropout < 1:
            raise BrainAgeError(
                f"SliceCNNConfig: channels={self.channels!r} must be positive and "
                f"dropout={self.dropout} in [0, 1)."
            )


class _ResidualStage(nn.Module):
    """Two 3x3 conv + BN (ReLU between), a 1x1 projection skip, ReLU, 2x max-pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.body(x) + self.skip(x)))


class DeepBrainNet2D(nn.Module):
    """Slice-wise age regressor: residual stages, global average pool, FC 1024, age.

    ``forward`` maps slices ``(B, C, H, W)`` to ages ``(B, 1)``; ``predict_subjects``
    takes the median over each subject's slices, as DeepBrainNet does.
    """

    def __init__(self, config: SliceCNNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SliceCNNConfig()
        chans = (cfg.in_channels, *cfg.channels)
        self.features = nn.Sequential(*(_ResidualStage(a, b) for a, b in zip(chans[:-1], chans[1:])))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], cfg.fc_units), nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout), nn.Linear(cfg.fc_units, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or min(x.shape[2:]) < 2 ** len(self.config.channels):
            raise BrainAgeError(
                f"DeepBrainNet2D input of shape {tuple(x.shape)}: expected (B, C, H, W) with H, W "
                f">= {2 ** len(self.config.channels)}.")
        return self.head(self.features(x))  # (B, 1)

    def predict_subjects(self, slices: torch.Tensor) -> torch.Tensor:
        """Median slice prediction per subject: ``(B, S, H, W)`` -> ``(B,)`` (no grad, eval)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                b, s = slices.shape[:2]
                pred = self(slices.reshape(b * s, 1, *slices.shape[2:]))  # (B*S, 1)
                return pred.reshape(b, s).median(dim=1).values
        finally:
            self.train(was_training)


def tissue_posteriors(intensities: np.ndarray, random_state: int = 0) -> np.ndarray:
    """Soft CSF/GM/WM memberships ``(n, 3)`` of one image's brain-pixel intensities ``(n,)``.

    A 3-class 1-D ``GaussianMixture`` fitted to these pixels only, classes ordered by mean.
    """
    v = np.asarray(intensities, dtype=float).reshape(-1, 1)
    gmm = GaussianMixture(3, random_state=random_state).fit(v)
    return gmm.predict_proba(v)[:, np.argsort(gmm.means_.ravel())]


class BrainAgeRGP:
    """brainageR-style GPR on PCA of soft GM/WM/CSF maps of 2D slices.

    Parameters
    ----------
    n_components
        PCA components: a fraction of variance to keep (brainageR: 0.8) or a count.
    kernel
        ``"linear"`` (constant * dot-product + white noise) or ``"rbf"``
        (constant * RBF + white noise); hyper-parameters by marginal likelihood.
    smooth_sigma
        Gaussian smoothing of the tissue maps, in pixels (brainageR smooths by 4 mm).
    brain_threshold
        Pixels above this intensity are brain (skull-stripped slices in [0, 1]).
    mask_threshold
        A tissue's pixel is kept where its training-mean map exceeds this (0.3).
    min_sd
        ... and where its training sd exceeds this: memberships that (almost) never vary
        carry no age signal, and standardising their round-off would blow it up.
    random_state
        Seed of every per-image mixture and of the PCA.
    """

    def __init__(self, n_components: float | int = 0.8, kernel: str = "linear", smooth_sigma: float = 1.0,
                 brain_threshold: float = 0.05, mask_threshold: float = 0.3, min_sd: float = 1e-3,
                 random_state: int = 0) -> None:
        if kernel not in ("linear", "rbf"):
            raise BrainAgeError(f"BrainAgeRGP: kernel={kernel!r}; use 'linear' or 'rbf'.")
        self.n_components, self.kernel, self.smooth_sigma = n_components, kernel, smooth_sigma
        self.brain_threshold, self.mask_threshold, self.min_sd = brain_threshold, mask_threshold, min_sd
        self.random_state = random_state

    @staticmethod
    def _images(x: object) -> np.ndarray:
        a = np.asarray(x, dtype=float)
        if a.ndim != 3 or a.shape[0] < 1 or not np.all(np.isfinite(a)):
            raise BrainAgeError(f"BrainAgeRGP: images of shape {a.shape}; expected finite (N, H, W) slices.")
        return a

    def tissue_maps(self, x: object) -> np.ndarray:
        """Soft CSF/GM/WM maps ``(N, 3, H, W)``, each image segmented by its own mixture; zero outside the brain."""
        imgs = self._images(x)
        maps = np.zeros((imgs.shape[0], 3, *imgs.shape[1:]))
        with threadpool_limits(1):  # per-image fits are small: threads only add overhead
            for i, img in enumerate(imgs):
                brain = img > self.brain_threshold  # (H, W)
                if np.unique(img[brain]).size < 3:
                    raise BrainAgeError(f"BrainAgeRGP: image {i} has fewer than 3 distinct intensities above "
                                        f"brain_threshold={self.brain_threshold}; cannot fit 3 tissue classes.")
                maps[i][:, brain] = tissue_posteriors(img[brain], self.random_state).T
        if self.smooth_sigma > 0:
            maps = gaussian_filter(maps, sigma=(0, 0, self.smooth_sigma, self.smooth_sigma))
        return maps

    def _features(self, x: object) -> np.ndarray:
        maps = self.tissue_maps(x).reshape(np.shape(x)[0], -1)  # (N, 3*H*W)
        if maps.shape[1] != self.mask_.size:
            raise BrainAgeError(f"BrainAgeRGP: slices of shape {np.shape(x)[1:]} differ from the fitted size.")
        return maps[:, self.mask_]  # (N, n_kept)

    def fit(self, images: object, ages: object) -> BrainAgeRGP:
        """Fit the mask, scaler, PCA and GP on slices ``(N, H, W)`` and ages ``(N,)``."""
        imgs = self._images(images)
        y = np.asarray(ages, dtype=float).reshape(-1)
        if y.size != imgs.shape[0] or imgs.shape[0] < 3 or not np.all(np.isfinite(y)):
            raise BrainAgeError(
                f"BrainAgeRGP.fit: {imgs.shape[0]} images and {y.size} ages; need >= 3 pairs with finite ages.")
        maps = self.tissue_maps(imgs).reshape(imgs.shape[0], -1)  # (N, 3*H*W)
        self.mask_ = (maps.mean(0) > self.mask_threshold) & (maps.std(0) > self.min_sd)
        if not self.mask_.any():
            raise BrainAgeError(f"BrainAgeRGP.fit: no pixel's tissue map has a training mean above "
                                f"{self.mask_threshold} and an sd above {self.min_sd}.")
        feats = maps[:, self.mask_]  # (N, n_kept)
        self.scaler_ = StandardScaler().fit(feats)
        self.pca_ = PCA(self.n_components, random_state=self.random_state)
        scores = self.pca_.fit_transform(self.scaler_.transform(feats))
        base = RBF(length_scale=np.sqrt(scores.shape[1])) if self.kernel == "rbf" else DotProduct()
        kernel = ConstantKernel() * base + WhiteKernel()
        self.gp_ = GaussianProcessRegressor(kernel, normalize_y=True, random_state=self.random_state)
        self.gp_.fit(scores, y)
        return self

    def predict(self, images: object, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted ages ``(N,)`` (and the GP's predictive sd with ``return_std``)."""
        if not hasattr(self, "gp_"):
            raise BrainAgeError("BrainAgeRGP: call fit(images, ages) before predicting.")
        scores = self.pca_.transform(self.scaler_.transform(self._features(images)))
        return self.gp_.predict(scores, return_std=return_std)
