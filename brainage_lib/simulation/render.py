"""Image formation for one subject: tissues at a biological age, an individual warp, a site's scanner.

``tissues_at_age`` applies the ageing model (``ageing``) and, after the tissue limits,
the regional effect: extra GM loss to CSF in the effect region, proportional to the
effect weight and to biological age, so that all of it reaches the image. ``Renderer``
holds a cohort's template-space maps and draws subjects and noise-free reference images.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from brainage_lib.simulation import ageing
from brainage_lib.simulation.anatomy import MNI_EXTENT, MNI_ORIGIN, Grid, region_map, smooth_field, tissue_maps
from brainage_lib.simulation.presets import Preset

CONTRAST = {"1.5T": (0.25, 0.58, 0.78), "3T": (0.18, 0.50, 0.86)}  # T1w (CSF, GM, WM) at each field strength
SITE_CONTRAST_SD = 0.01  # per-site deviation of each tissue intensity (vendor, sequence, coil)
VENTRICLE_RADIUS_MM = 28.0


@dataclass(frozen=True)
class Site:
    """How one site forms its images."""

    name: str
    field_strength: str
    i_csf: float
    i_gm: float
    i_wm: float
    gain: float
    bias_strength: float
    snr: float
    slice_mm: float = 0.0  # clinical grade: thick slices along z (0 = none)
    blur_mm: float = 0.0  # clinical grade: in-plane Gaussian blur sigma


def sample_sites(preset: Preset, rng: np.random.Generator) -> dict[str, Site]:
    """Draw each site's contrast, gain, bias field strength, SNR and (clinical) resolution loss."""
    sites = {}
    clinical = preset.grade == "clinical"
    for i in range(preset.n_sites):
        name = f"site{preset.site_offset + i + 1:02d}"
        fs = preset.field_strength if preset.field_strength != "mixed" else str(rng.choice(["1.5T", "3T"]))
        c, g, w = np.asarray(CONTRAST[fs]) + rng.normal(0, SITE_CONTRAST_SD, 3)
        sites[name] = Site(
            name, fs, float(c), float(g), float(w), gain=float(rng.uniform(0.8, 1.25)),
            bias_strength=float(rng.uniform(0.08, 0.2) if clinical else rng.uniform(0.02, 0.06)),  # residual after N4
            snr=float(rng.uniform(10, 16) if clinical else rng.uniform(25, 40)),
            slice_mm=float(rng.uniform(4, 6)) if clinical else 0.0,
            blur_mm=float(rng.uniform(0.5, 1.0)) if clinical else 0.0,
        )
    return sites


def regional_loss(age: float, effect: torch.Tensor, rate: float, onset: float = 0.0) -> torch.Tensor:
    """Share of GM the effect region has lost to CSF by biological ``age``: ``rate * (age - onset) * effect``, in [0, 1]."""
    return torch.clamp(rate * max(age - onset, 0.0) * effect, 0.0, 1.0)


