"""A fourth paper is a plug-in: a copy of the project gains ``papers/toy/`` and a notebook, and no shared file changes.

The toy wing declares one tiny model, one input transform, one simulator preset, a benchmark, a
gpu-check stage and one claim. The test checks that the shared commands find it (``run --help``,
``bench --list``, ``gpu-check --list``, ``predict``'s architectures, ``presets``), that ``run``
executes its notebook before the report notebook, that the index shows its claim with the verdict
its notebook recorded, and that ``predict`` rebuilds its model from the card alone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from brainage_lib import paths

pytestmark = pytest.mark.notebook

PARTS = '''
"""The toy paper's parts: an 8^3 input, a linear network, a cohort, a benchmark, a gpu-check stage, a claim."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from brainage_lib.data.transforms import Transform, minmax, resize
from brainage_lib.run.timing import StageBench
from brainage_lib.simulation.presets import Preset


@dataclass(frozen=True)
class ToyVolume(Transform):
    size: int = 8

    @property
    def out_shape(self):
        return (self.size,) * 3

    def __call__(self, volume):
        return minmax(resize(volume, self.out_shape)).astype(np.float32)


@dataclass(frozen=True)
class ToyConfig:
    size: int = 8


class ToyNet(nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.size ** 3, 1)

    def forward(self, x):
        return self.fc(x.flatten(1))


PAPER = {"short": "TOY", "title": "A toy paper", "tables": {"table1": "Table 1: MAE"}}  # what results show

PRESETS = (Preset("toy_like", "TOY (a toy cohort, 6-24 y)", 40, "toy", ("truncnorm", 15.0, 5.0, 6.0, 24.0),
                  n_sites=1, field_strength="3T"),)


def bench(device):
    net, x = ToyNet(ToyConfig()).to(device), torch.rand(64, 1, 8, 8, 8, device=device)
    t0 = time.perf_counter()
    net(x)
    return {"toy_forward_samples_per_s": round(64 / max(time.perf_counter() - t0, 1e-9), 1)}


def gpu_stages(paper: bool = True):
    def make_step(device, bf16, batch):
        net = ToyNet(ToyConfig()).to(device)
        opt = torch.optim.Adam(net.parameters())
        x, y = torch.rand(batch, 1, 8, 8, 8, device=device), torch.rand(batch, 1, device=device)

        def step():
            opt.zero_grad()
            loss = (net(x) - y).abs().mean()
            loss.backward()
            opt.step()
            return loss
        return step
    return [StageBench("05_toy", "ToyNet", "8^3 linear", 4, make_step, (("toy", 32, 2),))]


def claims(mae: float, mean_mae: float) -> tuple[bool, str]:
    """The toy paper claims its network beats predicting the training mean age."""
    return mae < mean_mae, f"MAE {mae:.2f} y vs {mean_mae:.2f} y for the mean"
'''

INIT = '''
"""A toy paper (a test of the plug-in contract)."""
from brainage_lib.registry import Paper

PAPER = Paper(
    name="toy", short="TOY", title="A toy paper", notebook="05_toy",
    transforms={"toy": "brainage_lib.papers.toy.parts:ToyVolume"},
    architectures={"ToyNet": ("brainage_lib.papers.toy.parts:ToyNet", "brainage_lib.papers.toy.parts:ToyConfig")},
    presets="brainage_lib.papers.toy.parts:PRESETS",
    bench="brainage_lib.papers.toy.parts:bench",
    gpu_stages="brainage_lib.papers.toy.parts:gpu_stages",
    claims="brainage_lib.papers.toy.parts:claims",
    numbers="brainage_lib.papers.toy.parts",
)
'''

NOTEBOOK = '''
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · TOY: a toy paper

# %% tags=["parameters"]
from typing import Optional

