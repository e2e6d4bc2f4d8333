"""The cohort loader: every bad input is reported with the culprit named; a valid cohort round-trips."""
from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import tree_digest, write_nifti

from brainage_lib.cli import main
from brainage_lib.data.cohort import balance_by_sex, load_cohort
from brainage_lib.data.validation import validate_cohort
from brainage_lib.errors import BrainAgeError


def rows(n=3, over=None):
    out = [{"participant_id": f"sub-{i:02d}", "age": 10 + i, "sex": "M" if i % 2 else "F", "site": "A"} for i in range(n)]
    for i, r in enumerate(out):
        r.update((over or {}).get(i, {}))
    return out


def problems(root, **kw):
    report = validate_cohort(root, **kw)
    assert not report.ok
    return "\n".join(report.problems)


def test_valid_cohort_round_trips(tmp_path, cohort_writer):
    gen = np.random.default_rng(5)
    imgs = {f"sub-{i:02d}": gen.random((20, 22, 18)).astype(np.float32) for i in range(3)}
    root = cohort_writer(tmp_path / "c", rows(3), imgs)
    cohort = load_cohort(root)
    assert list(cohort.table["participant_id"]) == ["sub-00", "sub-01", "sub-02"]
    np.testing.assert_allclose(cohort.ages, [10, 11, 12])
    assert list(cohort.table["sex"]) == ["F", "M", "F"]
    for pid, path in zip(cohort.table["participant_id"], cohort.paths):
        np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj), imgs[pid])
    assert cohort.ground_truth() is None
    assert validate_cohort(root).ok


def test_ids_without_prefix_and_sessions(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    (root / "participants.tsv").write_text("participant_id\tage\tsex\tsite\tsession\n01\t7.5\tfemale\tX\t1\n01\t9.0\tfemale\tX\t2\n")
    for ses in ("1", "2"):
        write_nifti(root / "sub-01" / f"ses-{ses}" / "anat" / f"sub-01_ses-{ses}_T1w.nii.gz", np.ones((20, 20, 20), np.float32))
    cohort = load_cohort(root)
    assert list(cohort.table["participant_id"]) == ["sub-01", "sub-01"]
    assert [p.parent.parent.name for p in cohort.paths] == ["ses-1", "ses-2"]
    assert list(cohort.table["sex"]) == ["F", "F"]


def test_missing_participants_tsv(tmp_path):
    (tmp_path / "c").mkdir()
    assert "participants.tsv: missing" in problems(tmp_path / "c")


def test_missing_folder(tmp_path):
    assert "no such folder" in problems(tmp_path / "nope")


def test_missing_required_column(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", [], tsv="participant_id\tage\tsex\nsub-01\t10\tM\n")
    assert "missing required column(s) site" in problems(root)


def test_empty_table(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", [], tsv="participant_id\tage\tsex\tsite\n")
    assert "no participants" in problems(root)


def test_non_numeric_age(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(3, {1: {"age": "ten"}}))
    msg = problems(root)
    assert "line 3 (sub-01)" in msg and "'ten' is not a number" in msg


def test_out_of_range_age(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(3, {2: {"age": "150"}}))
    msg = problems(root)
    assert "sub-02" in msg and "outside 0-120" in msg


def test_missing_age_is_a_problem_unless_unlabelled_allowed(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(3, {0: {"age": "n/a"}}))
    assert "line 2 (sub-00): age is missing" in problems(root)
    cohort = load_cohort(root, allow_unlabelled=True)
    assert np.isnan(cohort.ages[0]) and len(cohort.labelled()) == 2


def test_duplicate_participant(tmp_path, cohort_writer):
    r = rows(3)
    r[2]["participant_id"] = "sub-00"
    root = cohort_writer(tmp_path / "c", r)
    msg = problems(root)
    assert "sub-00 appears more than once (lines 2, 4)" in msg


def test_image_without_row_is_reported(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2))
    write_nifti(root / "sub-99" / "anat" / "sub-99_T1w.nii.gz", np.ones((20, 20, 20), np.float32))
    msg = problems(root)
    assert "sub-99: has a T1w image but no row" in msg


def test_row_without_image(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(3), images={"sub-01": None})
    msg = problems(root)
    assert "(sub-01): no T1w image at sub-01/anat/sub-01_T1w.nii[.gz]" in msg


def test_unreadable_nifti(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2))
    bad = root / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    bad.write_bytes(gzip.compress(b"this is not a nifti file"))
    msg = problems(root)
    assert str(bad) in msg and "unreadable as NIfTI" in msg


def test_truncated_nifti(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2))
    bad = root / "sub-00" / "anat" / "sub-00_T1w.nii.gz"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    msg = problems(root)
    assert str(bad) in msg and ("truncated" in msg or "unreadable" in msg)
    # a header-only check cannot see it: the full check is what finds truncation
    assert validate_cohort(root, check_data=False).ok


