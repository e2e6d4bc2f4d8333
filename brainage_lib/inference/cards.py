"""Saved models with a model card: what a notebook trained, on what, and how well.

``export_model`` writes one file per model: its weights and a card (the paper, notebook,
profile, architecture and its config, the input transform, the training data and its
space and grid, the test MAE, the target scaling and the age-bias correction fitted in
the notebook), together with the final checkpoint of the training stage that made it, from
which a re-run of the notebook loads that stage. ``load_model`` rebuilds the network from the
card alone and loads the weights with ``torch.load(..., weights_only=True)``; ``brainage
predict`` applies it. ``share_model`` writes a copy with the weights and card only.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from torch import nn

from brainage_lib.data.cohort import Cohort
from brainage_lib import registry
from brainage_lib.data.transforms import Transform, transforms
from brainage_lib.engine.fabric import keep_final
from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics.stats import bias_correct
from brainage_lib.run.jsonable import to_jsonable
from brainage_lib.run.provenance import provenance

__all__ = ["architectures", "ModelCard", "cohort_space", "export_model", "fitted_bias_correction", "load_model",
           "save_model", "transform_spec"]

def architectures() -> dict[str, tuple[Any, Any]]:
    """Architecture name -> (builder from a config dict, config class or None), as each paper declares them.

    The card stores the name and the config; ``builder(config)`` rebuilds the network.
    """
    out = {}
    for name, (builder_ref, config_ref) in registry.architectures().items():
        builder = registry.load(builder_ref)
        config = registry.load(config_ref) if config_ref else None
        out[name] = ((lambda c, b=builder, k=config: b(k(**c))) if config else (lambda c, b=builder: b(**c)), config)
    return out


def __getattr__(name: str):
    if name == "ARCHITECTURES":  # the merged view, built when first asked for
        return architectures()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


INPUTS = ("volume", "slice", "slice_sequence")  # how a transformed image is fed: (1, D, H, W), (1, H, W), (S, H, W)


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to apply a saved model and to know what it is."""

    paper: str  # TGB | DIFF | LSTM
    notebook: str
    model: str  # the name in the notebook's tables, e.g. REG-GAN-TGB
    architecture: str  # a key of ARCHITECTURES
    config: dict  # the architecture's config
    transform: dict  # {"name": "tgb", **parameters} for data.transforms.get_transform
    inputs: str  # one of INPUTS
    profile: str
    seed: int
    training_data: str  # what the notebook trained on (DATA_DIR or the simulated preset)
    space: dict  # the training images' space: {"generated_by": ..., "shape": [...], "affine": [[...]]}
    test_mae: float | None  # on the notebook's test set, in years
    target_mean: float = 0.0  # the network predicts (age - target_mean) / target_sd
    target_sd: float = 1.0
    bias_correction: dict | None = None  # {"slope", "intercept", "n", "fitted_on"}: pred = slope * age + intercept
    training: dict = field(default_factory=dict)  # the training settings and the epoch whose weights these are
    provenance: dict = field(default_factory=dict)
    created: str = ""

    def text(self) -> str:
        """A short human-readable card."""
        bc = self.bias_correction
        return "\n".join([
            f"{self.paper} / {self.notebook} / {self.model} ({self.architecture}), profile {self.profile}, seed {self.seed}",
            f"trained on {self.training_data}; inputs {self.transform} on grid {self.space.get('shape')}",
            f"test MAE {self.test_mae:.3f} y" if self.test_mae is not None else "test MAE not measured",
            (f"age-bias correction pred = {bc['slope']:.4f} * age + {bc['intercept']:.3f} (fitted on {bc['fitted_on']})"
             if bc else "no age-bias correction fitted in the notebook")])


def transform_spec(transform: Transform) -> dict:
    """``{"name": <short name>, **parameters}`` of a transform, as ``get_transform`` takes it back."""
    names = [k for k, cls in transforms().items() if type(transform) is cls]
    if not names:
        raise BrainAgeError(f"transform {type(transform).__name__} has no short name: declare it in its paper's Paper(transforms=...).")
    return {"name": names[0], **asdict(transform)}


def cohort_space(cohort: Cohort) -> dict:
    """The space of a cohort's images, as predict compares it: who made them, the grid shape and affine."""
    desc = cohort.root / "dataset_description.json"
    generated = json.loads(desc.read_text()).get("GeneratedBy", []) if desc.is_file() else []
    img = nib.load(str(cohort.paths[0]))
    return {"generated_by": [{k: g.get(k) for k in ("Name", "Recipe") if k in g} for g in generated],
            "shape": [int(s) for s in img.shape[:3]], "affine": np.round(img.affine, 3).tolist()}


