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
# # 03 · LSTM: 2D-ResNet18+LSTM vs 3D-ResNet18 on children's brain MRI
#
# Reproduces He S., Gollub R. L., Murphy S. N., Perez J. D., Prabhu S., Pienaar R.,
# Robertson R. L., Grant P. E., Ou Y. (2020), *Brain age estimation using LSTM on
# children's brain MRI*, ISBI 2020 (`../shared/papers/002_a486f70886c1d42f.txt`).
#
# A volume is read as a sequence of axial slices: a ResNet18 encodes each slice,
# features of `POOL_K` adjacent slices are averaged, a bidirectional LSTM (hidden 64)
# reads the sequence and one FC maps all its outputs to age. The baseline is a
# 3D-ResNet18 on the whole volume. Both use instance normalisation after every conv,
# an MAE loss, Adam at 1e-4 halved every 15 epochs, 60 epochs, batch 1. Discovery:
# an 80/20 split of an NIH-PD-like cohort (0-22 y, 12 sites, 1.5T); replication: an
# MGHBCH-like cohort (0-6 y, an unseen 3T MPRAGE-like site), with models trained on
# 0-22 y and on 0-6 y.

# %% tags=["parameters"]
from typing import Optional

# Core parameters first; every other entry left at None takes the profile's value from
# params/03_lstm.<PROFILE>.yaml. Give a value here (or `-p NAME=value`) to override it.
PROFILE: str = "quick"  # smoke | quick | paper | auto (paper with CUDA, else quick)
DATA_DIR: str = ""  # empty: simulated cohorts; else a folder with nihpd_like/ and mghbch_like/ cohort folders
SEED: int = 0  # seeds the simulator, the split, initialisation and batch order
DEVICE: str = "auto"  # auto | cpu | cuda
OUTPUT_DIR: str = ""  # where results/, figures/, rendered/ go; empty: the project root
N_DISCOVERY: Optional[int] = None  # nihpd_like subjects (0 means the preset's 1200)
N_REPLICATION: Optional[int] = None  # mghbch_like subjects (0 means the preset's 430)
SHAPE: Optional[int] = None  # cubic simulation grid (0 means the 2 mm MNI grid)
ATLAS_SHAPE: Optional[str] = None  # atlas grid of the volumes, paper 128x160x112
SLICE_SIZE: Optional[int] = None  # each axial slice resized to this square, paper 50
POOL_K: Optional[int] = None  # slices averaged per LSTM step; the value of k is missing from the paper text, 4 divides 112
WIDTH: Optional[float] = None  # multiplier on every ResNet stage's channels, paper 1.0
EPOCHS: Optional[int] = None  # paper 60
BATCH_SIZE: Optional[int] = None  # paper 1
LR: Optional[float] = None  # paper 1e-4
LR_STEP: Optional[int] = None  # epochs between halvings of the learning rate, paper 15
YOUNG_MAX_AGE: Optional[float] = None  # upper age of the "trained on 0-6 y" discovery subset, paper 6
STEM_KERNEL: Optional[int] = None  # 3D-ResNet18's first conv: 7 = standard ResNet18 stem, 3 = the paper's literal "3x3x3"

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from brainage_lib.data.cache import cached_array
from brainage_lib.data.datasets import SliceSequenceDataset, VolumeDataset
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.splits import stratified_split
from brainage_lib.data.transforms import AtlasVolume, LSTMSlices
from brainage_lib.engine.training import TrainConfig, save_checkpoint, train_regressor
from brainage_lib.metrics.scores import cs_area, cumulative_score
from brainage_lib.metrics.stats import wilcoxon_paired
from brainage_lib.papers.lstm import evaluation as L
from brainage_lib.papers.lstm.evaluation import DISCOVERY_EDGES, DISCOVERY_LABELS, REPLICATION_EDGES, REPLICATION_LABELS
from brainage_lib.run.params import resolve_params
from brainage_lib.run.provenance import provenance_text
from brainage_lib.run.seeding import resolve_device, seed_everything

NB = "03_lstm"
cfg = resolve_params(NB, globals())
seed_everything(SEED)
device = resolve_device(DEVICE)
atlas = L.parse_shape(cfg.ATLAS_SHAPE)
rec = cfg.recorder(DATA_DIR or "simulated", device=device, paper=L.PAPER)
young = f"0-{cfg.YOUNG_MAX_AGE:g}"  # label of the young training regime ("young" in record keys)
t_start = time.time()
display(Markdown(cfg.banner()))
print(provenance_text(device))
cfg.table()

