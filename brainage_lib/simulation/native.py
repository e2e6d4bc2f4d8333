"""Scanner-space heads from a simulated cohort: the raw input that ``brainage preprocess`` expects.

The simulator writes skull-stripped brains in MNI space. Here each brain is put back inside a
head: the skull, scalp, face and neck of the MNI152NLin6Asym T1w head template shipped in the
NiMARE wheel (nilearn's MNI152 templates are brain-only), with CSF filling the space between the
template's brain and the subject's. The head is then moved by a random rigid pose and a small
scale change, sampled onto a scanner grid in PSR orientation with anisotropic voxels, multiplied
by a smooth bias field and given Rician noise. The true transform and the scanner-space brain
mask are written to ``ground_truth/native/``.

``heads="hard"`` (``brainage simulate --space native --heads hard``) makes heads more like real scans: the
field of view reaches down the neck to the shoulders (tissue synthesised below the template's bottom slice:
neck muscle, a bright subcutaneous fat rim, the spine and airway, then the shoulders), the head sits
off-centre in a sagittal field of view of 256-320 mm (S-I) by 256 mm (A-P), the pitch reaches +-30 deg, the scalp and neck fat
are bright and the muscle dark as in a T1w scan, and the bias field is stronger, with the coil's sensitivity
falling off towards the neck. The default, ``standard``, is unchanged.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial.transform import Rotation
from tqdm.auto import tqdm

from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import MNI_ORIGIN, Grid, resample_to_grid, smooth_field
from brainage_lib.simulation.simulate import build_cohort_folder, cohort_writer

HEAD_TEMPLATE = "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz"
HEAD_BRAIN_MASK = "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz"
SHA256 = {  # the files of the NiMARE 0.22.1 wheel (make preprocess-deps pins it): another file gives other heads
    HEAD_TEMPLATE: "fbb6e77a6b090368db105d1cab2c13abd141815998b85c95a520d09771f0021c",
    HEAD_BRAIN_MASK: "895cc1e3d13fa00eacf1659bea51a10b384d8bc1d2d751f9a1e131509194c9c9",
}
MAX_ROTATION_DEG = 15.0
MAX_SHIFT_MM = 20.0
MAX_SCALE_CHANGE = 0.05
SLICE_FACTOR = 1.4  # slice thickness / in-plane voxel size (sagittal slices along R)
FOV_MARGIN_MM = 10.0
MNI_X0, MNI_Y0 = float(MNI_ORIGIN[0]), float(MNI_ORIGIN[1])
NATIVE_SEED_KEY = 7  # keeps the poses independent of the simulator's own random streams
HEADS = ("standard", "hard")
HARD = {  # the settings of --heads hard (recorded in ground_truth/native/native.json)
    "rotation_deg": {"pitch (about x)": 30.0, "roll (about y)": 15.0, "yaw (about z)": 15.0},
    "shift_mm": MAX_SHIFT_MM, "scale_change": MAX_SCALE_CHANGE,
    "below_template_mm": 130.0,  # neck and shoulders synthesised below the template's bottom slice (z = -72 mm)
    "shoulder_pad_mm": 60.0,  # room left and right of the MNI grid for the shoulders
    "fov_mm": {"superior-inferior": (256.0, 320.0), "anterior-posterior": 256.0},  # left-right: the head's width + 20 mm
    "top_margin_mm": (5.0, 25.0), "ap_offset_mm": 30.0, "lr_offset_mm": 15.0, "brain_margin_mm": 4.0,
    "bias_strength": (0.3, 0.5), "coil_falloff": (0.35, 0.65),  # intensity lost at 150 mm below the brain's centre
    "fat_boost": (0.25, 0.5), "muscle_darkening": (0.15, 0.3),
}


@dataclass(frozen=True)
class Acquisition:
    """How the scanner saw one head: subject MNI point p lands at scale * R p + shift (mm, RAS); bias field; noise."""

    rotation_deg: tuple[float, float, float]  # about x, y, z
    shift_mm: tuple[float, float, float]
    scale: float
    bias_strength: float
    noise_fraction: float  # Rician noise sd relative to the white-matter intensity

    @property
    def matrix(self) -> np.ndarray:
        """4x4 map from subject MNI mm to scanner mm (both RAS)."""
        m = np.eye(4)
        m[:3, :3] = self.scale * Rotation.from_euler("xyz", self.rotation_deg, degrees=True).as_matrix()
        m[:3, 3] = self.shift_mm
        return m


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    """A random pose (rotations within +-15 deg, shifts within +-20 mm, scale within +-5 %), bias field and noise."""
    return Acquisition(tuple(np.round(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, 3), 3)),
                tuple(np.round(rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, 3), 3)),
                round(float(rng.uniform(1 - MAX_SCALE_CHANGE, 1 + MAX_SCALE_CHANGE)), 4),
                round(float(rng.uniform(0.15, 0.3)), 4), round(float(rng.uniform(0.01, 0.02)), 4))


def sample_hard_acquisition(rng: np.random.Generator) -> Acquisition:
    """A pose of ``--heads hard``: pitch within +-30 deg, roll and yaw +-15 deg; a stronger bias field."""
    rot = rng.uniform(-1, 1, 3) * [HARD["rotation_deg"][k] for k in ("pitch (about x)", "roll (about y)", "yaw (about z)")]
    return Acquisition(tuple(np.round(rot, 3)), tuple(np.round(rng.uniform(-MAX_SHIFT_MM, MAX_SHIFT_MM, 3), 3)),
                       round(float(rng.uniform(1 - MAX_SCALE_CHANGE, 1 + MAX_SCALE_CHANGE)), 4),
                       round(float(rng.uniform(*HARD["bias_strength"])), 4), round(float(rng.uniform(0.01, 0.02)), 4))


def _template_file(rel: str) -> Path:
    try:
        path = Path(importlib.metadata.distribution("nimare").locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise BrainAgeError("The head template for --space native comes from the NiMARE wheel, which is not installed. "
                            "Install it with: pip install --no-deps nimare==0.22.1 (only its template file is used).")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256[rel]:
        raise BrainAgeError(f"{path}: sha256 {digest} is not that of the head template this simulator was built on "
                            f"({SHA256[rel]}). Install the pinned wheel: pip install --no-deps nimare==0.22.1.")
    return path


@lru_cache(maxsize=4)
def head_template(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152NLin6Asym head (float32, template units) and its brain mask (bool) on an MNI grid."""
    from nilearn import datasets, image

    ref = datasets.load_mni152_template(resolution=1)  # the 1 mm grid whose field of view ``Grid`` samples
    out = []
    for rel, interp in ((HEAD_TEMPLATE, "continuous"), (HEAD_BRAIN_MASK, "nearest")):
        src = nib.load(str(_template_file(rel)))
        src = nib.Nifti1Image(src.get_fdata(dtype=np.float32), src.affine)
        img = image.resample_to_img(src, ref, interpolation=interp, force_resample=True, copy_header=True)
        out.append(resample_to_grid(np.asarray(img.get_fdata(dtype=np.float32)), 1.0, Grid(shape)))
    return np.clip(out[0], 0, None), out[1] > 0.5


