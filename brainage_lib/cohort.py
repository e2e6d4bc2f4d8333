"""Cohort folders: ``participants.tsv`` plus one T1w NIfTI per row (BIDS-like).

The same loader reads real cohorts and the simulator's output. Validation only
reads: it never changes, moves or deletes anything in the folder.

Layout::

    DIR/participants.tsv                       participant_id, age, sex, site [, session, group, survival_months, split]
    DIR/sub-<id>/anat/sub-<id>_T1w.nii[.gz]
    DIR/sub-<id>/ses-<s>/anat/sub-<id>_ses-<s>_T1w.nii[.gz]
    DIR/ground_truth/                          simulated cohorts only; never read by a model
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainage_lib.anatomy import MNI_EXTENT, MNI_ORIGIN
from brainage_lib.errors import BrainAgeError

REQUIRED_COLUMNS = ("participant_id", "age", "sex", "site")
OPTIONAL_COLUMNS = ("session", "group", "survival_months", "split")
AGE_RANGE = (0.0, 120.0)
SEX_VALUES = {"m": "M", "male": "M", "f": "F", "female": "F"}
MISSING = {"", "n/a", "na", "nan", "none"}


@dataclass
class ValidationReport:
    """Problems (make the cohort unusable) and warnings (usable, but check) found in a cohort folder."""

    root: Path
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
        for w in self.warnings:
            lines.append(f"WARNING: {w}")
        for p in self.problems:
            lines.append(f"PROBLEM: {p}")
        lines.append("OK" if self.ok else f"{len(self.problems)} problem(s): fix them and run `brainage validate` again.")
        return "\n".join(lines)


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: a table with one row per image and its resolved path."""

    root: Path
    table: pd.DataFrame  # participant_id, age (NaN = unlabelled), sex, site, ..., path

    @property
    def name(self) -> str:
        return self.root.name

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ages(self) -> np.ndarray:
        return self.table["age"].to_numpy(dtype=float)

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self.table["path"]]

    @property
    def ground_truth_dir(self) -> Path | None:
        """The simulator's ``ground_truth/`` folder, or None for real data."""
        gt = self.root / "ground_truth"
        return gt if (gt / "subjects.tsv").is_file() else None

    def ground_truth(self) -> pd.DataFrame | None:
        """Hidden per-subject truth (brain age, gap, ...) aligned to this table's rows; None for real data."""
        gt = self.ground_truth_dir
        if gt is None:
            return None
        truth = pd.read_csv(gt / "subjects.tsv", sep="\t", dtype={"participant_id": str})
        return self.table[["participant_id"]].merge(truth, on="participant_id", how="left")

    def subset(self, mask: np.ndarray | pd.Series) -> "Cohort":
        """The cohort restricted to rows where ``mask`` is true."""
        return Cohort(self.root, self.table[np.asarray(mask, dtype=bool)].reset_index(drop=True))

    def labelled(self) -> "Cohort":
        return self.subset(self.table["age"].notna())

    def fingerprint(self) -> str:
        """Hash of the table and the image files' sizes and modification times (a cache key)."""
        h = hashlib.sha256()
        h.update(self.table.drop(columns=["path"]).to_csv(index=False).encode())
        for p in self.table["path"]:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


def _image_path(root: Path, pid: str, session: str | None) -> tuple[Path | None, list[Path]]:
    """The T1w path for a participant (and session); also every candidate seen."""
    sub = root / pid
    if session:
        ses = session if session.startswith("ses-") else f"ses-{session}"
        globs = [sub / ses / "anat"]
        stem = f"{pid}_{ses}_T1w"
    else:
        globs = [sub / "anat"]
        stem = f"{pid}_T1w"
    for d in globs:
        for ext in (".nii.gz", ".nii"):
            if (d / f"{stem}{ext}").is_file():
                return d / f"{stem}{ext}", []
    others = sorted(sub.glob("ses-*/anat/*_T1w.nii*")) if not session else []
    return None, others


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
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported
        report.problems.append(f"{tsv}: cannot be read as a tab-separated table ({exc}).")
        return None
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing_cols:
        report.problems.append(f"{tsv}: missing required column(s) {', '.join(missing_cols)} (found: {', '.join(table.columns)}).")
        return None
    if table.empty:
        report.problems.append(f"{tsv}: has a header but no participants. Add one row per T1w image.")
        return None
    return table


