"""``brainage preprocess``: a raw cohort folder to the BIDS-derivatives folder the notebooks read.

RAW is only read: an OUT inside it is refused, and every temporary file lives in OUT or the
system's temporary folder. Scans run in worker processes (``jobs`` at once), each on its own: one
that fails, or whose worker dies, is reported with its file and reason, its outputs are removed, and
the others go on; Ctrl-C cancels the scans still queued. A rerun skips every scan whose record
exists and names the same raw file, recipe and package versions. Every file is written under a
temporary name and renamed into place, a scan's record last.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from brainage_lib import __version__
from brainage_lib.data.validation import MISSING, validate_cohort
from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess.outputs import atomic_write, output_paths, remove_outputs
from brainage_lib.preprocess.qc import MEASURES, flag_outliers, set_exclusions, write_qc
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
    qc_tsv: Path | None = None
    qc_html: Path | None = None


def _check_folders(raw: Path, out: Path, recipe: Recipe) -> None:
    if not raw.is_dir():
        raise BrainAgeError(f"{raw}: no such folder. Give the raw cohort folder (participants.tsv + sub-*/anat/*_T1w.nii.gz).")
    if out == raw or raw in out.parents:
        raise BrainAgeError(f"Output folder {out} is inside the raw folder {raw}; preprocessing never writes into RAW. "
                            f"Choose an output outside it, e.g. {raw.parent / (raw.name + '-' + recipe.name)}.")
    if out.exists() and not out.is_dir():
        raise BrainAgeError(f"{out} is a file, not a folder. Choose a new folder for the output.")
    if out.is_dir() and any(out.iterdir()):
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


def _provenance(task: Task, raw: Path, recipe: Recipe) -> dict:
    """What a scan's record must match for the scan to count as finished on a rerun."""
    return {"source": task.source(raw), "recipe_definition": recipe.definition, "packages": package_versions()}


def _finished(task: Task, raw: Path, recipe: Recipe) -> dict | None:
    """The record of a scan finished earlier from the same raw file, recipe and package versions, else None."""
    where = output_paths(task.out_anat, task.stem)
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
            remove_outputs(output_paths(by_row[row].out_anat, by_row[row].stem))
        raise
    for row, r in results.items():
        if r["status"] == "failed":
            remove_outputs(output_paths(by_row[row].out_anat, by_row[row].stem))
    return results


def _description(raw: Path, recipe: Recipe, deterministic: bool) -> dict:
    grid = recipe.grid
    versions = package_versions()
    return {
        "Name": f"{raw.name}, preprocessed as in {recipe.paper}", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": GENERATOR, "Version": __version__, "Recipe": recipe.name, "PaperStates": recipe.stated,
                         "Steps": recipe.describe(), "Notes": list(recipe.notes), "Packages": versions,
                         "Deterministic": deterministic}],
        "SourceDatasets": [{"URL": raw.as_uri()}],
        "Space": {"Name": SPACE, "Template": f"MNI152 2009a symmetric brain template from the nilearn {versions['nilearn']} wheel",
                  "Shape": list(grid.shape), "VoxelSizeMM": [round(v, 4) for v in grid.voxel_size],
                  "Affine": grid.affine.round(6).tolist()},
        "Files": {
            "sub-<id>_T1w.nii.gz": f"the preprocessed brain in {SPACE} (skull-stripped, bias-corrected); named as the "
                                   "cohort loader reads it, so this folder is a DATA_DIR",
            f"sub-<id>_space-{SPACE}_desc-brain_mask.nii.gz": "the brain mask on the same grid",
            f"sub-<id>_from-T1w_to-{SPACE}_mode-image_*xfm.*": "ANTs forward transforms, listed in apply order in each "
                "sub-<id>_qc.json: ants.apply_transforms(fixed=<output grid>, moving=<raw scan>, transformlist=...) maps the "
                "raw scan onto the output; as point transforms they map output mm to scanner mm (LPS)",
            "sub-<id>_qc.json, qc.tsv, qc.html": "quality control; qc.html is self-contained, worst scans first",
        },
    }


def preprocess_cohort(raw: str | os.PathLike, out: str | os.PathLike, recipe: str, jobs: int = 1,
                      deterministic: bool | None = None, progress: bool = True) -> Summary:
    """Preprocess every scan of the cohort folder ``raw`` with ``recipe`` into ``out``.

    Parameters
    ----------
    raw : cohort folder (participants.tsv + sub-<id>/anat/sub-<id>_T1w.nii[.gz]); only read.
    out : output folder, outside ``raw``; a folder from an earlier run of the same recipe is resumed.
    recipe : ``tgb``, ``diff`` or ``lstm``.
    jobs : scans processed at once (processes); the cores are shared between them.
    deterministic : one ITK and torch thread per scan, so that a rerun writes byte-identical images and transforms;
        default: on when ``jobs`` is at least the number of cores (each scan would get one thread anyway).
    """
    rec = get_recipe(recipe)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BrainAgeError(f"--jobs {jobs!r}: give a whole number of parallel scans, 1 or more.")
    raw_dir, out_dir = Path(raw).expanduser().resolve(), Path(out).expanduser().resolve()
    _check_folders(raw_dir, out_dir, rec)
    deterministic = jobs >= cpu_count() if deterministic is None else bool(deterministic)
    table, tasks = _tasks(raw_dir, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    desc = json.dumps(_description(raw_dir, rec, deterministic), indent=2) + "\n"
    atomic_write(out_dir / "dataset_description.json", lambda p: p.write_text(desc))
    summary = Summary(out_dir)
    records = {t.row: qc for t in tasks if (qc := _finished(t, raw_dir, rec)) is not None}
    summary.skipped = len(records)
    fresh = _run_all([t for t in tasks if t.row not in records], raw_dir, rec, jobs, deterministic, progress)
    records.update(fresh)
    rows, figures = [], {}
    for t in tasks:
        r = records[t.row]
        if r["status"] == "failed":
            summary.failed.append(r["reason"])
        elif t.row in fresh:
            summary.processed += 1
        figures[t.key] = output_paths(t.out_anat, t.stem)["figure"]
        rows.append({"participant_id": t.participant_id, "session": t.session, "status": r["status"],
                     "source": (r.get("source") or {}).get("path", str(t.path.relative_to(raw_dir)) if t.path else ""),
                     **{k: r.get(k) for k in ("similarity", "correlation", "brain_volume_ml", "edge_voxels", *MEASURES,
                                                 "seconds", "reason")}})
    qc = pd.DataFrame(rows)
    if qc["session"].isna().all():
        qc = qc.drop(columns="session")
    done = [t.row for t in tasks if records[t.row]["status"] != "failed"]
    kept = table.iloc[done]
    atomic_write(out_dir / "participants.tsv", lambda p: kept.to_csv(p, sep="\t", index=False, lineterminator="\n"))
    redone = {f"{t.participant_id} {t.session or ''}" for t in tasks if t.row in fresh}
    qc = set_exclusions(flag_outliers(qc), out_dir / "qc.tsv", redone)
    summary.qc_tsv, summary.qc_html = write_qc(out_dir, qc, figures, f"Preprocessing QC: {raw_dir.name}, recipe {rec.name}")
    return summary
