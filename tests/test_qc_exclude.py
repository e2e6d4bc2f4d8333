"""Quality control that can act: the similarity flag passes registered brains and flags misregistered ones, and the
``exclude`` column of ``qc.tsv`` is set for flagged scans, kept when edited by hand, and honoured by the cohort loader
(and so by the notebooks and ``brainage predict``), which names the scans it leaves out."""
from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from brainage_lib.data.cohort import load_cohort
from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess.qc import LOW_SIMILARITY, flag_outliers, set_exclusions, similarity
from brainage_lib.simulation.anatomy import Grid
from brainage_lib.simulation.simulate import simulate_cohort

GRID = (99, 117, 95)  # the 2 mm MNI grid


def _qc_table() -> pd.DataFrame:
    """Six processed scans, one with a low similarity to the template, and one failure."""
    return pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(1, 8)],
                         "status": ["ok"] * 6 + ["failed"],
                         "similarity": [0.95, 0.96, 0.5, 0.94, 0.95, 0.97, None],
                         "correlation": [0.9, 0.91, 0.3, 0.89, 0.9, 0.92, None],
                         "brain_volume_ml": [1200, 1250, 1180, 1230, 1210, 1190, None],
                         "edge_voxels": [0, 0, 0, 0, 0, 0, None], "seconds": [10.0] * 6 + [None],
                         "reason": [""] * 6 + ["refused"]})


def test_flagged_scans_are_excluded_and_hand_edits_survive_a_rerun(tmp_path):
    first = set_exclusions(flag_outliers(_qc_table()), tmp_path / "qc.tsv", redone=set())
    exclude = dict(zip(first["participant_id"], first["exclude"]))
    assert exclude["sub-03"] == "yes" and exclude["sub-07"] == ""
    assert {exclude[f"sub-{i:02d}"] for i in (1, 2, 4, 5, 6)} == {"no"}
    edited = first.assign(exclude=first["exclude"].where(first["participant_id"] != "sub-03", "no"))
    edited.loc[edited["participant_id"] == "sub-05", "exclude"] = "yes"
    edited.to_csv(tmp_path / "qc.tsv", sep="\t", index=False)
    again = set_exclusions(flag_outliers(_qc_table()), tmp_path / "qc.tsv", redone={"sub-05 "})
    exclude = dict(zip(again["participant_id"], again["exclude"]))
    assert exclude["sub-03"] == "no"  # not redone: the hand edit stays
    assert exclude["sub-05"] == "no"  # redone: its value comes from its flags again


@pytest.fixture
def cohort_with_qc(tiny_abide, tmp_path):
    """A copy of a 12-subject cohort with a qc.tsv that excludes its third and fifth subjects."""
    root = shutil.copytree(tiny_abide, tmp_path / "cohort")
    ids = list(pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)["participant_id"])
    exclude = ["yes" if i in (2, 4) else "no" for i in range(len(ids))]
    pd.DataFrame({"participant_id": ids, "status": "ok", "exclude": exclude}).to_csv(root / "qc.tsv", sep="\t", index=False)
    return root, ids


def test_the_loader_leaves_out_excluded_scans_and_names_them(cohort_with_qc, capsys):
    root, ids = cohort_with_qc
    cohort = load_cohort(root)
    assert list(cohort.table["participant_id"]) == [p for i, p in enumerate(ids) if i not in (2, 4)]
    assert cohort.excluded == (ids[2], ids[4])
    said = capsys.readouterr().out
    assert ids[2] in said and ids[4] in said and "exclude" in said


def test_an_unreadable_exclude_value_names_the_line(cohort_with_qc):
    root, ids = cohort_with_qc
    qc = pd.read_csv(root / "qc.tsv", sep="\t", dtype=str)
    qc.loc[3, "exclude"] = "maybe"
    qc.to_csv(root / "qc.tsv", sep="\t", index=False)
    with pytest.raises(BrainAgeError, match=rf"qc.tsv line 5 \({ids[3]}\).*Write yes"):
        load_cohort(root)


def test_a_folder_whose_every_scan_is_excluded_is_refused(cohort_with_qc):
    root, _ = cohort_with_qc
    qc = pd.read_csv(root / "qc.tsv", sep="\t", dtype=str).assign(exclude="yes")
    qc.to_csv(root / "qc.tsv", sep="\t", index=False)
    with pytest.raises(BrainAgeError, match="excludes every scan"):
        load_cohort(root)


@pytest.fixture(scope="module")
def mni_brains(tmp_path_factory) -> list[np.ndarray]:
    """Three simulated brains on the 2 mm MNI grid: what a registration that found the true pose writes."""
    root = simulate_cohort("abide_like", tmp_path_factory.mktemp("mni") / "c", n=3, seed=4, shape=GRID, progress=False)
    return [np.asarray(nib.load(str(p)).dataobj, dtype=np.float32) for p in sorted(root.glob("sub-*/anat/*_T1w.nii.gz"))]


def test_similarity_passes_registered_brains_and_flags_misregistered_ones(mni_brains):
    vox = Grid(GRID).voxel_size
    good = [similarity(b, GRID) for b in mni_brains]
    moved = [similarity(ndimage.shift(b, (0, 10 / vox[1], 0), order=1), GRID) for b in mni_brains]  # 10 mm forward
    turned = [similarity(ndimage.rotate(b, 10, axes=(1, 2), reshape=False, order=1), GRID) for b in mni_brains]  # 10 deg
    assert min(good) > LOW_SIMILARITY > max(moved + turned), (good, moved, turned)
    table = pd.DataFrame({"participant_id": ["sub-good", "sub-moved"], "status": "ok", "similarity": [good[0], moved[0]],
                          "correlation": 0.9, "brain_volume_ml": 1200.0, "edge_voxels": 0, "seconds": 1.0})
    flagged = flag_outliers(table).set_index("participant_id")
    assert flagged.loc["sub-moved", "status"] == "flagged" and flagged.loc["sub-good", "status"] == "ok"
