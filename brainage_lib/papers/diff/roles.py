"""The DIFF roles (training, test, ALS) when ``DATA_DIR`` is one cohort, and what each claim is judged on.

The paper trains on research-grade scans, tests on a separate clinical-grade cohort and
computes brain-PADs of ALS patients. A student's single cohort folder is split here: its
rows of group ALS (if any) form the ALS role, an age-stratified share of the other
labelled rows stands in for the test set, and the rest (unlabelled rows included) is the
training cohort. ``JudgedOn`` names the data behind each claim for the claim records.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainage_lib.data.cohort import Cohort
from brainage_lib.data.splits import stratified_split
from brainage_lib.errors import BrainAgeError

__all__ = ["ALS_GROUP", "TEST_FRACTION", "JudgedOn", "als_rows", "judged_on", "single_cohort_note",
           "split_single_cohort"]

TEST_FRACTION = 0.2  # share of a single cohort's labelled non-ALS subjects held out as its test set
ALS_GROUP = "ALS"  # the `group` value (any case) that marks a single cohort's ALS patients


@dataclass(frozen=True)
class JudgedOn:
    """Short descriptions of the data the claims are judged on.

    Parameters
    ----------
    test
        The test set (``"clinical_test (simulated)"``, ``"held-out 20 % of <cohort>"``).
    als
        The ALS patients, or None where the data has none.
    split
        True when the test set is a held-out split of the training cohort, not a clinical-grade cohort.
    """

    test: str = "clinical_test"
    als: str | None = "als_like"
    split: bool = False

    @property
    def where(self) -> str:
        """The test set in a sentence of the learning gate."""
        return f"the test split ({self.test})" if self.split else "the clinical test set"


def als_rows(cohort: Cohort) -> np.ndarray:
    """Boolean mask of the rows whose ``group`` is ALS (any case, spaces ignored); all False without the column."""
    t = cohort.table
    if "group" not in t:
        return np.zeros(len(t), dtype=bool)
    return t["group"].astype(str).str.strip().str.upper().eq(ALS_GROUP).to_numpy()


def split_single_cohort(cohort: Cohort, test_fraction: float = TEST_FRACTION, seed: int = 0) -> dict[str, Cohort]:
    """One cohort in the DIFF roles: ``train``, ``test`` and, where it has ALS rows, ``als``.

    The labelled rows outside group ALS are split by age strata (``stratified_split``,
    seeded) into ``test`` (``test_fraction`` of them) and ``train``; unlabelled rows go to
    ``train`` (the diffusion loss only). Raises BrainAgeError when the test set would
    have fewer than 3 subjects or an ALS row has no age.
    """
    if not 0 < test_fraction < 1:
        raise BrainAgeError(f"test_fraction={test_fraction} must lie between 0 and 1.")
    ages, als = cohort.ages, als_rows(cohort)
    if np.isnan(ages[als]).any():
        raise BrainAgeError(f"{cohort.root}/participants.tsv: {int(np.isnan(ages[als]).sum())} row(s) of group "
                            f"{ALS_GROUP} have no age; a brain-PAD needs the chronological age.")
    pool = np.flatnonzero(~als & ~np.isnan(ages))
    _, test = (pool[p] for p in stratified_split(ages[pool], (1 - test_fraction, test_fraction), seed=seed))
    if len(test) < 3:
        raise BrainAgeError(f"{cohort.root}: {len(pool)} labelled subjects outside group {ALS_GROUP} give a test set "
                            f"of {len(test)} at {100 * test_fraction:g} %; it needs at least 3.")
    in_test = np.isin(np.arange(len(ages)), test)
    roles = {"train": cohort.subset(~in_test & ~als), "test": cohort.subset(in_test)}
    return roles | ({"als": cohort.subset(als)} if als.any() else {})


def _single(cohorts: dict[str, Cohort]) -> bool:
    """Whether the roles come from one cohort folder (``split_single_cohort``)."""
    return cohorts["test"].root == cohorts["train"].root


def _named(cohort: Cohort, name: str) -> str:
    """``name``, marked ``(simulated)`` for a cohort with the simulator's ground truth."""
    return f"{name} (simulated)" if cohort.ground_truth_dir is not None else name


def judged_on(cohorts: dict[str, Cohort]) -> JudgedOn:
    """What the claims are judged on, from the cohorts in their roles."""
    if _single(cohorts):
        name = _named(cohorts["train"], cohorts["train"].name)
        return JudgedOn(f"held-out {100 * TEST_FRACTION:g} % of {name}",
                        f"group {ALS_GROUP} of {name}" if "als" in cohorts else None, split=True)
    return JudgedOn(_named(cohorts["test"], "clinical_test"), _named(cohorts["als"], "als_like"))


def single_cohort_note(cohorts: dict[str, Cohort], seed: int) -> str:
    """Markdown saying how one cohort was split into the roles (``split_single_cohort``) and what is then not
    testable."""
    train, test = cohorts["train"], cohorts["test"]
    n_unlab = int(np.isnan(train.ages).sum())
    n_als = len(cohorts["als"]) if "als" in cohorts else 0
    als = (f"Its {n_als} rows of `group` = {ALS_GROUP} form the ALS role (Table 2, the survival row of Table 1, "
           "Fig. 2), outside training and test." if n_als else
           f"No row has `group` = {ALS_GROUP}, so there are no ALS patients: Table 2, the survival row of Table 1 "
           "and Fig. 2 are not computed, and their claims are **not testable**.")
    return (f"**One cohort.** `DATA_DIR` is the single cohort `{train.name}` ({len(train) + len(test) + n_als} "
            f"images). Its labelled subjects outside group {ALS_GROUP} were split by age strata (seed {seed}) into "
            f"**{len(test)} test subjects** ({100 * TEST_FRACTION:g} %, ages {test.ages.min():.0f}-"
            f"{test.ages.max():.0f}, mean {test.ages.mean():.1f} y), standing in for the clinical test set, and "
            f"**{len(train) - n_unlab} labelled training subjects** (+ {n_unlab} unlabelled), split below into train, "
            f"validation and held-out healthy. {als} The test subjects share the training cohort's scanners and "
            "grade: Table 1's ranking by MAE and R² (on the paper's clinical-grade test set, the baselines' loss "
            "under a change of grade) is **not testable** here; the ranking by r, blind to the offset and scale such "
            "a change adds, is judged on the test split.")