# %% [markdown]
# ### Readings of the paper and deviations from it
# - **Slicing axis**: the paper names neither the slice orientation nor the number of slices; we
#   slice along the last axis of its [128,160,112] SRI24 grid (axial, 112 slices), inferred from
#   the grid, not stated.
# - **Pooling window k**: its value is missing from the paper's text; `POOL_K` = 4 divides 112.
# - **3D-ResNet18 stem**: `STEM_KERNEL`, printed in section 2.
# - **Normalisation**: the paper subtracts the subject's mean and divides "by the variance"; we
#   divide by the SD (standard z-scoring); dividing by the variance is probably a typo.
# - **Age groups**: "0-5", "6-10", ... are read as half-open year intervals, the last one closed
#   (`brainage_lib.papers.lstm.evaluation`).
# - **Precision**: on CUDA the trainings use bf16 autocast (printed with the training times); the
#   paper's K80 has no bf16.

# %% [markdown]
# ## 1 Data
# Discovery cohort (`nihpd_like`) split 80/20, stratified by age; replication cohort
# (`mghbch_like`) never seen in training. Volumes are resampled to the atlas grid and
# z-scored per subject; the LSTM reads each axial slice resized to `SLICE_SIZE`^2. Both
# inputs are cached on disk and memory-mapped.

# %%
sim = {"seed": SEED, "shape": cfg.SHAPE or None}
disc = open_cohort("nihpd_like", DATA_DIR, n=cfg.N_DISCOVERY or None, **sim)
repl = open_cohort("mghbch_like", DATA_DIR, n=cfg.N_REPLICATION or None, **sim)
train_idx, test_idx = stratified_split(disc.ages, (0.8, 0.2), seed=SEED)
young_idx = train_idx[disc.ages[train_idx] <= cfg.YOUNG_MAX_AGE]
young_test_idx = test_idx[disc.ages[test_idx] <= cfg.YOUNG_MAX_AGE]
slices_tr, volume_tr = LSTMSlices(atlas_shape=atlas, slice_size=cfg.SLICE_SIZE), AtlasVolume(atlas_shape=atlas)
arrays = {name: {L.LSTM_NAME: cached_array(c, slices_tr), L.CNN3D_NAME: cached_array(c, volume_tr)}
          for name, c in (("discovery", disc), ("replication", repl))}
sizes = {"discovery train (0-22 y)": len(train_idx), f"discovery train ({young} y)": len(young_idx),
         "discovery test": len(test_idx), f"discovery test ({young} y)": len(young_test_idx), "replication": len(repl)}
for k, v in sizes.items():
    rec.record(f"data.n.{k}", v)
rec.record("data.paper_n_discovery", len(disc), paper=1212)
rec.record("data.paper_n_replication", len(repl), paper=428)
pd.Series(sizes, name="subjects").to_frame()


# %%
def dataset(model_name: str, cohort: str, indices=None):
    """The cached inputs of one model for one cohort (slice stacks or volumes)."""
    c = disc if cohort == "discovery" else repl
    make = SliceSequenceDataset if model_name == L.LSTM_NAME else VolumeDataset
    return make(arrays[cohort][model_name], c.ages, indices)


fig, ax = plt.subplots(1, 2, figsize=(9, 3))
ax[0].hist([disc.ages[train_idx], disc.ages[test_idx]], bins=22, range=(0, 22), stacked=True, label=["train", "test"])
ax[0].set_title("discovery (nihpd_like)")
ax[0].legend()
ax[1].hist(repl.ages, bins=12, range=(0, 6))
ax[1].set_title("replication (mghbch_like)")
for a in ax:
    a.set_xlabel("age (years)")
rec.figure(fig, "age_distributions",
           "Age distributions of the discovery split and the replication cohort (paper Fig. 1).")
plt.show()

# %% [markdown]
# ## 2 Models
# Paper sizes unless `WIDTH`, `ATLAS_SHAPE` or `SLICE_SIZE` say otherwise (printed above).
# 3D stem: `STEM_KERNEL` defaults to 7 because the paper's "3x3x3" describes "the corresponding 3D-ResNet18" of ResNet18 [8], whose stem is 7x7 stride 2 (its 1x1 shortcuts are not 3x3x3 either); 3 is the literal reading.

