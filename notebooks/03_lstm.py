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

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from brainage_lib import lstm as L
from brainage_lib.cache import cached_array
from brainage_lib.data import open_cohort
from brainage_lib.datasets import SliceSequenceDataset, VolumeDataset
from brainage_lib.figures import save_figure
from brainage_lib.params import resolve_params
from brainage_lib.provenance import provenance_text
from brainage_lib.results import Recorder
from brainage_lib.scores import DISCOVERY_EDGES, DISCOVERY_LABELS, REPLICATION_EDGES, REPLICATION_LABELS, cumulative_score
from brainage_lib.seeding import resolve_device, seed_everything
from brainage_lib.splits import stratified_split
from brainage_lib.stats import wilcoxon_paired
from brainage_lib.training import TrainConfig, save_checkpoint, train_regressor
from brainage_lib.transforms import AtlasVolume, LSTMSlices

NB = "03_lstm"
cfg = resolve_params(NB, PROFILE, N_DISCOVERY=N_DISCOVERY, N_REPLICATION=N_REPLICATION, SHAPE=SHAPE,
                     ATLAS_SHAPE=ATLAS_SHAPE, SLICE_SIZE=SLICE_SIZE, POOL_K=POOL_K, WIDTH=WIDTH, EPOCHS=EPOCHS,
                     BATCH_SIZE=BATCH_SIZE, LR=LR, LR_STEP=LR_STEP, YOUNG_MAX_AGE=YOUNG_MAX_AGE)
seed_everything(SEED)
device = resolve_device(DEVICE)
atlas = L.parse_shape(cfg.ATLAS_SHAPE)
rec = Recorder(NB, cfg.profile, DATA_DIR or "simulated", params=cfg.as_dict(), output_dir=OUTPUT_DIR or None, device=device)
out_dir = OUTPUT_DIR or None
t_start = time.time()
display(Markdown(f"**{cfg.banner()}**"))
print(provenance_text(device))
cfg.table()

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
slices_tr, volume_tr = LSTMSlices(atlas_shape=atlas, slice_size=cfg.SLICE_SIZE), AtlasVolume(atlas_shape=atlas)
arrays = {name: {L.LSTM_NAME: cached_array(c, slices_tr), L.CNN3D_NAME: cached_array(c, volume_tr)}
          for name, c in (("discovery", disc), ("replication", repl))}
sizes = {"discovery train (0-22 y)": len(train_idx), f"discovery train (0-{cfg.YOUNG_MAX_AGE:g} y)": len(young_idx),
         "discovery test": len(test_idx), "replication": len(repl)}
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
save_figure(fig, NB, "age_distributions", params=cfg.as_dict(), output_dir=out_dir,
            caption="Age distributions of the discovery split and the replication cohort (paper Fig. 1).")
plt.show()

# %% [markdown]
# ## 2 Models
# Paper sizes unless `WIDTH`, `ATLAS_SHAPE` or `SLICE_SIZE` say otherwise (printed above).

# %%
models = L.build_models(atlas, cfg.SLICE_SIZE, cfg.POOL_K, cfg.WIDTH)
for name, m in models.items():
    rec.record(f"model.{name}.parameters", L.n_parameters(m))
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
        model = L.build_models(atlas, cfg.SLICE_SIZE, cfg.POOL_K, cfg.WIDTH)[name]
        if device.type == "cuda" and name == L.CNN3D_NAME:
            model = model.to(memory_format=torch.channels_last_3d)
        res = train_regressor(model, dataset(name, "discovery", idx), None, tcfg, device, desc=f"{name} [{regime}]")
        trained[(regime, name)] = res
        rec.record(f"train_time_s.{regime}.{name}", res.wall_time_s, unit="s")
        histories.append(res.history.assign(model=name, regime=regime))
        save_checkpoint(f"{rec.dir.parent}/checkpoints/{NB}/{regime}_{name.replace('+', '_').replace(' ', '')}.pt", res.model,
                        {"params": cfg.as_dict(), "model": name, "regime": regime},
                        {"target_mean": res.target_mean, "target_sd": res.target_sd})
history = pd.concat(histories)
times = pd.DataFrame({r: {m: trained[(r, m)].wall_time_s for m in L.MODELS} for r in ("0-22", "young")}).round(1)
times.columns = ["train on 0-22 y (s)", f"train on 0-{cfg.YOUNG_MAX_AGE:g} y (s)"]
times

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
for ax, regime in zip(axes, ("0-22", "young")):
    for name in L.MODELS:
        h = history[(history.model == name) & (history.regime == regime)]
        ax.plot(h["epoch"], h["train_loss"] * trained[(regime, name)].target_sd, label=name)
    ax.set_title(f"trained on {regime if regime == '0-22' else f'0-{cfg.YOUNG_MAX_AGE:g}'} y")
    ax.set_xlabel("epoch")
axes[0].set_ylabel("training MAE (years)")
axes[0].legend()
save_figure(fig, NB, "training_curves", params=cfg.as_dict(), output_dir=out_dir, caption="Training MAE per epoch.")
plt.show()