def scanner_grid(head: np.ndarray, grid: Grid, pose: Acquisition, voxel_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of a PSR grid (sagittal slices) that holds the posed head with a margin."""
    idx = np.argwhere(head > 0.05 * head.max())[::7]
    world = nib.affines.apply_affine(pose.matrix @ grid.affine, idx)
    lo, hi = world.min(0) - FOV_MARGIN_MM, world.max(0) + FOV_MARGIN_MM
    vox = np.array([voxel_mm, voxel_mm, voxel_mm * SLICE_FACTOR])  # (P, S, R)
    aff = np.zeros((4, 4))
    aff[1, 0], aff[2, 1], aff[0, 2] = -vox[0], vox[1], vox[2]  # i -> posterior, j -> superior, k -> right
    aff[:3, 3] = (lo[0], hi[1], lo[2])
    aff[3, 3] = 1
    extent = np.array([hi[1] - lo[1], hi[2] - lo[2], hi[0] - lo[0]])
    shape = tuple(int(v) for v in np.ceil(extent / vox).astype(int) + 1)
    return shape, aff  # type: ignore[return-value]


def place_in_head(brain: np.ndarray, head: np.ndarray, head_brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subject brain inside the template head; CSF where the template has brain and the subject has none.

    The head is scaled so that its white matter matches the subject's (90th percentile of each brain).
    Returns the head image and the subject's brain mask, both on the brain's grid.
    """
    mask = brain > 0
    inside = brain[mask]
    gain = np.percentile(inside, 90) / max(np.percentile(head[head_brain], 90), 1e-6)
    out = np.where(head_brain, np.percentile(inside, 2), head * gain)
    out[mask] = inside
    return out.astype(np.float32), mask


def to_scanner(image: np.ndarray, grid: Grid, pose: Acquisition, shape: tuple[int, int, int], affine: np.ndarray,
               order: int = 1) -> np.ndarray:
    """Resample an MNI-grid image onto the scanner grid through the pose."""
    m = np.linalg.inv(grid.affine) @ np.linalg.inv(pose.matrix) @ affine  # scanner voxel -> MNI grid voxel
    return ndimage.affine_transform(image, m[:3, :3], m[:3, 3], output_shape=shape, order=order, mode="constant")


@dataclass(frozen=True)
class _Frame:
    """An array's MNI grid: only its affine is read by ``to_scanner``."""

    affine: np.ndarray


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def hard_contrast(head: np.ndarray, head_brain: np.ndarray, wm: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """T1w contrast of the template's scalp, face and neck: fat brighter (up to 1.2-1.5 x white matter), muscle
    darker. The brain and the 4 mm around it are left as they are. Returns the head and the factors drawn."""
    fat, muscle = (round(float(rng.uniform(*HARD[k])), 4) for k in ("fat_boost", "muscle_darkening"))
    near = ndimage.binary_dilation(head_brain, iterations=2)
    v = head / wm
    gain = 1 + fat * _smoothstep(v, 0.6, 1.0) - muscle * _smoothstep(v, 0.2, 0.35) * (1 - _smoothstep(v, 0.5, 0.65))
    labels, _ = ndimage.label(v > 0.15)  # the head; the template's background (5-7 % of white matter) becomes air
    inside = ndimage.binary_dilation(labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1, iterations=2)
    for z in range(inside.shape[2]):
        inside[..., z] = ndimage.binary_fill_holes(inside[..., z])
    out = np.where(near, head, np.where(inside | near, head * gain, 0.0))
    return out.astype(np.float32), {"fat_boost": fat, "muscle_darkening": muscle}


def neck_and_shoulders(bottom: np.ndarray, voxel: np.ndarray, n_below: int, pad_x: int, wm: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Slices below the template's bottom slice ``bottom`` (x, y; template units), top first, on an x grid padded
    by ``pad_x`` voxels each side: the head's section narrows to the neck in 40 mm (muscle, a bright subcutaneous
    fat rim, vertebrae with bright marrow, the spinal cord in dark CSF, the airway), which widens to the shoulders
    from 85 mm down."""
    nx, ny = bottom.shape[0] + 2 * pad_x, bottom.shape[1]
    x = (np.arange(nx) - pad_x) * voxel[0] + MNI_X0
    y = np.arange(ny) * voxel[1] + MNI_Y0
    xx, yy = np.meshgrid(x, y, indexing="ij")
    top = np.zeros((nx, ny), np.float32)
    top[pad_x:pad_x + bottom.shape[0]] = bottom
    section_top = ndimage.binary_fill_holes(top > 0.1 * wm)
    yc = -25.0 + rng.uniform(-5, 5)  # the neck's centre, behind the jaw
    ax_neck, ay_neck = rng.uniform(52, 62), rng.uniform(55, 65)
    texture = 1 + 0.08 * ndimage.gaussian_filter(rng.standard_normal((nx, ny)), 1.5) / 0.2
    out = np.zeros((nx, ny, n_below), np.float32)
    for k in range(n_below):
        d = (k + 1) * voxel[2]  # mm below the bottom slice
        w = _smoothstep(np.array(d), 0.0, 40.0)
        shoulder = _smoothstep(np.array(d), 85.0, 130.0)
        ax = (1 - w) * 120 + w * ax_neck + shoulder * 140
        ay = (1 - w) * 110 + w * ay_neck + shoulder * 15
        ell = ((xx / ax) ** 2 + ((yy - yc) / ay) ** 2) <= 1
        section = ell & section_top if d < 40 else ell
        depth = ndimage.distance_transform_edt(section, sampling=voxel[:2])
        neck = np.where(depth < 8.0, 1.15, 0.42 * texture)  # fat rim, muscle
        r_canal = np.hypot(xx, yy - (yc + 12))
        r_body = np.hypot(xx, yy - (yc - 8))
        r_air = np.hypot(xx, yy - (yc - 38))
        neck = np.where(r_body < 11, 0.8, neck)  # vertebral body (marrow)
        neck = np.where(r_canal < 10, 0.12, neck)  # CSF
        neck = np.where(r_canal < 6, 0.55, neck)  # spinal cord
        neck = np.where((r_air < 7) & (shoulder < 0.5), 0.0, neck)  # airway
        out[..., k] = np.where(section, (1 - w) * top + w * neck * wm, 0.0)
    return out


def hard_head(composite: np.ndarray, mask: np.ndarray, head_brain: np.ndarray, grid: Grid, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray, _Frame, dict]:
    """The subject's head with T1w contrast outside the brain, neck and shoulders below: (head, brain mask, their
    grid, the settings drawn)."""
    voxel = grid.voxel_size
    wm = float(np.percentile(composite[mask], 90))
    head, drawn = hard_contrast(composite, head_brain | mask, wm, rng)
    n_below = int(np.ceil(HARD["below_template_mm"] / voxel[2]))
    pad_x = int(np.ceil(HARD["shoulder_pad_mm"] / voxel[0]))
    below = neck_and_shoulders(head[..., 0], voxel, n_below, pad_x, wm, rng)
    big = np.zeros((head.shape[0] + 2 * pad_x, head.shape[1], head.shape[2] + n_below), np.float32)
    big[pad_x:pad_x + head.shape[0], :, n_below:] = head
    big[..., :n_below] = below[..., ::-1]
    big_mask = np.zeros(big.shape, bool)
    big_mask[pad_x:pad_x + head.shape[0], :, n_below:] = mask
    shift = np.eye(4)
    shift[:3, 3] = (-pad_x, 0, -n_below)
    return big, big_mask, _Frame(grid.affine @ shift), drawn


def hard_scanner_grid(head: np.ndarray, brain: np.ndarray, frame: _Frame, pose: Acquisition, voxel_mm: float,
                      rng: np.random.Generator) -> tuple[tuple[int, int, int], np.ndarray, dict]:
    """A PSR grid of 256-320 mm (S-I) by 256 mm (A-P) that starts 5-25 mm above the head and lies off the head's centre
    (A-P by up to 30 mm, L-R by up to 15 mm, as far as the brain stays 4 mm inside), so that it reaches down the
    neck; left-right it spans the head's width and 20 mm."""
    def world(mask: np.ndarray) -> np.ndarray:
        return nib.affines.apply_affine(pose.matrix @ frame.affine, np.argwhere(mask)[::5])

    above = head > 0.05 * head.max()
    above[..., : int(np.ceil(HARD["below_template_mm"] / abs(frame.affine[2, 2])))] = False  # the head, not the neck
    h, b = world(above), world(brain)
    margin = HARD["brain_margin_mm"]
    top = h[:, 2].max() + rng.uniform(*HARD["top_margin_mm"])
    size_si, size_ap = float(rng.uniform(*HARD["fov_mm"]["superior-inferior"])), HARD["fov_mm"]["anterior-posterior"]
    lo_si = top - size_si
    width = h[:, 0].max() - h[:, 0].min() + 20.0
    centre_ap = (h[:, 1].min() + h[:, 1].max()) / 2 + rng.uniform(-1, 1) * HARD["ap_offset_mm"]
    centre_lr = (h[:, 0].min() + h[:, 0].max()) / 2 + rng.uniform(-1, 1) * HARD["lr_offset_mm"]
    lo_ap = np.clip(centre_ap - size_ap / 2, b[:, 1].max() + margin - size_ap, b[:, 1].min() - margin)
    lo_lr = np.clip(centre_lr - width / 2, b[:, 0].max() + margin - width, b[:, 0].min() - margin)
    vox = np.array([voxel_mm, voxel_mm, voxel_mm * SLICE_FACTOR])  # (P, S, R)
    aff = np.zeros((4, 4))
    aff[1, 0], aff[2, 1], aff[0, 2] = -vox[0], vox[1], vox[2]
    aff[:3, 3] = (lo_lr, lo_ap + size_ap, lo_si)
    aff[3, 3] = 1
    shape = tuple(int(v) for v in np.ceil(np.array([size_ap, size_si, width]) / vox).astype(int))
    fov = {"fov_mm": [round(float(v), 1) for v in (width, size_ap, size_si)],  # R, A, S
           "head_top_margin_mm": round(float(top - h[:, 2].max()), 1),
           "brain_offset_from_fov_centre_mm": [round(float(v), 1) for v in (
               (b[:, 0].min() + b[:, 0].max()) / 2 - (lo_lr + width / 2),
               (b[:, 1].min() + b[:, 1].max()) / 2 - (lo_ap + size_ap / 2),
               (b[:, 2].min() + b[:, 2].max()) / 2 - (lo_si + size_si / 2))]}
    return shape, aff, fov  # type: ignore[return-value]


def coil_falloff(shape: tuple[int, int, int], affine: np.ndarray, brain_centre_z: float, falloff: float) -> np.ndarray:
    """The head coil's sensitivity along S-I: 1 above the brain's centre, down to 1 - ``falloff`` 150 mm below."""
    z = affine[2, 1] * np.arange(shape[1]) + affine[2, 3]  # j runs superior
    s = 1 - falloff * _smoothstep(brain_centre_z - z, 0.0, 150.0)
    return s[None, :, None].astype(np.float32)


def _save(path: Path, data: np.ndarray, affine: np.ndarray, code: int) -> None:
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=code)
    img.header.set_sform(affine, code=code)
    nib.save(img, str(path))


