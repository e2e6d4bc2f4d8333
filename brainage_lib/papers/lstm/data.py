"""The LSTM paper's cohorts: discovery split, replication cohort and both models' cached inputs.

``DATA_DIR`` holding ``nihpd_like/`` and ``mghbch_like/`` gives both cohorts; a single cohort
folder (or one holding only ``nihpd_like/``) gives the discovery cohort alone: every evaluation
on the replication cohort is then not testable, with the reason, and the discovery cohort is
never used as its own replication. Without discovery training subjects aged
``<= young_max_age`` the young regime is not trained.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import Cohort
from brainage_lib.data.datasets import SliceSequenceDataset, VolumeDataset
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.splits import stratified_split
from brainage_lib.papers.lstm.transforms import AtlasVolume, LSTMSlices
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME, EVALUATIONS, LSTM_NAME, REGIMES, evaluation_title

__all__ = ["DISCOVERY", "REPLICATION", "LSTMData", "load_data", "replication_reason"]

DISCOVERY, REPLICATION = "nihpd_like", "mghbch_like"  # the cohorts' preset names, and their DATA_DIR sub-folders


def replication_reason(data_dir: str) -> str | None:
    """Why ``data_dir`` gives no replication cohort, or None (simulated, or ``data_dir/mghbch_like/`` present)."""
    if not data_dir or (Path(data_dir).expanduser() / REPLICATION / "participants.tsv").is_file():
        return None
    return (f"no replication cohort in DATA_DIR: add DATA_DIR/{REPLICATION}/ (participants.tsv + "
            f"sub-*/anat/sub-*_T1w.nii.gz from a site unseen in training), with the discovery cohort in "
            f"DATA_DIR/{DISCOVERY}/")


def _ages(ages: np.ndarray) -> str:
    return f"{ages.min():.1f}-{ages.max():.1f} y" if ages.size else "no subject"


@dataclass
class LSTMData:
    """Discovery cohort split 80/20 and its young part; replication cohort (None when there is none).

    ``arrays[cohort][model]`` holds the cached inputs: slice stacks for the LSTM, volumes for the 3D model.
    """

    disc: Cohort
    repl: Cohort | None
    train_idx: np.ndarray
    test_idx: np.ndarray
    young_idx: np.ndarray  # training subjects aged <= young_max_age
    young_test_idx: np.ndarray  # test subjects aged <= young_max_age
    arrays: dict[str, dict[str, np.ndarray]]
    young_max_age: float
    sources: dict[str, str]  # "discovery" / "replication" -> where the cohort came from
    no_replication: str | None = None  # why there is no replication cohort

    def cohort(self, name: str) -> Cohort:
        """``"discovery"`` or ``"replication"``."""
        cohort = self.disc if name == "discovery" else self.repl
        if cohort is None:
            raise BrainAgeError(f"no {name} cohort: {self.no_replication}")
        return cohort

    def dataset(self, model_name: str, cohort: str, indices: np.ndarray | None = None) -> Dataset:
        """The cached inputs of one model for one cohort (all subjects, or ``indices``)."""
        make = SliceSequenceDataset if model_name == LSTM_NAME else VolumeDataset
        return make(self.arrays[cohort][model_name], self.cohort(cohort).ages, indices)

    def train_indices(self, regime: str) -> np.ndarray:
        """Training subjects of a regime: ``"0-22"`` (the whole training split) or ``"young"``."""
        return self.train_idx if regime == "0-22" else self.young_idx

    def regime_reason(self, regime: str) -> str | None:
        """Why ``regime`` cannot be trained (only the young one can lack training subjects), or None."""
        if regime == "0-22" or len(self.young_idx):
            return None
        return (f"no discovery training subject aged <= {self.young_max_age:g} y (training ages "
                f"{_ages(self.disc.ages[self.train_idx])}): the 0-{self.young_max_age:g} y regime cannot be trained")

    @property
    def regimes(self) -> tuple[str, ...]:
        """The training regimes this data allows, in ``REGIMES`` order."""
        return tuple(r for r in REGIMES if self.regime_reason(r) is None)

    def not_testable(self) -> dict[str, str]:
        """Why each evaluation (``Evaluation.key``) or regime that cannot be run is not testable."""
        out = {}
        for key, (regime, cohort) in EVALUATIONS.items():
            repl = self.no_replication if cohort == "replication" else None
            why = [w for w in (self.regime_reason(regime), repl) if w]
            if why:
                out[key] = "; ".join(why)
        if self.regime_reason("young"):
            out["young"] = self.regime_reason("young")
        return out

    def sizes(self, young: str) -> dict[str, int]:
        """Subjects per part, keyed by the labels recorded as ``data.n.<label>``."""
        return {"discovery train (0-22 y)": len(self.train_idx), f"discovery train ({young} y)": len(self.young_idx),
                "discovery test": len(self.test_idx), f"discovery test ({young} y)": len(self.young_test_idx),
                "replication": len(self.repl) if self.repl is not None else 0}

    def used(self, part: str, young: str) -> str:
        """What data a part of the notebook used, as Markdown, written from this object.

        ``part``: ``"data"`` (the cohorts), ``"training"`` (each regime's subjects), ``"young"`` (the
        discovery test subjects of the young range), ``"evaluations"`` (one line each) or an evaluation key.
        """
        if part == "data":
            return f"- **Discovery**: {self._discovery_text()}\n- **Replication**: {self._replication_text()}"
        if part == "training":
            lines = []
            for r in REGIMES:
                idx, why = self.train_indices(r), self.regime_reason(r)
                text = (f"not trained; **not testable**: {why}." if why else
                        f"{len(idx)} discovery training subjects aged {_ages(self.disc.ages[idx])}.")
                lines.append(f"- **{'0-22' if r == '0-22' else young} y regime**: {text}")
            return "\n".join(lines)
        if part == "evaluations":
            return "\n".join(f"- {evaluation_title(k, young)}: {self.used(k, young)}" for k in EVALUATIONS)
        if part == "young":
            if self.regime_reason("young"):
                return f"**Not testable**: {self.regime_reason('young')}."
            return (f"Evaluated on the {len(self.young_test_idx)} discovery test subjects aged <= "
                    f"{self.young_max_age:g} y ({self.sources['discovery']}).")
        if part in self.not_testable():
            return f"**Not testable**: {self.not_testable()[part]}."
        regime, cohort = EVALUATIONS[part]
        models = f"the models trained on {'0-22' if regime == '0-22' else young} y"
        if cohort == "discovery":
            return (f"Evaluated: {models}, on the {len(self.test_idx)} discovery test subjects "
                    f"({self.sources['discovery']}, aged {_ages(self.disc.ages[self.test_idx])}).")
        return f"Evaluated: {models}, on the {len(self.repl)} replication subjects ({self.sources['replication']})."

    def _discovery_text(self) -> str:
        """The discovery cohort and its split, one sentence."""
        return (f"{self.sources['discovery']}, {len(self.disc)} subjects aged {_ages(self.disc.ages)}, split 80/20 "
                f"stratified by age: {len(self.train_idx)} training and {len(self.test_idx)} test subjects.")

    def _replication_text(self) -> str:
        """The replication cohort, or why there is none, one sentence."""
        if self.repl is None:
            return f"none; **not testable**: {self.no_replication}."
        return (f"{self.sources['replication']}, {len(self.repl)} subjects aged {_ages(self.repl.ages)}, "
                "never seen in training.")


def load_data(data_dir: str, seed: int, n_discovery: int | None, n_replication: int | None, shape: int | None,
              atlas: tuple[int, int, int], slice_size: int, young_max_age: float,
              split_seed: int | None = None) -> LSTMData:
    """Open the cohorts (simulated when ``data_dir`` is empty), split the discovery cohort, cache the inputs.

    ``seed`` (the notebook's ``DATA_SEED``) draws the simulated cohorts; the split, stratified by age (80/20),
    is drawn from ``split_seed`` (the model seed ``SEED``: the paper does not fix its split), ``seed`` when
    None. The young subsets keep ages ``<= young_max_age``. The replication cohort is only
    ``data_dir/mghbch_like/`` (``replication_reason``).
    """
    root = Path(data_dir).expanduser() if data_dir else None
    if root is not None and not any((p / "participants.tsv").is_file() for p in (root, root / DISCOVERY)):
        raise BrainAgeError(f"DATA_DIR {root} holds no discovery cohort: point it at a cohort folder "
                            f"(participants.tsv + sub-*/anat/) or at a folder holding {DISCOVERY}/ "
                            f"(and {REPLICATION}/ for the replication).")
    sim = {"seed": seed, "shape": shape or None}
    no_repl = replication_reason(data_dir)
    disc = open_cohort(DISCOVERY, data_dir, n=n_discovery or None, **sim)
    repl = None if no_repl else open_cohort(REPLICATION, data_dir, n=n_replication or None, **sim)
    train_idx, test_idx = stratified_split(disc.ages, (0.8, 0.2), seed=seed if split_seed is None else split_seed)
    if not len(test_idx):
        raise BrainAgeError(f"The discovery cohort {disc.root} has {len(disc)} subjects: too few for an 80/20 split "
                            "with a test subject (at least 5).")
    young_idx = train_idx[disc.ages[train_idx] <= young_max_age]
    young_test_idx = test_idx[disc.ages[test_idx] <= young_max_age]
    slices, volume = LSTMSlices(atlas_shape=atlas, slice_size=slice_size), AtlasVolume(atlas_shape=atlas)
    cohorts = {"discovery": disc, "replication": repl}
    arrays = {name: {LSTM_NAME: cached_array(c, slices), CNN3D_NAME: cached_array(c, volume)}
              for name, c in cohorts.items() if c is not None}
    sources = {name: (str(c.root) if data_dir else f"simulated {preset} (seed {seed})")
               for (name, c), preset in zip(cohorts.items(), (DISCOVERY, REPLICATION)) if c is not None}
    return LSTMData(disc, repl, train_idx, test_idx, young_idx, young_test_idx, arrays, young_max_age, sources,
                    no_repl)
