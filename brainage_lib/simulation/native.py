"""Scanner-space heads from a simulated cohort: the raw input that ``brainage preprocess`` expects.

The simulator writes skull-stripped brains in MNI space. Here each brain is put back inside a
head: the skull, scalp, face and neck of the MNI152NLin6Asym T1w head template shipped in the
NiMARE wheel (nilearn's MNI152 templates are brain-only), with CSF filling the space between the
template's brain and the subject's. The head is then moved by a random rigid pose and a small
scale change, sampled onto a scanner grid in PSR orientation with anisotropic voxels, multiplied
by a smooth bias field and given Rician noise. The true transform and the scanner-space brain
mask are written to ``ground_truth/native/``.
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
from brainage_lib.simulation.anatomy import Grid, resample_to_grid, smooth_field
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
NATIVE_SEED_KEY = 7  # keeps the poses independent of the simulator's own random streams


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


def _save(path: Path, data: np.ndarray, affine: np.ndarray, code: int) -> None:
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=code)
    img.header.set_sform(affine, code=code)
    nib.save(img, str(path))


def native_subject(path: Path, truth_dir: Path, grid: Grid, head_scale: float, rng: np.random.Generator) -> None:
    """Replace one MNI-space simulated image by its scanner-space head; write its mask and pose to ``truth_dir``."""
    brain = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    head, head_brain = head_template(grid.shape)
    composite, mask = place_in_head(brain, head, head_brain)
    pose = sample_acquisition(rng)
    voxel_mm = float(grid.voxel_size.mean())
    shape, affine = scanner_grid(head, grid, pose, voxel_mm)
    img = to_scanner(composite, grid, pose, shape, affine)
    truth = to_scanner(mask.astype(np.float32), grid, pose, shape, affine) > 0.5
    img *= np.exp(pose.bias_strength * smooth_field(rng, shape, 3)[0].numpy())
    sigma = pose.noise_fraction * np.percentile(brain[mask], 90)
    img = np.hypot(img + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    _save(path, np.clip(np.round(img), 0, 32767).astype(np.int16), affine, code=1)
    sid = path.name.split("_")[0]
    _save(truth_dir / f"{sid}_brain_mask.nii.gz", truth.astype(np.uint8), affine, code=1)
    template_to_scanner = pose.matrix @ np.diag([head_scale] * 3 + [1.0])
    record = {"participant_id": sid, **asdict(pose), "voxel_mm": [voxel_mm, voxel_mm, voxel_mm * SLICE_FACTOR],
              "shape": list(shape), "orientation": "".join(nib.aff2axcodes(affine)),
              "subject_mni_to_scanner": pose.matrix.round(6).tolist(),
              "template_to_scanner": template_to_scanner.round(6).tolist()}
    (truth_dir / f"{sid}_pose.json").write_text(json.dumps(record, indent=1) + "\n")


def convert_to_native(root: Path, seed: int, progress: bool = True) -> None:
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
                       np.random.default_rng(seq))
    (out / "native.json").write_text(json.dumps({
        "about": "per subject, sub-<id>_pose.json: subject_mni_to_scanner maps the MNI-space simulated subject (RAS mm) "
                 "to the scanner image (RAS mm); template_to_scanner also applies the subject's head_scale, so it is the "
                 "affine a registration of the scan to the MNI152 template should find (up to the subject's small "
                 "individual deformation). sub-<id>_brain_mask.nii.gz: the true brain mask in the scanner image.",
        "head_template": f"MNI152NLin6Asym T1w (1 mm) and brain mask from the NiMARE {importlib.metadata.version('nimare')} "
                         "wheel; CSF between its brain and the subject's",
        "pose": {"rotation_deg": MAX_ROTATION_DEG, "shift_mm": MAX_SHIFT_MM, "scale_change": MAX_SCALE_CHANGE},
        "voxels": f"in-plane = the simulator grid's voxel size, slices {SLICE_FACTOR} times thicker (PSR orientation)",
    }, indent=1) + "\n")
    desc_path = root / "dataset_description.json"
    desc = json.loads(desc_path.read_text())
    desc.update(Name=desc["Name"] + " (scanner space)", DatasetType="raw")
    desc_path.write_text(json.dumps(desc, indent=2, sort_keys=True) + "\n")


def simulate_native_cohort(preset: str, out_dir: str | os.PathLike, n: int | None = None, seed: int = 0,
                           shape: tuple[int, int, int] | None = None, voxel_size: float | None = None,
                           effect_region: str | None = None, effect_rate: float | None = None, overwrite: bool = False,
                           progress: bool = True) -> Path:
    """``simulate_cohort`` (same arguments) followed by ``convert_to_native``, built and moved into place as one folder."""
    simulate = cohort_writer(preset, n, seed, shape, voxel_size, effect_region, effect_rate, progress)

    def fill(root: Path) -> None:
        simulate(root)
        convert_to_native(root, seed, progress)

    return build_cohort_folder(out_dir, fill, overwrite)
