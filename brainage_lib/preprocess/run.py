"""``brainage preprocess``: a raw cohort folder to the BIDS-derivatives folder the notebooks read.

RAW is only read: an OUT inside it is refused, and every temporary file lives in OUT or the
system's temporary folder. Scans run in worker processes (``jobs`` at once), each on its own: one
that fails, or whose worker dies, is reported with its file and reason, its outputs are removed, and
the others go on; Ctrl-C cancels the scans still queued. A rerun skips every scan whose record
exists and names the same raw file, recipe and package versions. Every file is written under a
temporary name and renamed into place, a scan's record last; a scan that fails leaves its reason in
``logs/<scan>_failed.json``.

Beyond one machine: ``participant_label`` and ``shard`` (K of N: every N-th participant of the sorted list,
from the K-th) pick a part of the cohort, so that the tasks of a job array write disjoint scans into one
folder. A part writes only its scans' files and records, and ``dataset_description.json`` (the same for
every part; checked and written under a lock on ``OUT/.lock``, by an atomic rename). The files that
summarise the whole folder (``qc.tsv``, ``qc.html``, ``participants.tsv``) are written by the run of a
whole cohort, or by ``gather_report`` (``brainage preprocess --report-only OUT``) once every part is done,
from the scans' records.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from brainage_lib import __version__
from brainage_lib.data.validation import MISSING, validate_cohort
from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess.outputs import (LOCK_NAME, atomic_write, failure_path, folder_lock, output_paths,
                                             remove_outputs)
from brainage_lib.preprocess.qc import FIGURES, MEASURES, flag_outliers, set_exclusions, write_qc
from brainage_lib.preprocess.recipes import SPACE, Recipe, get_recipe
from brainage_lib.preprocess.workers import Cancelled, cpu_count, run_tasks, threads_per_worker
from brainage_lib.run.provenance import package_versions as installed_versions

GENERATOR = "brainage preprocess"
PACKAGES = ("antspyx", "deepbet", "nilearn", "nibabel", "torch", "numpy", "scipy")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """This project's version and those of the packages that shape the outputs."""
    return {"brainage": __version__, **installed_versions(PACKAGES)}


