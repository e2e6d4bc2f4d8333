"""What notebook 02_diff uses, in one import: ``from brainage_lib.papers.diff import notebook as diff``.

The wing's own parts (cohorts and their roles, the diffusion autoencoder and the baselines, their training,
evaluation, claims, figures, the paper's numbers) and the shared ones the notebook needs, re-exported, and
the bookkeeping of each of the notebook's steps (recording tables, saving model cards, gathering
per-subject predictions, combining seeds) as one function each, so that a cell reads as a step of the paper.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from scipy import stats as sps

from brainage_lib.data import plots
from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import Cohort
from brainage_lib.data.datasets import SliceDataset
from brainage_lib.data.space import check_input_space
from brainage_lib.engine.training import TrainConfig, TrainResult, n_parameters, train_regressor
from brainage_lib.inference.cards import cohort_space, fitted_bias_correction, save_model, transform_spec
from brainage_lib.notebook import start
from brainage_lib.papers import fidelity
from brainage_lib.papers.diff import figures, paper, roles
from brainage_lib.papers.diff.baselines import BrainAgeRGP, DeepBrainNet2D, SliceCNNConfig, densenet121_2d
from brainage_lib.papers.diff.claims import claims, record_gates
from brainage_lib.papers.diff.deviations import DEVIATIONS
from brainage_lib.papers.diff.diffae import DiffAE, DiffAEConfig, ddim_decode, ddim_encode, interpolate, predict_age
from brainage_lib.papers.diff.evaluation import (MODELS, als_pads, evaluate, format_table, magnitude_numbers,
                                                 magnitude_table, record_evaluation, record_magnitudes,
                                                 reference_numbers, wide_table)
from brainage_lib.papers.diff.rules import GATE, NO_ALS
from brainage_lib.papers.diff.training import (DiffSplits, DiffTrainConfig, DiffTrainResult, als_survival,
                                               open_diff_cohorts, parse_widths, predict_diffae, split_training_cohort,
                                               train_diffae)
from brainage_lib.papers.diff.transforms import DIFFSlice
from brainage_lib.run.results import Recorder
from brainage_lib.run.seeds import combine, run_other_seeds

__all__ = ["DiffData", "Models", "Predictions", "als_boxplot", "configs", "deviations", "fig3_interpolation",
           "fig3_zsem", "fig4_reconstructions", "figures", "finish", "format_table", "gates", "judge_claims",
           "magnitudes", "model_sizes", "open_data", "over_seeds", "paper", "predict", "record_data", "save_models",
           "start", "table2", "test_scatter", "train_baselines", "train_diffusion_autoencoder", "truth", "wide_table"]

Z_SEM_USED = 0.1  # a z_sem swap below this share of the two subjects' difference counts as "barely used"


@dataclass
class DiffData:
    """The cohorts in their roles, the split of the training cohort and the cached slices."""

    cohorts: dict[str, Cohort]  # role -> cohort: train, test and, if any, als
    data_on: roles.JudgedOn  # the data each claim is judged on; split: the test set is part of one cohort
    transform: DIFFSlice
    arrays: dict[str, np.ndarray]  # role -> (N, S, S) float16 in [0, 1]
    splits: DiffSplits
    train_lab: np.ndarray  # the labelled subjects of the training split
    survival: np.ndarray | None  # ALS survival (months)
    ds: dict[str, SliceDataset]

    @property
    def has_als(self) -> bool:
        return "als" in self.cohorts

    @property
    def test_tag(self) -> str:  # in figure labels
        return "test" if self.data_on.split else "clinical"

    @property
    def train_ages(self) -> np.ndarray:
        return self.cohorts["train"].ages

    @property
    def heldout_ages(self) -> np.ndarray:
        return self.train_ages[self.splits.heldout]


def open_data(data_dir: str, data_seed: int, seed: int, cfg) -> DiffData:
    """Read (or simulate) the cohorts in their roles, stop on real data that is not preprocessed, cache each
    image's mid-axial slice and split the training cohort (``seed``) into train, validation and held-out healthy."""
    cohorts = open_diff_cohorts(data_dir, cfg.N_TRAIN, cfg.N_TEST, cfg.N_ALS, seed=data_seed, shape=cfg.SHAPE)
    check_input_space(cohorts.values(), "diff", data_dir, cfg.ALLOW_UNREGISTERED)  # real data: stop unless preprocessed
    data_on = roles.judged_on(cohorts)
    has_als = "als" in cohorts
    transform = DIFFSlice(size=cfg.SLICE_SIZE)
    arrays = {role: cached_array(c, transform) for role, c in cohorts.items()}
    train_ages = cohorts["train"].ages
    splits = split_training_cohort(train_ages, cfg.VAL_FRACTION, cfg.HELDOUT_FRACTION, seed=seed)
    train_lab = splits.train[~np.isnan(train_ages[splits.train])]
    survival = als_survival(cohorts["als"]) if has_als else None
    ds = {"train": SliceDataset(arrays["train"], train_ages, splits.train),  # labelled + unlabelled
          "train_labelled": SliceDataset(arrays["train"], train_ages, train_lab),
          "val": SliceDataset(arrays["train"], train_ages, splits.val),
          "heldout": SliceDataset(arrays["train"], train_ages, splits.heldout),
          "test": SliceDataset(arrays["test"], cohorts["test"].ages)}
    if has_als:
        ds["als"] = SliceDataset(arrays["als"], cohorts["als"].ages)
    return DiffData(cohorts, data_on, transform, arrays, splits, train_lab, survival, ds)


