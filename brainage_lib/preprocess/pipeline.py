"""One scan through a recipe: read and check it, run the steps, measure its quality, write it atomically.

Every image is handled as an ANTsPy image; deepbet sees it through nibabel. Nothing is written
next to the raw scan: ANTs's transform files go to a temporary folder, are joined into one composite
``.h5`` per direction (affine, then for SyN the warp) and copied out. Beside each image goes a JSON
sidecar (``SkullStripped``, ``Sources``, ``Resolution``, ``SpatialReference``; ``Type`` for the mask).
"""
from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage

from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess import measures
from brainage_lib.preprocess.outputs import (atomic_write, output_paths, remove_outputs, save_nifti,
                                             without_hdf5_times)
from brainage_lib.preprocess.qc import brainmask_figure, similarity, subject_figure
from brainage_lib.preprocess.recipes import (DILATE_MM, REGISTRATION_GRID, SPACE, SYN_AFFINE, SYN_BINS, Recipe,
                                             template)
from brainage_lib.simulation.anatomy import Grid

MIN_CORRELATION = 0.5  # |r| below: not a brain (adult T1w about 0.9, young children 0.7; infants' inverted contrast < 0)
VOLUME_RANGE_ML = (250.0, 3000.0)  # intracranial volumes from newborns to large adults
MIN_SIZE = 16  # voxels along each axis
RANDOM_SEED = 1  # ANTs samples the metric at random points; with one ITK thread per scan, a rerun is byte-identical


@dataclass
class State:
    """The image as it moves through the steps; ``mask`` is None until brain extraction."""

    image: ants.ANTsImage
    mask: ants.ANTsImage | None = None
    coverage: ants.ANTsImage | None = None  # where the scanner's field of view lies, once registered
    transforms: list[str] = field(default_factory=list)  # forward transforms, in ANTs's apply order
    inverse: list[str] = field(default_factory=list)  # inverse transforms, in ANTs's apply order (affine inverted)
    measures: dict = field(default_factory=dict)  # image-quality measures taken on the way (``measures``)
    extracted: tuple[ants.ANTsImage, ants.ANTsImage] | None = None  # the image brain extraction saw, and its mask
    extracted_where: str = ""  # the space they are in, in words (for the brain-mask figure)


