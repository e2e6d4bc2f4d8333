"""The notebooks' input-space guard: brain-only images in MNI space pass; heads, other orientations and grids do not."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brainage_lib.data.space import SKULL_ML, foreground_ml, require_preprocessed, space_observations
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import make_grid, tissue_maps


def mni_brain(tmp_path, name="brain.nii.gz"):
    grid = make_grid((48, 57, 48))
    brain = tissue_maps(grid.shape)["mask"].astype(np.float32) * 100
    path = tmp_path / name
    nib.save(nib.Nifti1Image(brain, grid.affine), str(path))
    return path, grid, brain


def test_foreground_volume_by_hand():
    data = np.zeros((10, 10, 10), np.float32)
    data[:4, :5, :5] = 50.0  # 100 voxels of 2x2x2 mm = 0.8 mL
    assert foreground_ml(data, (2, 2, 2)) == pytest.approx(0.8)


def test_brain_in_mni_passes_and_a_head_or_a_turned_image_does_not(tmp_path):
    path, grid, brain = mni_brain(tmp_path)
    img = nib.load(str(path))
    assert set(space_observations(img, np.asanyarray(img.dataobj))) == {"voxel"}  # a 4 mm grid: a warning only
    assert foreground_ml(brain, grid.voxel_size) < SKULL_ML
    head = np.where(np.asarray(brain) > 0, brain, 0) + 30.0 * (np.indices(brain.shape)[2] < brain.shape[2] * 0.95)
    head_obs = space_observations(img, head.astype(np.float32))
    assert set(head_obs) == {"voxel", "skull"}
    psr = nib.Nifti1Image(brain, grid.affine[:, [1, 2, 0, 3]])  # axes permuted: not RAS/LAS, another field of view
    assert "orientation" in space_observations(psr)
    coarse = nib.Nifti1Image(brain, np.diag([4.0, 4.0, 4.0, 1.0]) @ np.eye(4))
    assert {"voxel", "fov"} <= set(space_observations(coarse))


def test_guard_names_files_and_recipe_and_can_be_overridden(tmp_path):
    good, grid, brain = mni_brain(tmp_path)
    assert require_preprocessed([good], "tgb") == []  # its 4 mm voxels alone do not stop a notebook
    turned = tmp_path / "turned.nii.gz"
    nib.save(nib.Nifti1Image(brain, grid.affine[:, [1, 2, 0, 3]]), str(turned))
    with pytest.raises(BrainAgeError, match=r"turned\.nii\.gz.*\n.*brainage preprocess RAW OUT --recipe diff") as err:
        require_preprocessed([good, turned], "diff")
    assert "ALLOW_UNREGISTERED=True" in str(err.value) and "brain.nii.gz" not in str(err.value)
    warnings = require_preprocessed([good, turned], "diff", allow_unregistered=True)
    assert len(warnings) >= 1 and "turned.nii.gz" in warnings[0]
    with pytest.raises(BrainAgeError, match="Unknown preprocessing recipe"):
        require_preprocessed([good], "fsl")


@pytest.mark.notebook
def test_a_notebook_stops_on_unregistered_images_before_training(tiny_abide, tmp_path):
    import shutil

    from brainage_lib.run.runner import run_notebook

    raw = tmp_path / "raw"
    shutil.copytree(tiny_abide, raw, ignore=shutil.ignore_patterns("ground_truth"))
    for f in sorted(raw.glob("sub-*/anat/*_T1w.nii.gz")):  # as a scanner stores them: other axis order
        img = nib.load(str(f))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine[:, [1, 2, 0, 3]]), str(f))
    with pytest.raises(BrainAgeError, match=r"(?s)orientation.*sub-.*_T1w\.nii\.gz.*--recipe tgb") as err:
        run_notebook("01_tgb", profile="smoke", params={"DATA_DIR": str(raw)}, output_dir=tmp_path / "out",
                     html=False, progress=False)
    assert "ALLOW_UNREGISTERED" in str(err.value)
    assert not (tmp_path / "out" / "checkpoints").exists()  # stopped before any training
