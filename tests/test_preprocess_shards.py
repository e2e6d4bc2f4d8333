"""``brainage preprocess`` beyond one machine: ``--participant-label`` and ``--shard K/N`` split a cohort into disjoint
parts that write into one folder at once, and ``--report-only OUT`` gathers qc.tsv, qc.html and participants.tsv from
the scans' records once every part is done. Two shards run as two concurrent processes give the same folder as one
run of the whole cohort (``--deterministic``: byte-identical files). The refusals need no preprocessing dependencies.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from brainage_lib import cli
from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess import run
from brainage_lib.preprocess.recipes import get_recipe

RECIPE = "tgb"  # registers the 4 mm heads that the affine recipes can lose
TIMINGS = ("seconds", "cpu_seconds", "step_seconds", "step_cpu_seconds")  # the only fields two runs may differ in


def _deps() -> None:
    for module in ("ants", "deepbet", "nimare"):  # the optional preprocessing dependencies (make preprocess-deps)
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: `make preprocess-deps` installs the preprocessing dependencies")


def test_shards_split_the_sorted_participants_disjointly(tiny_abide, tmp_path):
    _, tasks = run._tasks(tiny_abide, tmp_path / "out")
    ids = sorted(t.participant_id for t in tasks)
    parts = [[t.participant_id for t in run.select_tasks(tasks, shard=f"{k}/3")] for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == ids and all(len(p) == 4 for p in parts)
    assert parts[0] == ids[0::3] and parts == [[t.participant_id for t in run.select_tasks(tasks, shard=(k, 3))]
                                               for k in (1, 2, 3)]
    picked = run.select_tasks(tasks, participant_label=[ids[5][4:], ids[1]])  # with or without sub-
    assert [t.participant_id for t in picked] == sorted([ids[1], ids[5]])
    assert [t.participant_id for t in run.select_tasks(tasks, [ids[1], ids[5]], shard="2/2")] == [ids[5]]


@pytest.mark.parametrize("shard", ["3/2", "0/2", "x", "1/0", "2"])
def test_a_bad_shard_is_refused(tiny_abide, tmp_path, capsys, shard):
    out = tmp_path / "out"
    assert cli.main(["preprocess", str(tiny_abide), str(out), "--recipe", RECIPE, "--shard", shard]) == 2
    assert f"--shard {shard!r}: give K/N" in capsys.readouterr().err and not out.exists()
    with pytest.raises(BrainAgeError, match="1 <= K <= N"):
        run.parse_shard(shard)


def test_an_unknown_participant_label_is_refused(tiny_abide, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["preprocess", str(tiny_abide), str(out), "--recipe", RECIPE, "--participant-label", "abide0001",
                     "nobody"]) == 2
    err = capsys.readouterr().err
    assert "sub-nobody not in participants.tsv" in err and "abide0001" not in err.split("not in")[0] and not out.exists()


def test_report_only_needs_records(tiny_abide, tmp_path, capsys):
    assert cli.main(["preprocess", "--report-only", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["preprocess", "--report-only", str(tmp_path / "empty")]) == 2
    assert "no part has run here" in capsys.readouterr().err
    out = tmp_path / "started"
    run._write_description(tiny_abide, out, get_recipe(RECIPE), True)  # a part began, and wrote no scan yet
    with pytest.raises(BrainAgeError, match="no scan has a record yet"):
        run.gather_report(out)
    assert not (out / "qc.tsv").exists()
    assert cli.main(["preprocess", "--report-only", str(out), str(tiny_abide)]) == 2
    assert "takes only the output folder" in capsys.readouterr().err


def test_report_only_exits_nonzero_and_names_the_failed_scans(tiny_abide, tmp_path, capsys):
    """Every scan has a record, some of them failures: the report is written, and the command exits 1 (as a run with
    failures does) and names each failed scan."""
    out = tmp_path / "out"
    recipe = get_recipe(RECIPE)
    run._write_description(tiny_abide, out, recipe, True)
    _, tasks = run._tasks(tiny_abide, out)
    failed = {t.participant_id for t in tasks[:2]}
    (out / "logs").mkdir()
    for t in tasks:
        reason = f"{t.path}: " + ("does not look like a T1w head scan" if t.participant_id in failed else "stopped")
        run.failure_path(out, t.stem).write_text(json.dumps(run._failure(t, tiny_abide, {"reason": reason})))
    summary = run.gather_report(out)
    assert len(summary.failed) == len(tasks) and not summary.missing
    assert cli.main(["preprocess", "--report-only", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("FAILED: ") == len(tasks) and all(f"{sid}_T1w" in err for sid in failed)
    assert (out / "qc.tsv").is_file()


def _hashes(out: Path) -> dict[str, str]:
    """sha256 of every file but the records, the QC tables (they hold seconds) and the lock."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".lock" and not p.name.endswith(("_qc.json", "qc.tsv", "qc.html"))}


def _records(out: Path) -> dict[str, dict]:
    return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in TIMINGS}
            for p in sorted(out.rglob("*_qc.json"))}


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Path:
    """Three scanner-space heads on the 4 mm grid."""
    _deps()
    from brainage_lib.simulation.native import simulate_native_cohort

    return simulate_native_cohort("abide_like", tmp_path_factory.mktemp("heads") / "raw", n=3, seed=11, voxel_size=4.0,
                                  progress=False)


@pytest.mark.long
@pytest.mark.preprocessing
def test_two_concurrent_shards_and_a_report_equal_one_run(heads, tmp_path):
    whole = run.preprocess_cohort(heads, tmp_path / "whole", RECIPE, jobs=1, deterministic=True, progress=False)
    parts = tmp_path / "parts"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(run.__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "brainage_lib.cli", "preprocess", str(heads), str(parts), "--recipe",
                               RECIPE, "--shard", f"{k}/2", "--deterministic", "--quiet"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    outs = [p.communicate(timeout=900) for p in procs]
    codes = [p.returncode for p in procs]
    assert set(codes) <= {0, 1} and (1 in codes) == bool(whole.failed), outs  # 1: a scan of the part failed
    assert all("--report-only" in o for o, _ in outs), outs
    assert not any((parts / f).exists() for f in ("qc.tsv", "qc.html", "participants.tsv"))  # left to the report
    assert cli.main(["preprocess", "--report-only", str(parts)]) == (1 if whole.failed else 0)  # 1: a scan failed
    assert whole.processed >= 2 and whole.processed + len(whole.failed) == 3
    first, second = _hashes(whole.out), _hashes(parts)
    assert sum(n.endswith("_desc-preproc_T1w.nii.gz") for n in first) == whole.processed
    assert first == second
    assert _records(whole.out) == _records(parts)
    qc = [pd.read_csv(d / "qc.tsv", sep="\t", dtype=str).drop(columns="seconds") for d in (whole.out, parts)]
    pd.testing.assert_frame_equal(*qc)
    # a hand edit survives a later report; a part redone afterwards takes its flags again
    table = pd.read_csv(parts / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    table.loc[0, "exclude"] = "yes"
    table.to_csv(parts / "qc.tsv", sep="\t", index=False)
    assert cli.main(["preprocess", "--report-only", str(parts)]) == (1 if whole.failed else 0)
    assert pd.read_csv(parts / "qc.tsv", sep="\t", dtype=str).loc[0, "exclude"] == "yes"