@dataclass(frozen=True)
class Task:
    """One raw scan and where its outputs go."""

    row: int  # row of participants.tsv (0 = first participant)
    participant_id: str
    session: str | None
    path: Path | None  # None: participants.tsv names a scan that is not there (``problem`` says which)
    out_anat: Path
    stem: str  # sub-<id>[_ses-<s>]
    problem: str = ""

    @property
    def key(self) -> str:
        return self.participant_id + (f" {self.session}" if self.session else "")

    def source(self, raw: Path) -> dict:
        st = self.path.stat()  # type: ignore[union-attr]
        return {"path": str(self.path.relative_to(raw)), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class Summary:
    """What a run did: scans processed now, scans already done, failures (file and reason), QC files."""

    out: Path
    processed: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    qc_tsv: Path | None = None  # None: a part of the cohort, whose report is left to ``gather_report``
    qc_html: Path | None = None
    selected: int = 0  # scans this run was given (all of RAW, or its part)
    missing: list[str] = field(default_factory=list)  # scans of RAW with no record (report only)


def _check_folders(raw: Path, out: Path, recipe: Recipe) -> None:
    if not raw.is_dir():
        raise BrainAgeError(f"{raw}: no such folder. Give the raw cohort folder (participants.tsv + sub-*/anat/*_T1w.nii.gz).")
    if out == raw or raw in out.parents:
        raise BrainAgeError(f"Output folder {out} is inside the raw folder {raw}; preprocessing never writes into RAW. "
                            f"Choose an output outside it, e.g. {raw.parent / (raw.name + '-' + recipe.name)}.")
    if out.exists() and not out.is_dir():
        raise BrainAgeError(f"{out} is a file, not a folder. Choose a new folder for the output.")


def _check_output(out: Path, recipe: Recipe) -> None:
    """An empty output folder, or one of the same recipe (called under the folder's lock)."""
    if out.is_dir() and any(p.name != LOCK_NAME and not p.name.startswith(".tmp") for p in out.iterdir()):
        desc = out / "dataset_description.json"
        try:
            made_by = json.loads(desc.read_text())["GeneratedBy"][0]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            raise BrainAgeError(f"{out} is not empty and is not a `brainage preprocess` output. Choose a new or empty "
                                "folder for the output.") from None
        if made_by.get("Name") != GENERATOR or made_by.get("Recipe") != recipe.name:
            raise BrainAgeError(f"{out} holds the output of recipe '{made_by.get('Recipe')}', not '{recipe.name}'. Choose "
                                "another output folder: each recipe gets its own.")


def _tasks(raw: Path, out: Path) -> tuple[pd.DataFrame, list[Task]]:
    """The raw participants table (as written) and one task per row."""
    report = validate_cohort(raw, allow_unlabelled=True, check_data=False)
    if report.table is None:
        raise BrainAgeError(f"{raw} cannot be read as a cohort:\n  - " + "\n  - ".join(report.problems))
    table = pd.read_csv(raw / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    tasks = []
    for i, row in report.table.iterrows():
        ses = row["session"] if "session" in row and str(row["session"]).lower() not in MISSING else None
        ses = None if ses is None else (ses if ses.startswith("ses-") else f"ses-{ses}")
        pid = row["participant_id"]
        stem = pid + (f"_{ses}" if ses else "")
        path = Path(row["path"]) if row["path"] else None
        rel = path.parent.relative_to(raw) if path else Path(pid, *([ses] if ses else []), "anat")
        problem = "" if path else (f"{raw / 'participants.tsv'} line {int(i) + 2} ({pid}): no T1w image at "
                                   f"{raw / rel / stem}_T1w.nii[.gz]. Add the scan or drop the row.")
        tasks.append(Task(int(i), pid, ses, path, out / rel, stem, problem))
    return table, tasks


SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) as (K, N)."""
    m = SHARD.fullmatch(str(text))
    k, n = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if not m or n < 1 or not 1 <= k <= n:
        raise BrainAgeError(f"--shard {text!r}: give K/N, part K of N with 1 <= K <= N (e.g. 1/4 ... 4/4; in a SLURM "
                            "job with --array=1-20: --shard $SLURM_ARRAY_TASK_ID/20).")
    return k, n


def select_tasks(tasks: list[Task], participant_label: Sequence[str] | None = None,
                 shard: tuple[int, int] | str | None = None) -> list[Task]:
    """The scans of the participants named (with or without ``sub-``), then the K-th of N shards of them.

    Shard K of N takes every N-th participant of the sorted list, from the K-th: the same split on every
    machine, disjoint between shards, every scan in exactly one. All sessions of a participant go together.
    """
    ids = sorted({t.participant_id for t in tasks})
    if participant_label:
        wanted = [x if x.startswith("sub-") else f"sub-{x}" for x in (str(v).strip() for v in participant_label)]
        unknown = [w for w in wanted if w not in ids]
        if unknown:
            more = ", ..." if len(ids) > 5 else ""
            raise BrainAgeError(f"--participant-label: {', '.join(unknown)} not in participants.tsv (it lists "
                                f"{len(ids)}: {', '.join(ids[:5])}{more}). Give labels as there, with or without sub-.")
        ids = sorted(set(wanted))
    if shard is not None:
        k, n = parse_shard(shard) if isinstance(shard, str) else shard
        if not 1 <= k <= n:
            raise BrainAgeError(f"--shard {k}/{n}: K must be 1 to N.")
        ids = ids[k - 1::n]
    keep = set(ids)
    return [t for t in tasks if t.participant_id in keep]


def _provenance(task: Task, raw: Path, recipe: Recipe) -> dict:
    """What a scan's record must match for the scan to count as finished on a rerun."""
    return {"source": task.source(raw), "recipe_definition": recipe.definition, "packages": package_versions()}


def _finished(task: Task, raw: Path, recipe: Recipe) -> dict | None:
    """The record of a scan finished earlier from the same raw file, recipe and package versions, else None."""
    where = output_paths(task.out_anat, task.stem, recipe.res)
    if task.path is None or not where["qc"].is_file() or not where["t1w"].is_file():
        return None
    try:
        qc = json.loads(where["qc"].read_text())
    except ValueError:
        return None
    same = qc.get("recipe") == recipe.name and all(qc.get(k) == v for k, v in _provenance(task, raw, recipe).items())
    return {**qc, "status": "ok"} if same else None


def _work(task: Task, raw: Path, recipe_name: str) -> dict:
    """Process one scan in a worker; failures come back as a reason, never as an exception."""
    from brainage_lib.preprocess.pipeline import run_subject  # ANTs and torch load in the worker

    if task.path is None:
        return {"status": "failed", "reason": task.problem}
    try:
        recipe = get_recipe(recipe_name)
        return {"status": "ok", **run_subject(task.path, task.out_anat, task.stem, recipe, _provenance(task, raw, recipe))}
    except BrainAgeError as exc:
        return {"status": "failed", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one scan's failure must not stop the others
        return {"status": "failed", "reason": f"{task.path}: {type(exc).__name__}: {exc}"}


def _run_all(todo: list[Task], raw: Path, recipe: Recipe, jobs: int, deterministic: bool, progress: bool,
             work: Callable[[Task, Path, str], dict] = _work) -> dict[int, dict]:
    """``work`` on every scan of ``todo`` in worker processes; a failed scan's outputs are removed. Results by row."""
    workers = min(jobs, len(todo))
    by_row = {t.row: t for t in todo}

    def died(row: int, why: str) -> dict:
        return {"status": "failed", "reason": f"{by_row[row].path}: {why}. Rerun the same command to retry this scan."}

    try:
        results = run_tasks([(t.row, (t, raw, recipe.name)) for t in todo], work, workers,
                            threads_per_worker(workers, deterministic), died, progress, f"preprocess ({recipe.name})")
    except Cancelled as stop:
        for row in stop.running:  # killed mid-scan: whatever it wrote goes
            remove_outputs(output_paths(by_row[row].out_anat, by_row[row].stem, recipe.res))
        raise
    for row, r in results.items():
        if r["status"] == "failed":
            remove_outputs(output_paths(by_row[row].out_anat, by_row[row].stem, recipe.res))
    return results


def _description(raw: Path, out: Path, recipe: Recipe, deterministic: bool) -> dict:
    grid = recipe.grid
    versions = package_versions()
    where = Path(os.path.relpath(raw, out)).as_posix()  # RAW relative to OUT: the folder pair can move together
    tpl = f"{SPACE}_res-{recipe.res}"
    return {
        "Name": f"{raw.name}, preprocessed as in {recipe.paper}", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": GENERATOR, "Version": __version__, "Recipe": recipe.name, "PaperStates": recipe.stated,
                         "Steps": recipe.describe(), "Notes": list(recipe.notes), "Packages": versions,
                         "Deterministic": deterministic}],
        "SourceDatasets": [{"URL": where}],
        "DatasetLinks": {"raw": where},
        "Space": {"Name": SPACE, "Resolution": recipe.resolution(),
                  "Template": f"MNI152 2009a symmetric brain template from the nilearn {versions['nilearn']} wheel",
                  "Shape": list(grid.shape), "VoxelSizeMM": [round(v, 4) for v in grid.voxel_size],
                  "Affine": grid.affine.round(6).tolist(),
                  **({"StandsInFor": recipe.stands_in_for} if recipe.stands_in_for else {})},
        "Files": {
            f"sub-<id>_space-{tpl}_desc-preproc_T1w.nii.gz": f"the preprocessed brain in {SPACE} (skull-stripped, "
                "bias-corrected), with its JSON sidecar; the cohort loader reads it, so this folder is a DATA_DIR",
            f"sub-<id>_space-{tpl}_desc-brain_mask.nii.gz": "the brain mask on the same grid, with its JSON sidecar",
            f"sub-<id>_from-T1w_to-{SPACE}_mode-image_xfm.h5": "ANTs composite transform (affine, then for SyN the warp): "
                "ants.apply_transforms(fixed=<output grid>, moving=<raw scan>, transformlist=[it]) maps the raw scan "
                "onto the output; as a point transform it maps output mm to scanner mm (LPS)",
            f"sub-<id>_from-{SPACE}_to-T1w_mode-image_xfm.h5": "its inverse: the output grid back onto the raw scan",
            "sub-<id>_qc.json, qc.tsv, qc.html": "quality control; qc.html: one row per scan, worst first, with "
                "thumbnails linking to the scan's figures",
            "sub-<id>/figures/sub-<id>_desc-qc.png, sub-<id>_desc-brainmask.png": "the registered brain under the "
                "template's edges; the brain mask's outline on the image it was extracted from",
            "logs/sub-<id>_failed.json": "why a scan failed (until it succeeds)",
        },
    }


