"""Cohort folders: ``participants.tsv`` plus one T1w NIfTI per row (BIDS-like).

The same loader reads real cohorts and the simulator's output; ``validation`` checks a folder and only
reads: it never changes, moves or deletes anything in the folder. Spaces around
column names and values are ignored. The optional ``split`` column is accepted but
not used: the notebooks make their own splits, following each paper's protocol.

Layout::

    DIR/participants.tsv                       participant_id, age, sex, site [, session, group, survival_months, split]
    DIR/sub-<id>/anat/sub-<id>_T1w.nii[.gz]
    DIR/sub-<id>/ses-<s>/anat/sub-<id>_ses-<s>_T1w.nii[.gz]
    DIR/sub-<id>/anat/sub-<id>_space-<tpl>_res-<grid>_desc-preproc_T1w.nii.gz   from ``brainage preprocess`` (read first;
                                               a folder it wrote before these names, sub-<id>_T1w.nii.gz, is still read)
    DIR/ground_truth/                          simulated cohorts only; never read by a model
    DIR/qc.tsv                                 from ``brainage preprocess``: rows with exclude = yes are skipped
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_lib.data.validation import validate_cohort
from brainage_lib.errors import BrainAgeError


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: a table with one row per image and its resolved path."""

    root: Path
    table: pd.DataFrame  # participant_id, age (NaN = unlabelled), sex, site, ..., path
    excluded: tuple[str, ...] = ()  # scans left out because qc.tsv marks them exclude = yes

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
        return Cohort(self.root, self.table[np.asarray(mask, dtype=bool)].reset_index(drop=True), self.excluded)

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


_NOTED: set[str] = set()  # notes already printed, once per process


EXCLUDE_YES, EXCLUDE_NO = ("yes", "y", "true", "1", "x"), ("no", "n", "false", "0", "")


def _scan_keys(table: pd.DataFrame) -> pd.Series:
    """``participant_id ses-<s>`` (or ``participant_id``) of each row, sessions written as ``brainage preprocess`` does."""
    keys = table["participant_id"].astype(str).str.strip()
    if "session" in table:
        ses = table["session"].fillna("").astype(str).str.strip()
        ses = ses.where(ses.str.lower().isin(["", "n/a", "na", "nan"]) | ses.str.startswith("ses-"), "ses-" + ses)
        keys = keys + np.where(ses.str.lower().isin(["", "n/a", "na", "nan"]), "", " " + ses)
    return keys


def excluded_scans(root: Path) -> set[str]:
    """Scans (``participant_id[ ses-<s>]``) that ``root/qc.tsv`` marks exclude = yes; none without that file."""
    tsv = root / "qc.tsv"
    if not tsv.is_file():
        return set()
    qc = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    if "exclude" not in qc or "participant_id" not in qc:
        return set()
    value = qc["exclude"].str.strip().str.lower()
    odd = ~value.isin(EXCLUDE_YES + EXCLUDE_NO)
    if odd.any():
        i = int(np.flatnonzero(odd)[0])
        raise BrainAgeError(f"{tsv} line {i + 2} ({qc['participant_id'].iloc[i]}): exclude is '{qc['exclude'].iloc[i]}'. "
                            "Write yes (leave the scan out) or no (keep it).")
    return set(_scan_keys(qc[value.isin(EXCLUDE_YES)]))


def load_cohort(root: str | os.PathLike, allow_unlabelled: bool = False, check_data: bool = False) -> Cohort:
    """Load a cohort folder; raise ``BrainAgeError`` listing every problem if it is not usable.

    Image headers are always checked; voxel data only with ``check_data`` (the
    preprocessing cache reads every voxel anyway and names any file with NaNs).
    Scans that the folder's ``qc.tsv`` (from ``brainage preprocess``) marks exclude = yes
    are left out, and named.
    """
    report = validate_cohort(root, allow_unlabelled=allow_unlabelled, check_data=check_data)
    if not report.ok:
        listing = "\n  - ".join(report.problems)
        raise BrainAgeError(f"Cohort {report.root} has {len(report.problems)} problem(s):\n  - {listing}")
    for note in report.notes:
        if note not in _NOTED:
            _NOTED.add(note)
            print(f"Note: {note}")
    table = report.table.reset_index(drop=True)
    out = _scan_keys(table).isin(excluded_scans(report.root))
    names = tuple(_scan_keys(table)[out])
    if names:
        print(f"{report.root}: {len(names)} scan(s) left out, marked exclude = yes in qc.tsv: {', '.join(names)}")
        if out.all():
            raise BrainAgeError(f"{report.root / 'qc.tsv'} excludes every scan of the cohort. Set exclude to no for "
                                "the scans to keep.")
    return Cohort(report.root, table[~out].reset_index(drop=True), names)


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