def record_data(rec: Recorder, dd: DiffData, data_seed: int) -> None:
    """Record and show each role's size and ages beside the paper's and the training cohort's split (and, for a
    single cohort folder, what was done with it)."""
    cohorts, splits, train_ages = dd.cohorts, dd.splits, dd.train_ages
    if dd.data_on.split:
        display(Markdown(roles.single_cohort_note(cohorts, data_seed)))
    rows = []
    for role, c in cohorts.items():
        a = c.ages[~np.isnan(c.ages)]
        row = {"role": role, "cohort": c.name, "N": len(c), "labelled": a.size, "age mean": a.mean(),
               "age sd": a.std(ddof=1)}
        rows.append(row)
        for k, p in zip(("N", "age_mean", "age_sd"), paper.DATA[role]):
            rec.record(f"data.{role}.{k}", row[k.replace("_", " ")], paper=p, unit=None if k == "N" else "years")
        rec.record(f"data.{role}.labelled", a.size)
    for part in ("train", "val", "heldout"):
        rec.record(f"data.split.{part}", len(getattr(splits, part)))
    rec.record("data.split.train_unlabelled", int(np.isnan(train_ages[splits.train]).sum()))
    display(pd.DataFrame(rows).set_index("role").round(2))
    print(f"training split: {len(dd.train_lab)} labelled + {rec.get('data.split.train_unlabelled')} unlabelled "
          f"({100 * rec.get('data.split.train_unlabelled') / len(splits.train):.0f} % of the training split's images "
          f"have no age) | validation {len(splits.val)} | held-out healthy {len(splits.heldout)} | "
          f"slices {dd.arrays['train'].shape[1:]}")


def configs(cfg) -> tuple[DiffAEConfig, SliceCNNConfig]:
    """The diffusion autoencoder's and the DeepBrainNet-style CNN's settings of this run."""
    return (DiffAEConfig(image_size=cfg.SLICE_SIZE, channels=parse_widths(cfg.CHANNELS),
                         num_res_blocks=cfg.NUM_RES_BLOCKS, norm_groups=cfg.NORM_GROUPS,
                         mid_attention_blocks=cfg.MID_ATTENTION_BLOCKS, z_dim=cfg.Z_DIM, ddim_steps=cfg.DDIM_STEPS),
            SliceCNNConfig(channels=parse_widths(cfg.DBN_CHANNELS)))