def native_subject(path: Path, truth_dir: Path, grid: Grid, head_scale: float, rng: np.random.Generator,
                   heads: str = "standard") -> None:
    """Replace one MNI-space simulated image by its scanner-space head; write its mask and pose to ``truth_dir``."""
    brain = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    head, head_brain = head_template(grid.shape)
    composite, mask = place_in_head(brain, head, head_brain)
    if heads == "hard":
        return _hard_subject(path, truth_dir, grid, head_scale, rng, brain, composite, mask, head_brain)
    pose = sample_acquisition(rng)
    voxel_mm = float(grid.voxel_size.mean())
    shape, affine = scanner_grid(head, grid, pose, voxel_mm)
    img = to_scanner(composite, grid, pose, shape, affine)
    truth = to_scanner(mask.astype(np.float32), grid, pose, shape, affine) > 0.5
    img *= np.exp(pose.bias_strength * smooth_field(rng, shape, 3)[0].numpy())
    _write_subject(path, truth_dir, img, truth, affine, pose.noise_fraction * np.percentile(brain[mask], 90), rng,
                   asdict(pose), pose.matrix, head_scale, voxel_mm)


def _write_subject(path: Path, truth_dir: Path, img: np.ndarray, truth: np.ndarray, affine: np.ndarray, sigma: float,
                   rng: np.random.Generator, drawn: dict, matrix: np.ndarray, head_scale: float, voxel_mm: float) -> None:
    """Rician noise of ``sigma`` on the scanner image, then the image, its true brain mask and its pose record."""
    shape = img.shape
    img = np.hypot(img + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    _save(path, np.clip(np.round(img), 0, 32767).astype(np.int16), affine, code=1)
    sid = path.name.split("_")[0]
    _save(truth_dir / f"{sid}_brain_mask.nii.gz", truth.astype(np.uint8), affine, code=1)
    template_to_scanner = matrix @ np.diag([head_scale] * 3 + [1.0])
    record = {"participant_id": sid, **drawn, "voxel_mm": [voxel_mm, voxel_mm, voxel_mm * SLICE_FACTOR],
              "shape": list(shape), "orientation": "".join(nib.aff2axcodes(affine)),
              "subject_mni_to_scanner": matrix.round(6).tolist(),
              "template_to_scanner": template_to_scanner.round(6).tolist()}
    (truth_dir / f"{sid}_pose.json").write_text(json.dumps(record, indent=1) + "\n")


def _hard_subject(path: Path, truth_dir: Path, grid: Grid, head_scale: float, rng: np.random.Generator,
                  brain: np.ndarray, composite: np.ndarray, mask: np.ndarray, head_brain: np.ndarray) -> None:
    """``native_subject`` for ``--heads hard``."""
    pose = sample_hard_acquisition(rng)
    big, big_mask, frame, drawn = hard_head(composite, mask, head_brain, grid, rng)
    voxel_mm = float(grid.voxel_size.mean())
    shape, affine, fov = hard_scanner_grid(big, big_mask, frame, pose, voxel_mm, rng)
    img = to_scanner(big, frame, pose, shape, affine)  # type: ignore[arg-type]
    truth = to_scanner(big_mask.astype(np.float32), frame, pose, shape, affine) > 0.5  # type: ignore[arg-type]
    falloff = round(float(rng.uniform(*HARD["coil_falloff"])), 4)
    centre_z = float(nib.affines.apply_affine(affine, np.argwhere(truth).mean(0))[2])
    img *= np.exp(pose.bias_strength * smooth_field(rng, shape, 3)[0].numpy()) * coil_falloff(shape, affine, centre_z, falloff)
    _write_subject(path, truth_dir, img, truth, affine, pose.noise_fraction * np.percentile(brain[mask], 90), rng,
                   {"heads": "hard", **asdict(pose), "coil_falloff": falloff, **drawn, **fov}, pose.matrix, head_scale,
                   voxel_mm)


def convert_to_native(root: Path, seed: int, progress: bool = True, heads: str = "standard") -> None:
    """Turn every image of a simulated cohort folder into a scanner-space head, in place."""
    sim = json.loads((root / "ground_truth" / "simulation.json").read_text())
    grid = Grid(tuple(sim["shape"]))
    truth = pd.read_csv(root / "ground_truth" / "subjects.tsv", sep="\t", dtype={"participant_id": str})
    out = root / "ground_truth" / "native"
    out.mkdir()
    seqs = np.random.SeedSequence([seed, NATIVE_SEED_KEY]).spawn(len(truth))
    for row, seq in tqdm(list(zip(truth.itertuples(), seqs)), desc="scanner space", disable=not progress, unit="subj"):
        sid = row.participant_id
        native_subject(root / sid / "anat" / f"{sid}_T1w.nii.gz", out, grid, float(row.head_scale),
                       np.random.default_rng(seq), heads)
    extra = {} if heads == "standard" else {"heads": heads, "hard": HARD}
    (out / "native.json").write_text(json.dumps({
        "about": "per subject, sub-<id>_pose.json: subject_mni_to_scanner maps the MNI-space simulated subject (RAS mm) "
                 "to the scanner image (RAS mm); template_to_scanner also applies the subject's head_scale, so it is the "
                 "affine a registration of the scan to the MNI152 template should find (up to the subject's small "
                 "individual deformation). sub-<id>_brain_mask.nii.gz: the true brain mask in the scanner image.",
        "head_template": f"MNI152NLin6Asym T1w (1 mm) and brain mask from the NiMARE {importlib.metadata.version('nimare')} "
                         "wheel; CSF between its brain and the subject's",
        "pose": {"rotation_deg": MAX_ROTATION_DEG, "shift_mm": MAX_SHIFT_MM, "scale_change": MAX_SCALE_CHANGE},
        "voxels": f"in-plane = the simulator grid's voxel size, slices {SLICE_FACTOR} times thicker (PSR orientation)",
        **extra,
    }, indent=1) + "\n")
    desc_path = root / "dataset_description.json"
    desc = json.loads(desc_path.read_text())
    desc.update(Name=desc["Name"] + " (scanner space)", DatasetType="raw")
    desc_path.write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")


def simulate_native_cohort(preset: str, out_dir: str | os.PathLike, n: int | None = None, seed: int = 0,
                           shape: tuple[int, int, int] | None = None, voxel_size: float | None = None,
                           effect_region: str | None = None, effect_rate: float | None = None, overwrite: bool = False,
                           progress: bool = True, heads: str = "standard") -> Path:
    """``simulate_cohort`` (same arguments) followed by ``convert_to_native``, built and moved into place as one folder.

    ``heads``: ``standard`` (the template's head) or ``hard`` (neck and shoulders in a larger, off-centre field of
    view, pitch up to 30 deg, T1w fat and muscle, a stronger bias field; see the module's docstring)."""
    if heads not in HEADS:
        raise BrainAgeError(f"heads={heads!r}: choose one of {', '.join(HEADS)}.")
    simulate = cohort_writer(preset, n, seed, shape, voxel_size, effect_region, effect_rate, progress)

    def fill(root: Path) -> None:
        simulate(root)
        convert_to_native(root, seed, progress, heads)

    return build_cohort_folder(out_dir, fill, overwrite)
