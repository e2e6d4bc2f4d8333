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
# 0-22 y and on 0-6 y. With `DATA_DIR` a single cohort folder (or one holding only
# `nihpd_like/`) the run is discovery only: every replication table, panel and claim is
# marked not testable with the reason; the discovery cohort is never its own replication.
# A cohort whose ages lie outside the paper's (e.g. adults) still gets the overall MAE, r and
# predicted-vs-true plots, and tables in its own age bins; the claims about the paper's age
# groups say why they are not testable there.
#
# **Parameters.** Core parameters first; every other entry left at None takes the profile's value from
# `notebooks/params/03_lstm.<PROFILE>.yaml`. Give a value here (or `-p NAME=value`) to override it.

# %% tags=["parameters"]
from typing import Optional

PROFILE: str = "quick"  # smoke | quick | paper | auto (paper with CUDA, else quick)
DATA_DIR: str = ""  # empty: simulated cohorts; else a folder with nihpd_like/ and mghbch_like/, or one cohort (discovery only)
DATA_SEED: int = 0  # seeds the simulated cohorts, the same for every model seed
SEED: int = 0  # the first model seed: the split, initialisation and batch order
DEVICE: str = "auto"  # auto | cpu | cuda
DEVICES: int = 1  # processes (GPUs) per training stage; above 1: DDP, the global batch unchanged
FORCE: bool = False  # retrain finished stages instead of loading their checkpoints
COMPILE: str = "auto"  # torch.compile the generators and regressors: auto (gpu-check decides; off on a CPU), on, off
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
STEM_KERNEL: Optional[int] = None  # 3D-ResNet18's first conv: 7 (standard ResNet18 stem) or 3 (the paper's literal "3x3x3")
ALLOW_UNREGISTERED: Optional[bool] = None  # train on DATA_DIR images that are not skull-stripped in MNI space
SEEDS: Optional[int] = None  # model seeds SEED, SEED+1, ... each trained on the same cohort; verdicts combined over them
DRY_RUN: Optional[bool] = None  # True: a rehearsal of the profile on a tiny cohort, 2 optimiser steps per training stage

# %%
import time
from dataclasses import asdict
from functools import partial

import pandas as pd
from IPython.display import Markdown, display

from brainage_lib.engine.training import TrainConfig
from brainage_lib.inference.cards import cohort_space, save_model, transform_spec
from brainage_lib.metrics.verdicts import GATE_TEXT
from brainage_lib.papers import fidelity
from brainage_lib.papers.lstm import claims as C
from brainage_lib.papers.lstm import gates as G
from brainage_lib.papers.lstm.deviations import DEVIATIONS
from brainage_lib.data.space import check_input_space
from brainage_lib.papers.lstm.transforms import AtlasVolume, LSTMSlices
from brainage_lib.papers.lstm import evaluation as L
from brainage_lib.papers.lstm import paper as P  # the paper's numbers
from brainage_lib.papers.lstm import figures as F
from brainage_lib.papers.lstm.data import load_data
from brainage_lib.papers.lstm.training import evaluations, predict_all, train_models
from brainage_lib.notebook import start
from brainage_lib.run.seeds import combine, run_other_seeds

NB = "03_lstm"
cfg, engine, rec, t_start = start(NB, globals(), data=DATA_DIR or "simulated")  # profile, seeds, stages
device = engine.device
atlas = L.parse_shape(cfg.ATLAS_SHAPE)
young = f"0-{cfg.YOUNG_MAX_AGE:g}"  # label of the young training regime ("young" in record keys)

# %% [markdown]
# ### Readings of the paper and deviations from it
# One list (`brainage_lib.papers.lstm.deviations`), recorded with the results and linked from the
# index page. The paper's age groups "0-5", "6-10", ... are read as half-open year intervals, the
# last one closed (`brainage_lib.papers.lstm.evaluation`).

# %%
fidelity.record(rec, DEVIATIONS)
display(Markdown(fidelity.markdown(DEVIATIONS)))

# %% [markdown]
# ## 1 Data
# Discovery cohort (`nihpd_like`) split 80/20, stratified by age; replication cohort
# (`mghbch_like`) never seen in training, taken only from `DATA_DIR/mghbch_like/` (or simulated).
# Volumes are resampled to the atlas grid and z-scored per subject; the LSTM reads each axial
# slice resized to `SLICE_SIZE`^2. Both inputs are cached on disk and memory-mapped
# (`brainage_lib.papers.lstm.data`). The data this run used:

