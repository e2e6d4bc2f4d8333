"""Harder simulated heads (``brainage simulate --space native --heads hard``) and the recipes on them.

Hard heads are what real scans have and the template's head lacks: a field of view that reaches down the neck
towards the shoulders, the head off-centre in it, pitch up to 30 degrees, bright fat and dark muscle, a stronger
bias field. The fast tests check the simulator (deterministic, and different from the standard heads as stated); the
long one preprocesses four of them with the diff recipe, whose whole-head registration the neck used to defeat.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

if importlib.util.find_spec("nimare") is None:  # only its head template file is used
    pytest.skip("nimare is not installed: `make preprocess-deps` installs the preprocessing dependencies "
                "(antspyx, deepbet, nimare)", allow_module_level=True)

from brainage_lib import cli  # noqa: E402
from brainage_lib.simulation.native import HARD, convert_to_native, simulate_native_cohort  # noqa: E402
from brainage_lib.simulation.simulate import simulate_cohort  # noqa: E402

SID = "sub-abide0001"
VOLUME_TOLERANCE = 0.1  # the registered brain's volume (in scanner mL) within 10 % of the true mask's


def _scan(root: Path, sid: str = SID) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    img = nib.load(str(root / sid / "anat" / f"{sid}_T1w.nii.gz"))
    truth_dir = root / "ground_truth" / "native"
    truth = np.asarray(nib.load(str(truth_dir / f"{sid}_brain_mask.nii.gz")).dataobj) > 0
    return np.asarray(img.dataobj, dtype=np.float32), truth, img.affine, json.loads((truth_dir / f"{sid}_pose.json").read_text())


def _below_brain_mm(data: np.ndarray, truth: np.ndarray, affine: np.ndarray) -> float:
    """How far the field of view reaches below the brain's lowest point (mm, along the scanner's S axis)."""
    z = nib.affines.apply_affine(affine, np.argwhere(truth))[:, 2].min()
    corners = nib.affines.apply_affine(affine, np.argwhere(np.ones(data.shape, bool))[:: 97])
    return float(z - corners[:, 2].min())


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> dict[str, Path]:
    """One simulated brain on the 4 mm grid put into a standard head, a hard head, and a hard head again."""
    base = tmp_path_factory.mktemp("hard")
    mni = simulate_cohort("abide_like", base / "mni", n=1, seed=3, voxel_size=4.0, progress=False)
    out = {}
    for name, kind in (("standard", "standard"), ("hard", "hard"), ("again", "hard")):
        out[name] = shutil.copytree(mni, base / name)
        convert_to_native(out[name], 3, progress=False, heads=kind)
    return out


def test_hard_heads_are_deterministic(heads):
    for rel in (f"{SID}/anat/{SID}_T1w.nii.gz", f"ground_truth/native/{SID}_brain_mask.nii.gz",
                f"ground_truth/native/{SID}_pose.json", "ground_truth/native/native.json"):
        assert (heads["hard"] / rel).read_bytes() == (heads["again"] / rel).read_bytes(), rel


def test_hard_heads_differ_from_standard_as_stated(heads):
    std, hard = _scan(heads["standard"]), _scan(heads["hard"])
    data, truth, affine, pose = hard
    # the field of view reaches down the neck, >= 60 mm below the brain (standard: to the template's bottom + 10 mm)
    assert _below_brain_mm(*hard[:3]) >= max(60.0, _below_brain_mm(*std[:3]) + 40)
    extent = np.abs(affine[:3, :3]) @ np.array(data.shape)  # R, A, S extents in mm
    assert extent[2] >= HARD["fov_mm"]["superior-inferior"][0] and extent[1] >= 256
    assert pose["heads"] == "hard" and abs(pose["rotation_deg"][0]) <= 30 and max(map(abs, pose["rotation_deg"][1:])) <= 15
    assert 0.3 <= pose["bias_strength"] <= 0.5 and "coil_falloff" in pose and "brain_offset_from_fov_centre_mm" in pose
    native = json.loads((heads["hard"] / "ground_truth" / "native" / "native.json").read_text())
    assert native["heads"] == "hard" and native["hard"]["rotation_deg"]["pitch (about x)"] == 30
    assert "heads" not in json.loads((heads["standard"] / "ground_truth" / "native" / "native.json").read_text())
    # the brain lies inside the field of view, not touching its edge
    assert not (truth[0].any() or truth[-1].any() or truth[:, 0].any() or truth[:, -1].any()
                or truth[:, :, 0].any() or truth[:, :, -1].any())
    # T1w contrast outside the brain: the brightest tissue is fat, brighter than white matter, also in the neck
    wm = np.percentile(data[truth], 90)
    below = int(np.argwhere(truth)[:, 1].min() - 40 / abs(affine[2, 1]))  # j runs superior: 40 mm below the brain
    neck = data[:, :below]
    tissue = neck[neck > 0.1 * wm]  # the coil's fall-off darkens it all; fat stays over twice as bright as muscle
    assert tissue.size > 0.1 * neck.size and np.percentile(tissue, 99) > 2 * np.median(tissue), np.percentile(tissue, [50, 99])
    assert np.percentile(data[~ndimage.binary_dilation(truth, iterations=2)], 99.5) > wm


def test_cli_hard_needs_native_space(tmp_path, capsys):
    assert cli.main(["simulate", "--preset", "abide_like", "--out", str(tmp_path / "x"), "--n", "1",
                     "--voxel-size", "8", "--heads", "hard", "--quiet"]) == 2
    assert "--space native" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.long
@pytest.mark.preprocessing
def test_diff_recipe_keeps_hard_heads(tmp_path):
    """Four hard 2 mm heads through the diff recipe: none refused, and each brain's volume (deepbet's mask after
    registration, in scanner mL) within VOLUME_TOLERANCE of the true mask's."""
    for module in ("ants", "deepbet"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: `make preprocess-deps` installs the preprocessing dependencies")
    from brainage_lib.preprocess.run import preprocess_cohort

    raw = simulate_native_cohort("abide_like", tmp_path / "raw", n=4, seed=0, voxel_size=2.0, heads="hard",
                                 progress=False)
    summary = preprocess_cohort(raw, tmp_path / "diff", "diff", jobs=2, progress=False)
    assert summary.processed == 4 and not summary.failed, summary.failed
    for rec in sorted(summary.out.rglob("*_qc.json")):
        sid = rec.name.split("_")[0]
        qc = json.loads(rec.read_text())
        truth = nib.load(str(raw / "ground_truth" / "native" / f"{sid}_brain_mask.nii.gz"))
        true_ml = float((np.asarray(truth.dataobj) > 0).sum() * np.prod(truth.header.get_zooms()) / 1000.0)
        assert qc["brain_volume_ml"] == pytest.approx(true_ml, rel=VOLUME_TOLERANCE), (sid, qc["brain_volume_ml"], true_ml)
        assert qc["correlation"] > 0.8 and qc["registration_start"] == "brain affine", (sid, qc)