def model_sizes(rec: Recorder, diff_config: DiffAEConfig, dbn_config: SliceCNNConfig) -> pd.DataFrame:
    """Record the diffusion autoencoder's parameters beside the paper's; returns every model's parts' sizes."""
    n_par = lambda m: n_parameters(m) / 1e6  # noqa: E731
    probe = DiffAE(diff_config)
    z_proj = [m.z_proj for m in probe.unet.modules() if hasattr(m, "z_proj")]
    sizes = {"DiffAE: semantic encoder": n_par(probe.encoder), "DiffAE: noise U-Net": n_par(probe.unet),
             f"  of which {len(z_proj)} z_sem projections": sum(n_par(m) for m in z_proj),
             "DiffAE: age head": n_par(probe.age_head), "DiffAE: total": n_par(probe),
             "DenseNet121": n_par(densenet121_2d()), "DeepBrainNet-style CNN": n_par(DeepBrainNet2D(dbn_config))}
    rec.record("model.diffae.params_M", sizes["DiffAE: total"], paper=paper.DIFFAE_PARAMS_M, unit="M")
    print(f"DiffAE in this profile: {rec.get('model.diffae.params_M'):.2f} M parameters "
          f"(paper: {paper.DIFFAE_PARAMS_M} M at its widths)")
    return pd.Series(sizes, name="parameters (M)").round(3).to_frame()


def deviations(rec: Recorder) -> None:
    """Show the deviations from the paper and record them."""
    display(Markdown(fidelity.markdown(DEVIATIONS)))
    fidelity.record(rec, DEVIATIONS)


def train_diffusion_autoencoder(cfg, rec: Recorder, diff_config: DiffAEConfig, dd: DiffData, engine,
                                seed: int) -> tuple[DiffTrainConfig, DiffTrainResult]:
    """Train the diffusion autoencoder on the labelled and unlabelled training images, selecting the epoch on the
    validation MAE; record and print how it went and draw its training curves."""
    tcfg = DiffTrainConfig(epochs=cfg.EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.LR, age_loss=cfg.AGE_LOSS, seed=seed,
                           max_steps=cfg.max_steps)
    diff_res = train_diffae(diff_config, dd.ds["train"], dd.ds["val"], tcfg, engine)
    age_sd = diff_res.model.config.age_scale
    print(f"age loss: {tcfg.age_loss}" + (" (years², as the paper)" if tcfg.age_loss == "years" else
          f" (years² / {age_sd:.1f}², a deviation from the paper)") + f"; head output in sd units of {age_sd:.1f} y")
    diff_res.model.to(engine.device).eval()  # the weights of the best validation epoch
    rec.record("train.diffae.wall_time_s", diff_res.wall_time_s, unit="s")
    rec.record("train.diffae.best_epoch", diff_res.best_epoch + 1)
    rec.record("train.diffae.best_val_mae", diff_res.history["val_mae"].min(), unit="years")
    print(f"best validation epoch {diff_res.best_epoch + 1} of {len(diff_res.history)}")
    fig = figures.training_curves(diff_res.history, tcfg.age_loss)
    rec.figure(fig, "training_curves", "Diffusion autoencoder: noise MSE, age MSE and validation MAE per epoch.")
    return tcfg, diff_res


@dataclass
class Models:
    """The trained diffusion autoencoder and baselines, with their training settings."""

    tcfg: DiffTrainConfig
    diff_res: DiffTrainResult
    bcfg: TrainConfig
    cnns: dict[str, TrainResult]  # densenet121, deepbrainnet
    gp: BrainAgeRGP
    dbn_config: SliceCNNConfig

    @property
    def diffae(self) -> DiffAE:
        return self.diff_res.model