def test_4d_image(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2), images={"sub-01": np.ones((10, 10, 10, 3), np.float32)})
    msg = problems(root)
    assert "sub-01_T1w.nii.gz: image is 4D with shape (10, 10, 10, 3)" in msg


def test_2d_image(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2), images={"sub-00": np.ones((10, 10), np.float32)})
    assert "sub-00_T1w.nii.gz: image is 2D" in problems(root)


def test_nan_voxels(tmp_path, cohort_writer):
    arr = np.ones((20, 20, 20), np.float32)
    arr[3, 4, 5] = np.nan
    arr[0, 0, 0] = np.inf
    root = cohort_writer(tmp_path / "c", rows(2), images={"sub-01": arr})
    msg = problems(root)
    assert "sub-01_T1w.nii.gz: 2 NaN/inf voxel(s)" in msg


def test_every_problem_reported_at_once(tmp_path, cohort_writer):
    r = rows(4, {0: {"age": "x"}, 1: {"age": "-3"}})
    arr = np.full((20, 20, 20), np.nan, np.float32)
    root = cohort_writer(tmp_path / "c", r, images={"sub-02": arr, "sub-03": None})
    report = validate_cohort(root)
    assert len(report.problems) == 4
    with pytest.raises(BrainAgeError) as err:
        load_cohort(root, check_data=True)
    for culprit in ("sub-00", "sub-01", "sub-02", "sub-03"):
        assert culprit in str(err.value)


def test_validation_only_reads(tmp_path, cohort_writer):
    r = rows(3, {0: {"age": "bad"}})
    root = cohort_writer(tmp_path / "c", r)
    write_nifti(root / "sub-77" / "anat" / "sub-77_T1w.nii.gz", np.ones((20, 20, 20), np.float32))
    before = tree_digest(root)
    validate_cohort(root)
    with pytest.raises(BrainAgeError):
        load_cohort(root)
    assert main(["validate", str(root), "--quiet"]) == 1
    assert tree_digest(root) == before


def test_warnings_for_non_mni_images(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(1), images={"sub-00": None})
    write_nifti(root / "sub-00" / "anat" / "sub-00_T1w.nii.gz", np.ones((20, 20, 20), np.float32), np.diag([-6.0, -6.0, 6.0, 1.0]))
    report = validate_cohort(root)
    assert report.ok
    text = " ".join(report.warnings)
    assert "orientation LPS" in text and "voxel size 6x6x6" in text and "field of view" in text