# %%
models = L.build_models(atlas, cfg.SLICE_SIZE, cfg.POOL_K, cfg.WIDTH, stem_kernel=cfg.STEM_KERNEL)
for name, m in models.items():
    rec.record(f"model.{name}.parameters", L.n_parameters(m))
rec.record(f"model.{L.CNN3D_NAME}.stem_kernel", cfg.STEM_KERNEL)
stem_reading = {7: "standard ResNet18 stem", 3: "the paper's literal 3x3x3"}.get(cfg.STEM_KERNEL, "neither reading")
sk = cfg.STEM_KERNEL
print(f"STEM_KERNEL = {sk}: 3D-ResNet18 stem {sk}x{sk}x{sk}, stride 2 ({stem_reading}); 2D slice encoder: ResNet18's 7x7 stem")
pd.DataFrame({"parameters": {k: f"{L.n_parameters(m):,}" for k, m in models.items()}})

# %% [markdown]
# ## 3 Training
# Four trainings: each model on the discovery training split (0-22 y) and on its
# young part (0-`YOUNG_MAX_AGE` y). MAE loss, Adam, step decay; no validation set in the
# paper, so the last epoch's weights are evaluated. Wall time is measured per training.

# %%
tcfg = TrainConfig(epochs=cfg.EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.LR, lr_step=cfg.LR_STEP, lr_gamma=0.5,
                   loss="l1", seed=SEED)
trained = {}
histories = []
for regime, idx in (("0-22", train_idx), ("young", young_idx)):
    for name in L.MODELS:
        seed_everything(SEED)
        model = L.build_models(atlas, cfg.SLICE_SIZE, cfg.POOL_K, cfg.WIDTH, stem_kernel=cfg.STEM_KERNEL)[name]
        if device.type == "cuda" and name == L.CNN3D_NAME:
            model = model.to(memory_format=torch.channels_last_3d)
        res = train_regressor(model, dataset(name, "discovery", idx), None, tcfg, device, desc=f"{name} [{regime}]")
        trained[(regime, name)] = res
        rec.record(f"train_time_s.{regime}.{name}", res.wall_time_s, unit="s")
        histories.append(res.history.assign(model=name, regime=regime))
        save_checkpoint(cfg.checkpoint_dir / f"{regime}_{name.replace('+', '_').replace(' ', '')}.pt", res.model,
                        {"params": cfg.as_dict(), "model": name, "regime": regime},
                        {"target_mean": res.target_mean, "target_sd": res.target_sd})
history = pd.concat(histories)

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, regime in zip(axes, ("0-22", "young")):
    for name in L.MODELS:
        h = history[(history.model == name) & (history.regime == regime)]
        ax.plot(h["epoch"], h["train_loss"] * trained[(regime, name)].target_sd, label=name)
    ax.set_title(f"trained on {regime if regime == '0-22' else young} y")
    ax.set_xlabel("epoch")
axes[0].set_ylabel("training MAE (years)")
axes[0].legend()
rec.figure(fig, "training_curves", "Training MAE per epoch.")
plt.show()

# %% [markdown]
# ## 4 Evaluation
# ### Table 1: discovery test set, models trained on 0-22 y (MAE in years, paper / this run)

# %%
age_test, age_repl = disc.ages[test_idx], repl.ages
young_test = age_test <= cfg.YOUNG_MAX_AGE  # the discovery test subjects inside the young models' age range
pred = {}
for name in L.MODELS:
    for regime in ("0-22", "young"):
        pred[(regime, "replication", name)] = trained[(regime, name)].predict(dataset(name, "replication"), device)
    pred[("0-22", "discovery", name)] = trained[("0-22", name)].predict(dataset(name, "discovery", test_idx), device)
    # the young models only on the discovery test subjects of their own age range (same order as age_test[young_test])
    pred[("young", "discovery", name)] = (trained[("young", name)].predict(dataset(name, "discovery", young_test_idx), device)
                                          if len(young_test_idx) else np.empty(0))


def record_table(key: str, table: pd.DataFrame) -> None:
    """Record a paper-vs-this-run group table (MAE and subject count per model and group)."""
    for _, r in table.iterrows():
        rec.record(f"{key}.{r['model']}.{r['group']}", r["this run MAE"], paper=r["paper MAE"], unit="years")
        rec.record(f"{key}_n.{r['model']}.{r['group']}", r["n"])