def _check_rows(table: pd.DataFrame, tsv: Path, report: ValidationReport, allow_unlabelled: bool) -> pd.DataFrame:
    table = table.copy()
    table["participant_id"] = [p.strip() if p.strip().startswith("sub-") or not p.strip() else f"sub-{p.strip()}"
                               for p in table["participant_id"]]
    ages = []
    for i, row in table.iterrows():
        line = i + 2  # header is line 1
        pid, raw = row["participant_id"], str(row["age"]).strip()
        if not pid:
            report.problems.append(f"{tsv} line {line}: empty participant_id.")
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
        v = SEX_VALUES.get(str(s).strip().lower())
        if v is None:
            report.warnings.append(f"{tsv} line {i + 2} ({table['participant_id'].iloc[i]}): sex '{s}' is not M/F; kept as 'n/a'.")
            v = "n/a"
        sexes.append(v)
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


def _check_image(path: Path, report: ValidationReport, full: bool) -> dict | None:
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
    try:
        orient = "".join(nib.aff2axcodes(img.affine))
    except Exception:  # noqa: BLE001
        orient = "?"
    if orient != "RAS" and orient != "LAS":
        report.warnings.append(f"{path}: orientation {orient}, not RAS/LAS as in MNI space. Is it registered to MNI152?")
    if zooms.max() > 3.0 or zooms.min() < 0.5:
        report.warnings.append(f"{path}: voxel size {info['voxel_mm']} mm is far from the 1-2 mm of MNI-registered T1s.")
    corners = np.array([[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    world = (img.affine @ corners.T)[:3]
    extent = world.max(1) - world.min(1)
    centre = (world.max(1) + world.min(1)) / 2
    mni_centre = MNI_ORIGIN + MNI_EXTENT / 2
    if np.any(np.abs(centre - mni_centre) > 30) or np.any(np.abs(extent / MNI_EXTENT - 1) > 0.35):
        report.warnings.append(f"{path}: field of view (centre {np.round(centre)}, extent {np.round(extent)} mm) is far from "
                               "MNI152's; the notebooks expect skull-stripped T1s registered to MNI space.")
    return info


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
        return report
    tsv = root / "participants.tsv"
    table = _check_rows(table, tsv, report, allow_unlabelled)
    paths, infos = [], []
    for i, row in tqdm(list(table.iterrows()), desc="validate", disable=not progress, unit="img"):
        session = str(row["session"]).strip() if "session" in table and str(row["session"]).strip().lower() not in MISSING else None
        path, others = _image_path(root, row["participant_id"], session)
        if path is None:
            where = f"{row['participant_id']}/" + (f"ses-{session}/" if session else "") + "anat/"
            hint = f" Found session images {', '.join(o.name for o in others[:3])}: add a session column." if others else ""
            report.problems.append(f"{tsv} line {i + 2} ({row['participant_id']}): no T1w image at {where}"
                                   f"{row['participant_id']}_T1w.nii[.gz].{hint}")
            paths.append(None)
            continue
        paths.append(str(path))
        info = _check_image(path, report, check_data)
        if info:
            infos.append(info)
    table["path"] = paths
    listed = set(table["participant_id"])
    for sub in sorted(root.glob("sub-*")):
        if sub.is_dir() and sub.name not in listed and any(sub.glob("**/*_T1w.nii*")):
            report.problems.append(f"{sub}: has a T1w image but no row in participants.tsv. Add a row or move the folder out.")
    report.table = table
    report.image_info = pd.DataFrame(infos)
    return report


def load_cohort(root: str | os.PathLike, allow_unlabelled: bool = False, check_data: bool = False) -> Cohort:
    """Load a cohort folder; raise ``BrainAgeError`` listing every problem if it is not usable.

    Image headers are always checked; voxel data only with ``check_data`` (the
    preprocessing cache reads every voxel anyway and names any file with NaNs).
    """
    report = validate_cohort(root, allow_unlabelled=allow_unlabelled, check_data=check_data)
    if not report.ok:
        listing = "\n  - ".join(report.problems)
        raise BrainAgeError(f"Cohort {report.root} has {len(report.problems)} problem(s):\n  - {listing}")
    return Cohort(report.root, report.table.reset_index(drop=True))


def balance_by_sex(table: pd.DataFrame, bin_width: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Keep equal numbers of males and females in every age bin (TGB protocol).

    In each bin the larger sex is subsampled at random to the size of the smaller one.
    """
    rng = np.random.default_rng(seed)
    bins = np.floor(table["age"].to_numpy(dtype=float) / bin_width)
    keep = []
    for b in np.unique(bins[np.isfinite(bins)]):
        in_bin = table.index[bins == b]
        males = [i for i in in_bin if table.at[i, "sex"] == "M"]
        females = [i for i in in_bin if table.at[i, "sex"] == "F"]
        k = min(len(males), len(females))
        keep += list(rng.choice(males, k, replace=False)) + list(rng.choice(females, k, replace=False))
    return table.loc[sorted(keep)].reset_index(drop=True)