def train_baselines(cfg, rec: Recorder, dd: DiffData, dbn_config: SliceCNNConfig, engine,
                    seed: int) -> tuple[TrainConfig, dict[str, TrainResult], BrainAgeRGP]:
    """Train DenseNet121 and the DeepBrainNet-style CNN on the labelled training images and fit the brainageR-style
    GP; record their times and selected epochs."""
    bcfg = TrainConfig(epochs=cfg.BASELINE_EPOCHS, batch_size=cfg.BASELINE_BATCH_SIZE, lr=cfg.BASELINE_LR,
                       lr_step=cfg.BASELINE_EPOCHS, lr_gamma=1.0, loss="mse", seed=seed, max_steps=cfg.max_steps)
    cnns = {}
    for name, make in (("densenet121", densenet121_2d), ("deepbrainnet", lambda: DeepBrainNet2D(dbn_config))):
        torch.manual_seed(seed)
        cnns[name] = train_regressor(make(), dd.ds["train_labelled"], dd.ds["val"], bcfg, engine, desc=MODELS[name])
        rec.record(f"train.{name}.wall_time_s", cnns[name].wall_time_s, unit="s")
        rec.record(f"train.{name}.best_epoch", cnns[name].best_epoch + 1)
    t0 = time.time()
    gp = BrainAgeRGP(random_state=seed).fit(np.asarray(dd.arrays["train"][dd.train_lab], dtype=float),
                                            dd.train_ages[dd.train_lab])
    rec.record("train.brainager.wall_time_s", time.time() - t0, unit="s")
    rec.record("train.brainager.pca_components", int(gp.pca_.n_components_))
    print(f"brainageR-style GP: {gp.pca_.n_components_} PCA components, kernel {gp.gp_.kernel_}")
    return bcfg, cnns, gp


@dataclass
class Predictions:
    """Every model's predictions (years) on the test, ALS and held-out healthy sets, and what they were judged on."""

    images: dict[str, np.ndarray]  # set -> (N, S, S)
    preds: dict[str, dict[str, np.ndarray]]  # model -> set -> (N,)
    ev: dict[str, dict[str, Any]]  # model -> its evaluation numbers
    simulated: bool  # the cohorts have the simulator's ground truth
    per_subject: pd.DataFrame  # written with the results


def predict(rec: Recorder, m: Models, dd: DiffData, device: torch.device) -> Predictions:
    """Predict every set with every model, record the evaluation (Table 1 and the rest) beside the reference numbers,
    gather the per-subject predictions and show Table 1's title."""
    cohorts, survival, has_als = dd.cohorts, dd.survival, dd.has_als
    sets = {k: dd.ds[k] for k in ("test", "als", "heldout") if k in dd.ds}
    images = {k: np.asarray(d.array[d.indices], dtype=float) for k, d in sets.items()}  # (N, S, S)
    preds = {"diffae": {k: predict_diffae(m.diffae, d, device) for k, d in sets.items()},
             "densenet121": {k: m.cnns["densenet121"].predict(d, device) for k, d in sets.items()},
             "brainager": {k: m.gp.predict(images[k]) for k in sets},
             "deepbrainnet": {k: m.cnns["deepbrainnet"].predict(d, device) for k, d in sets.items()}}
    preds = {n: {k: np.asarray(v, dtype=float) for k, v in p.items()} for n, p in preds.items()}  # years, float64
    truth = {k: cohorts[k].ground_truth() for k in sets if k != "heldout"}  # test and (if any) ALS
    simulated = all(t is not None for t in truth.values())
    gaps = {k: t["gap"].to_numpy() if simulated else None for k, t in truth.items()}  # the simulator's hidden gaps
    ev = evaluate(cohorts["test"].ages, {n: p["test"] for n, p in preds.items()},
                  cohorts["als"].ages if has_als else None,
                  {n: p["als"] for n, p in preds.items()} if has_als else None,
                  survival, dd.heldout_ages, {n: p["heldout"] for n, p in preds.items()},
                  test_gap=gaps["test"], als_gap=gaps.get("als"))
    record_evaluation(rec, ev, reference_numbers(cohorts["test"].ages, survival, gaps.get("als"),
                                                 heldout_age=dd.heldout_ages))
    ids = {k: cohorts[k].table["participant_id"] for k in truth}
    ids["heldout"] = cohorts["train"].table["participant_id"].iloc[dd.splits.heldout]
    set_ages = {k: cohorts[k].ages for k in truth} | {"heldout": dd.heldout_ages}
    per_subject = pd.concat([pd.DataFrame({"set": k, "participant_id": ids[k].to_numpy(), "age": set_ages[k],
                                           "survival_months": survival if k == "als" else np.nan,
                                           **{n: preds[n][k] for n in preds}}) for k in sets])
    display(Markdown("**Table 1.** Test-set accuracy and ALS survival association (raw brain-PAD)."))
    return Predictions(images, preds, ev, simulated, per_subject)