# %%
data = load_data(DATA_DIR, DATA_SEED, cfg.N_DISCOVERY, cfg.N_REPLICATION, cfg.SHAPE, atlas, cfg.SLICE_SIZE,
                 cfg.YOUNG_MAX_AGE, split_seed=SEED)  # cohorts from DATA_SEED; the split (not fixed by the paper) from SEED
check_input_space([c for c in (data.disc, data.repl) if c is not None], "lstm", DATA_DIR,
                  cfg.ALLOW_UNREGISTERED)  # real data: stop unless preprocessed
missing = data.not_testable()  # evaluation key or regime -> why this data cannot test it
for k, why in missing.items():
    rec.record(f"not_testable.{k}", why)
display(Markdown(data.used("data", young)))
sizes = data.sizes(young)
for k, v in sizes.items():
    rec.record(f"data.n.{k}", v)
rec.record("data.paper_n_discovery", len(data.disc), paper=P.N_DISCOVERY)
rec.record("data.paper_n_replication", len(data.repl) if data.repl is not None else None, paper=P.N_REPLICATION,
           note=data.no_replication)
pd.Series(sizes, name="subjects").to_frame()

# %%
repl_ages = data.repl.ages if data.repl is not None else None
fig = F.age_distributions(data.disc.ages[data.train_idx], data.disc.ages[data.test_idx], repl_ages, data.no_replication)
rec.figure(fig, "age_distributions",
           "Age distributions of the discovery split and the replication cohort (paper Fig. 1).")

# %% [markdown]
# ## 2 Models
# Paper sizes unless `WIDTH`, `ATLAS_SHAPE` or `SLICE_SIZE` say otherwise (printed above).
# 3D stem: `STEM_KERNEL` defaults to 7 because the paper's "3x3x3" describes "the corresponding 3D-ResNet18" of ResNet18 [8], whose stem is 7x7 stride 2 (its 1x1 shortcuts are not 3x3x3 either); 3 is the literal reading.

# %%
build = partial(L.build_models, atlas, cfg.SLICE_SIZE, cfg.POOL_K, cfg.WIDTH, stem_kernel=cfg.STEM_KERNEL)
models = build()
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
# The training subjects of this run:

# %%
display(Markdown(data.used("training", young)))
tcfg = TrainConfig(epochs=cfg.EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.LR, lr_step=cfg.LR_STEP, lr_gamma=0.5,
                   loss="l1", seed=SEED, max_steps=cfg.max_steps)
trained, history = train_models(data, build, tcfg, engine, SEED)
engine.report()  # per stage: trained, resumed or loaded from its checkpoint

# %%
fig = F.training_curves(history, {k: res.target_sd for k, res in trained.items()}, young, missing)
rec.figure(fig, "training_curves", "Training MAE per epoch.")

# %% [markdown]
# ## 4 Evaluation
# ### Every evaluation, whatever the cohort's ages: MAE and Pearson r over all its subjects
# The paper reports MAE per age group; these overall numbers are shown for any cohort, also one
# whose ages lie outside the paper's 0-22 y (predicted vs true age: section 5).

# %%
pred = predict_all(trained, data, device)
evals = evaluations(data, pred, young)  # the evaluations this data allows; the others are in `missing`
display(Markdown(data.used("evaluations", young)))
L.record_overall(rec, evals).round(3)

# %% [markdown]
# ### Table 1: discovery test set, models trained on 0-22 y (MAE in years, paper / this run)
# In the paper's age groups when every test subject lies inside 0-22 y; otherwise in the cohort's
# own bins (no paper value beside them; the note says why).

# %%
display(Markdown(data.used(L.DISC, young)))
t1 = L.record_table(rec, "table1", evals, missing)
if t1.attrs["bins"].why:
    print(t1.attrs["bins"].why)
L.wide(t1)

# %% [markdown]
# ### Table 2: replication cohort, models trained on 0-22 y

# %%
display(Markdown(data.used(L.REP, young)))
t2 = L.record_table(rec, "table2", evals, missing)
if t2.attrs["bins"].why:
    print(t2.attrs["bins"].why)