def _write_description(raw: Path, out: Path, recipe: Recipe, deterministic: bool) -> None:
    """Check OUT and write its dataset_description.json, under OUT's lock (parts of a job array start together)."""
    desc = json.dumps(_description(raw, out, recipe, deterministic), indent=2) + "\n"
    with folder_lock(out):
        _check_output(out, recipe)
        atomic_write(out / "dataset_description.json", lambda p: p.write_text(desc))


def _failure(task: Task, raw: Path, result: dict) -> dict:
    return {"status": "failed", "reason": result["reason"],
            "source": {"path": str(task.path.relative_to(raw))} if task.path else {}}


def _record(task: Task, raw: Path, out: Path, recipe: Recipe) -> dict | None:
    """A scan's record (finished from the same raw file, recipe and versions), else the reason it failed, else None."""
    done = _finished(task, raw, recipe)
    if done is not None:
        return done
    try:
        return json.loads(failure_path(out, task.stem).read_text())
    except (OSError, ValueError):
        return None


def _record_time(task: Task, out: Path, recipe: Recipe) -> int:
    for p in (output_paths(task.out_anat, task.stem, recipe.res)["qc"], failure_path(out, task.stem)):
        if p.is_file():
            return p.stat().st_mtime_ns
    return 0


def _gather(raw: Path, out: Path, recipe: Recipe, table: pd.DataFrame, tasks: list[Task], summary: Summary,
            redone: set[str] | None = None) -> Summary:
    """qc.tsv, qc.html and participants.tsv from the records of every scan of RAW that has one.

    ``redone``: keys (``participant_id session``) of the scans whose ``exclude`` comes from their flags again; by
    default those whose record is newer than the last qc.tsv (a hand edit of an older scan is kept).
    """
    records = {t.row: r for t in tasks if (r := _record(t, raw, out, recipe)) is not None}
    summary.missing = [t.key for t in tasks if t.row not in records]
    if not records:
        raise BrainAgeError(f"{out}: no scan has a record yet (sub-*/anat/*_qc.json, logs/*_failed.json), so there is "
                            "nothing to report. Run the parts first: brainage preprocess RAW OUT --recipe R --shard K/N.")
    if redone is None:
        old = out / "qc.tsv"
        since = old.stat().st_mtime_ns if old.is_file() else -1
        redone = {f"{t.participant_id} {t.session or ''}" for t in tasks
                  if t.row in records and _record_time(t, out, recipe) > since}
    rows, figures = [], {}
    for t in tasks:
        if t.row not in records:
            continue
        r = records[t.row]
        where = output_paths(t.out_anat, t.stem, recipe.res)
        figures[t.key] = {kind: where[kind] for kind in FIGURES}
        rows.append({"participant_id": t.participant_id, "session": t.session, "status": r["status"],
                     "source": (r.get("source") or {}).get("path", str(t.path.relative_to(raw)) if t.path else ""),
                     **{k: r.get(k) for k in ("similarity", "correlation", "brain_volume_ml", "edge_voxels", *MEASURES,
                                                 "seconds", "reason")}})
    qc = pd.DataFrame(rows)
    if qc["session"].isna().all():
        qc = qc.drop(columns="session")
    done = [t.row for t in tasks if t.row in records and records[t.row]["status"] != "failed"]
    kept = table.iloc[done]
    atomic_write(out / "participants.tsv", lambda p: kept.to_csv(p, sep="\t", index=False, lineterminator="\n"))
    qc = set_exclusions(flag_outliers(qc), out / "qc.tsv", redone)
    summary.qc_tsv, summary.qc_html = write_qc(out, qc, figures, f"Preprocessing QC: {raw.name}, recipe {recipe.name}")
    return summary