def gates(rec: Recorder, dd: DiffData) -> pd.DataFrame:
    """Record every model's gates; returns their table."""
    record_gates(rec, dd.data_on)
    return rec.gates()


def magnitudes(rec: Recorder, p: Predictions, dd: DiffData) -> pd.DataFrame:
    """Record the paper's numbers beside this run's bootstrap intervals; returns them as a table."""
    cohorts, has_als = dd.cohorts, dd.has_als
    mags = magnitude_numbers(cohorts["test"].ages, {n: q["test"] for n, q in p.preds.items()},
                             cohorts["als"].ages if has_als else None,
                             {n: q["als"] for n, q in p.preds.items()} if has_als else None, dd.survival)
    record_magnitudes(rec, mags)
    return magnitude_table(rec)


def table2(rec: Recorder, dd: DiffData) -> None:
    """Show Table 2 (ALS brain-PADs), or why it is not computed."""
    if dd.has_als:
        display(Markdown("**Table 2.** ALS brain-PADs: mean, sd (years) and KS statistic of ours vs each baseline."))
        display(format_table(wide_table(rec, "table2")))
    else:
        display(Markdown(f"**Table 2** is not computed: {NO_ALS}."))


def save_models(cfg, rec: Recorder, m: Models, p: Predictions, dd: DiffData) -> None:
    """Save each network with its model card and an age-bias correction fitted on the held-out healthy subjects;
    print each path."""
    space, ho_age = cohort_space(dd.cohorts["train"]), dd.heldout_ages
    diffae, cnns = m.diffae, m.cnns
    networks = {"diffae": ("DiffAE", diffae, asdict(diffae.config), 0.0, 1.0,  # the DiffAE predicts years itself
                           {"config": asdict(m.tcfg), "best_epoch": m.diff_res.best_epoch + 1}, m.diff_res.stage_dir),
                **{n: (arch, cnns[n].model, config, cnns[n].target_mean, cnns[n].target_sd,
                       {"config": asdict(m.bcfg), "best_epoch": cnns[n].best_epoch + 1}, cnns[n].stage_dir)
                   for n, arch, config in (("densenet121", "DenseNet121-2D", {"in_channels": 1, "out_channels": 1}),
                                           ("deepbrainnet", "DeepBrainNet2D", asdict(m.dbn_config)))}}
    for n, (arch, net, config, mean, sd, training, stage_dir) in networks.items():
        bc = fitted_bias_correction(p.preds[n]["heldout"], ho_age, "the held-out healthy subjects")
        print(save_model(cfg, rec, n, net, stage_dir, architecture=arch, config=config, transform=transform_spec(dd.transform),
                         inputs="slice", space=space, test_mae=p.ev[n]["test_mae"], target_mean=mean, target_sd=sd,
                         bias_correction=bc, training=training))


