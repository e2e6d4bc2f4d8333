"""How ``brainage preprocess`` runs scans and recovers from failures, with stand-in work instead of ANTs and deepbet.

A dead worker fails only its own scan; Ctrl-C cancels the queued scans and removes the outputs of the one that was
stopped; threads follow the number of workers actually started; a failed scan's old outputs are removed; a rerun
redoes a scan whose recorded raw file, recipe or package versions differ. None of this needs the preprocessing
dependencies: the workers run the functions below (spawned processes import this module by name).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brainage_lib.preprocess import run
from brainage_lib.preprocess.outputs import output_paths
from brainage_lib.preprocess.recipes import get_recipe
from brainage_lib.preprocess.workers import cpu_count, run_tasks

HERE = Path(__file__).resolve().parent


def die_on_two(key: int) -> dict:
    """Stand-in work: task 2 kills its worker process; the others report their process id."""
    if key == 2:
        os._exit(3)
    return {"status": "ok", "pid": os.getpid()}


def report_threads(task: run.Task, raw: Path, recipe: str) -> dict:
    """Stand-in scan: the thread settings its worker runs with."""
    import torch

    return {"status": "ok", "itk": os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"], "torch": torch.get_num_threads()}


def fail_scan(task: run.Task, raw: Path, recipe: str) -> dict:
    """Stand-in scan that fails without touching any file."""
    return {"status": "failed", "reason": f"{task.path}: refused"}


def write_then_hang(task: run.Task, raw: Path, recipe: str) -> dict:
    """Stand-in scan: leaves a started-marker, writes part of its outputs, then takes far longer than the test."""
    (raw.parent / f"started-{task.participant_id}").touch()
    where = output_paths(task.out_anat, task.stem)
    where["mask"].parent.mkdir(parents=True, exist_ok=True)
    where["mask"].write_bytes(b"half a scan")
    time.sleep(120)
    return {"status": "ok"}


def _died(key, why: str) -> dict:
    return {"status": "failed", "reason": why}


def test_a_dead_worker_fails_only_its_own_scan():
    results = run_tasks([(k, (k,)) for k in range(6)], die_on_two, 2, 1, _died, progress=False)
    assert sorted(results) == list(range(6))
    assert results[2]["status"] == "failed" and "exit code 3" in results[2]["reason"], results[2]
    assert all(results[k]["status"] == "ok" for k in (0, 1, 3, 4, 5))
    assert len({results[k]["pid"] for k in (0, 1, 3, 4, 5)}) >= 2  # a fresh worker took over from the dead one


@pytest.fixture
def cohort(tiny_abide, tmp_path):
    """The tasks of a 12-subject cohort, with the output folder in ``tmp_path``."""
    _, tasks = run._tasks(tiny_abide, tmp_path / "out")
    return tiny_abide, tasks


@pytest.mark.parametrize("jobs,scans,deterministic", [(8, 1, False), (2, 3, False), (2, 3, True)])
def test_threads_follow_the_workers_started(cohort, jobs, scans, deterministic):
    raw, tasks = cohort
    results = run._run_all(tasks[:scans], raw, get_recipe("tgb"), jobs, deterministic, False, work=report_threads)
    expected = 1 if deterministic else max(1, cpu_count() // min(jobs, scans))  # the cores shared by the workers started
    assert {(r["itk"], r["torch"]) for r in results.values()} == {(str(expected), expected)}


def test_a_failed_scan_loses_its_old_outputs_and_others_keep_theirs(cohort):
    raw, tasks = cohort
    for t in tasks[:2]:
        where = output_paths(t.out_anat, t.stem)
        for kind in ("t1w", "mask", "qc", "figure"):
            where[kind].parent.mkdir(parents=True, exist_ok=True)
            where[kind].write_bytes(b"from an earlier run")
    run._run_all(tasks[:1], raw, get_recipe("tgb"), 1, True, False, work=fail_scan)
    assert not any(p.exists() for p in output_paths(tasks[0].out_anat, tasks[0].stem).values())
    assert all(output_paths(tasks[1].out_anat, tasks[1].stem)[k].exists() for k in ("t1w", "mask", "qc", "figure"))


def test_ctrl_c_cancels_the_queue_and_removes_the_stopped_scan(tiny_abide, tmp_path):
    script = f"""
import sys
from pathlib import Path
from brainage_lib.preprocess import run
from brainage_lib.preprocess.recipes import get_recipe
from test_preprocess_workers import write_then_hang
raw = Path({str(tiny_abide)!r})
_, tasks = run._tasks(raw, Path({str(tmp_path / 'out')!r}))
# markers go next to a copy of RAW's name in tmp_path: RAW itself is never written
tasks = [run.Task(t.row, t.participant_id, t.session, t.path, t.out_anat, t.stem) for t in tasks[:4]]
try:
    run._run_all(tasks, Path({str(tmp_path / 'raw')!r}), get_recipe("tgb"), 1, True, False, work=write_then_hang)
except KeyboardInterrupt as stop:
    print("CANCELLED", len(stop.done), stop.running, stop.queued)
    sys.exit(130)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = tmp_path / "started-sub-abide0001"
    mask = output_paths(tmp_path / "out" / "sub-abide0001" / "anat", "sub-abide0001")["mask"]
    deadline = time.time() + 120
    while not mask.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists() and mask.exists(), proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "CANCELLED 0 [0] [1, 2, 3]" in out, out
    assert sorted(p.name for p in tmp_path.glob("started-*")) == ["started-sub-abide0001"]  # nothing queued ran
    assert not mask.exists()  # the stopped scan's partial output is gone


def _finish(task: run.Task, raw: Path, recipe_name: str, **changes) -> None:
    """Files of a scan finished by an earlier run, with its record's provenance changed by ``changes``."""
    where = output_paths(task.out_anat, task.stem, get_recipe(recipe_name).res)
    where["t1w"].parent.mkdir(parents=True, exist_ok=True)
    where["t1w"].write_bytes(b"an image")
    record = {"recipe": recipe_name, **run._provenance(task, raw, get_recipe(recipe_name)), **changes}
    where["qc"].write_text(json.dumps(record))


def test_resume_redoes_a_scan_made_by_other_versions_or_another_recipe(cohort):
    raw, tasks = cohort
    recipe = get_recipe("lstm")
    t = tasks[0]
    _finish(t, raw, "lstm")
    assert run._finished(t, raw, recipe) is not None
    versions = {**run.package_versions(), "antspyx": "0.0.1"}
    _finish(t, raw, "lstm", packages=versions)
    assert run._finished(t, raw, recipe) is None
    _finish(t, raw, "lstm", recipe_definition={**recipe.definition, "shape": [64, 64, 64]})
    assert run._finished(t, raw, recipe) is None
    _finish(t, raw, "lstm", source={**t.source(raw), "size": 1})
    assert run._finished(t, raw, recipe) is None
    _finish(t, raw, "lstm")
    output_paths(t.out_anat, t.stem, recipe.res)["t1w"].unlink()
    assert run._finished(t, raw, recipe) is None