def preprocess_cohort(raw: str | os.PathLike, out: str | os.PathLike, recipe: str, jobs: int = 1,
                      deterministic: bool | None = None, progress: bool = True,
                      participant_label: Sequence[str] | None = None,
                      shard: tuple[int, int] | str | None = None) -> Summary:
    """Preprocess every scan of the cohort folder ``raw`` (or a part of it) with ``recipe`` into ``out``.

    Parameters
    ----------
    raw : cohort folder (participants.tsv + sub-<id>/anat/sub-<id>_T1w.nii[.gz]); only read.
    out : output folder, outside ``raw``; a folder from an earlier run of the same recipe is resumed.
    recipe : ``tgb``, ``diff`` or ``lstm``.
    jobs : scans processed at once (processes); the cores are shared between them.
    deterministic : one ITK and torch thread per scan, so that a rerun writes byte-identical images and transforms;
        default: on when ``jobs`` is at least the number of cores (each scan would get one thread anyway).
    participant_label : only these participants (``01`` or ``sub-01``).
    shard : ``(K, N)`` or ``"K/N"``: only the K-th of N parts of the (selected) participants.
        With either, the run is a part: it writes its scans and leaves qc.tsv, qc.html and participants.tsv
        to ``gather_report`` (``brainage preprocess --report-only OUT``), run once every part has finished.
    """
    rec = get_recipe(recipe)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BrainAgeError(f"--jobs {jobs!r}: give a whole number of parallel scans, 1 or more.")
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    raw_dir, out_dir = Path(raw).expanduser().resolve(), Path(out).expanduser().resolve()
    _check_folders(raw_dir, out_dir, rec)
    deterministic = jobs >= cpu_count() if deterministic is None else bool(deterministic)
    table, tasks = _tasks(raw_dir, out_dir)
    part = bool(participant_label) or shard is not None
    chosen = select_tasks(tasks, participant_label, shard)
    _write_description(raw_dir, out_dir, rec, deterministic)
    summary = Summary(out_dir, selected=len(chosen))
    finished = {t.row for t in chosen if _finished(t, raw_dir, rec) is not None}
    summary.skipped = len(finished)
    todo = [t for t in chosen if t.row not in finished]
    fresh = _run_all(todo, raw_dir, rec, jobs, deterministic, progress) if todo else {}
    for t in todo:
        r, log = fresh[t.row], failure_path(out_dir, t.stem)
        if r["status"] == "failed":
            summary.failed.append(r["reason"])
            atomic_write(log, lambda p, f=_failure(t, raw_dir, r): p.write_text(json.dumps(f, indent=1) + "\n"))
        else:
            summary.processed += 1
            log.unlink(missing_ok=True)
    if part:
        return summary
    redone = {f"{t.participant_id} {t.session or ''}" for t in todo}
    return _gather(raw_dir, out_dir, rec, table, tasks, summary, redone)


