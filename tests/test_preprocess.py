"""``brainage preprocess`` against a known answer: scanner-space heads simulated with their true pose and brain mask.

Two simulated heads (random pose, PSR orientation, anisotropic voxels, bias field): the first goes
through the lstm recipe beside five bad inputs, the second through diff and tgb. The brain mask
of each output is compared with the simulator's mask carried into the output space by the TRUE
transform (Dice), and the written forward transforms with the true transform at every brain
voxel (displacement).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

for _module in ("ants", "deepbet", "nimare"):  # the optional preprocessing dependencies (make preprocess-deps)
    if importlib.util.find_spec(_module) is None:  # nimare is found, not imported: only its template file is used
        pytest.skip(f"{_module} is not installed: `make preprocess-deps` installs the preprocessing dependencies "
                    "(antspyx, deepbet, nimare)", allow_module_level=True)

from brainage_lib import cli  # noqa: E402
from brainage_lib.data.cohort import load_cohort  # noqa: E402
from brainage_lib.data.validation import validate_cohort  # noqa: E402
from brainage_lib.errors import BrainAgeError  # noqa: E402
from brainage_lib.preprocess.run import preprocess_cohort  # noqa: E402
from brainage_lib.simulation.native import simulate_native_cohort  # noqa: E402

pytestmark = pytest.mark.preprocessing
HEADS = ["sub-abide0001", "sub-abide0002"]  # the first goes through lstm (with the bad inputs), the second through diff and tgb
BAD = {"sub-bad4d": "4D", "sub-badempty": "empty image", "sub-badconstant": "empty image",
       "sub-badnoise": "does not look like a T1w head scan", "sub-badtruncated": "truncated or corrupt"}


def folder_hash(root: Path) -> str:
    """Names and contents of every file under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _write(path: Path, data: np.ndarray, zooms: float = 3.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([zooms] * 3 + [1.0])), str(path))