t1 = L.group_table(age_test, {m: pred[("0-22", "discovery", m)] for m in L.MODELS}, DISCOVERY_EDGES, DISCOVERY_LABELS, L.PAPER_TABLE1)
record_table("table1", t1)
L.wide(t1)

# %% [markdown]
# ### Table 2: replication cohort, models trained on 0-22 y

# %%
t2 = L.group_table(age_repl, {m: pred[("0-22", "replication", m)] for m in L.MODELS}, REPLICATION_EDGES, REPLICATION_LABELS, L.PAPER_TABLE2)
record_table("table2", t2)
L.wide(t2)

# %% [markdown]
# ### Table 3: replication cohort, models trained on 0-`YOUNG_MAX_AGE` y

# %%
t3 = L.group_table(age_repl, {m: pred[("young", "replication", m)] for m in L.MODELS}, REPLICATION_EDGES, REPLICATION_LABELS, L.PAPER_TABLE3)
record_table("table3", t3)
L.wide(t3)

# %% [markdown]
# ### Discovery test subjects aged 0-`YOUNG_MAX_AGE` y: trained on 0-22 y vs on 0-`YOUNG_MAX_AGE` y
# Not in the paper: the young models evaluated on the unseen discovery subjects of their own age
# range (same sites and protocol as their training), beside the 0-22 y models on the same subjects.

# %%
rec.record("young_discovery_test_n", int(young_test.sum()))
young_rows = {}
for regime in ("0-22", "young"):
    for name in L.MODELS:
        p = pred[(regime, "discovery", name)]
        err = np.abs((p[young_test] if regime == "0-22" else p) - age_test[young_test])
        young_rows[(f"trained {regime if regime == '0-22' else young} y", name)] = (
            rec.record(f"young_discovery_test.{regime}.{name}", float(err.mean()) if err.size else None, unit="years"))
print(f"{int(young_test.sum())} discovery test subjects aged <= {cfg.YOUNG_MAX_AGE:g} y")
pd.Series(young_rows, name="MAE (years)").unstack()

# %% [markdown]
# ### Paired comparison of the two models' absolute errors (Wilcoxon signed-rank, same subjects)

# %%
EVALUATIONS = (("discovery test, trained 0-22", "0-22", "discovery", age_test),
               ("replication, trained 0-22", "0-22", "replication", age_repl),
               ("replication, trained young", "young", "replication", age_repl))
rows = []
for label, regime, cohort, ages in EVALUATIONS:
    e_lstm = np.abs(pred[(regime, cohort, L.LSTM_NAME)] - ages)
    e_3d = np.abs(pred[(regime, cohort, L.CNN3D_NAME)] - ages)
    stat, p = wilcoxon_paired(e_lstm, e_3d)
    key = label.replace(", ", ".").replace(" ", "_")
    rec.record(f"wilcoxon.{key}.p", p)
    rec.record(f"wilcoxon.{key}.median_diff", float(np.median(e_lstm - e_3d)), unit="years")
    rows.append({"comparison": label, "MAE LSTM": e_lstm.mean(), "MAE 3D": e_3d.mean(),
                 "median(|e_LSTM| - |e_3D|)": np.median(e_lstm - e_3d), "Wilcoxon p": p})
pd.DataFrame(rows).set_index("comparison").round(4)

# %% [markdown]
# ### Reference: predicting the training set's mean age
# A model that has learned nothing about the images scores this MAE; each model's
# average is compared with it before any claim about the two models is judged.

# %%
ref_rows = []
for label, regime, cohort, ages in EVALUATIONS:
    idx = train_idx if regime == "0-22" else young_idx
    mean_mae = float(np.mean(np.abs(disc.ages[idx].mean() - ages)))
    key = label.replace(", ", ".").replace(" ", "_")
    rec.record(f"reference.mean_prediction.{key}", mean_mae, unit="years")
    row = {"comparison": label, "MAE predicting the mean": mean_mae}
    for name in L.MODELS:
        m = float(np.mean(np.abs(pred[(regime, cohort, name)] - ages)))
        row[f"MAE {name}"] = m
        rec.record(f"reference.beats_mean.{key}.{name}", m < L.BEATS_MEAN_FACTOR * mean_mae)
    ref_rows.append(row)
print(f"A model beats the mean where its MAE < {L.BEATS_MEAN_FACTOR:g} x the MAE of predicting the training mean.")
pd.DataFrame(ref_rows).set_index("comparison").round(3)

