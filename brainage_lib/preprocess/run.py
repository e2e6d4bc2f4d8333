"""``brainage preprocess``: a raw cohort folder to the BIDS-derivatives folder the notebooks read.

RAW is only read: an OUT inside it is refused, and every temporary file lives in OUT or the
system's temporary folder. Scans run in parallel (``jobs`` processes), each on its own: one that
fails is reported with its file and reason, and the others go on. A rerun skips every scan whose
T1w and QC record exist and whose raw file is unchanged. Every file is written under a temporary
name and renamed into place.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from brainage_lib import __version__
from brainage_lib.data.validation import MISSING, validate_cohort
from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess.outputs import atomic_write, output_paths
from brainage_lib.preprocess.qc import flag_outliers, write_qc
from brainage_lib.preprocess.recipes import SPACE, Recipe, get_recipe

GENERATOR = "brainage preprocess"
PACKAGES = ("antspyx", "deepbet", "nilearn", "nibabel", "torch", "numpy")


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


def _finished(task: Task, raw: Path, recipe: Recipe) -> dict | None:
    """The QC record of a scan finished earlier from the same raw file by the same recipe, else None."""
    where = output_paths(task.out_anat, task.stem)
    if task.path is None or not where["t1w"].is_file() or not where["qc"].is_file():
        return None
    try:
        qc = json.loads(where["qc"].read_text())
    except ValueError:
        return None
    same = qc.get("source") == task.source(raw) and qc.get("recipe") == recipe.name
    return {**qc, "status": "ok"} if same else None


def _work(task: Task, raw: Path, recipe_name: str) -> dict:
    """Process one scan in a worker; failures come back as a reason, never as an exception."""
    from brainage_lib.preprocess.pipeline import run_subject  # ANTs and torch load in the worker

    if task.path is None:
        return {"status": "failed", "reason": task.problem}
    try:
        return {"status": "ok", **run_subject(task.path, task.out_anat, task.stem, get_recipe(recipe_name), task.source(raw))}
    except BrainAgeError as exc:
        return {"status": "failed", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one scan's failure must not stop the others
        return {"status": "failed", "reason": f"{task.path}: {type(exc).__name__}: {exc}"}


def _init_worker(threads: int) -> None:
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _run_all(todo: list[Task], raw: Path, recipe: Recipe, jobs: int, progress: bool) -> dict[int, dict]:
    bar = tqdm(total=len(todo), desc=f"preprocess ({recipe.name})", unit="scan", disable=not progress)
    results = {}
    if jobs == 1 or len(todo) <= 1:
        for t in todo:
            results[t.row] = _work(t, raw, recipe.name)
            bar.update()
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(_work, t, raw, recipe.name): t for t in todo}
            for f in as_completed(futures):
                t = futures[f]
                try:
                    results[t.row] = f.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died (memory, a crash) fails its scan only
                    results[t.row] = {"status": "failed", "reason": f"{t.path}: the worker stopped ({type(exc).__name__}: {exc})"}
                bar.update()
    bar.close()
    return results


def _description(raw: Path, recipe: Recipe) -> dict:
    grid = recipe.grid
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "Name": f"{raw.name}, preprocessed as in {recipe.paper}", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": GENERATOR, "Version": __version__, "Recipe": recipe.name, "PaperStates": recipe.stated,
                         "Steps": recipe.describe(), "Notes": list(recipe.notes), "Packages": versions}],
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
                      progress: bool = True) -> Summary:
    """Preprocess every scan of the cohort folder ``raw`` with ``recipe`` into ``out``.

    Parameters
    ----------
    raw : cohort folder (participants.tsv + sub-<id>/anat/sub-<id>_T1w.nii[.gz]); only read.
    out : output folder, outside ``raw``; a folder from an earlier run of the same recipe is resumed.
    recipe : ``tgb``, ``diff`` or ``lstm``.
    jobs : scans processed at once (processes); the cores are shared between them.
    """
    rec = get_recipe(recipe)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BrainAgeError(f"--jobs {jobs!r}: give a whole number of parallel scans, 1 or more.")
    raw_dir, out_dir = Path(raw).expanduser().resolve(), Path(out).expanduser().resolve()
    _check_folders(raw_dir, out_dir, rec)
    table, tasks = _tasks(raw_dir, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    desc = json.dumps(_description(raw_dir, rec), indent=2) + "\n"
    atomic_write(out_dir / "dataset_description.json", lambda p: p.write_text(desc))
    summary = Summary(out_dir)
    records = {t.row: qc for t in tasks if (qc := _finished(t, raw_dir, rec)) is not None}
    summary.skipped = len(records)
    fresh = _run_all([t for t in tasks if t.row not in records], raw_dir, rec, jobs, progress)
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
                     **{k: r.get(k) for k in ("correlation", "brain_volume_ml", "edge_voxels", "seconds", "reason")}})
    qc = pd.DataFrame(rows)
    if qc["session"].isna().all():
        qc = qc.drop(columns="session")
    done = [t.row for t in tasks if records[t.row]["status"] != "failed"]
    kept = table.iloc[done]
    atomic_write(out_dir / "participants.tsv", lambda p: kept.to_csv(p, sep="\t", index=False, lineterminator="\n"))
    summary.qc_tsv, summary.qc_html = write_qc(out_dir, flag_outliers(qc), figures,
                                               f"Preprocessing QC: {raw_dir.name}, recipe {rec.name}")
    return summary
