"""Validation of a cohort folder: every problem at once, and what to do about each (read-only).

Validation never changes, moves or deletes anything in the folder. Spaces around column
names and values are ignored. See ``cohort`` for the layout.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from brainage_lib.data.space import space_observations
from brainage_lib.run.progress import tqdm

REQUIRED_COLUMNS = ("participant_id", "age", "sex", "site")
OPTIONAL_COLUMNS = ("session", "group", "survival_months", "split")
AGE_RANGE = (0.0, 120.0)
SEX_VALUES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MISSING = {"", "n/a", "na", "nan", "none"}
HEADER_HINT = f"write a header row: {', '.join(REQUIRED_COLUMNS)} [, {', '.join(OPTIONAL_COLUMNS)}], tab-separated"
EXAMPLES = 3  # files named in a summarised warning
IMAGE_WARNINGS = {  # kind: (what was seen, what to do); each kind is reported once with a count and examples
    "both": ("both .nii.gz and .nii exist", "The .nii.gz is used; remove or rename the file you do not mean."),
    "orientation": ("orientation is not RAS/LAS as in MNI space",
                    "Are the images registered to MNI152? `brainage preprocess --recipe tgb|diff|lstm` registers them."),
    "voxel": ("voxel size is far from the 1-2 mm of MNI-registered T1s", "Check that this is the resolution you meant."),
    "fov": ("field of view is far from MNI152's", "The notebooks expect skull-stripped T1s registered to MNI space: "
            "run `brainage preprocess --recipe tgb|diff|lstm`."),
    "skull": ("the foreground is larger than a brain (skull and scalp present?)",
              "The notebooks expect skull-stripped T1s: run `brainage preprocess --recipe tgb|diff|lstm`."),
}


@dataclass
class ValidationReport:
    """Problems (make the cohort unusable) and warnings (usable, but check) found in a cohort folder."""

    root: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # nothing to fix (e.g. an old-style preprocessed folder)
    table: pd.DataFrame | None = None
    image_info: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """Human-readable summary: N, ages, sexes, sites, image shapes and voxel sizes, then every issue."""
        lines = [f"Cohort: {self.root}"]
        t = self.table
        if t is not None and len(t):
            ages = pd.to_numeric(t["age"], errors="coerce")
            lines.append(f"  participants: {len(t)}  (labelled: {int(ages.notna().sum())})")
            if ages.notna().any():
                lines.append(f"  age: {ages.min():.2f}-{ages.max():.2f} y, mean {ages.mean():.2f}, sd {ages.std():.2f}")
            lines.append("  sex: " + ", ".join(f"{k}={v}" for k, v in t["sex"].value_counts().sort_index().items()))
            lines.append(f"  sites: {t['site'].nunique()} (" + ", ".join(f"{k}={v}" for k, v in t["site"].value_counts().sort_index().items()) + ")")
            if "group" in t:
                lines.append("  groups: " + ", ".join(f"{k}={v}" for k, v in t["group"].value_counts().items()))
        info = self.image_info
        if info is not None and len(info):
            lines.append("  image shapes: " + ", ".join(f"{k} x{v}" for k, v in info["shape"].value_counts().items()))
            lines.append("  voxel sizes (mm): " + ", ".join(f"{k} x{v}" for k, v in info["voxel_mm"].value_counts().items()))
        for n in self.notes:
            lines.append(f"NOTE: {n}")
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        for p in self.problems:
            lines.append(f"PROBLEM: {p}")
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s): fix them and run `brainage validate` again.")
        return "\n".join(lines)


def _image_stem(root: Path, pid: str, session: str | None) -> Path:
    """Where a participant's (or session's) T1w image must be, without the ``.nii[.gz]`` extension."""
    if session:
        ses = session if session.startswith("ses-") else f"ses-{session}"
        return root / pid / ses / "anat" / f"{pid}_{ses}_T1w"
    return root / pid / "anat" / f"{pid}_T1w"


PREPROCESSED = "_desc-preproc_T1w"  # sMRIPrep-style name of a preprocessed T1w (``brainage preprocess``)
GENERATOR = "brainage preprocess"


def _image_paths(root: Path, pid: str, session: str | None) -> tuple[list[Path], list[Path]]:
    """Existing T1w files of a participant (or session), preferred first; without them, any session images seen.

    A preprocessed image, ``<stem>_space-<tpl>[_res-<grid>]_desc-preproc_T1w.nii[.gz]``, comes before a plain
    ``<stem>_T1w.nii[.gz]`` (raw cohorts, the simulator, and folders preprocessed before these names).
    """
    stem = _image_stem(root, pid, session)
    base = stem.name[: -len("_T1w")]
    derived = [p for ext in (".nii.gz", ".nii") for p in sorted(stem.parent.glob(f"{base}_space-*{PREPROCESSED}{ext}"))]
    if derived:
        return derived, []
    found = [stem.with_name(stem.name + ext) for ext in (".nii.gz", ".nii") if stem.with_name(stem.name + ext).is_file()]
    others = sorted((root / pid).glob("ses-*/anat/*_T1w.nii*")) if not found and not session else []
    return found, others


def _image_folders(root: Path, listed: set[str]) -> list[Path]:
    """``sub-*`` folders holding a T1w image whose participant is not in ``listed``."""
    return [sub for sub in sorted(root.glob("sub-*"))
            if sub.is_dir() and sub.name not in listed and any(sub.glob("**/*_T1w.nii*"))]


def _read_table(root: Path, report: ValidationReport) -> pd.DataFrame | None:
    tsv = root / "participants.tsv"
    if not root.is_dir():
        report.problems.append(f"{root}: no such folder. Point DATA_DIR / the command at a cohort folder holding participants.tsv.")
        return None
    if not tsv.is_file():
        report.problems.append(f"{tsv}: missing. Add a tab-separated participants.tsv with columns {', '.join(REQUIRED_COLUMNS)}.")
        return None
    try:
        table = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        report.problems.append(f"{tsv}: is empty. To fix, {HEADER_HINT}, then one row per T1w image.")
        return None
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported
        report.problems.append(f"{tsv}: cannot be read as a tab-separated table ({exc}). To fix, {HEADER_HINT}, "
                               "then one row per T1w image.")
        return None
    table.columns = [str(c).strip() for c in table.columns]
    twice = sorted(set(table.columns[table.columns.duplicated()]))
    if twice:
        report.problems.append(f"{tsv}: column(s) {', '.join(twice)} appear more than once. Keep one of each.")
        return None
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing_cols:
        report.problems.append(f"{tsv}: missing required column(s) {', '.join(missing_cols)} (found: {', '.join(table.columns)}). "
                               f"To fix, {HEADER_HINT}.")
        return None
    if table.empty:
        report.problems.append(f"{tsv}: has a header but no participants. Add one row per T1w image.")
        return None
    for col in table.columns:
        table[col] = table[col].str.strip()
    if "split" in table.columns:
        report.warnings.append(f"{tsv}: the split column is ignored; the notebooks make their own train/validation/test "
                               "splits, following each paper's protocol.")
    return table


def _check_rows(table: pd.DataFrame, tsv: Path, report: ValidationReport, allow_unlabelled: bool) -> pd.DataFrame:
    table = table.copy()
    table["participant_id"] = [p if p.startswith("sub-") or not p else f"sub-{p}" for p in table["participant_id"]]
    ages = []
    for i, row in table.iterrows():
        line = i + 2  # header is line 1
        pid, raw = row["participant_id"], row["age"]
        if not pid:
            report.problems.append(f"{tsv} line {line}: empty participant_id. Write the subject's id, e.g. sub-01.")
        if not row["sex"]:
            report.problems.append(f"{tsv} line {line} ({pid}): sex is empty. Write M or F (n/a if unknown).")
        if row["site"].lower() in MISSING:
            report.problems.append(f"{tsv} line {line} ({pid}): site is missing. Write the scanner or site name "
                                   "(the same name on every row of a single-site cohort).")
        if raw.lower() in MISSING:
            ages.append(np.nan)
            if not allow_unlabelled:
                report.problems.append(f"{tsv} line {line} ({pid}): age is missing. Fill it in, drop the row, "
                                       "or load with allow_unlabelled=True (--allow-unlabelled) for semi-supervised use.")
            continue
        try:
            age = float(raw)
        except ValueError:
            report.problems.append(f"{tsv} line {line} ({pid}): age '{raw}' is not a number. Write it in years, e.g. 12.5.")
            ages.append(np.nan)
            continue
        if not np.isfinite(age) or not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
            report.problems.append(f"{tsv} line {line} ({pid}): age {raw} is outside {AGE_RANGE[0]:g}-{AGE_RANGE[1]:g} years. Check units (years, not months).")
            age = np.nan
        ages.append(age)
    table["age"] = np.asarray(ages, dtype=float)
    sexes = []
    for i, s in enumerate(table["sex"]):
        v = SEX_VALUES.get(s.lower())
        if v is None and s:
            report.warnings.append(f"{tsv} line {i + 2} ({table['participant_id'].iloc[i]}): sex '{s}' is not M/F; kept as 'n/a'.")
        sexes.append(v or "n/a")
    table["sex"] = sexes
    key = ["participant_id", "session"] if "session" in table else "participant_id"
    dup = table[table.duplicated(key, keep=False)]
    for pid, rows in dup.groupby(key).groups.items():
        lines = ", ".join(str(r + 2) for r in rows)
        report.problems.append(f"{tsv}: participant {pid} appears more than once (lines {lines}). Keep one row per image"
                               + ("" if "session" in table else ", or add a session column") + ".")
    for col in ("survival_months",):
        if col in table:
            vals = pd.to_numeric(table[col].replace({m: np.nan for m in MISSING}), errors="coerce")
            bad = table.index[vals.isna() & ~table[col].str.lower().isin(MISSING)]
            for i in bad:
                report.problems.append(f"{tsv} line {i + 2}: {col} '{table.at[i, col]}' is not a number.")
            table[col] = vals
    return table


def _check_image(path: Path, report: ValidationReport, full: bool, seen: dict[str, list[str]]) -> dict | None:
    """Problems go to ``report``; far-from-MNI observations to ``seen`` (kind -> "file (detail)"), summarised later."""
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # noqa: BLE001 - every reader failure is reported
        report.problems.append(f"{path}: unreadable as NIfTI ({type(exc).__name__}: {exc}). Re-export or re-copy the file.")
        return None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        report.problems.append(f"{path}: image is {len(shape)}D with shape {tuple(shape)}; a 3D T1w volume is needed "
                               "(extract the T1w volume, e.g. the first of a 4D series).")
        return None
    if full:
        try:
            data = np.asanyarray(img.dataobj)
        except Exception as exc:  # noqa: BLE001
            report.problems.append(f"{path}: truncated or corrupt image data ({type(exc).__name__}: {exc}). Re-copy the file.")
            return None
        if data.dtype.kind == "f":
            n_bad = int((~np.isfinite(data)).sum())
            if n_bad:
                report.problems.append(f"{path}: {n_bad} NaN/inf voxel(s). Replace them (e.g. with 0 outside the brain) and re-save.")
                return None
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    info = {"path": str(path), "shape": "x".join(map(str, shape)), "voxel_mm": "x".join(f"{z:.2g}" for z in zooms)}
    name = path.relative_to(report.root)
    for kind, detail in space_observations(img, data if full else None).items():
        seen[kind].append(f"{name} ({detail})")
    return info


def _summarise_image_warnings(seen: dict[str, list[str]], n_images: int, report: ValidationReport) -> None:
    """One warning per kind of observation: how many images, a few examples, what to do."""
    for kind, files in seen.items():
        if files:
            what, advice = IMAGE_WARNINGS[kind]
            more = f" and {len(files) - EXAMPLES} more" if len(files) > EXAMPLES else ""
            report.warnings.append(f"{what} in {len(files)} of {n_images} image(s), e.g. {'; '.join(files[:EXAMPLES])}{more}. {advice}")


def _generator(root: Path) -> str | None:
    """``GeneratedBy[0].Name`` of the folder's dataset_description.json, if any."""
    try:
        return json.loads((root / "dataset_description.json").read_text())["GeneratedBy"][0]["Name"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def validate_cohort(root: str | os.PathLike, allow_unlabelled: bool = False, check_data: bool = True,
                    progress: bool = False) -> ValidationReport:
    """Check a cohort folder and report every problem at once (read-only).

    Parameters
    ----------
    root : the cohort folder.
    allow_unlabelled : accept rows whose age is ``n/a`` (semi-supervised training).
    check_data : read every voxel (finds truncated files and NaN/inf), not only headers.
    """
    root = Path(root).expanduser().resolve()
    report = ValidationReport(root)
    table = _read_table(root, report)
    if table is None:
        unlisted = _image_folders(root, set())
        if unlisted:
            names = ", ".join(sub.name for sub in unlisted[:EXAMPLES]) + (", ..." if len(unlisted) > EXAMPLES else "")
            report.problems.append(f"{root}: {len(unlisted)} folder(s) with a T1w image ({names}) have no row while "
                                   "participants.tsv cannot be used; fix it as above, one row per image.")
        return report
    tsv = root / "participants.tsv"
    table = _check_rows(table, tsv, report, allow_unlabelled)
    paths, infos = [], []
    seen: dict[str, list[str]] = {kind: [] for kind in IMAGE_WARNINGS}
    for i, row in tqdm(list(table.iterrows()), desc="validate", disable=not progress, unit="img"):
        session = row["session"] if "session" in table and row["session"].lower() not in MISSING else None
        found, others = _image_paths(root, row["participant_id"], session)
        if not found:
            expected = _image_stem(root, row["participant_id"], session).relative_to(root)
            hint = f" Found session images {', '.join(o.name for o in others[:3])}: add a session column." if others else ""
            report.problems.append(f"{tsv} line {i + 2} ({row['participant_id']}): no T1w image at {expected}.nii[.gz].{hint}")
            paths.append(None)
            continue
        grids = sorted({f.name.removesuffix(".gz").removesuffix(".nii") for f in found})
        if len(grids) > 1:
            report.problems.append(f"{found[0].parent}: {len(grids)} preprocessed T1w images ({', '.join(grids)}) for "
                                   f"{row['participant_id']}; a cohort folder holds one grid. Keep one.")
        elif len(found) > 1:
            seen["both"].append(str(found[0].relative_to(root)))
        paths.append(str(found[0]))
        info = _check_image(found[0], report, check_data, seen)
        if info:
            infos.append(info)
    _summarise_image_warnings(seen, sum(p is not None for p in paths), report)
    old = [p for p in paths if p is not None and PREPROCESSED not in Path(p).name]
    if old and _generator(root) == GENERATOR:
        report.notes.append(f"{root} is an old-style `brainage preprocess` folder ({len(old)} image(s) named "
                            "sub-<id>_T1w.nii.gz, in MNI space): still read as before. A rerun of `brainage preprocess` "
                            "on it renames its outputs sMRIPrep-style (sub-<id>_space-<tpl>_res-<grid>_desc-preproc_T1w"
                            ".nii.gz, composite .h5 transforms, JSON sidecars).")
    table["path"] = paths
    for sub in _image_folders(root, set(table["participant_id"])):
        report.problems.append(f"{sub}: has a T1w image but no row in participants.tsv. Add a row or move the folder out.")
    report.table = table
    report.image_info = pd.DataFrame(infos)
    return report