def _add_bad_inputs(raw: Path) -> None:
    rng = np.random.default_rng(0)
    images = {"sub-bad4d": rng.random((40, 40, 40, 3), dtype=np.float32),
              "sub-badempty": np.zeros((64, 64, 48), np.float32),
              "sub-badconstant": np.full((64, 64, 48), 100.0, np.float32),
              "sub-badnoise": rng.random((64, 64, 48), dtype=np.float32) * 1000}
    for sid, data in images.items():
        _write(raw / sid / "anat" / f"{sid}_T1w.nii.gz", data)
    good = (raw / HEADS[0] / "anat" / f"{HEADS[0]}_T1w.nii.gz").read_bytes()
    truncated = raw / "sub-badtruncated" / "anat" / "sub-badtruncated_T1w.nii.gz"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(good[: len(good) // 2])
    table = pd.read_csv(raw / "participants.tsv", sep="\t", dtype=str)
    extra = pd.DataFrame({"participant_id": list(BAD), "age": "10.0", "sex": "F", "site": "site01", "group": "control"})
    pd.concat([table, extra]).to_csv(raw / "participants.tsv", sep="\t", index=False)


def _one_head(sim: Path, sid: str, dest: Path) -> Path:
    """A raw folder with one of the simulated heads and the whole ground truth."""
    shutil.copytree(sim / sid, dest / sid)
    shutil.copytree(sim / "ground_truth", dest / "ground_truth")
    table = pd.read_csv(sim / "participants.tsv", sep="\t", dtype=str)
    table[table["participant_id"] == sid].to_csv(dest / "participants.tsv", sep="\t", index=False)
    return dest


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    """Two scanner-space heads, 2 mm in plane (2.8 mm slices)."""
    return simulate_native_cohort("abide_like", tmp_path_factory.mktemp("native") / "sim", n=2, seed=5, voxel_size=2.0,
                                  progress=False)


@pytest.fixture(scope="module")
def raw(sim, tmp_path_factory) -> Path:
    """The first head and five bad inputs."""
    root = _one_head(sim, HEADS[0], tmp_path_factory.mktemp("raw") / "raw")
    _add_bad_inputs(root)
    return root


@pytest.fixture(scope="module")
def lstm_run(raw, tmp_path_factory):
    """The raw cohort through the lstm recipe, two scans at a time; RAW hashed before and after."""
    before = folder_hash(raw)
    out = tmp_path_factory.mktemp("prep") / "lstm"
    summary = preprocess_cohort(raw, out, "lstm", jobs=2, progress=False)
    return summary, before, folder_hash(raw)


def recovery(raw: Path, out: Path, sid: str, pose_of: str | None = None) -> tuple[float, float]:
    """Dice of the output brain mask with the true one, and the mean displacement (mm) of the estimated transform.

    ``pose_of`` takes the true pose of another subject instead (to show that the checks can fail). The written
    inverse transform must bring the estimated scanner points back to the output grid's (mean error under 1 mm).
    """
    import ants

    truth_dir = raw / "ground_truth" / "native"
    m = np.array(json.loads((truth_dir / f"{pose_of or sid}_pose.json").read_text())["template_to_scanner"])
    truth_img = nib.load(str(truth_dir / f"{sid}_brain_mask.nii.gz"))
    anat = out / sid / "anat"
    mask_img = nib.load(str(next(anat.glob("*_desc-brain_mask.nii.gz"))))
    mask = np.asarray(mask_img.dataobj) > 0
    ras = nib.affines.apply_affine(mask_img.affine, np.indices(mask.shape).reshape(3, -1).T)  # output voxels, mm
    scanner = nib.affines.apply_affine(m, ras)  # where each truly lies in the scan
    vox = nib.affines.apply_affine(np.linalg.inv(truth_img.affine), scanner)
    truth = ndimage.map_coordinates(np.asarray(truth_img.dataobj, dtype=np.float32), vox.T, order=1) > 0.5
    dice = 2 * (mask.reshape(-1) & truth).sum() / (mask.sum() + truth.sum())
    transforms = [str(anat / t) for t in json.loads((anat / f"{sid}_qc.json").read_text())["transforms"]]
    lps = pd.DataFrame({"x": -ras[truth, 0], "y": -ras[truth, 1], "z": ras[truth, 2]})  # ANTs points are LPS
    est = ants.apply_transforms_to_points(3, lps, transforms)
    inverse = [str(anat / t) for t in json.loads((anat / f"{sid}_qc.json").read_text())["inverse_transforms"]]
    back = ants.apply_transforms_to_points(3, est, inverse).to_numpy()
    assert np.linalg.norm(back - lps.to_numpy(), axis=1).mean() < 1.0
    est = est.to_numpy() * [-1, -1, 1]
    return float(dice), float(np.linalg.norm(est - scanner[truth], axis=1).mean())


def test_lstm_recovers_brain_and_pose_and_refuses_bad_inputs(raw, lstm_run):
    summary, before, after = lstm_run
    assert summary.processed == 1
    assert len(summary.failed) == len(BAD)
    for sid, why in BAD.items():
        reason = next(r for r in summary.failed if f"{sid}_T1w" in r)
        assert why in reason and str(raw) in reason, reason
    dice, disp = recovery(raw, summary.out, HEADS[0])
    assert dice >= 0.9, dice
    assert disp <= 2.0, disp
    assert before == after, "RAW changed"


def test_quality_measures_of_a_simulated_head(raw, lstm_run):
    """The brain volume deepbet measured in the scanner against the simulator's true mask; the other measures in range."""
    summary, _, _ = lstm_run
    sid = HEADS[0]
    record = json.loads((summary.out / sid / "anat" / f"{sid}_qc.json").read_text())
    truth = nib.load(str(raw / "ground_truth" / "native" / f"{sid}_brain_mask.nii.gz"))
    true_ml = float((np.asarray(truth.dataobj) > 0).sum() * np.prod(truth.header.get_zooms()) / 1000.0)
    assert record["native_brain_volume_ml"] == pytest.approx(true_ml, rel=0.1)
    assert record["similarity"] > 0.9 and record["bias_field_range"] > 1.05 and 0 < record["efc"] < 1 and record["snr"] > 1
    assert set(record["step_seconds"]) == {"n4", "bet", "register"} and record["cpu_seconds"] > 0


def test_output_is_a_clean_mni_cohort_with_qc(raw, lstm_run):
    summary, _, _ = lstm_run
    report = validate_cohort(summary.out)
    assert report.ok and not report.warnings, report.summary()
    cohort = load_cohort(summary.out)
    assert list(cohort.table["participant_id"]) == HEADS[:1]
    img = nib.load(str(cohort.paths[0]))
    assert img.shape == (128, 160, 112) and nib.aff2axcodes(img.affine) == ("R", "A", "S")
    made = json.loads((summary.out / "dataset_description.json").read_text())["GeneratedBy"][0]
    assert made["Recipe"] == "lstm" and "SRI24" in " ".join(made["Notes"]) and made["Packages"]["antspyx"] != "not installed"
    qc = pd.read_csv(summary.qc_tsv, sep="\t")
    assert list(qc["status"][: len(BAD)]) == ["failed"] * len(BAD)  # worst first
    assert list(qc.loc[qc["status"] != "failed", "participant_id"]) == HEADS[:1]
    page = summary.qc_html.read_text()
    assert page.count("data:image/png;base64,") == 2 and "<script" not in page  # the scan's two thumbnails
    figures = summary.out / HEADS[0] / "figures"
    assert sorted(p.name for p in figures.iterdir()) == [f"{HEADS[0]}_desc-brainmask.png", f"{HEADS[0]}_desc-qc.png"]
    for name in (f"{HEADS[0]}_desc-brainmask.png", f"{HEADS[0]}_desc-qc.png"):
        assert f'href="{HEADS[0]}/figures/{name}"' in page
    assert all(page.count(f"<th>{sid}</th>") == 1 for sid in [*BAD, HEADS[0]])  # one row per scan


def test_outputs_are_named_as_smriprep_names_them_with_sidecars(raw, lstm_run):
    summary, _, _ = lstm_run
    sid, tpl = HEADS[0], "MNI152NLin2009aSym"
    anat, stem = summary.out / sid / "anat", f"{sid}_space-{tpl}_res-128x160x112"
    assert sorted(p.name for p in anat.iterdir()) == sorted([
        f"{stem}_desc-preproc_T1w.nii.gz", f"{stem}_desc-preproc_T1w.json", f"{stem}_desc-brain_mask.nii.gz",
        f"{stem}_desc-brain_mask.json", f"{sid}_from-T1w_to-{tpl}_mode-image_xfm.h5",
        f"{sid}_from-{tpl}_to-T1w_mode-image_xfm.h5", f"{sid}_qc.json"])
    desc = json.loads((summary.out / "dataset_description.json").read_text())
    assert "file:" not in json.dumps(desc) and not Path(desc["SourceDatasets"][0]["URL"]).is_absolute()
    assert (summary.out / desc["SourceDatasets"][0]["URL"]).resolve() == raw.resolve()
    links = {"raw": (summary.out / desc["DatasetLinks"]["raw"]).resolve(), "": summary.out}
    t1w, mask = (json.loads((anat / f"{stem}_desc-{kind}.json").read_text()) for kind in ("preproc_T1w", "brain_mask"))
    assert t1w["SkullStripped"] is True and mask["Type"] == "Brain"
    for meta in (t1w, mask):
        assert {"Sources", "Resolution", "SpatialReference"} <= set(meta)
        assert "128x160x112" in meta["Resolution"] and meta["SpatialReference"]["Template"] == tpl
        assert "SRI24" in meta["SpatialReference"]["StandsInFor"]  # the lstm recipe's template is a stand-in
        for uri in meta["Sources"]:  # BIDS URIs, each naming a file that is there
            _, dataset, path = uri.split(":", 2)
            assert (links[dataset] / path).is_file(), uri


def test_rerun_skips_finished_scans_and_exits_nonzero_on_failures(raw, lstm_run, capsys):
    summary, _, _ = lstm_run
    t1w = next((summary.out / HEADS[0] / "anat").glob("*_desc-preproc_T1w.nii.gz"))
    stamp = t1w.stat().st_mtime_ns
    code = cli.main(["preprocess", str(raw), str(summary.out), "--recipe", "lstm", "--quiet"])
    assert code == 1
    assert f"0 scan(s) processed, 1 already done, {len(BAD)} failed" in capsys.readouterr().out
    assert t1w.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("recipe", ["diff", "tgb"])
def test_other_recipes_recover_brain_and_pose(sim, tmp_path, recipe):
    raw = _one_head(sim, HEADS[1], tmp_path / "raw")
    summary = preprocess_cohort(raw, tmp_path / recipe, recipe, progress=False)
    assert summary.processed == 1 and not summary.failed, summary.failed
    dice, disp = recovery(raw, summary.out, HEADS[1])
    assert dice >= 0.9, dice
    assert disp <= 2.0, disp
    assert validate_cohort(summary.out).warnings == []
    record = json.loads(next(summary.out.rglob("*_qc.json")).read_text())
    assert record["transforms"] == [f"{HEADS[1]}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5"]
    assert "StandsInFor" not in json.loads(next(summary.out.rglob("*_desc-preproc_T1w.json")).read_text())["SpatialReference"]
    assert ("log_jacobian_range" in record) == (recipe == "tgb")  # only SyN has a warp
    assert 0 < record.get("log_jacobian_range", 1) < 2


def test_output_inside_raw_is_refused_and_raw_untouched(raw):
    before = folder_hash(raw)
    with pytest.raises(BrainAgeError, match="inside the raw folder"):
        preprocess_cohort(raw, raw / "derivatives" / "lstm", "lstm", progress=False)
    assert cli.main(["preprocess", str(raw), str(raw), "--recipe", "tgb"]) == 2
    assert folder_hash(raw) == before


def test_the_checks_can_fail(raw, lstm_run):
    """Judged against another head's true pose, the same output fails both checks."""
    summary, _, _ = lstm_run
    dice, disp = recovery(raw, summary.out, HEADS[0], pose_of=HEADS[1])
    assert dice < 0.9 and disp > 2.0, (dice, disp)


def test_native_simulation_truth_matches_the_mni_cohort(tmp_path):
    """The scanner-space truth, carried back by the true pose, is the brain the MNI-space simulator drew."""
    args = ["--preset", "abide_like", "--n", "1", "--seed", "2", "--voxel-size", "4", "--quiet"]
    assert cli.main(["simulate", "--out", str(tmp_path / "mni"), *args]) == 0
    assert cli.main(["simulate", "--out", str(tmp_path / "native"), "--space", "native", *args]) == 0
    sid = "sub-abide0001"
    mni = nib.load(str(tmp_path / "mni" / sid / "anat" / f"{sid}_T1w.nii.gz"))
    scan = nib.load(str(tmp_path / "native" / sid / "anat" / f"{sid}_T1w.nii.gz"))
    truth_dir = tmp_path / "native" / "ground_truth" / "native"
    truth = nib.load(str(truth_dir / f"{sid}_brain_mask.nii.gz"))
    pose = json.loads((truth_dir / f"{sid}_pose.json").read_text())
    assert nib.aff2axcodes(scan.affine) == ("P", "S", "R") and len(set(np.round(scan.header.get_zooms(), 2))) == 2
    assert max(map(abs, pose["rotation_deg"])) <= 15 and max(map(abs, pose["shift_mm"])) <= 20
    brain = np.asarray(mni.dataobj) > 0
    ras = nib.affines.apply_affine(mni.affine, np.indices(brain.shape).reshape(3, -1).T)
    vox = nib.affines.apply_affine(np.linalg.inv(truth.affine) @ np.array(pose["subject_mni_to_scanner"]), ras)
    back = ndimage.map_coordinates(np.asarray(truth.dataobj, dtype=np.float32), vox.T, order=1).reshape(brain.shape) > 0.5
    assert 2 * (back & brain).sum() / (back.sum() + brain.sum()) > 0.9
    data, inside = np.asarray(scan.dataobj, dtype=float), np.asarray(truth.dataobj) > 0
    assert (data[~inside] > 0.5 * np.median(data[inside])).sum() * np.prod(scan.header.get_zooms()) > 3e5  # a head: scalp
    kinds = " ".join(validate_cohort(tmp_path / "native", check_data=False).warnings)
    assert "orientation" in kinds  # a scanner's image, not yet in MNI space
