"""Simulated cohorts on MNI152 anatomy, written in the real-data cohort format.

One subject = template tissue maps, changed by biological age (``ageing``) with extra
GM loss in the effect region and an optional disease region, warped by a smooth
individual deformation plus age-driven ventricular widening, then imaged with a
site's contrast, bias field, Rician noise and (clinical grade) thick slices and blur
(``render``). Everything the generator knew is written under ``ground_truth/``,
including noise-free reference images at two ages and their expected change in the
units of per-image min-max normalised inputs.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import nibabel as nib
import numpy as np

from brainage_lib.errors import BrainAgeError
from brainage_lib.run.progress import tqdm
from brainage_lib.simulation.anatomy import Grid, make_grid
from brainage_lib.simulation.presets import Preset, get_preset, sample_demographics
from brainage_lib.simulation.render import Renderer, Site, sample_sites
from brainage_lib.simulation.visibility import minmax

SIMULATOR_VERSION = 3  # bump when a change alters the generated images: cached cohorts are keyed by it


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
                    effect_region: str | None = None, effect_rate: float | None = None, overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Simulate a cohort and write it in the cohort-folder format, plus ``ground_truth/``.

    ``effect_region`` and ``effect_rate`` (extra GM share lost per year in the region)
    replace the preset's when given.

    The cohort is built in a temporary folder beside ``out_dir`` and moved into place
    only when complete (``build_cohort_folder``). An existing ``out_dir`` is replaced only
    with ``overwrite=True`` and only if it is itself a simulated cohort. The same arguments
    give byte-identical files.
    """
    fill = cohort_writer(preset, n, seed, shape, voxel_size, effect_region, effect_rate, progress)
    return build_cohort_folder(out_dir, fill, overwrite)


def cohort_writer(preset: str, n: int | None = None, seed: int = 0, shape: tuple[int, int, int] | None = None,
                  voxel_size: float | None = None, effect_region: str | None = None, effect_rate: float | None = None,
                  progress: bool = True) -> Callable[[Path], None]:
    """The arguments of ``simulate_cohort``, checked, as a function that writes the cohort into an empty folder."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BrainAgeError(f"Seed {seed!r} must be a non-negative integer (0, 1, 2, ...); use e.g. --seed 1.")
    if effect_rate is not None and not 0.0 <= effect_rate <= 0.05:
        raise BrainAgeError(f"Effect rate {effect_rate} is outside 0-0.05 (extra share of GM lost per year, e.g. 0.01).")
    p = get_preset(preset, effect_rate=effect_rate)
    n = p.n if n is None else int(n)
    if n < 1:
        raise BrainAgeError(f"n={n}: a cohort needs at least one subject (--n 1 or more).")
    grid = make_grid(shape, voxel_size)
    region = effect_region or p.effect_region
    return lambda root: _simulate_into(root, p, n, seed, grid, region, progress)


def build_cohort_folder(out_dir: str | os.PathLike, fill: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Write a simulated cohort folder atomically: ``fill(tmp)`` writes it into a new temporary folder beside
    ``out_dir``, which then takes ``out_dir``'s place (an existing one only with ``overwrite``, and only if it is a
    simulated cohort: ``_check_out_dir``). On any failure the temporary folder is removed and ``out_dir`` is left
    as it was. Returns the resolved ``out_dir``."""
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise BrainAgeError(f"Cannot create the output folder {out} ({exc.strerror or exc}). Choose an --out in a folder "
                            "you can write to.") from None
    try:
        fill(tmp)
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
    _write_nifti(gt / "effect_map.nii.gz", renderer.effect_map, grid.affine)
    if renderer.disease_np is not None:
        _write_nifti(gt / "disease_map.nii.gz", renderer.disease_np, grid.affine)
    _write_references(gt, renderer, sites)
    _write_json(gt / "sites.json", {k: asdict(v) for k, v in sites.items()})
    _write_json(gt / "simulation.json", {
        "simulator_version": SIMULATOR_VERSION, "render_device": renderer.device.type, "preset": p.name, "mirrors": p.mirrors, "n": n, "seed": seed, "shape": list(grid.shape),
        "voxel_size_mm": [round(v, 4) for v in grid.voxel_size], "effect_region": region, "effect_rate": p.effect_rate,
        "effect_onset": p.effect_onset, "effect_map": "region weight x template GM fraction, scaled to peak 1",
        "disease_region": p.disease_region, "disease_strength": p.disease_strength,
        "gap_mean": p.gap_mean, "gap_sd": p.gap_sd, "gap_sd_per_year": p.gap_sd_per_year,
        "unlabelled_fraction": p.unlabelled_fraction, "expected_change_ages": list(p.reference_ages),
        "expected_change": "|minmax(reference_old) - minmax(reference_young)|, per-image min-max as the models' inputs",
        "deform_mm": p.deform_mm, "head_scale_sd": p.head_scale_sd, "field_strength": p.field_strength,
        "site_assignment": "independent of age and sex",
        "survival_model": SURVIVAL_MODEL if p.disease_region else None, "grade": p.grade,
    })


def _write_references(gt: Path, renderer: Renderer, sites: dict[str, Site]) -> None:
    """Noise-free population images at the preset's reference ages (mean site contrast and gain, raw units)
    and their expected change in the units of per-image min-max normalised inputs."""
    contrast = tuple(float(v) for v in np.mean([[s.i_csf, s.i_gm, s.i_wm] for s in sites.values()], axis=0))
    gain = float(np.mean([s.gain for s in sites.values()]))
    young, old = (renderer.reference_image(a, contrast, gain) for a in renderer.preset.reference_ages)
    affine = renderer.grid.affine
    _write_nifti(gt / "reference_young.nii.gz", young, affine)
    _write_nifti(gt / "reference_old.nii.gz", old, affine)
    _write_nifti(gt / "expected_change.nii.gz", np.abs(minmax(old) - minmax(young)).astype(np.float32), affine)
