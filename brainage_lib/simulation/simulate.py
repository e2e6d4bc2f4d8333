"""Simulated cohorts on MNI152 anatomy, written in the real-data cohort format.

One subject = template tissue maps, changed by biological age (``ageing``) with an
amplified region (the effect map) and an optional disease region, warped by a
smooth individual deformation plus age-driven ventricular widening, then imaged
with a site's contrast, bias field, Rician noise and (clinical grade) thick slices
and blur. Everything the generator knew is written under ``ground_truth/``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import ndimage

from brainage_lib.errors import BrainAgeError
from brainage_lib.run.progress import tqdm
from brainage_lib.simulation import ageing
from brainage_lib.simulation.anatomy import (MNI_EXTENT, MNI_ORIGIN, Grid, make_grid, region_map, smooth_field,
                                             tissue_maps)
from brainage_lib.simulation.presets import Preset, get_preset, sample_demographics

SIMULATOR_VERSION = 2  # bump when a change alters the generated images: cached cohorts are keyed by it
CONTRAST = {"1.5T": (0.25, 0.58, 0.78), "3T": (0.18, 0.50, 0.86)}  # T1w (CSF, GM, WM) at each field strength
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
        c, g, w = np.asarray(CONTRAST[fs]) + rng.normal(0, 0.01, 3)
        sites[name] = Site(
            name, fs, float(c), float(g), float(w), gain=float(rng.uniform(0.8, 1.25)),
            bias_strength=float(rng.uniform(0.08, 0.2) if clinical else rng.uniform(0.02, 0.06)),  # residual after N4
            snr=float(rng.uniform(10, 16) if clinical else rng.uniform(25, 40)),
            slice_mm=float(rng.uniform(4, 6)) if clinical else 0.0,
            blur_mm=float(rng.uniform(0.5, 1.0)) if clinical else 0.0,
        )
    return sites


def tissues_at_age(anat: dict[str, torch.Tensor], age: float, effect: torch.Tensor, gain: float,
                   disease: torch.Tensor | None = None, severity: float = 0.0, strength: float = 0.0,
                   variation: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """GM/WM/CSF fractions of the template anatomy at biological ``age`` (template space).

    The GM change relative to the template is multiplied by ``1 + gain * effect``;
    a disease region loses up to ``severity * strength`` of its GM; ``variation``
    (2, X, Y, Z) perturbs GM and WM proportions per subject. Tissues always sum to
    the brain mask; WM missing in childhood is unmyelinated, GM-like tissue.
    """
    gm, wm, mask = anat["gm"], anat["wm"], anat["mask"]
    dgm = (float(ageing.gm_relative(age)) - 1.0) * (1.0 + gain * effect)
    gm_new = gm * torch.clamp(1.0 + dgm, 0.05, 2.0)
    if disease is not None and severity > 0:
        gm_new = gm_new * (1.0 - severity * strength * disease)
    wm_new = wm * float(ageing.wm_relative(age))
    if variation is not None:
        gm_new = gm_new * (1.0 + 0.03 * variation[0])
        wm_new = wm_new * (1.0 + 0.03 * variation[1])
    child = 1.0 / (1.0 + np.exp(-(20.0 - age) / 3.0))
    gm_new = gm_new + torch.clamp(wm - wm_new, min=0.0) * float(child)
    wm_new = torch.minimum(wm_new, mask)
    gm_new = torch.minimum(gm_new, mask - wm_new)
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
    origin = torch.tensor(MNI_ORIGIN, dtype=torch.float32)[:, None, None, None]
    extent = torch.tensor(MNI_EXTENT, dtype=torch.float32)[:, None, None, None]
    return (2 * (q - origin) / extent - 1).flip(0).permute(1, 2, 3, 0)[None]


class Renderer:
    """Holds a cohort's template-space maps on one grid and renders subjects."""

    def __init__(self, preset: Preset, grid: Grid, effect_region: str):
        self.preset, self.grid = preset, grid
        maps = tissue_maps(grid.shape)
        self.anat = {k: torch.from_numpy(v) for k, v in maps.items()}
        self.effect_np = region_map(effect_region, grid.shape)
        self.effect = torch.from_numpy(self.effect_np)
        self.disease_np = region_map(preset.disease_region, grid.shape) if preset.disease_region else None
        self.disease = torch.from_numpy(self.disease_np) if self.disease_np is not None else None
        xyz = grid.mm_coordinates().astype(np.float32)
        self.xyz = torch.from_numpy(xyz)  # (3, X, Y, Z) mm
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
        self.wm_inward = torch.from_numpy((grad / np.maximum(mag, 1e-6) * weight).astype(np.float32))  # (3, X, Y, Z)

    def _sampling_grid(self, rng: np.random.Generator, age: float) -> tuple[torch.Tensor, float]:
        shape = self.grid.shape
        disp = smooth_field(rng, shape, (5, 6, 5), channels=3) * self.preset.deform_mm  # (3, X, Y, Z) mm
        scale = float(1.0 + 0.02 * rng.standard_normal())
        v = float(ageing.ventricle_expansion_mm(age))
        if v > 0:
            r = self.xyz - torch.from_numpy(self.vent_centre)[:, None, None, None]
            fall = torch.exp(-(r**2).sum(0) / (2 * VENTRICLE_RADIUS_MM**2))
            disp = disp + v * r / VENTRICLE_RADIUS_MM * fall
        disp = disp - float(ageing.wm_boundary_shift_mm(age)) * self.wm_inward
        return _grid_sample_coords(self.xyz / scale - disp), scale

    def render(self, age: float, site: Site, rng: np.random.Generator, severity: float = 0.0) -> tuple[np.ndarray, dict]:
        """One subject's T1w image (int16, background 0) and what went into it."""
        p = self.preset
        variation = smooth_field(rng, self.grid.shape, 4, channels=2)
        t = tissues_at_age(self.anat, age, self.effect, p.effect_gain, self.disease, severity, p.disease_strength, variation)
        lesions_np, n_lesions = _lesion_map(rng, age, self.grid, self.lesion_candidates)
        stack = torch.stack([t["gm"], t["wm"], t["csf"], self.anat["mask"], torch.from_numpy(lesions_np)])[None]
        grid, scale = self._sampling_grid(rng, age)
        warped = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        tw = {"gm": warped[0], "wm": warped[1], "csf": warped[2]}
        img = t1_intensity(tw, age, (site.i_csf, site.i_gm, site.i_wm), warped[4])
        img = img * torch.exp(site.bias_strength * smooth_field(rng, self.grid.shape, 3)[0])
        img = img.numpy()
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
        img = np.sqrt((img + n1) ** 2 + n2**2) * (warped[3].numpy() > 0.5)
        out = np.clip(np.round(img * 1000 * site.gain), 0, 32767).astype(np.int16)
        return out, {"n_lesions": n_lesions, "head_scale": round(scale, 4)}

    def expected_image(self, age: float, contrast: tuple[float, float, float]) -> np.ndarray:
        """Population-mean image at ``age``: template anatomy, no deformation, lesions or noise."""
        t = tissues_at_age(self.anat, age, self.effect, self.preset.effect_gain)
        shift = float(ageing.wm_boundary_shift_mm(age)) * self.wm_inward
        grid = _grid_sample_coords(self.xyz + shift)
        stack = torch.stack([t["gm"], t["wm"], t["csf"]])[None]
        w = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        return t1_intensity({"gm": w[0], "wm": w[1], "csf": w[2]}, age, contrast).numpy()