def truth(rec: Recorder, p: Predictions, dd: DiffData) -> None:
    """On simulated data: show how each PAD tracks the hidden gap and print the simulator's survival model."""
    if p.simulated:
        display(format_table(wide_table(rec, "truth", paper=False)))
    if p.simulated and dd.has_als:
        sim_info = json.loads((dd.cohorts["als"].ground_truth_dir / "simulation.json").read_text())
        print(f"simulated survival (months): {sim_info['survival_model']}")
        print(f"true gap vs survival on the ALS cohort: r = {rec.get('simulator.als_gap_survival_r'):+.3f} "
              f"(p = {rec.get('simulator.als_gap_survival_p'):.3g}); true ALS gap mean "
              f"{rec.get('simulator.als_gap_mean'):+.2f} y, sd {rec.get('simulator.als_gap_sd'):.2f} y")
    if not p.simulated:
        print("Real data: no hidden gap to compare with.")


def test_scatter(rec: Recorder, p: Predictions, dd: DiffData) -> None:
    """Predicted vs chronological age on the test set, per model."""
    scatter = {MODELS[n]: (dd.cohorts["test"].ages, q["test"]) for n, q in p.preds.items()}
    fig = plots.predicted_vs_true(scatter, title=f"{dd.test_tag.capitalize()} test set")
    rec.figure(fig, "test_scatter", f"Predicted vs chronological age on the {dd.test_tag} test set, per model.")


def als_boxplot(rec: Recorder, p: Predictions, dd: DiffData) -> None:
    """Fig. 2: the ALS brain-PADs per model, raw and bias-corrected (or why it is not drawn)."""
    if dd.has_als:
        pads = als_pads(p.preds, dd.cohorts["als"].ages, dd.heldout_ages)
        fig = figures.pad_boxplot({kind: {MODELS[n]: v for n, v in per.items()} for kind, per in pads.items()})
        rec.figure(fig, "fig2_als_pad_boxplot", "Fig. 2: ALS brain-PADs per model (raw and age-bias-corrected).")
    else:
        display(Markdown(f"**Fig. 2** is not drawn: {NO_ALS}."))


@dataclass
class Interpolation:
    """The two pairs of Fig. 3, their DDIM encodings and the ages along the interpolation."""

    alphas: np.ndarray
    labels: list[str]
    z_a: torch.Tensor
    z_b: torch.Tensor
    xt_a: torch.Tensor  # x_T of the first end of each pair
    age_z: np.ndarray  # (A, 2) the age head on the interpolated z_sem


def _pick(a: np.ndarray, target: float) -> int:
    return int(np.argmin(np.abs(a - target)))