def test_validate_cli_summary_and_exit_codes(tiny_abide, tmp_path, capsys):
    assert main(["validate", str(tiny_abide), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "participants: 12" in out and "image shapes: 24x24x24 x12" in out and out.strip().endswith("OK")
    assert main(["validate", str(tmp_path / "missing"), "--quiet"]) == 1


def test_balance_by_sex_keeps_equal_counts_per_bin():
    t = pd.DataFrame({"age": [6.1, 6.5, 6.9, 7.2, 7.3, 7.9, 8.0], "sex": ["M", "M", "F", "M", "F", "F", "M"]})
    b = balance_by_sex(t)
    per_bin = b.assign(bin=np.floor(b["age"])).groupby(["bin", "sex"]).size().unstack(fill_value=0)
    assert (per_bin["M"] == per_bin["F"]).all()
    assert len(b) == 4  # bin 6: 1+1, bin 7: 1+1, bin 8: no female


def test_spaces_around_column_names_and_values_are_ignored(tmp_path, cohort_writer):
    tsv = " participant_id \t age\t sex \tsite \tgroup\n sub-00 \t 10.5 \t M \t site11 \t control \n"
    root = cohort_writer(tmp_path / "c", [{"participant_id": "sub-00"}], tsv=tsv)
    cohort = load_cohort(root)
    t = cohort.table
    assert list(t["participant_id"]) == ["sub-00"] and list(t["site"]) == ["site11"]
    assert list(t["sex"]) == ["M"] and list(t["group"]) == ["control"] and cohort.ages[0] == 10.5


def test_empty_sex_or_site_is_a_problem_per_row(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(3, {1: {"sex": ""}, 2: {"site": " "}}))
    msg = problems(root)
    assert "line 3 (sub-01): sex is empty. Write M or F" in msg
    assert "line 4 (sub-02): site is missing. Write the scanner or site name" in msg


def test_missing_session_image_names_the_expected_path(tmp_path, cohort_writer):
    tsv = "participant_id\tage\tsex\tsite\tsession\nsub-01\t7\tF\tX\tses-1\nsub-02\t8\tF\tX\t2\n"
    root = cohort_writer(tmp_path / "c", [], tsv=tsv)
    msg = problems(root)
    assert "no T1w image at sub-01/ses-1/anat/sub-01_ses-1_T1w.nii[.gz]" in msg
    assert "no T1w image at sub-02/ses-2/anat/sub-02_ses-2_T1w.nii[.gz]" in msg


def test_empty_participants_file_says_what_to_write_and_lists_image_folders(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2), tsv="")
    msg = problems(root)
    assert "participants.tsv: is empty" in msg and "write a header row: participant_id, age, sex, site" in msg
    assert "2 folder(s) with a T1w image (sub-00, sub-01) have no row" in msg


def test_split_column_is_said_to_be_ignored(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", [dict(r, split="train") for r in rows(2)])
    report = validate_cohort(root)
    assert report.ok and any("split column is ignored" in w for w in report.warnings)


def test_image_warnings_are_summarised_once_per_kind(tmp_path, cohort_writer):
    coarse = np.diag([6.0, 6.0, 6.0, 1.0])
    root = cohort_writer(tmp_path / "c", rows(5), images={f"sub-{i:02d}": None for i in range(5)})
    for i in range(5):
        write_nifti(root / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T1w.nii.gz", np.ones((20, 20, 20), np.float32), coarse)
    report = validate_cohort(root)
    voxel = [w for w in report.warnings if "voxel size" in w]
    assert len(voxel) == 1 and "in 5 of 5 image(s)" in voxel[0] and "and 2 more" in voxel[0]
    assert "sub-00/anat/sub-00_T1w.nii.gz (voxel size 6x6x6 mm)" in voxel[0]
    assert len(report.warnings) == 2  # voxel size and field of view, once each


def test_both_nii_and_nii_gz_warns_which_is_used(tmp_path, cohort_writer):
    root = cohort_writer(tmp_path / "c", rows(2))
    write_nifti(root / "sub-01" / "anat" / "sub-01_T1w.nii", np.ones((20, 20, 20), np.float32))
    report = validate_cohort(root)
    assert report.ok
    both = [w for w in report.warnings if "both .nii.gz and .nii" in w]
    assert len(both) == 1 and "sub-01/anat/sub-01_T1w.nii.gz" in both[0] and "The .nii.gz is used" in both[0]
    assert load_cohort(root).paths[1].name == "sub-01_T1w.nii.gz"


PREPROCESSED = "_space-MNI152NLin2009aSym_res-20x20x20_desc-preproc_T1w.nii.gz"


def _preprocess_output(root, new_names: bool):
    """A folder as `brainage preprocess` writes it: sMRIPrep-style names, or the old-style sub-<id>_T1w.nii.gz."""
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "x", "DatasetType": "derivative", "GeneratedBy": [{"Name": "brainage preprocess", "Recipe": "tgb"}]}))
    if new_names:
        for img in root.glob("sub-*/anat/*_T1w.nii.gz"):
            img.rename(img.with_name(img.name.replace("_T1w.nii.gz", PREPROCESSED)))
    return root


def test_preprocessed_names_are_read(tmp_path, cohort_writer, capsys):
    root = _preprocess_output(cohort_writer(tmp_path / "c", rows(3)), new_names=True)
    cohort = load_cohort(root)
    assert [p.name for p in cohort.paths] == [f"sub-{i:02d}{PREPROCESSED}" for i in range(3)]
    report = validate_cohort(root)
    assert report.ok and not report.notes and "NOTE" not in capsys.readouterr().out
    write_nifti(root / "sub-01" / "anat" / "sub-01_space-MNI152NLin2009aSym_res-10x10x10_desc-preproc_T1w.nii.gz",
                np.ones((10, 10, 10), np.float32))
    assert "2 preprocessed T1w images" in problems(root)


def test_an_old_style_preprocessed_folder_loads_with_a_note_once(tmp_path, cohort_writer, capsys):
    root = _preprocess_output(cohort_writer(tmp_path / "c", rows(3)), new_names=False)
    first = load_cohort(root)
    said = capsys.readouterr().out
    assert said.count("old-style") == 1 and str(root) in said
    assert [p.name for p in load_cohort(root).paths] == [p.name for p in first.paths] == [f"sub-{i:02d}_T1w.nii.gz"
                                                                                         for i in range(3)]
    assert "old-style" not in capsys.readouterr().out  # once
    assert main(["validate", str(root), "--quiet"]) == 0
    assert "NOTE: " in capsys.readouterr().out
    plain = cohort_writer(tmp_path / "raw", rows(2))  # a raw or simulated cohort is not old-style
    assert not validate_cohort(plain).notes