# %% [markdown]
# ### Training time
# The paper reports 3 h (LSTM) vs 7 h (3D) on an NVIDIA K80, in the paragraph on the trainings on
# 0-6 y (Table 3). Both regimes are measured here; the 0-`YOUNG_MAX_AGE` y ratio is the one
# compared with the paper's 7/3.

# %%
amp_used = tcfg.amp and device.type == "cuda"
rec.record("train_bf16_autocast", amp_used)
ratio = {}
for regime in ("0-22", "young"):
    ratio[regime] = trained[(regime, L.CNN3D_NAME)].wall_time_s / trained[(regime, L.LSTM_NAME)].wall_time_s
    rec.record(f"train_time_ratio_3d_over_lstm.{regime}", ratio[regime], paper=7 / 3 if regime == "young" else None)
for name in L.MODELS:
    rec.record(f"train_hours_paper.{young}.{name}", trained[("young", name)].wall_time_s / 3600,
               paper=L.PAPER_TRAIN_HOURS_K80[name], unit="h")
times = pd.DataFrame({f"train on {r if r == '0-22' else young} y (s)": {m: trained[(r, m)].wall_time_s for m in L.MODELS}
                      for r in ("0-22", "young")})
times.loc["3D / LSTM"] = [ratio["0-22"], ratio["young"]]
print(f"on {device}, bf16 autocast: {'yes' if amp_used else 'no'} (TrainConfig.amp={tcfg.amp}, used on CUDA only)")
print(f"3D / LSTM training-time ratio: trained 0-22 y {ratio['0-22']:.2f}; trained {young} y {ratio['young']:.2f} "
      f"(paper, trained 0-6 y on a K80: 7 h / 3 h = {7 / 3:.2f})")
times.round(2)

# %% [markdown]
# ## 5 Figures
# Cumulative score CS(alpha): the fraction of subjects with absolute error <= alpha
# (paper Fig. 4 for the discovery test set, Fig. 5 for the replication cohort).

# %%
panels = (("discovery test (trained 0-22)", "0-22", "discovery", age_test),
          ("replication (trained 0-22)", "0-22", "replication", age_repl),
          (f"replication (trained {young})", "young", "replication", age_repl))
cs_alphas = np.concatenate([[0.0], L.CS_LEVELS])
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (title, regime, cohort, ages) in zip(axes, panels):
    for name in L.MODELS:
        err = np.abs(pred[(regime, cohort, name)] - ages)
        ax.plot(cs_alphas, 100 * cumulative_score(err, cs_alphas), label=name)
        rec.record(f"cs.{regime}.{cohort}.{name}.at_1y", float(cumulative_score(err, [1.0])[0]))
        rec.record(f"cs_area.{regime}.{cohort}.{name}", cs_area(err, L.CS_ALPHA_MAX))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("error level alpha (years)")
    ax.set_ylim(0, 100)