def fig3_interpolation(cfg, rec: Recorder, diffae: DiffAE, p: Predictions, dd: DiffData,
                       device: torch.device) -> Interpolation:
    """Fig. 3: decoded interpolations between two healthy subjects (25 and 75 y) and the oldest and youngest test
    subjects, with the predicted ages; record how the ages move and how much the decoder uses ``z_sem``."""
    images, test_tag = p.images, dd.test_tag
    ho_ages, te_ages = dd.heldout_ages, dd.cohorts["test"].ages
    pick = _pick
    ends = [(images["heldout"][pick(ho_ages, 25)], images["heldout"][pick(ho_ages, 75)]),
            (images["test"][np.argmax(te_ages)], images["test"][np.argmin(te_ages)])]
    true_ends = [(ho_ages[pick(ho_ages, 25)], ho_ages[pick(ho_ages, 75)]), (te_ages.max(), te_ages.min())]
    labels = [f"healthy {a:.0f} → {b:.0f} y" if row == 0 else f"{test_tag} {a:.0f} → {b:.0f} y"
              for row, (a, b) in enumerate(true_ends)]
    x_a = torch.tensor(np.stack([a for a, _ in ends]), dtype=torch.float32, device=device)[:, None]  # (2, 1, S, S)
    x_b = torch.tensor(np.stack([b for _, b in ends]), dtype=torch.float32, device=device)[:, None]
    alphas = np.linspace(0, 1, cfg.N_INTERP)
    frames = interpolate(diffae, x_a, x_b, alphas, steps=cfg.DDIM_STEPS)  # (A, 2, 1, S, S)
    with torch.no_grad():
        z_a, z_b = diffae.encode(x_a), diffae.encode(x_b)
        age_z = torch.stack([diffae.age_from_latent(torch.lerp(z_a, z_b, float(w))) for w in alphas]).cpu().numpy()
    age_img = torch.stack([predict_age(diffae, f) for f in frames]).cpu().numpy()  # (A, 2)
    xt_a = ddim_encode(diffae, x_a, z_a, steps=cfg.DDIM_STEPS)  # how much does the decoder use z_sem?
    swap = ddim_decode(diffae, xt_a, z_b, steps=cfg.DDIM_STEPS) - ddim_decode(diffae, xt_a, z_a, steps=cfg.DDIM_STEPS)
    rec.record("fig3.z_sem_share", (swap.pow(2).mean() / (x_b - x_a).pow(2).mean()).item())
    for row in range(2):
        rho = sps.spearmanr(alphas, age_img[:, row]).statistic
        rec.record(f"fig3.row{row + 1}.age_spearman", rho)
        rec.record(f"fig3.row{row + 1}.true_age_first", true_ends[row][0], unit="years")
        rec.record(f"fig3.row{row + 1}.true_age_last", true_ends[row][1], unit="years")
        rec.record(f"fig3.row{row + 1}.age_first", age_img[0, row], unit="years")
        rec.record(f"fig3.row{row + 1}.age_last", age_img[-1, row], unit="years")
    fig = figures.interpolation_grid(frames.cpu().numpy(), alphas, age_z, age_img, labels)
    rec.figure(fig, "fig3_latent_interpolation", "Fig. 3: decoded latent interpolations with predicted ages.")
    share = rec.get("fig3.z_sem_share")
    display(Markdown(
        f"Swapping `z_sem` changes a decoded image by **{100 * share:.1f} %** of the squared difference between the "
        "two subjects: " + ("the decoder barely uses `z_sem`, so the frames change mainly through the interpolated "
                            "`x_T`, and the frames between the two reconstructions need not look like brains."
                            if share < Z_SEM_USED else
                            "the decoder draws on `z_sem`, so the interpolated `z_sem` shapes the frames between "
                            "the two reconstructions.")
        + f" ('Barely' means below {100 * Z_SEM_USED:.0f} %.)"))
    return Interpolation(alphas, labels, z_a, z_b, xt_a, age_z)


def fig3_zsem(cfg, rec: Recorder, diffae: DiffAE, f3: Interpolation) -> pd.DataFrame:
    """Fig. 3 with ``x_T`` held at the first end and only ``z_sem`` interpolated: record how the predicted ages move
    beside the age head's own; returns them per pair."""
    alphas, age_z, labels = f3.alphas, f3.age_z, f3.labels
    zsem_frames = torch.stack([ddim_decode(diffae, f3.xt_a, torch.lerp(f3.z_a, f3.z_b, float(w)), steps=cfg.DDIM_STEPS)
                               for w in alphas])  # (A, 2, 1, S, S): x_T of the first end, z_sem moving
    age_zsem = torch.stack([predict_age(diffae, f) for f in zsem_frames]).cpu().numpy()  # (A, 2)
    for row in range(2):
        r = f"fig3.row{row + 1}"
        rec.record(f"{r}.zsem_age_spearman", sps.spearmanr(alphas, age_zsem[:, row]).statistic)
        rec.record(f"{r}.zsem_age_first", age_zsem[0, row], unit="years")
        rec.record(f"{r}.zsem_age_last", age_zsem[-1, row], unit="years")
        rec.record(f"{r}.latent_age_first", age_z[0, row], unit="years")
        rec.record(f"{r}.latent_age_last", age_z[-1, row], unit="years")
        head_gap = age_z[-1, row] - age_z[0, row]
        rec.record(f"{r}.zsem_age_share", (age_zsem[-1, row] - age_zsem[0, row]) / head_gap if head_gap else np.nan)
    fig = figures.interpolation_grid(zsem_frames.cpu().numpy(), alphas, age_z, age_zsem, labels)
    rec.figure(fig, "fig3_zsem_interpolation", "Fig. 3, z_sem only: x_T held fixed, z_sem interpolated, predicted ages.")
    return pd.DataFrame({k: [rec.get(f"fig3.row{i}.{k}") for i in (1, 2)] for k in
                         ("zsem_age_spearman", "zsem_age_first", "zsem_age_last", "latent_age_first",
                          "latent_age_last", "zsem_age_share")}, index=labels).round(3)