PROFILE: str = "smoke"  # smoke | paper
DATA_DIR: str = ""  # empty: the simulated toy_like cohort
DATA_SEED: int = 0  # seeds the simulated cohort
SEED: int = 0  # seeds the network and the batch order
DEVICE: str = "auto"  # auto | cpu | cuda
DEVICES: int = 1  # processes per training stage
FORCE: bool = False  # retrain finished stages
OUTPUT_DIR: str = ""  # where results/, figures/, rendered/ go
EPOCHS: Optional[int] = None  # training epochs

# %%
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_lib import paths
from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import load_cohort
from brainage_lib.data.datasets import CachedArrayDataset
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.inference.cards import ModelCard, cohort_space, export_model, transform_spec
from brainage_lib.metrics.verdicts import mean_prediction_mae
from brainage_lib.notebook import start
from brainage_lib.papers.toy import PAPER, parts
from brainage_lib.simulation.simulate import simulate_cohort

NB = "05_toy"
cfg, engine, rec, t_start = start(NB, globals(), data=DATA_DIR or "simulated toy_like")
root = Path(DATA_DIR) if DATA_DIR else paths.data_dir() / "toy_like"
if not DATA_DIR and not (root / "participants.tsv").is_file():
    simulate_cohort("toy_like", root, seed=DATA_SEED, shape=(24, 24, 24), progress=False)
data = load_cohort(root)

# %%
transform = parts.ToyVolume()
arr = cached_array(data, transform, progress=False)
ages = data.ages
order = np.random.default_rng(SEED).permutation(len(ages))
train, test = order[:30], order[30:]
net_cfg = parts.ToyConfig(size=transform.size)
result = train_regressor(parts.ToyNet(net_cfg), CachedArrayDataset(arr, ages, train), None,
                         TrainConfig(epochs=cfg.EPOCHS, batch_size=8, lr=1e-2, seed=SEED), engine, "ToyNet",
                         progress=False)
pred = result.predict(CachedArrayDataset(arr, ages, test), engine.device)
mae = float(np.mean(np.abs(pred - ages[test])))
rec.record("table1.ToyNet.mae", mae, paper=1.0, unit="y")
rec.save_predictions(pd.DataFrame({"evaluation": "test", "participant_id": data.table["participant_id"].to_numpy()[test],
                                   "age": ages[test], "ToyNet": pred}))
outcome, evidence = parts.claims(mae, mean_prediction_mae(ages[test]))
print(rec.claim("beats_mean", "The toy network predicts age better than the mean age.", outcome, evidence,
                "test MAE below that of predicting the test set's mean age", paper="MAE 1.0 y"))
card = ModelCard(paper=PAPER.short, notebook=NB, model="ToyNet", architecture="ToyNet", config=asdict(net_cfg),
                 transform=transform_spec(transform), inputs="volume", profile=cfg.profile, seed=SEED,
                 training_data=rec.doc["data"], space=cohort_space(data), test_mae=mae,
                 target_mean=result.target_mean, target_sd=result.target_sd)
print(export_model(cfg.checkpoint_dir / "models" / "ToyNet.model.pt", result.model, card, result.stage_dir))
rec.finalize()
'''


INIT2 = '''
"""A second toy paper, which shares the first one's parts: two paper notebooks to run at once."""
from brainage_lib.registry import Paper

PAPER = Paper(name="toy2", short="TOY2", title="A second toy paper", notebook="06_toy",
              claims="brainage_lib.papers.toy.parts:claims", numbers="brainage_lib.papers.toy.parts")