# %% [markdown]
# ## 4 Evaluation
# ### Table 1: discovery test set, models trained on 0-22 y (MAE in years, paper / this run)

# %%
pred = {}
for regime in ("0-22", "young"):
    for name in L.MODELS:
        res = trained[(regime, name)]
        pred[(regime, "discovery", name)] = res.predict(dataset(name, "discovery", test_idx), device)
        pred[(regime, "replication", name)] = res.predict(dataset(name, "replication"), device)
age_test, age_repl = disc.ages[test_idx], repl.ages


def record_table(key: str, table: pd.DataFrame) -> None:
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
# ### Paired comparison of the two models' absolute errors (Wilcoxon signed-rank, same subjects)

# %%
rows = []
for label, regime, cohort, ages in (("discovery test, trained 0-22", "0-22", "discovery", age_test),
                                    ("replication, trained 0-22", "0-22", "replication", age_repl),
                                    ("replication, trained young", "young", "replication", age_repl)):
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
for label, regime, cohort, ages in (("discovery test, trained 0-22", "0-22", "discovery", age_test),
                                    ("replication, trained 0-22", "0-22", "replication", age_repl),
                                    ("replication, trained young", "young", "replication", age_repl)):
    idx = train_idx if regime == "0-22" else young_idx
    mean_mae = float(np.mean(np.abs(disc.ages[idx].mean() - ages)))
    key = label.replace(", ", ".").replace(" ", "_")
    rec.record(f"reference.mean_prediction.{key}", mean_mae, unit="years")
    row = {"comparison": label, "MAE predicting the mean": mean_mae}
    for name in L.MODELS:
        m = float(np.mean(np.abs(pred[(regime, cohort, name)] - ages)))
        row[f"MAE {name}"] = m
        rec.record(f"reference.beats_mean.{key}.{name}", m < 0.9 * mean_mae)
    ref_rows.append(row)
pd.DataFrame(ref_rows).set_index("comparison").round(3)

# %% [markdown]
# ### Training time
# The paper reports 3 h (LSTM) vs 7 h (3D) on an NVIDIA K80 for a full training.

# %%
for name in L.MODELS:
    rec.record(f"train_hours_paper.{name}", trained[("0-22", name)].wall_time_s / 3600, paper=L.PAPER_TRAIN_HOURS_K80[name], unit="h")
ratio = trained[("0-22", L.CNN3D_NAME)].wall_time_s / trained[("0-22", L.LSTM_NAME)].wall_time_s
rec.record("train_time_ratio_3d_over_lstm", ratio, paper=7 / 3)
print(f"3D / LSTM training-time ratio: {ratio:.2f} (paper: {7 / 3:.2f}) on {device}")

# %% [markdown]
# ## 5 Figures
# Cumulative score CS(alpha): the fraction of subjects with absolute error <= alpha
# (paper Figs. 4-5).

# %%
panels = (("discovery test (trained 0-22)", "0-22", "discovery", age_test, 4.0),
          ("replication (trained 0-22)", "0-22", "replication", age_repl, 4.0),
          (f"replication (trained 0-{cfg.YOUNG_MAX_AGE:g})", "young", "replication", age_repl, 3.0))
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (title, regime, cohort, ages, amax) in zip(axes, panels):
    alphas = np.linspace(0, amax, 41)
    for name in L.MODELS:
        cs = cumulative_score(np.abs(pred[(regime, cohort, name)] - ages), alphas)
        ax.plot(alphas, 100 * cs, label=name)
        rec.record(f"cs.{regime}.{cohort}.{name}.at_1y", float(cumulative_score(np.abs(pred[(regime, cohort, name)] - ages), [1.0])[0]))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("error level alpha (years)")
    ax.set_ylim(0, 100)
axes[0].set_ylabel("CS (%)")
axes[0].legend()
save_figure(fig, NB, "cumulative_scores", params=cfg.as_dict(), output_dir=out_dir,
            caption="Cumulative score curves of both models (paper Figs. 4 and 5).")
