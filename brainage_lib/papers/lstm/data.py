"""The LSTM paper's cohorts: discovery split, replication cohort and both models' cached inputs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import Cohort
from brainage_lib.data.datasets import SliceSequenceDataset, VolumeDataset
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.splits import stratified_split
from brainage_lib.data.transforms import AtlasVolume, LSTMSlices
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME, LSTM_NAME

__all__ = ["LSTMData", "load_data"]


@dataclass
class LSTMData:
    """Discovery (``nihpd_like``) split 80/20 and its young part; replication (``mghbch_like``) cohort.

    ``arrays[cohort][model]`` holds the cached inputs: slice stacks for the LSTM, volumes for the 3D model.
    """

    disc: Cohort
    repl: Cohort
    train_idx: np.ndarray
    test_idx: np.ndarray
    young_idx: np.ndarray  # training subjects aged <= young_max_age
    young_test_idx: np.ndarray  # test subjects aged <= young_max_age
    arrays: dict[str, dict[str, np.ndarray]]

    def cohort(self, name: str) -> Cohort:
        """``"discovery"`` or ``"replication"``."""
        return self.disc if name == "discovery" else self.repl

    def dataset(self, model_name: str, cohort: str, indices: np.ndarray | None = None) -> Dataset:
        """The cached inputs of one model for one cohort (all subjects, or ``indices``)."""
        make = SliceSequenceDataset if model_name == LSTM_NAME else VolumeDataset
        return make(self.arrays[cohort][model_name], self.cohort(cohort).ages, indices)

    def train_indices(self, regime: str) -> np.ndarray:
        """Training subjects of a regime: ``"0-22"`` (the whole training split) or ``"young"``."""
        return self.train_idx if regime == "0-22" else self.young_idx

    def sizes(self, young: str) -> dict[str, int]:
        """Subjects per part, keyed by the labels recorded as ``data.n.<label>``."""
        return {"discovery train (0-22 y)": len(self.train_idx), f"discovery train ({young} y)": len(self.young_idx),
                "discovery test": len(self.test_idx), f"discovery test ({young} y)": len(self.young_test_idx),
                "replication": len(self.repl)}


def load_data(data_dir: str, seed: int, n_discovery: int | None, n_replication: int | None, shape: int | None,
              atlas: tuple[int, int, int], slice_size: int, young_max_age: float) -> LSTMData:
    """Open both cohorts (simulated when ``data_dir`` is empty), split the discovery cohort, cache the inputs.

    The split is stratified by age (80/20, ``seed``); the young subsets keep ages ``<= young_max_age``.
    """
    sim = {"seed": seed, "shape": shape or None}
    disc = open_cohort("nihpd_like", data_dir, n=n_discovery or None, **sim)
    repl = open_cohort("mghbch_like", data_dir, n=n_replication or None, **sim)
    train_idx, test_idx = stratified_split(disc.ages, (0.8, 0.2), seed=seed)
    young_idx = train_idx[disc.ages[train_idx] <= young_max_age]
    young_test_idx = test_idx[disc.ages[test_idx] <= young_max_age]
    slices, volume = LSTMSlices(atlas_shape=atlas, slice_size=slice_size), AtlasVolume(atlas_shape=atlas)
    arrays = {name: {LSTM_NAME: cached_array(c, slices), CNN3D_NAME: cached_array(c, volume)}
              for name, c in (("discovery", disc), ("replication", repl))}
    return LSTMData(disc, repl, train_idx, test_idx, young_idx, young_test_idx, arrays)