L.wide(t2)

# %% [markdown]
# ### Table 3: replication cohort, models trained on 0-`YOUNG_MAX_AGE` y

# %%
display(Markdown(data.used(L.REP_YOUNG, young)))
t3 = L.record_table(rec, "table3", evals, missing)
if t3.attrs["bins"].why:
    print(t3.attrs["bins"].why)
L.wide(t3)

# %% [markdown]
# ### Discovery test subjects aged 0-`YOUNG_MAX_AGE` y: trained on 0-22 y vs on 0-`YOUNG_MAX_AGE` y
# Not in the paper: the young models evaluated on the unseen discovery subjects of their own age
# range (same sites and protocol as their training), beside the 0-22 y models on the same subjects.

# %%
display(Markdown(data.used("young", young)))
young_test = data.disc.ages[data.test_idx] <= cfg.YOUNG_MAX_AGE  # the test subjects inside the young models' range
print(f"{int(young_test.sum())} discovery test subjects aged <= {cfg.YOUNG_MAX_AGE:g} y")
L.record_young_discovery(rec, pred, data.disc.ages[data.test_idx], young_test, young, missing)

# %% [markdown]
# ### Saved models
# Each of the four trainings is saved with a model card (paper, profile, training data and its
# grid, the input transform: slice stacks for the LSTM, atlas-grid volumes for the 3D model, and
# the MAE on the discovery test subjects, those of the young range for the young models) to
# `checkpoints/03_lstm/models/<regime>_<model>.model.pt`; `brainage predict --model <file> DIR`
# applies one to a cohort preprocessed as the training data were (`brainage preprocess --recipe
# lstm`). The paper fits no age-bias correction and has no validation set to fit one on, so the
# cards carry none and `predict` leaves the corrected PAD empty.

# %%
space = cohort_space(data.disc)
for (regime, name), res in trained.items():
    lstm = name == L.LSTM_NAME
    tf = LSTMSlices(atlas_shape=atlas, slice_size=cfg.SLICE_SIZE) if lstm else AtlasVolume(atlas_shape=atlas)
    mae = evals[L.DISC].mae(name) if regime == "0-22" else rec.get(f"young_discovery_test.young.{name}")
    label = f"{name}, trained {'0-22' if regime == '0-22' else young} y"
    print(save_model(cfg, rec, f"{regime}_{name.replace('+', '_').replace(' ', '')}", res.model, model=label,
                     architecture="ResNetLSTM" if lstm else "ResNet3D", config=asdict(res.model.config),
                     transform=transform_spec(tf), inputs="slice_sequence" if lstm else "volume", space=space,
                     test_mae=mae, target_mean=res.target_mean, target_sd=res.target_sd, bias_correction=None,
                     training={"config": asdict(tcfg), "epochs_trained": len(res.history)}))

# %% [markdown]
# ### Paired comparison of the two models' absolute errors (Wilcoxon signed-rank, same subjects)
# One row per evaluation this run made; this section, the gates, the figures and the
# claims below rest on these evaluations:

# %%
display(Markdown(data.used("evaluations", young)))
L.record_paired(rec, evals).round(4)

# %% [markdown]
# ### Gates: did each model learn age, and does it track age on the replication cohort?
# The paper has no validation set, so whether a model learned age is decided on the discovery test
# subjects it never saw, from its own training distribution: the models trained on 0-22 y on the
# whole test set, those trained on 0-`YOUNG_MAX_AGE` y on its test subjects of that range. The
# replication cohort is a shifted cohort (an unseen site; for the 0-22 y models also a narrower age
# range): there a model counts while its predictions track age; an offset under the shift is what
# the replication claims compare, not a reason to set a model aside. A claim naming a model that
# fails a gate is not testable, with the gate's numbers.

# %%
display(Markdown(GATE_TEXT))
young_ages = data.disc.ages[data.test_idx][young_test]
young_preds = None if "young" in missing else {m: pred[("young", "discovery", m)] for m in L.MODELS}
gate_nums = G.gate_numbers(G.held_out_sets(evals.get(L.DISC), young_ages, young_preds, young), evals, missing)
G.record_gates(rec, gate_nums)

# %% [markdown]
# For comparison, the MAE of predicting each evaluated cohort's own mean age and the training
# subjects' mean age (on the 0-6 y replication cohort the 0-22 y training mean is far off, so
# beating it says little):

