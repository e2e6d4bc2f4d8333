"""``brainage predict``: a saved model applied to a preprocessed cohort, one row per subject.

The cohort must be in the space the model was trained in: made by the same pipeline (the
``GeneratedBy`` of its ``dataset_description.json``: the simulator, or ``brainage
preprocess`` with the same recipe) and on the same grid (image shape and affine). Inputs
are made with the model card's own transform; ages and PADs come out in years.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import load_cohort
from brainage_lib.data.datasets import CachedArrayDataset
from brainage_lib.data.transforms import get_transform
from brainage_lib.errors import BrainAgeError
from brainage_lib.inference.cards import ModelCard, cohort_space, load_model

__all__ = ["check_compatible", "predict_cohort"]


def check_compatible(card: ModelCard, space: dict, where: str) -> None:
    """Refuse a cohort whose pipeline or grid differs from the model's training data, saying how it differs."""
    problems = []
    if space["generated_by"] != card.space.get("generated_by"):
        problems.append(f"made by {space['generated_by'] or 'an unknown pipeline (no dataset_description.json)'}, "
                        f"the model's training data by {card.space.get('generated_by')}")
    if space["shape"] != card.space.get("shape") or not np.allclose(space["affine"], card.space.get("affine"), atol=0.01):
        problems.append(f"grid {space['shape']} (affine {space['affine']}) differs from the training grid "
                        f"{card.space.get('shape')} (affine {card.space.get('affine')})")
    if problems:
        recipe = card.transform.get("name", "?")
        raise BrainAgeError(f"{where} is not in the space {card.model} was trained in: " + "; ".join(problems)
                            + f". Preprocess the raw scans as the training data were (`brainage preprocess RAW OUT "
                            f"--recipe {recipe}`), or train the notebook on this data.")


@torch.no_grad()
def _predict(model: torch.nn.Module, card: ModelCard, array: np.ndarray, device: torch.device) -> np.ndarray:
    ds = CachedArrayDataset(array, np.full(len(array), np.nan), channel=card.inputs != "slice_sequence")
    out = []
    for x, _ in DataLoader(ds, batch_size=8, shuffle=False):
        x = x.to(device)
        y = model.predict_age(x) if hasattr(model, "predict_age") else model(x)  # e.g. DIFF's DiffAE: its age head
        out.append(y.float().reshape(-1).cpu().numpy())
    return np.concatenate(out) * card.target_sd + card.target_mean


def predict_cohort(model_path: str | os.PathLike, cohort_dir: str | os.PathLike, device: torch.device,
                   out_csv: str | os.PathLike | None = None) -> pd.DataFrame:
    """Predicted age, brain-PAD and bias-corrected PAD for every subject of a cohort folder.

    Ages may be missing (``n/a``): the PADs are then empty. The table is written to
    ``out_csv`` when given (never inside the cohort folder).
    """
    model, card = load_model(model_path, device)
    cohort = load_cohort(cohort_dir, allow_unlabelled=True)
    out = Path(out_csv).expanduser().resolve() if out_csv else None
    if out is not None and cohort.root in out.parents:
        raise BrainAgeError(f"--out {out} lies inside the cohort folder {cohort.root}; write it elsewhere.")
    check_compatible(card, cohort_space(cohort), str(cohort.root))
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in card.transform.items() if k != "name"}
    transform = get_transform(card.transform["name"], **params)
    pred = _predict(model, card, cached_array(cohort, transform), device)
    age = cohort.ages
    frame = pd.DataFrame({"participant_id": cohort.table["participant_id"], "age": age, "predicted_age": pred,
                          "brain_pad": pred - age})
    bc = card.bias_correction
    frame["brain_pad_corrected"] = pred - (bc["slope"] * age + bc["intercept"]) if bc else np.nan
    frame["model"] = f"{card.notebook}/{card.model}"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
    return frame