plt.show()

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (title, regime, cohort, ages, _) in zip(axes, panels):
    for name in L.MODELS:
        ax.scatter(ages, pred[(regime, cohort, name)], s=8, alpha=0.6, label=name)
    lo, hi = float(ages.min()), float(ages.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("age (years)")
axes[0].set_ylabel("predicted age")
axes[0].legend()
save_figure(fig, NB, "predicted_vs_true", params=cfg.as_dict(), output_dir=out_dir, caption="Predicted vs chronological age.")
plt.show()

# %% [markdown]
# ## What reproduced and what did not
# Rule: a claim that one model is better is **reproduced** when this run's MAE points the
# same way; "much better" also needs the paired Wilcoxon test at p < 0.05; "about the same"
# means average MAEs within 15 % of each other. A comparison is **not testable** on an
# evaluation where neither model beats predicting the training mean by 10 % (neither has
# learned age there). Computed from the recorded numbers.

# %%
def mae(table, model, group="Average"):
    return float(table[(table.model == model) & (table.group == group)]["this run MAE"].iloc[0])


def no_learning(evaluation: str) -> Optional[str]:
    """Why a comparison on ``evaluation`` cannot be judged, or None."""
    if any(rec.get(f"reference.beats_mean.{evaluation}.{n}") for n in L.MODELS):
        return None
    return f"neither model beats predicting the training mean by 10 % on {evaluation.replace('_', ' ').replace('.', ', ')}"


DISC, REP, REP_YOUNG = "discovery_test.trained_0-22", "replication.trained_0-22", "replication.trained_young"
alphas = np.linspace(0.1, 4, 40)
cs_l = cumulative_score(np.abs(pred[("0-22", "replication", L.LSTM_NAME)] - age_repl), alphas)
cs_3 = cumulative_score(np.abs(pred[("0-22", "replication", L.CNN3D_NAME)] - age_repl), alphas)
better = [g for g in ("6-10", "11-15", "16-22") if mae(t1, L.LSTM_NAME, g) < mae(t1, L.CNN3D_NAME, g)]
p_rep = rec.get("wilcoxon.replication.trained_0-22.p")
a_l, a_3 = mae(t3, L.LSTM_NAME), mae(t3, L.CNN3D_NAME)
claims = [  # key, claim, paper, outcome, evidence, rule, evaluation
    ("discovery_average", "Discovery: LSTM has the lower average MAE", "0.96 vs 1.07 y",
     mae(t1, L.LSTM_NAME) < mae(t1, L.CNN3D_NAME), f"{mae(t1, L.LSTM_NAME):.2f} vs {mae(t1, L.CNN3D_NAME):.2f} y",
     "LSTM's average discovery-test MAE below 3D's", DISC),
    ("discovery_older_groups", "Discovery: LSTM is better in 6-10, 11-15 and 16-22 y", "0.92/1.02/1.79 vs 1.12/1.19/1.85 y",
     len(better) == 3, f"LSTM better in {', '.join(better) or 'none'}", "LSTM's MAE below 3D's in all three groups", DISC),
    ("replication_much_better", "Replication (trained 0-22): LSTM much better", "1.14 vs 2.64 y",
     mae(t2, L.LSTM_NAME) < mae(t2, L.CNN3D_NAME) and p_rep is not None and p_rep < 0.05,
     f"{mae(t2, L.LSTM_NAME):.2f} vs {mae(t2, L.CNN3D_NAME):.2f} y, Wilcoxon p = {p_rep:.3g}",
     "LSTM's replication MAE below 3D's and paired Wilcoxon p < 0.05", REP),
    ("replication_cs_curve", "Replication (trained 0-22): LSTM's CS curve at or above 3D's at every alpha", "Fig. 4",
     bool(np.all(cs_l >= cs_3)), f"LSTM at or above at {int(np.sum(cs_l >= cs_3))}/{len(alphas)} alpha levels (0.1-4 y)",
     "CS_LSTM(alpha) >= CS_3D(alpha) at all 40 levels", REP),
    ("replication_young_same", f"Replication (trained 0-{cfg.YOUNG_MAX_AGE:g}): average MAEs about the same",
     "0.78 vs 0.79 y", abs(a_l - a_3) <= 0.15 * max(a_l, a_3), f"{a_l:.2f} vs {a_3:.2f} y",
     "the two average MAEs within 15 % of the larger", REP_YOUNG),
    ("lstm_trains_faster", "LSTM trains faster than 3D", "3 h vs 7 h (K80)", ratio > 1,
     f"3D/LSTM wall-time ratio {ratio:.2f} on {device}", "3D's measured training wall time above LSTM's", None),
]
learned = all(r[f"MAE {n}"] < 0.9 * r["MAE predicting the mean"] for r in ref_rows for n in L.MODELS)
rec.record("reference.both_models_beat_mean_everywhere", learned)
lines = []
for key, text, paper, ok, evidence, rule, evaluation in claims:
    reason = no_learning(evaluation) if evaluation else None
    word = rec.claim(key, text, bool(ok), evidence, rule, paper=paper, untestable_because=reason)
    lines.append(f"- **{word}**: {text} (paper {paper}) — this run: {evidence}" + (f"; {reason}." if reason else "."))
if not learned:
    lines.append("\n**Caution:** at least one model does not beat predicting the training mean by 10 % somewhere "
                 "(see the reference table), so differences between the models there say little about the architectures.")
if cfg.profile != "paper":
    lines.append(f"\nThis was a **{cfg.profile}** run on {DATA_DIR or 'simulated cohorts'}: reduced sizes and epochs, "
                 "so verdicts describe this configuration, not the paper's.")
display(Markdown("\n".join(lines)))
evaluations = (("discovery test (trained 0-22)", "0-22", "discovery", disc.table["participant_id"].iloc[test_idx], age_test),
               ("replication (trained 0-22)", "0-22", "replication", repl.table["participant_id"], age_repl),
               (f"replication (trained 0-{cfg.YOUNG_MAX_AGE:g})", "young", "replication", repl.table["participant_id"], age_repl))
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