# %%
C.record_reference(rec, evals).round(3)

# %% [markdown]
# ### Training time
# The paper reports 3 h (LSTM) vs 7 h (3D) on an NVIDIA K80, in the paragraph on the trainings on
# 0-6 y (Table 3). Both regimes are measured here; the 0-`YOUNG_MAX_AGE` y ratio is the one
# compared with the paper's 7/3.

# %%
amp_used = tcfg.amp and device.type == "cuda"
wall_s = {k: res.wall_time_s for k, res in trained.items()}
times = L.record_training_times(rec, wall_s, young, amp_used, missing)
ratio = times.loc["3D / LSTM"].to_numpy()
print(f"on {device}, bf16 autocast: {'yes' if amp_used else 'no'} (TrainConfig.amp={tcfg.amp}, used on CUDA only)")
not_trained = f"; {missing['young']}" if "young" in missing else ""
print(f"3D / LSTM training-time ratio: trained 0-22 y {ratio[0]:.2f}; trained {young} y {ratio[1]:.2f} "
      f"(paper, trained 0-6 y on a K80: 7 h / 3 h = {7 / 3:.2f}){not_trained}")
times.round(2)

# %% [markdown]
# ## 5 Figures
# Cumulative score CS(alpha): the fraction of subjects with absolute error <= alpha
# (paper Fig. 4 for the discovery test set, Fig. 5 for the replication cohort).

# %%
L.record_cs(rec, evals)
fig = F.cumulative_scores(evals, young, missing)
rec.figure(fig, "cumulative_scores", "Cumulative score curves of both models (paper Figs. 4 and 5).")

# %%
fig = F.predicted_vs_true(evals, young, missing)
rec.figure(fig, "predicted_vs_true", "Predicted vs chronological age.")

# %% [markdown]
# ## What reproduced and what did not
# Each claim is judged from this run's predictions by the rule printed beside it. The thresholds
# are constants of `brainage_lib.papers.lstm.evaluation` and `brainage_lib.metrics.verdicts` (this project's
# choices; the paper states none), and the rules in `brainage_lib.papers.lstm.claims` write their texts from
# the same values the code compares with.

# %%
display(Markdown(C.rules_text()))
magnitudes = C.claim_magnitudes(evals)  # paired bootstrap intervals of the paper's numbers, recorded with each claim
rows = C.claims(evals, wall_s, young, f"{device}{', bf16 autocast' if amp_used else ''}", missing, gates=gate_nums,
                magnitudes=magnitudes)
lines = rec.record_claims(rows)
if cfg.profile != "paper":
    lines.append(f"\nThis was a **{cfg.profile}** run on {DATA_DIR or 'simulated cohorts'}: reduced sizes and epochs, "
                 "so a claim with a paper number is at best \"direction only\" and verdicts describe this "
                 "configuration, not the paper's.")
display(Markdown("\n".join(lines)))
rec.save_predictions(L.predictions_frame(evals))

# %% [markdown]
# ### Over the model seeds
# With `SEEDS` above 1, the notebook runs again once per further model seed (`SEED`+1, ...: new
# initialisation, data order and discovery split, the same cohorts) and each claim reports the
# verdict shared by at least 80 % of the seeds, else **unstable**. The paper's tables then show
# this run's numbers as mean ± sd over the seeds.

# %%
others = run_other_seeds(cfg)
seeds = combine(rec, others)
display(seeds)
for name in ("table1", "table2", "table3"):
    display(Markdown(f"**{L.PAPER['tables'][name]}** (paper / this run)"))
    display(L.seeds_wide(rec.doc, name))

# %%
rec.record("wall_time_s", time.time() - t_start, unit="s")
print("results:", rec.finalize())

# %% [markdown]
# ## References
# - He S. et al. (2020) Brain age estimation using LSTM on children's brain MRI. ISBI 2020, arXiv:2002.09045.
# - Evans A. C. & Brain Development Cooperative Group (2006) The NIH MRI study of normal brain development. NeuroImage 30:184-202.
# - He K. et al. (2016) Deep residual learning for image recognition. CVPR.
# - Ulyanov D. et al. (2016) Instance normalization: the missing ingredient for fast stylization. arXiv:1607.08022.