def fitted_bias_correction(pred: np.ndarray, age: np.ndarray, fitted_on: str) -> dict | None:
    """The age-bias correction of ``pred`` on healthy subjects ``age`` as a card entry; None when it cannot be fitted."""
    try:
        bc = bias_correct(pred, age)
    except BrainAgeError:
        return None
    return {"slope": bc.slope, "intercept": bc.intercept, "n": bc.n, "fitted_on": fitted_on}


def export_model(path: str | os.PathLike, model: nn.Module, card: ModelCard, stage_dir: Path | None = None) -> Path:
    """Write ``model``'s weights and ``card`` to ``path`` (atomically); returns the path.

    ``stage_dir``: the checkpoint folder of the training stage that made ``model``. Its final checkpoint then goes
    into the same file, which becomes the one file of the trained model: ``brainage predict`` reads the weights
    and card, and a re-run of the notebook loads the finished stage from it.
    """
    known = registry.architectures()
    if card.architecture not in known or card.inputs not in INPUTS:
        raise BrainAgeError(f"export_model: unknown architecture {card.architecture!r} (known: {', '.join(known)}) "
                            f"or inputs {card.inputs!r} (one of {', '.join(INPUTS)}); a paper declares its "
                            "architectures in its Paper(architectures=...).")
    card = ModelCard(**{**asdict(card), "provenance": provenance(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return keep_final(stage_dir, Path(path), {"state_dict": state, "card": to_jsonable(asdict(card))})


def save_model(cfg, rec, name: str, net: nn.Module, stage_dir: Path | None = None, **card: Any) -> Path:
    """Save a notebook's trained network ``net`` as ``checkpoints/<notebook>/models/<name>.model.pt``, the one file of it,
    with the final checkpoint of the stage that trained it (``stage_dir``: the training result's; see :func:`export_model`).

    The run fills in the card's paper, notebook, profile, seed and training data (from the
    notebook's parameters ``cfg`` and recorder ``rec``); ``card`` gives the other :class:`ModelCard`
    fields (``model`` defaults to ``name``). Returns the path.
    """
    paper = registry.paper_of_notebook(cfg.notebook)
    card = ModelCard(**{"model": name, **card}, paper=paper.short if paper else cfg.notebook, notebook=cfg.notebook,
                     profile=cfg.profile, seed=int(cfg.core["SEED"]), training_data=rec.doc["data"])
    return export_model(cfg.checkpoint_dir / "models" / f"{name}.model.pt", net, card, stage_dir)


def describe_model(path: str | os.PathLike) -> str:
    """A saved model's card, its parameter count and what its file holds."""
    blob, card = _read(path)
    model = _build(blob, card, path)
    size = f"{sum(p.numel() for p in model.parameters()):,} parameters; {Path(path).stat().st_size / 2**20:.1f} MiB"
    return (f"{card.text()}\n{size}, "
            + ("weights, card and the final checkpoint of the training stage it came from" if "stage" in blob else
               "weights and card"))


def share_model(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A copy of the saved model ``path`` with its weights and card only (no training state), to give to others.

    ``brainage predict`` applies it as it applies the original; a notebook cannot load a training stage from it.
    The card is copied as it is. ``out``: a file or a folder (the copy then keeps the model's file name); never
    ``path`` itself. A notebook's saved model already at ``out`` keeps its training stage
    (:func:`~brainage_lib.engine.fabric.keep_final`).
    """
    path, out = Path(path), Path(out)
    out = out / path.name if out.is_dir() else out
    if out.exists() and out.resolve() == path.resolve():
        raise BrainAgeError(f"{out} is the model itself: give another file for the copy.")
    blob, card = _read(path)
    _build(blob, card, path)  # weights that fit the card's architecture, or a clear error
    return keep_final(None, out, {"state_dict": blob["state_dict"], "card": blob["card"]})


def _read(path: str | os.PathLike) -> tuple[dict, ModelCard]:
    """A saved model's file (read once) and its card; a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise BrainAgeError(f"No saved model at {path}. Notebooks write them to checkpoints/<notebook>/models/*.model.pt.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        card = ModelCard(**{f.name: blob["card"][f.name] for f in fields(ModelCard) if f.name in blob["card"]})
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise BrainAgeError(f"{path} is not a saved model with a model card ({type(exc).__name__}: {exc}).") from None
    return blob, card


def _build(blob: dict, card: ModelCard, path: str | os.PathLike) -> nn.Module:
    """The network the card names, with the file's weights."""
    known = architectures()
    if card.architecture not in known:
        raise BrainAgeError(f"{path}: its card names the architecture {card.architecture!r}, which no paper of this "
                            f"installation declares (known: {', '.join(known)}).")
    build, _ = known[card.architecture]
    model = build({k: tuple(v) if isinstance(v, list) else v for k, v in card.config.items()})  # JSON lists were tuples
    model.load_state_dict(blob["state_dict"])
    return model


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelCard]:
    """The network rebuilt from a saved model's card, with its weights, in eval mode on ``device``."""
    blob, card = _read(path)
    return _build(blob, card, path).to(device).eval(), card