def _survival_months(rng: np.random.Generator, severity: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """ALS survival: shorter with more severe disease atrophy and older-looking brains, log-normal noise."""
    months = 36.0 * np.exp(-0.5 * (severity - 1.0) - 0.04 * gap) * rng.lognormal(0.0, 0.35, severity.size)
    return np.round(np.clip(months, 2.0, 180.0), 1)


SURVIVAL_MODEL = "36 * exp(-0.5*(severity-1) - 0.04*gap) * LogNormal(0, 0.35), clipped to 2-180 months"


def _write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=4)  # MNI152 space
    img.header.set_sform(affine, code=4)
    nib.save(img, str(path))


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def simulate_cohort(preset: str, out_dir: str | os.PathLike, n: int | None = None, seed: int = 0,
                    shape: tuple[int, int, int] | None = None, voxel_size: float | None = None,
                    effect_region: str | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Simulate a cohort and write it in the cohort-folder format, plus ``ground_truth/``.

    The cohort is built in a temporary folder beside ``out_dir`` and moved into place
    only when complete. An existing ``out_dir`` is replaced only with ``overwrite=True``
    and only if it is itself a simulated cohort. The same arguments give byte-identical files.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BrainAgeError(f"Seed {seed!r} must be a non-negative integer (0, 1, 2, ...); use e.g. --seed 1.")
    p = get_preset(preset)
    n = p.n if n is None else int(n)
    if n < 1:
        raise BrainAgeError(f"n={n}: a cohort needs at least one subject (--n 1 or more).")
    grid = make_grid(shape, voxel_size)
    region = effect_region or p.effect_region
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise BrainAgeError(f"Cannot create the output folder {out} ({exc.strerror or exc}). Choose an --out in a folder "
                            "you can write to.") from None
    try:
        _simulate_into(tmp, p, n, seed, grid, region, progress)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BrainAgeError(f"Writing the cohort to {out} failed ({exc}). Check free disk space and write permission "
                                "there, or choose another --out.") from exc
        raise
    return out


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, lies inside a file, or is a non-empty folder that may not be replaced."""
    if out.exists() and not out.is_dir():
        raise BrainAgeError(f"{out} is an existing file, not a folder. Choose a new folder path for --out; the file is left as it is.")
    blocker = next((a for a in out.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise BrainAgeError(f"Cannot create {out}: {blocker} is a file, not a folder. Choose another --out.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise BrainAgeError(f"{out} already exists and is not empty. Choose another --out, or pass --overwrite to replace a simulated cohort.")
        if not (out / "ground_truth" / "simulation.json").is_file():
            raise BrainAgeError(f"{out} is not a simulated cohort (no ground_truth/simulation.json); refusing to replace it.")


def _simulate_into(root: Path, p: Preset, n: int, seed: int, grid: Grid, region: str, progress: bool) -> None:
    seq = np.random.SeedSequence(seed)
    cohort_seq, site_seq, subj_seq = seq.spawn(3)
    rng = np.random.default_rng(cohort_seq)
    demo = sample_demographics(p, n, rng)
    sites = sample_sites(p, np.random.default_rng(site_seq))
    severity = np.abs(rng.normal(1.0, 0.5, n)) if p.disease_region else np.zeros(n)
    renderer = Renderer(p, grid, region)
    gt = root / "ground_truth"
    gt.mkdir(parents=True)
    info = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = []
        for i, (row, child) in enumerate(tqdm(list(zip(demo.itertuples(), subj_seq.spawn(n))), desc=f"simulate {p.name}",
                                              disable=not progress, unit="subj")):
            img, extra = renderer.render(float(row.brain_age), sites[row.site], np.random.default_rng(child), float(severity[i]))
            sid = row.participant_id
            futures.append(pool.submit(_write_nifti, root / sid / "anat" / f"{sid}_T1w.nii.gz", img, grid.affine))
            info.append(extra)
        for f in futures:
            f.result()
    # participants.tsv: what a real cohort would hold (unlabelled subjects have age n/a)
    part = demo[["participant_id", "age", "sex", "site", "group"]].copy()
    part["age"] = [f"{a:.2f}" if lab else "n/a" for a, lab in zip(demo["age"], demo["labelled"])]
    if p.disease_region:
        part["survival_months"] = _survival_months(rng, severity, demo["gap"].to_numpy())
    part.to_csv(root / "participants.tsv", sep="\t", index=False, lineterminator="\n")
    _write_json(root / "dataset_description.json", {
        "Name": f"Simulated {p.name} cohort", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "brainage companion simulator", "Version": "0.1.0"}]})
    # ground truth: never read by a model
    truth = demo[["participant_id", "age", "brain_age", "gap", "labelled", "site"]].copy()
    truth["brain_age"], truth["gap"] = truth["brain_age"].round(4), truth["gap"].round(4)
    truth["severity"] = np.round(severity, 4)
    truth["n_lesions"] = [d["n_lesions"] for d in info]
    truth["head_scale"] = [d["head_scale"] for d in info]
    truth.to_csv(gt / "subjects.tsv", sep="\t", index=False, lineterminator="\n")
    _write_nifti(gt / "effect_map.nii.gz", renderer.effect_np, grid.affine)
    if renderer.disease_np is not None:
        _write_nifti(gt / "disease_map.nii.gz", renderer.disease_np, grid.affine)
    mean_contrast = tuple(np.mean([[s.i_csf, s.i_gm, s.i_wm] for s in sites.values()], axis=0))
    lo, hi = p.reference_ages
    change = np.abs(renderer.expected_image(hi, mean_contrast) - renderer.expected_image(lo, mean_contrast))
    _write_nifti(gt / "expected_change.nii.gz", change.astype(np.float32), grid.affine)
    _write_json(gt / "sites.json", {k: asdict(v) for k, v in sites.items()})
    _write_json(gt / "simulation.json", {
        "simulator_version": SIMULATOR_VERSION, "preset": p.name, "mirrors": p.mirrors, "n": n, "seed": seed, "shape": list(grid.shape),
        "voxel_size_mm": [round(v, 4) for v in grid.voxel_size], "effect_region": region,
        "effect_gain": p.effect_gain, "disease_region": p.disease_region, "disease_strength": p.disease_strength,
        "gap_mean": p.gap_mean, "gap_sd": p.gap_sd, "gap_sd_per_year": p.gap_sd_per_year,
        "unlabelled_fraction": p.unlabelled_fraction, "expected_change_ages": [lo, hi],
        "survival_model": SURVIVAL_MODEL if p.disease_region else None, "grade": p.grade,
    })