def gather_report(out: str | os.PathLike) -> Summary:
    """qc.tsv, qc.html and participants.tsv of an output folder written in parts (``--shard``,
    ``--participant-label``), from its scans' records, once every part has finished.

    RAW and the recipe are those of OUT's dataset_description.json. Scans of RAW without a record (a part not
    run, still running or stopped) are left out and listed in ``Summary.missing``; the reasons of the scans that
    failed are in ``Summary.failed``, as a run lists them.
    """
    out_dir = Path(out).expanduser().resolve()
    desc_file = out_dir / "dataset_description.json"
    if not out_dir.is_dir():
        raise BrainAgeError(f"--report-only {out}: no such folder. Give the output folder the parts wrote into.")
    try:
        desc = json.loads(desc_file.read_text())
        made_by = desc["GeneratedBy"][0]
        assert made_by["Name"] == GENERATOR
        recipe, where = made_by["Recipe"], desc["DatasetLinks"]["raw"]
    except (OSError, ValueError, KeyError, IndexError, TypeError, AssertionError):
        raise BrainAgeError(f"--report-only {out}: {desc_file.name} is missing or not written by `brainage preprocess` "
                            "(this version): no part has run here. Run the parts first: brainage preprocess RAW OUT "
                            "--recipe R --shard K/N.") from None
    raw_dir = (out_dir / where).resolve()
    if not (raw_dir / "participants.tsv").is_file():
        raise BrainAgeError(f"--report-only {out}: the raw folder it was made from, {raw_dir} ({where} relative to OUT, "
                            "as its dataset_description.json says), is not there. Keep RAW and OUT where they were.")
    rec = get_recipe(recipe)
    table, tasks = _tasks(raw_dir, out_dir)
    summary = _gather(raw_dir, out_dir, rec, table, tasks, Summary(out_dir, selected=len(tasks)))
    summary.failed = [r["reason"] for t in tasks
                      if (r := _record(t, raw_dir, out_dir, rec)) is not None and r.get("status") == "failed"]
    return summary
