"""``brainage preprocess`` reruns: byte-identical outputs in deterministic mode, and a scan's files written in order.

The same simulated heads go through a recipe twice (``--deterministic``) and every image, mask, transform and
figure must hash the same. A scan's record is written last, and a scan that fails while writing loses every file,
including those of an earlier run, so that it never counts as finished.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

for _module in ("ants", "deepbet", "nimare"):  # the optional preprocessing dependencies (make preprocess-deps)
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed: `make preprocess-deps` installs the preprocessing dependencies "
                    "(antspyx, deepbet, nimare)", allow_module_level=True)

from brainage_lib.preprocess import pipeline  # noqa: E402
from brainage_lib.preprocess.outputs import output_paths, scan_files  # noqa: E402
from brainage_lib.preprocess.recipes import get_recipe  # noqa: E402
from brainage_lib.preprocess.run import preprocess_cohort  # noqa: E402
from brainage_lib.simulation.native import simulate_native_cohort  # noqa: E402

pytestmark = pytest.mark.preprocessing
TIMINGS = ("seconds", "cpu_seconds", "step_seconds", "step_cpu_seconds")  # the only record fields a rerun may change


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Path:
    """Two scanner-space heads on the 4 mm grid (5.6 mm slices)."""
    return simulate_native_cohort("abide_like", tmp_path_factory.mktemp("heads") / "raw", n=2, seed=11, voxel_size=4.0,
                                  progress=False)


def _hashes(out: Path) -> dict[str, str]:
    """sha256 of every output file but the records and the cohort's QC tables (they hold the seconds taken)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and not p.name.endswith(("_qc.json", "qc.tsv", "qc.html"))}


def _records(out: Path) -> dict[str, dict]:
    return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in TIMINGS} for p in out.rglob("*_qc.json")}


@pytest.mark.long
@pytest.mark.parametrize("recipe", ["tgb", "diff"])
def test_deterministic_rerun_is_byte_identical(heads, tmp_path, recipe):
    runs = [preprocess_cohort(heads, tmp_path / f"run{i}", recipe, jobs=2, deterministic=True, progress=False)
            for i in (1, 2)]
    # the same scans through, and the same refused for the same reason (diff's head-to-brain affine can lose a head)
    assert runs[0].processed == runs[1].processed >= 1 and runs[0].failed == runs[1].failed
    first, second = (_hashes(s.out) for s in runs)
    assert sum(name.endswith(".nii.gz") for name in first) >= 2 * runs[0].processed  # a T1w and a mask per scan
    assert sum(name.endswith(("_desc-qc.png", "_desc-brainmask.png")) for name in first) == 2 * runs[0].processed
    assert first == second
    assert _records(runs[0].out) == _records(runs[1].out)
    made = json.loads((runs[0].out / "dataset_description.json").read_text())["GeneratedBy"][0]
    assert made["Deterministic"] is True


@pytest.fixture
def fake_process(monkeypatch):
    """``process`` replaced by a fixed result, so that only the writing is exercised."""
    recipe = get_recipe("tgb")
    brain = np.zeros(recipe.shape, np.float32)
    brain[40:60, 50:70, 40:60] = 1.0
    qc = {"similarity": 0.95, "correlation": 0.9, "brain_volume_ml": 1200.0, "edge_voxels": 0}
    files = {"xfm": b"forward", "inv_xfm": b"inverse", "mask_figure": b"mask png"}
    monkeypatch.setattr(pipeline, "process", lambda path, rec: (brain, brain > 0, dict(qc), files))
    monkeypatch.setattr(pipeline, "subject_figure", lambda *a: b"png")
    return recipe


def test_the_record_is_written_last(fake_process, monkeypatch, tmp_path):
    written = []
    for name in ("atomic_write", "save_nifti"):
        real = getattr(pipeline, name)
        monkeypatch.setattr(pipeline, name, lambda path, *a, _real=real: (written.append(Path(path).name), _real(path, *a)))
    qc = pipeline.run_subject(tmp_path / "scan.nii.gz", tmp_path / "sub-01" / "anat", "sub-01", fake_process,
                              {"source": {"path": "x"}, "packages": {"antspyx": "1"}})
    t1w = f"sub-01_space-MNI152NLin2009aSym_res-{fake_process.res}_desc-preproc_T1w"
    assert written[-1] == "sub-01_qc.json" and f"{t1w}.nii.gz" in written[:-1] and f"{t1w}.json" in written, written
    assert len(written) == 9  # mask, two transforms, brain-mask figure, figure, T1w, two sidecars, record
    assert "sub-01_desc-brainmask.png" in written and "sub-01_desc-qc.png" in written
    record = json.loads((tmp_path / "sub-01" / "anat" / "sub-01_qc.json").read_text())
    assert record["packages"] == {"antspyx": "1"} and record["recipe"] == "tgb" and record == json.loads(json.dumps(qc))


def test_a_scan_that_fails_while_writing_keeps_no_file(fake_process, monkeypatch, tmp_path):
    out = tmp_path / "sub-01" / "anat"
    where = output_paths(out, "sub-01", fake_process.res)
    pipeline.run_subject(tmp_path / "scan.nii.gz", out, "sub-01", fake_process, {})  # an earlier, finished run
    assert where["qc"].is_file() and where["t1w"].is_file()
    real = pipeline.save_nifti

    def crash_on_t1w(path, *a):
        if Path(path).name.endswith("_desc-preproc_T1w.nii.gz"):
            raise OSError("disk full")
        real(path, *a)

    monkeypatch.setattr(pipeline, "save_nifti", crash_on_t1w)
    with pytest.raises(OSError, match="disk full"):
        pipeline.run_subject(tmp_path / "scan.nii.gz", out, "sub-01", fake_process, {})
    assert scan_files(where) == [] and not any(out.iterdir()) and not any((tmp_path / "sub-01" / "figures").iterdir())


def test_the_head_template_is_checked_against_its_checksum(monkeypatch):
    from brainage_lib.errors import BrainAgeError
    from brainage_lib.simulation import native

    assert native._template_file(native.HEAD_TEMPLATE).is_file()
    monkeypatch.setitem(native.SHA256, native.HEAD_TEMPLATE, "0" * 64)
    with pytest.raises(BrainAgeError, match="nimare==0.22.1"):
        native._template_file(native.HEAD_TEMPLATE)


def test_a_scan_redone_in_an_old_style_folder_loses_its_old_names(fake_process, tmp_path):
    """A folder written before the sMRIPrep-style names: redoing a scan removes its old image, mask and transforms."""
    out = tmp_path / "sub-01" / "anat"
    old = [out / "sub-01_T1w.nii.gz", out / "sub-01_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz",
           out / "sub-01_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.mat",
           out / "sub-01_from-T1w_to-MNI152NLin2009aSym_mode-image_desc-warp_xfm.nii.gz", out / "sub-01_qc.json"]
    out.mkdir(parents=True)
    for p in old:
        p.write_bytes(b"old")
    (out / "sub-02_T1w.nii.gz").write_bytes(b"another scan")  # never touched
    pipeline.run_subject(tmp_path / "scan.nii.gz", out, "sub-01", fake_process, {})
    assert not any(p.exists() for p in old[:-1]) and (out / "sub-02_T1w.nii.gz").read_bytes() == b"another scan"
    assert set(scan_files(output_paths(out, "sub-01", fake_process.res))) == set(out.glob("sub-01_*")) | set(
        (tmp_path / "sub-01" / "figures").glob("*"))