def tissues_at_age(anat: dict[str, torch.Tensor], age: float, effect: torch.Tensor, rate: float, onset: float = 0.0,
                   disease: torch.Tensor | None = None, severity: float = 0.0, strength: float = 0.0,
                   variation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """GM/WM/CSF fractions of the template anatomy at biological ``age`` (template space).

    Global ageing scales GM and WM by ``ageing.gm_relative`` and ``wm_relative`` within
    the brain mask (WM missing in childhood is unmyelinated, GM-like tissue); ``variation``
    (2, X, Y, Z) perturbs GM and WM proportions per subject. Then, after these limits,
    the effect region loses ``regional_loss`` of its GM and a disease region up to
    ``severity * strength`` of it, both to CSF. Tissues always sum to the brain mask.
    """
    gm, wm, mask = anat["gm"], anat["wm"], anat["mask"]
    gm_new = gm * float(ageing.gm_relative(age))
    wm_new = wm * float(ageing.wm_relative(age))
    if variation is not None:
        gm_new = gm_new * (1.0 + 0.03 * variation[0])
        wm_new = wm_new * (1.0 + 0.03 * variation[1])
    child = 1.0 / (1.0 + np.exp(-(20.0 - age) / 3.0))
    gm_new = gm_new + torch.clamp(wm - wm_new, min=0.0) * float(child)
    wm_new = torch.minimum(wm_new, mask)
    gm_new = torch.minimum(gm_new, mask - wm_new)
    gm_new = gm_new * (1.0 - regional_loss(age, effect, rate, onset))
    if disease is not None and severity > 0:
        gm_new = gm_new * (1.0 - severity * strength * disease)
    return {"gm": gm_new, "wm": wm_new, "csf": mask - gm_new - wm_new}


def t1_intensity(t: dict[str, torch.Tensor], age: float, site_contrast: tuple[float, float, float],
                 lesions: torch.Tensor | None = None) -> torch.Tensor:
    """Noise-free T1w intensity from tissue fractions; lesions pull WM toward a GM/CSF mix."""
    i_csf, i_gm, i_wm = site_contrast
    wm_int = float(ageing.wm_intensity(age, i_gm, i_wm))
    if lesions is not None:
        wm_int = wm_int * (1.0 - lesions) + 0.5 * (i_gm + i_csf) * lesions
    return t["gm"] * i_gm + t["wm"] * wm_int + t["csf"] * i_csf


def _lesion_map(rng: np.random.Generator, age: float, grid: Grid, candidates: np.ndarray) -> tuple[np.ndarray, int]:
    n = int(rng.poisson(float(ageing.lesion_rate(age))))
    out = np.zeros(grid.shape, dtype=np.float32)
    vox = grid.voxel_size
    for _ in range(n):
        c = candidates[rng.integers(len(candidates))]
        r = rng.uniform(1.5, 4.0)
        half = np.ceil(3 * r / vox).astype(int)
        lo, hi = np.maximum(c - half, 0), np.minimum(c + half + 1, grid.shape)
        axes = [(np.arange(lo[i], hi[i]) - c[i]) * vox[i] for i in range(3)]
        d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
        box = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.maximum(box, np.exp(-d2 / (2 * r * r)).astype(np.float32), out=box)
    return out, n


def _grid_sample_coords(q: torch.Tensor) -> torch.Tensor:
    """MNI positions (3, X, Y, Z) in mm to a ``grid_sample`` grid (1, X, Y, Z, 3) ordered (z, y, x)."""
    origin = torch.tensor(MNI_ORIGIN, dtype=torch.float32, device=q.device)[:, None, None, None]
    extent = torch.tensor(MNI_EXTENT, dtype=torch.float32, device=q.device)[:, None, None, None]
    return (2 * (q - origin) / extent - 1).flip(0).permute(1, 2, 3, 0)[None]


def simulation_device(device: str | torch.device | None = None) -> torch.device:
    """Where subjects are rendered: ``device`` if given, else ``BRAINAGE_SIM_DEVICE``, else CUDA when present.

    The random draws are NumPy's on the CPU wherever the image is formed, so a cohort is the
    same subjects on any device; on CUDA its voxels may differ from a CPU rendering in the last
    float32 digits (and so, rarely, by one unit of the int16 image).
    """
    name = device or os.environ.get("BRAINAGE_SIM_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Renderer:
    """Holds a cohort's template-space maps on one grid (on ``device``: see ``simulation_device``) and renders subjects."""

    def __init__(self, preset: Preset, grid: Grid, effect_region: str, device: str | torch.device | None = None):
        self.preset, self.grid = preset, grid
        self.device = dev = simulation_device(device)
        maps = tissue_maps(grid.shape)
        self.anat = {k: torch.from_numpy(v).to(dev) for k, v in maps.items()}
        self.region_np = region_map(effect_region, grid.shape)
        self.effect = torch.from_numpy(self.region_np).to(dev)
        self.disease_np = region_map(preset.disease_region, grid.shape) if preset.disease_region else None
        self.disease = torch.from_numpy(self.disease_np).to(dev) if self.disease_np is not None else None
        xyz = grid.mm_coordinates().astype(np.float32)
        self.xyz = torch.from_numpy(xyz).to(dev)  # (3, X, Y, Z) mm
        vent = maps["ventricles"]
        self.vent_centre = (xyz * vent).reshape(3, -1).sum(1) / max(vent.sum(), 1e-6)
        near = np.linalg.norm(xyz - self.vent_centre[:, None, None, None], axis=0) < 30
        cand = np.argwhere((maps["wm"] > 0.85) & near)
        self.lesion_candidates = cand if len(cand) else np.argwhere(maps["wm"] > 0.5)
        # unit vectors pointing into WM, weighted towards the WM boundary: moving the sampling
        # along them shifts the WM/GM boundary (WM growth and atrophy as a change of shape)
        grad = np.stack(np.gradient(ndimage.gaussian_filter(maps["wm"], 2.0 / grid.voxel_size), *grid.voxel_size))
        mag = np.linalg.norm(grad, axis=0)
        weight = np.clip(mag / max(np.percentile(mag, 99.5), 1e-6), 0.0, 1.0)
        self.wm_inward = torch.from_numpy((grad / np.maximum(mag, 1e-6) * weight).astype(np.float32)).to(dev)  # (3, X, Y, Z)

    @property
    def effect_map(self) -> np.ndarray:
        """Where the regional effect acts, in [0, 1]: the region's weight times the template GM fraction, scaled to peak 1."""
        m = self.region_np * tissue_maps(self.grid.shape)["gm"]
        return (m / max(float(m.max()), 1e-6)).astype(np.float32)

    def _age_displacement(self, age: float) -> torch.Tensor:
        """Population displacement (3, X, Y, Z) in mm at ``age``: WM boundary shift and ventricular widening."""
        disp = -float(ageing.wm_boundary_shift_mm(age)) * self.wm_inward
        v = float(ageing.ventricle_expansion_mm(age))
        if v > 0:
            r = self.xyz - torch.from_numpy(self.vent_centre).to(self.device)[:, None, None, None]
            fall = torch.exp(-(r**2).sum(0) / (2 * VENTRICLE_RADIUS_MM**2))
            disp = disp + v * r / VENTRICLE_RADIUS_MM * fall
        return disp

    def _sampling_grid(self, rng: np.random.Generator, age: float) -> tuple[torch.Tensor, float]:
        p = self.preset
        disp = smooth_field(rng, self.grid.shape, (5, 6, 5), channels=3, device=self.device) * p.deform_mm  # (3, X, Y, Z) mm
        scale = float(1.0 + p.head_scale_sd * rng.standard_normal())
        return _grid_sample_coords(self.xyz / scale - disp - self._age_displacement(age)), scale

    def render(self, age: float, site: Site, rng: np.random.Generator, severity: float = 0.0) -> tuple[np.ndarray, dict]:
        """One subject's T1w image (int16, background 0) and what went into it."""
        p = self.preset
        variation = smooth_field(rng, self.grid.shape, 4, channels=2, device=self.device)
        t = tissues_at_age(self.anat, age, self.effect, p.effect_rate, p.effect_onset, self.disease, severity, p.disease_strength,
                           variation)
        lesions_np, n_lesions = _lesion_map(rng, age, self.grid, self.lesion_candidates)
        stack = torch.stack([t["gm"], t["wm"], t["csf"], self.anat["mask"], torch.from_numpy(lesions_np).to(self.device)])[None]
        grid, scale = self._sampling_grid(rng, age)
        warped = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        tw = {"gm": warped[0], "wm": warped[1], "csf": warped[2]}
        img = t1_intensity(tw, age, (site.i_csf, site.i_gm, site.i_wm), warped[4])
        img = img * torch.exp(site.bias_strength * smooth_field(rng, self.grid.shape, 3, device=self.device)[0])
        img, brain = img.cpu().numpy(), warped[3].cpu().numpy() > 0.5
        vox = self.grid.voxel_size
        if site.slice_mm > 0:
            k = max(1, int(round(site.slice_mm / vox[2])))
            z = img.shape[2]
            pad = (-z) % k
            slabs = np.pad(img, ((0, 0), (0, 0), (0, pad)), mode="edge").reshape(*img.shape[:2], -1, k).mean(-1)
            img = np.repeat(slabs, k, axis=2)[:, :, :z]
        if site.blur_mm > 0:
            img = ndimage.gaussian_filter(img, (site.blur_mm / vox[0], site.blur_mm / vox[1], 0))
        sigma = site.i_wm / site.snr
        n1 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
        n2 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
        img = np.sqrt((img + n1) ** 2 + n2**2) * brain
        out = np.clip(np.round(img * 1000 * site.gain), 0, 32767).astype(np.int16)
        return out, {"n_lesions": n_lesions, "head_scale": round(scale, 4)}

    def reference_image(self, age: float, contrast: tuple[float, float, float], gain: float = 1.0) -> np.ndarray:
        """Noise-free population image at ``age`` in the subjects' raw units (x 1000 x ``gain``).

        Template anatomy with the age-driven displacements only, inside the template brain
        mask: no individual warp or tissue variation, no head-size jitter, lesions, bias
        field, noise or disease.
        """
        t = tissues_at_age(self.anat, age, self.effect, self.preset.effect_rate, self.preset.effect_onset)
        stack = torch.stack([t["gm"], t["wm"], t["csf"]])[None]
        grid = _grid_sample_coords(self.xyz - self._age_displacement(age))
        w = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        img = t1_intensity({"gm": w[0], "wm": w[1], "csf": w[2]}, age, contrast) * (self.anat["mask"] > 0.5)
        return (img * 1000 * gain).cpu().numpy().astype(np.float32)