'''


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _copy_project(dst: Path) -> None:
    src = paths.project_root()
    ignore = shutil.ignore_patterns("__pycache__", "*.ipynb", ".ipynb_checkpoints")
    shutil.copytree(src / "brainage_lib", dst / "brainage_lib", ignore=ignore)
    shutil.copytree(src / "notebooks", dst / "notebooks", ignore=ignore)
    shutil.copy2(src / "pyproject.toml", dst / "pyproject.toml")


def test_a_toy_paper_plugs_in_without_editing_a_shared_file(tmp_path):
    proj = tmp_path / "project"
    _copy_project(proj)
    before = _digest(proj)
    wing = proj / "brainage_lib" / "papers" / "toy"
    wing.mkdir()
    (wing / "__init__.py").write_text(textwrap.dedent(INIT).lstrip())
    (wing / "parts.py").write_text(textwrap.dedent(PARTS).lstrip())
    (proj / "notebooks" / "05_toy.py").write_text(textwrap.dedent(NOTEBOOK).lstrip())
    (wing.parent / "toy2").mkdir()
    (wing.parent / "toy2" / "__init__.py").write_text(textwrap.dedent(INIT2).lstrip())
    second = textwrap.dedent(NOTEBOOK).lstrip().replace('NB = "05_toy"', 'NB = "06_toy"')
    (proj / "notebooks" / "06_toy.py").write_text(second.replace("# # 05 · TOY", "# # 06 · TOY2"))
    for nb in ("05_toy", "06_toy"):
        for profile, epochs in (("smoke", 20), ("paper", 100)):
            (proj / "notebooks" / "params" / f"{nb}.{profile}.yaml").write_text(f"EPOCHS: {epochs}  # training epochs\n")

    env = {**os.environ, "PYTHONPATH": str(proj), "BRAINAGE_ROOT": str(proj), "BRAINAGE_DATA": str(tmp_path / "data"),
           "BRAINAGE_CACHE": str(tmp_path / "cache"), "BRAINAGE_OUTPUT_DIR": str(tmp_path / "out")}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "brainage_lib.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"brainage {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    where = subprocess.run([sys.executable, "-c", "import brainage_lib; print(brainage_lib.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.strip().startswith(str(proj)), where  # the copy is what runs, not the installed project

    assert "05_toy" in cli("run", "--help") and "06_toy" in cli("run", "--help")
    assert "TOY (05_toy)" in cli("bench", "--list")
    assert "05_toy  ToyNet" in cli("gpu-check", "--list")
    assert "ToyNet" in cli("predict", "--help")
    assert "toy_like" in cli("presets")

    # the two toy papers' notebooks at once (each in its own process), then the report notebook
    out = cli("run", "05_toy", "06_toy", "--profile", "smoke", "--quiet", "--parallel", "2")
    assert "PARALLEL=2" in out
    for nb in ("05_toy", "06_toy"):
        assert out.index(f"{nb}: rendered") < out.index("04_summary: rendered"), out  # the report notebook runs last
        assert (tmp_path / "out" / "rendered" / f"{nb}.log").is_file()
    ran = {nb: json.loads((tmp_path / "out" / "rendered" / f"{nb}.run.json").read_text()) for nb in ("05_toy", "06_toy")}
    spans = [(time.mktime(time.strptime(r["finished"][:19], "%Y-%m-%dT%H:%M:%S")) - r["wall_time_s"],
              time.mktime(time.strptime(r["finished"][:19], "%Y-%m-%dT%H:%M:%S"))) for r in ran.values()]
    assert max(a for a, _ in spans) < min(b for _, b in spans) - 1, f"the two notebooks did not overlap: {spans}"

    results = tmp_path / "out" / "results"
    verdict = json.loads((results / "05_toy.json").read_text())["records"]["claims.beats_mean"]["value"]
    summary = json.loads((results / "04_summary.json").read_text())
    assert "TOY" in json.dumps(summary)
    page = (tmp_path / "out" / "rendered" / "index.html").read_text()
    row = page[page.index("The toy network predicts age better than the mean age."):]
    assert verdict in row[:row.index("</tr>")], "the index shows the toy claim with the verdict its notebook recorded"

    cohort = tmp_path / "data" / "toy_like"
    model = tmp_path / "out" / "checkpoints" / "05_toy" / "models" / "ToyNet.model.pt"
    cli("predict", str(cohort), "--model", str(model), "--out", str(tmp_path / "toy.csv"))
    import pandas as pd

    pred = pd.read_csv(tmp_path / "toy.csv")
    assert len(pred) == 40 and pred["predicted_age"].notna().all()

    after = _digest(proj)
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"shared files changed: {changed}"