def fig4_reconstructions(cfg, rec: Recorder, diffae: DiffAE, p: Predictions, dd: DiffData,
                         device: torch.device) -> None:
    """Fig. 4: ``N_RECON`` originals (half held-out healthy, half test), their DDIM reconstructions and differences;
    record and print the reconstruction MSE beside another subject's image."""
    images, test_tag = p.images, dd.test_tag
    ho_ages, te_ages = dd.heldout_ages, dd.cohorts["test"].ages
    k = cfg.N_RECON // 2
    idx_h = np.linspace(0, len(images["heldout"]) - 1, k).astype(int)
    idx_t = np.linspace(0, len(images["test"]) - 1, cfg.N_RECON - k).astype(int)
    orig = torch.tensor(np.concatenate([images["heldout"][idx_h], images["test"][idx_t]]), dtype=torch.float32,
                        device=device)[:, None]  # (R, 1, S, S)
    with torch.no_grad():
        z = diffae.encode(orig)
    recon = ddim_decode(diffae, ddim_encode(diffae, orig, z, steps=cfg.DDIM_STEPS), z, steps=cfg.DDIM_STEPS)
    rec.record("fig4.recon_mse", (recon - orig).pow(2).mean().item())
    rec.record("fig4.other_image_mse", (orig.roll(1, 0) - orig).pow(2).mean().item())
    titles = [f"healthy {a:.0f} y" for a in ho_ages[idx_h]] + [f"{test_tag} {a:.0f} y" for a in te_ages[idx_t]]
    fig = figures.reconstruction_grid(orig.cpu().numpy(), recon.cpu().numpy(), titles)
    rec.figure(fig, "fig4_reconstructions", "Fig. 4: originals, DDIM reconstructions and |difference|.")
    print(f"reconstruction MSE {rec.get('fig4.recon_mse'):.4f} vs another subject's image "
          f"{rec.get('fig4.other_image_mse'):.4f}")


def judge_claims(cfg, rec: Recorder, p: Predictions, dd: DiffData) -> None:
    """Judge every claim from the recorded numbers and show the verdicts with the gate they share."""
    lines = rec.record_claims(claims(rec.values(), p.simulated, dd.data_on))
    lines.insert(0, f"*Gate of every claim about a model:* {GATE}\n")
    if cfg.profile != "paper":
        lines.insert(0, f"*{cfg.profile} profile: a reduced run; a claim can be right in direction here, not in the "
                        "paper's magnitudes (at best direction only).*\n")
    display(Markdown("\n".join(lines)))


def over_seeds(cfg, rec: Recorder) -> None:
    """Run the further model seeds, combine every claim's verdict over them and show Tables 1-2 and the magnitudes
    as mean ± sd over the seeds."""
    others = run_other_seeds(cfg)
    display(combine(rec, others))
    if others:
        display(Markdown(f"**Over {1 + len(others)} model seeds** (mean ± sd beside the paper's values)."))
        for prefix in ("table1", "table2"):
            display(format_table(wide_table(rec, prefix, seeds=True)))
        display(magnitude_table(rec))


def finish(rec: Recorder, p: Predictions, t_start: float) -> None:
    """Record the notebook's wall time, save the per-subject predictions and write the results file."""
    rec.record("wall_time_s", time.time() - t_start, unit="s")
    rec.save_predictions(p.per_subject.rename(columns={"set": "evaluation"}))
    print("results:", rec.finalize())