axes[0].set_ylabel("CS (%)")
axes[0].legend()
rec.figure(fig, "cumulative_scores", "Cumulative score curves of both models (paper Figs. 4 and 5).")
plt.show()

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (title, regime, cohort, ages) in zip(axes, panels):
    for name in L.MODELS:
        ax.scatter(ages, pred[(regime, cohort, name)], s=8, alpha=0.6, label=name)
    lo, hi = float(ages.min()), float(ages.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("age (years)")
axes[0].set_ylabel("predicted age")
axes[0].legend()
rec.figure(fig, "predicted_vs_true", "Predicted vs chronological age.")
plt.show()

# %% [markdown]
# ## What reproduced and what did not
# Each claim is judged from the recorded numbers by the rule printed beside it. The thresholds
# are constants of `brainage_lib.papers.lstm.evaluation` (this project's choices; the paper states none), and the
# rule texts below are written from the same values the code compares with.

# %%
display(Markdown(
    f"Rules: a claim that one model is better is **reproduced** when this run's MAE points the same way; "
    f"\"much better\" also needs the paired Wilcoxon test at p < {L.WILCOXON_LEVEL:g}; \"about the same\" means "
    f"average MAEs within {100 * L.SAME_MAE_TOLERANCE:g} % of the larger; CS curves are compared by their mean over "
    f"alpha in [0, {L.CS_ALPHA_MAX:g}] y or, for \"every error level\", at the {len(L.CS_LEVELS)} levels "
    f"{L.CS_LEVELS[0]:g}, {L.CS_LEVELS[1]:g}, ..., {L.CS_LEVELS[-1]:g} y. A comparison is **not testable** on an "
    f"evaluation where neither model's MAE is below {L.BEATS_MEAN_FACTOR:g} x the MAE of predicting the training "
    "mean (neither has learned age there)."))


def mae(table: pd.DataFrame, model: str, group: str = "Average") -> float:
    """This run's MAE of ``model`` in ``group`` of a group table (NaN for an empty group)."""
    return float(table[(table.model == model) & (table.group == group)]["this run MAE"].iloc[0])


def no_learning(evaluation: str) -> Optional[str]:
    """Why a comparison on ``evaluation`` cannot be judged, or None."""
    if any(rec.get(f"reference.beats_mean.{evaluation}.{n}") for n in L.MODELS):
        return None
    return (f"neither model's MAE is below {L.BEATS_MEAN_FACTOR:g} x that of predicting the training mean on "
            f"{evaluation.replace('_', ' ').replace('.', ', ')}")


DISC, REP, REP_YOUNG = "discovery_test.trained_0-22", "replication.trained_0-22", "replication.trained_young"
LSTM, CNN = L.LSTM_NAME, L.CNN3D_NAME
cs_l = cumulative_score(np.abs(pred[("0-22", "replication", LSTM)] - age_repl), L.CS_LEVELS)
cs_3 = cumulative_score(np.abs(pred[("0-22", "replication", CNN)] - age_repl), L.CS_LEVELS)
area = {n: rec.get(f"cs_area.0-22.discovery.{n}") for n in L.MODELS}
better = [g for g in ("6-10", "11-15", "16-22") if mae(t1, LSTM, g) < mae(t1, CNN, g)]
p_rep = rec.get("wilcoxon.replication.trained_0-22.p")
a_l, a_3 = mae(t3, LSTM), mae(t3, CNN)
bins_l, bins_3 = [mae(t3, LSTM, g) for g in REPLICATION_LABELS], [mae(t3, CNN, g) for g in REPLICATION_LABELS]
first, last, middle = REPLICATION_LABELS[0], REPLICATION_LABELS[-1], REPLICATION_LABELS[1:-1]
claims = [  # key, claim, paper, outcome (None: not testable), evidence, rule, evaluation
    ("discovery_average", "Discovery: LSTM has the lower average MAE", "0.96 vs 1.07 y",
     mae(t1, LSTM) < mae(t1, CNN), f"{mae(t1, LSTM):.2f} vs {mae(t1, CNN):.2f} y",
     "LSTM's average discovery-test MAE below 3D's", DISC),
    ("discovery_older_groups", "Discovery: LSTM is better in 6-10, 11-15 and 16-22 y", "0.92/1.02/1.79 vs 1.12/1.19/1.85 y",
     len(better) == 3, f"LSTM better in {', '.join(better) or 'none'}", "LSTM's MAE below 3D's in all three groups", DISC),
    ("discovery_cs", "Discovery: LSTM better than 3D in terms of CS", "Fig. 4",
     area[LSTM] > area[CNN], f"mean CS over [0, {L.CS_ALPHA_MAX:g}] y: {area[LSTM]:.3f} vs {area[CNN]:.3f}",
     f"LSTM's mean CS over alpha in [0, {L.CS_ALPHA_MAX:g}] y (area under the CS curve / {L.CS_ALPHA_MAX:g} y) "
     "above 3D's", DISC),
    ("replication_much_better", "Replication (trained 0-22): LSTM much better", "1.14 vs 2.64 y",
     mae(t2, LSTM) < mae(t2, CNN) and p_rep < L.WILCOXON_LEVEL,
     f"{mae(t2, LSTM):.2f} vs {mae(t2, CNN):.2f} y, Wilcoxon p = {p_rep:.3g}",
     f"LSTM's replication MAE below 3D's and paired Wilcoxon p < {L.WILCOXON_LEVEL:g}", REP),
    ("replication_cs_curve", "Replication (trained 0-22): LSTM's CS curve at or above 3D's at every alpha", "Fig. 5",
     bool(np.all(cs_l >= cs_3)),
     f"LSTM at or above at {int(np.sum(cs_l >= cs_3))}/{len(L.CS_LEVELS)} alpha levels ({L.CS_LEVELS[0]:g}-{L.CS_ALPHA_MAX:g} y)",
     f"LSTM's CS at or above 3D's at all {len(L.CS_LEVELS)} levels alpha = {L.CS_LEVELS[0]:g}, {L.CS_LEVELS[1]:g}, ..., "
     f"{L.CS_LEVELS[-1]:g} y", REP),
    ("replication_young_same", f"Replication (trained {young}): average MAEs about the same",
     "0.78 vs 0.79 y", abs(a_l - a_3) <= L.SAME_MAE_TOLERANCE * max(a_l, a_3), f"{a_l:.2f} vs {a_3:.2f} y",
     f"the two average MAEs within {100 * L.SAME_MAE_TOLERANCE:g} % of the larger", REP_YOUNG),
    ("replication_young_ends", f"Replication (trained {young}): LSTM more accurate at both ends of the age range, "
     "3D in the middle", "0-1 y 0.24 vs 0.66, 5-6 y 0.92 vs 2.10; 3D lower in 1-2, 2-3, 3-4 y",
     L.lstm_wins_ends(bins_l, bins_3), "LSTM vs 3D MAE per year: " + ", ".join(
         f"{g} {x:.2f} vs {y:.2f}" for g, x, y in zip(REPLICATION_LABELS, bins_l, bins_3)),
     f"LSTM's MAE below 3D's in the {first} and {last} y bins and 3D's below LSTM's in at least one of "
     f"{', '.join(middle)} y; not testable if the {first} or {last} y bin is empty", REP_YOUNG),
    ("lstm_trains_faster", f"LSTM trains faster than 3D (trained {young})", "3 h vs 7 h (K80)", ratio["young"] > 1,
     f"3D/LSTM wall-time ratio {ratio['young']:.2f} trained {young} y ({ratio['0-22']:.2f} trained 0-22 y) on {device}"
     f"{', bf16 autocast' if amp_used else ''}",
     f"3D's measured wall time above LSTM's for the trainings on {young} y", None),
]
learned = all(r[f"MAE {n}"] < L.BEATS_MEAN_FACTOR * r["MAE predicting the mean"] for r in ref_rows for n in L.MODELS)
rec.record("reference.both_models_beat_mean_everywhere", learned)
lines = []
for key, text, paper, ok, evidence, rule, evaluation in claims:
    reason = no_learning(evaluation) if evaluation else None
    if ok is None:
        reason = reason or "an age bin the rule needs has no subject"
    word = rec.claim(key, text, ok, evidence, rule, paper=paper, untestable_because=reason)
    lines.append(f"- **{word}**: {text} (paper {paper}) — this run: {evidence}" + (f"; {reason}." if reason else "."))
if not learned:
    lines.append(f"\n**Caution:** at least one model's MAE is not below {L.BEATS_MEAN_FACTOR:g} x that of predicting "
                 "the training mean somewhere (see the reference table), so differences between the models there say "
                 "little about the architectures.")
if cfg.profile != "paper":
    lines.append(f"\nThis was a **{cfg.profile}** run on {DATA_DIR or 'simulated cohorts'}: reduced sizes and epochs, "
                 "so verdicts describe this configuration, not the paper's.")
display(Markdown("\n".join(lines)))
evaluations = (("discovery test (trained 0-22)", "0-22", "discovery", disc.table["participant_id"].iloc[test_idx], age_test),
               ("replication (trained 0-22)", "0-22", "replication", repl.table["participant_id"], age_repl),
               (f"replication (trained {young})", "young", "replication", repl.table["participant_id"], age_repl))
rec.save_predictions(pd.concat([pd.DataFrame({"evaluation": label, "participant_id": ids.to_numpy(), "age": ages,
                                              **{n: pred[(regime, cohort, n)] for n in L.MODELS}})
                                for label, regime, cohort, ids, ages in evaluations], ignore_index=True))
rec.record("wall_time_s", time.time() - t_start, unit="s")
print("results:", rec.finalize())

# %% [markdown]
# ## References
# - He S. et al. (2020) Brain age estimation using LSTM on children's brain MRI. ISBI 2020, arXiv:2002.09045.
# - Evans A. C. & Brain Development Cooperative Group (2006) The NIH MRI study of normal brain development. NeuroImage 30:184-202.
# - He K. et al. (2016) Deep residual learning for image recognition. CVPR.
# - Ulyanov D. et al. (2016) Instance normalization: the missing ingredient for fast stylization. arXiv:1607.08022.