def read_scan(path: Path) -> nib.Nifti1Image:
    """The scan as a 3D float32 image; anything else raises a BrainAgeError naming the file and the fix."""
    try:
        img = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - every reader failure is reported
        raise BrainAgeError(f"{path}: unreadable as NIfTI ({type(exc).__name__}: {exc}). Re-export or re-copy the file.") from None
    shape = tuple(img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise BrainAgeError(f"{path}: image is {len(shape)}D with shape {tuple(img.shape)}; preprocessing takes one 3D "
                            "T1w volume. Save the volume you mean (e.g. the first of the series) as this file.")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except Exception as exc:  # noqa: BLE001
        raise BrainAgeError(f"{path}: truncated or corrupt image data ({type(exc).__name__}: {exc}). "
                            "Re-copy the file from its source.") from None
    if not np.isfinite(data).all():
        raise BrainAgeError(f"{path}: {int((~np.isfinite(data)).sum())} NaN/inf voxel(s). Replace them and re-save.")
    if min(shape) < MIN_SIZE:
        raise BrainAgeError(f"{path}: shape {shape} is too small for a head scan (under {MIN_SIZE} voxels along an axis).")
    if data.min() == data.max():
        raise BrainAgeError(f"{path}: empty image: every voxel is {data.flat[0]:g}. Check the export; a T1w scan has signal.")
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm", "sec")
    return out


def to_ants(data: np.ndarray, affine: np.ndarray) -> ants.ANTsImage:
    """An ANTs image from an array and its RAS affine."""
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    return ants.from_nibabel_nifti(img)


@lru_cache(maxsize=1)
def _extractor():
    """deepbet's two networks, loaded once per process (on the GPU where there is one)."""
    from deepbet import BrainExtraction

    return BrainExtraction()


def step_n4(state: State, recipe: Recipe, workdir: Path) -> None:
    """N4 inside the brain mask, or inside ANTs's head mask before brain extraction."""
    mask = state.mask if state.mask is not None else ants.get_mask(state.image)
    before = state.image
    state.image = ants.n4_bias_field_correction(state.image, mask=mask)
    state.measures["bias_field_range"] = round(measures.bias_field_range(before.numpy(), state.image.numpy(),
                                                                          mask.numpy() > 0.5), 3)


class NotABrain(ValueError):
    """What shows that a scan holds no brain (turned into a BrainAgeError naming the file)."""


def volume_ml(mask: ants.ANTsImage) -> float:
    """The volume of a mask image (voxels above 0.5), in mL."""
    return float((mask.numpy() > 0.5).sum() * np.prod(mask.spacing) / 1000.0)


def _check_volume(ml: float) -> None:
    low, high = VOLUME_RANGE_ML
    if not low <= ml <= high:
        raise NotABrain(f"the extracted brain is {ml:.0f} mL (a brain is {low:g}-{high:g} mL)")


def step_bet(state: State, recipe: Recipe, workdir: Path) -> None:
    """deepbet's brain mask; the image keeps only the brain."""
    _, mask, _ = _extractor().run(ants.to_nibabel_nifti(state.image))
    state.mask = state.image.new_image_like(np.asarray(mask.dataobj, dtype=np.float32))
    state.extracted = (state.image, state.mask)
    state.extracted_where = "scanner space" if not state.transforms else "after registration, in template space"
    if not state.transforms:  # still in the scanner's space: the volume is known now, so fail early
        ml = volume_ml(state.mask)
        _check_volume(ml)
        state.measures.update(native_brain_volume_ml=round(ml, 1),
                              snr=round(measures.snr(state.image.numpy(), state.mask.numpy() > 0.5), 2))
    state.image = state.image * state.mask


MIN_START_BRAIN_ML = 100.0  # a start mask smaller than this is no brain: the head's own centre of mass is the start
COARSE = 128  # deepbet's first network sees the scan at 128^3 to find the brain's box


def coarse_brain_mask(image: ants.ANTsImage) -> ants.ANTsImage:
    """A coarse brain mask of a whole head, from deepbet's first network alone (the one that finds the brain's box).

    That network sees the scan at 128^3, about an eighth of the work of a full extraction (its second network runs
    at 256^3); here it runs exactly as in ``deepbet.BrainExtraction.run_model``, and the mask comes back on the
    scanner image's grid."""
    import torch
    import torch.nn.functional as F
    from deepbet.utils import keep_largest_connected_component, normalize

    net = _extractor().bbox_model
    canonical = nib.as_closest_canonical(ants.to_nibabel_nifti(image))
    x = torch.from_numpy(np.nan_to_num(canonical.get_fdata(dtype=np.float32))).to(next(net.parameters()).device)
    small = F.interpolate(x[None, None], (COARSE,) * 3, mode="nearest-exact")[0, 0]
    low, high = small.quantile(0.005), small.quantile(0.995)
    with torch.no_grad():
        prob = net(normalize(small, low, high)[None, None])[0, 1]
    mask = (prob > 0.5).float().cpu().numpy()
    if mask.any():
        mask = keep_largest_connected_component(mask)
    step = np.array(canonical.shape[:3]) / COARSE  # "nearest-exact": coarse voxel i samples voxel (i + 0.5) * step
    to_canonical = np.eye(4)
    to_canonical[:3, :3], to_canonical[:3, 3] = np.diag(step), 0.5 * step - 0.5
    coarse = to_ants(mask.astype(np.float32), canonical.affine @ to_canonical)
    return ants.resample_image_to_target(coarse, image, interp_type="nearestNeighbor")


def brain_start(image: ants.ANTsImage, fixed: ants.ANTsImage, workdir: Path) -> tuple[list[str], ants.ANTsImage] | None:
    """Where a whole head's affine starts, and where its metric looks: the brain's coarse affine to the template
    brain (shrunk 8 and 4 times), and the coarse brain mask dilated by ``DILATE_MM``.

    ANTs's own start puts the centre of mass of the whole head, neck and all, on that of the brain-only template,
    which is 30-60 mm off in a field of view that reaches down the neck; and from a good start, an affine that sees
    the whole head still drifts, pulled by bright scalp fat inside the template's dilated brain mask (10-13 mm off on
    simulated heads with real T1w fat). So the brain is found first (``coarse_brain_mask``: used for nothing else; the
    recipe's own brain extraction comes later, in its place), the masked brain is registered to the template brain,
    and that affine starts the head's registration (antsRegistration's initial moving transform, which its output
    then contains: the written ``.mat`` maps the template to the scan by itself), whose metric counts the head only
    inside the dilated mask. None where the mask holds no brain (the default start then applies and the scan's
    checks decide).
    """
    mask = coarse_brain_mask(image)
    if volume_ml(mask) < MIN_START_BRAIN_ML:
        return None
    folder = workdir / "start"  # apart: ANTsPy collects every file under the registration's prefix that holds a digit
    folder.mkdir()
    reg = ants.registration(fixed, image * mask, type_of_transform="Affine", aff_iterations=(100, 50),
                            aff_shrink_factors=(8, 4), aff_smoothing_sigmas=(3, 2), outprefix=f"{folder}/")
    radius = max(1, round(DILATE_MM / min(image.spacing)))
    return [t for t in reg["fwdtransforms"] if t.endswith(".mat")], ants.iMath(mask, "MD", radius)


def step_register(state: State, recipe: Recipe, workdir: Path) -> None:
    """Register to the brain template on its 2 mm grid, then resample the image, mask and field of view once onto
    the recipe's grid.

    A whole head (registered before brain extraction: diff) starts from its brain's affine (``brain_start``); without
    that start, the 2 mm grid (whose coarsest level is 12 mm) lost 11 of 20 simulated 4 mm heads.
    """
    brain, tmask, dilated = template(REGISTRATION_GRID)
    grid_affine = Grid(REGISTRATION_GRID).affine
    fixed = to_ants(brain, grid_affine)
    ants.config._random_seed = RANDOM_SEED  # antspyx reads its seed here only (a random_seed= argument is ignored)
    start = brain_start(state.image, fixed, workdir) if state.mask is None else None
    state.measures["registration_start"] = "brain affine" if start else "centre of mass"
    initial, moving_mask = start if start else (None, None)
    if recipe.transform == "SyN":  # a short affine of the brain, then SyN alone from it; both unmasked: masked, SyN
        (workdir / "affine").mkdir()  # fitted the brain's edge worse (Dice 0.94 against 0.98 on simulated heads)
        affine = ants.registration(fixed, state.image, type_of_transform="Affine", outprefix=f"{workdir}/affine/",
                                   initial_transform=initial, **SYN_AFFINE)
        reg = ants.registration(fixed, state.image, type_of_transform="SyNOnly", outprefix=f"{workdir}/",
                                initial_transform=affine["fwdtransforms"], syn_sampling=SYN_BINS)
    else:  # the affine counts its metric only near the brain: faster, and a scalp cannot pull it
        reg = ants.registration(fixed, state.image, type_of_transform=recipe.transform,
                                mask=to_ants(dilated, grid_affine), outprefix=f"{workdir}/", initial_transform=initial,
                                moving_mask=moving_mask)
    state.transforms, state.inverse = list(reg["fwdtransforms"]), list(reg["invtransforms"])
    warps = [t for t in state.transforms if t.endswith(".nii.gz")]
    if warps:
        log_jac = ants.create_jacobian_determinant_image(fixed, warps[0], do_log=True).numpy()
        lo, hi = measures.log_jacobian_range(log_jac, tmask)
        state.measures["log_jacobian_range"] = round(hi - lo, 3)
    out = fixed if recipe.shape == REGISTRATION_GRID else to_ants(template(recipe.shape)[0], recipe.grid.affine)
    state.coverage = ants.apply_transforms(out, state.image * 0 + 1, state.transforms)
    state.image = ants.apply_transforms(out, state.image, state.transforms)
    if state.mask is not None:
        state.mask = ants.apply_transforms(out, state.mask, state.transforms).threshold_image(0.5, 2.0)


STEP_FUNCTIONS: dict[str, Callable[[State, Recipe, Path], None]] = {"n4": step_n4, "bet": step_bet, "register": step_register}


def _affine_determinant(transforms: list[str]) -> float:
    """|det| of the linear part of the affine (template -> scanner): the scanner's volume per template volume."""
    mat = next(t for t in transforms if t.endswith(".mat"))
    return float(abs(np.linalg.det(np.asarray(ants.read_transform(mat).parameters[:9]).reshape(3, 3))))


def quality(brain: np.ndarray, mask: np.ndarray, coverage: np.ndarray, recipe: Recipe, det: float) -> dict:
    """Similarity to the template (smoothed and not), brain volume in the scanner, and whether the mask meets the scan's edge."""
    tmpl, tmask, _ = template(recipe.shape)
    corr = float(np.corrcoef(brain[tmask], tmpl[tmask])[0, 1]) if brain[tmask].std() > 0 else 0.0
    inside = ndimage.binary_erosion(coverage > 0.999, iterations=1, border_value=1)  # the scan's edge, not the grid's
    return {"similarity": round(similarity(brain, recipe.shape), 4), "correlation": round(corr, 4),
            "brain_volume_ml": round(float(mask.sum() * np.prod(recipe.grid.voxel_size) * det / 1000.0), 1),
            "edge_voxels": int((mask & ~inside).sum())}


def composite(transforms: list[str], dest: Path, inverse: bool = False) -> bytes:
    """ANTs's transforms (``.mat`` affine, ``.nii.gz`` warp; in apply order) as one composite ``.h5`` transform.

    ``inverse``: ``transforms`` are ANTs's ``invtransforms``, whose affine is stored forward and inverted here.
    The file's HDF5 times are zeroed, so that the same transform gives the same bytes.
    """
    parts = []
    for t in transforms:
        if t.endswith(".mat"):
            tx = ants.read_transform(t)
            parts.append(tx.invert() if inverse else tx)
        else:
            parts.append(ants.transform_from_displacement_field(ants.image_read(t)))
    ants.write_transform(ants.compose_ants_transforms(parts), str(dest))
    return without_hdf5_times(dest.read_bytes())


def extraction_figure(state: State, name: str) -> bytes:
    """The brain-mask figure: the image deepbet saw (bias-corrected where N4 ran first; in the scanner's space where
    extraction runs before registration) with its mask's outline."""
    image, mask = state.extracted
    ml = volume_ml(mask)
    return brainmask_figure(ants.to_nibabel_nifti(image), mask.numpy() > 0.5,
                            f"{name}  deepbet brain mask ({state.extracted_where}, {ml:.0f} mL)")


def process(path: Path, recipe: Recipe) -> tuple[np.ndarray, np.ndarray, dict, dict[str, bytes]]:
    """Run ``recipe`` on one scan: (brain image, brain mask, QC numbers, files' bytes by kind: the composite
    transforms, ``xfm`` from the scan to the template and ``inv_xfm`` back, and ``mask_figure``, the brain mask
    drawn on the image it was extracted from)."""
    scan = read_scan(path)
    try:
        with tempfile.TemporaryDirectory(prefix="brainage-prep-") as tmp:
            state = State(ants.from_nibabel_nifti(scan), measures={"efc": round(measures.efc(scan.get_fdata()), 4)})
            wall, cpu = {}, {}
            for step in recipe.steps:
                t0, c0 = time.perf_counter(), time.process_time()
                STEP_FUNCTIONS[step](state, recipe, Path(tmp))
                wall[step], cpu[step] = round(time.perf_counter() - t0, 2), round(time.process_time() - c0, 2)
            mask = state.mask.numpy() > 0.5
            brain = np.clip(state.image.numpy(), 0, None) * mask
            qc = quality(brain, mask, state.coverage.numpy(), recipe, _affine_determinant(state.transforms))
            files = {"xfm": composite(state.transforms, Path(tmp, "forward.h5")),
                     "inv_xfm": composite(state.inverse, Path(tmp, "inverse.h5"), inverse=True),
                     "mask_figure": extraction_figure(state, path.name.split("_T1w")[0])}
        qc.update(state.measures)
        qc["step_seconds"], qc["step_cpu_seconds"] = wall, cpu
        _check_volume(qc["brain_volume_ml"])
        if abs(qc["correlation"]) < MIN_CORRELATION:
            raise NotABrain(f"once registered, it correlates {qc['correlation']:.2f} with the MNI152 template (a brain: "
                            f"about 0.9; refused when |r| < {MIN_CORRELATION})")
    except NotABrain as exc:
        raise BrainAgeError(f"{path}: does not look like a T1w head scan: {exc}. Check that the file is a T1-weighted "
                            "head MRI.") from None
    return brain.astype(np.float32), mask, qc, files


def spatial_reference(recipe: Recipe) -> dict:
    """The template and grid of a recipe's outputs, for the sidecars."""
    grid = recipe.grid
    ref = {"Template": SPACE, "TemplateFlow": f"yes: {SPACE} is a TemplateFlow template (the res- label is not)",
           "Source": "mni_icbm152_t1_tal_nlin_sym_09a (ICBM 2009a symmetric, brain only) from the nilearn wheel, "
                     "resampled to this grid",
           "Shape": list(grid.shape), "VoxelSizeMM": [round(v, 4) for v in grid.voxel_size],
           "Affine": grid.affine.round(6).tolist()}
    if recipe.stands_in_for:
        ref["StandsInFor"] = (f"{recipe.stands_in_for}, the paper's template, which is not a TemplateFlow template and "
                              f"cannot be had offline: the {SPACE} template on the paper's {recipe.res} grid stands in "
                              f"for it. These images are in {SPACE} space, not in {recipe.stands_in_for}'s.")
    return ref


def sidecars(where: dict[str, Path], stem: str, recipe: Recipe, provenance: dict) -> dict[str, dict]:
    """The JSON sidecars of the preprocessed T1w and the brain mask. ``Sources`` are BIDS URIs: ``bids:raw:`` in the
    raw dataset (``DatasetLinks`` of dataset_description.json), ``bids::`` in this one."""
    folder = "/".join(stem.split("_")) + "/anat"  # sub-<id>[/ses-<s>]/anat, relative to the output folder
    raw = (provenance.get("source") or {}).get("path")
    sources = ([f"bids:raw:{raw}"] if raw else []) + [f"bids::{folder}/{where['xfm'].name}"]
    common = {"Resolution": recipe.resolution(), "SpatialReference": spatial_reference(recipe)}
    return {"t1w_json": {"SkullStripped": True, "Sources": sources, **common},
            "mask_json": {"Type": "Brain", "Sources": sources + [f"bids::{folder}/{where['t1w'].name}"], **common}}


def run_subject(path: Path, out_anat: Path, stem: str, recipe: Recipe, provenance: dict) -> dict:
    """Process one scan and write its outputs, its record (``_qc.json``, with ``provenance``) last.

    Any earlier outputs of the scan are removed first (the record first), and whatever this run wrote
    is removed if it fails or is stopped: a scan is finished exactly when its record exists.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    where = output_paths(out_anat, stem, recipe.res)
    remove_outputs(where)
    try:
        brain, mask, qc, files = process(path, recipe)
        affine = recipe.grid.affine
        save_nifti(where["mask"], mask.astype(np.uint8), affine)
        for kind, blob in files.items():
            atomic_write(where[kind], lambda p, b=blob: p.write_bytes(b))
        png = subject_figure(nib.Nifti1Image(brain, affine), recipe.shape, f"{stem}  similarity {qc['similarity']:.3f}")
        atomic_write(where["figure"], lambda p: p.write_bytes(png))
        save_nifti(where["t1w"], brain, affine)
        for kind, meta in sidecars(where, stem, recipe, provenance).items():
            atomic_write(where[kind], lambda p, m=meta: p.write_text(json.dumps(m, indent=2) + "\n"))
        qc["transforms"], qc["inverse_transforms"] = [where["xfm"].name], [where["inv_xfm"].name]
        qc.update(seconds=round(time.perf_counter() - t0, 1), cpu_seconds=round(time.process_time() - c0, 1),
                  recipe=recipe.name, **provenance)
        atomic_write(where["qc"], lambda p: p.write_text(json.dumps(qc, indent=1) + "\n"))
    except BaseException:
        remove_outputs(where)
        raise
    return qc
