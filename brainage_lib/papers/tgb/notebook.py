"""What notebook 01_tgb uses, in one import: ``from brainage_lib.papers.tgb import notebook as tgb``.

The wing's own parts (regressor, GAN, synthesis, evaluation, difference maps, magnitudes, claims, figures,
the paper's numbers) and the shared ones the notebook needs, re-exported, and the bookkeeping of each of
the notebook's steps (recording tables, saving model cards, gathering records, combining seeds) as one
function each, so that a cell reads as a step of the paper.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from torch.utils.data import ConcatDataset

from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import Cohort, balance_by_sex
from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.space import check_input_space
from brainage_lib.data.splits import stratified_split
from brainage_lib.engine.training import TrainConfig, TrainResult, n_parameters, train_regressor
from brainage_lib.errors import BrainAgeError
from brainage_lib.inference.cards import cohort_space, fitted_bias_correction, save_model, transform_spec
from brainage_lib.metrics.scores import mae_by_group
from brainage_lib.metrics.stats import wilcoxon_p
from brainage_lib.metrics.verdicts import GATE_TEXT, mean_prediction_mae, reconstruction_share
from brainage_lib.notebook import start
from brainage_lib.papers import fidelity
from brainage_lib.papers.tgb import figures, paper, regions
from brainage_lib.papers.tgb import magnitudes as mag
from brainage_lib.papers.tgb.claims import claims, gates
from brainage_lib.papers.tgb.deviations import DEVIATIONS
from brainage_lib.papers.tgb.evaluation import GROUP_EDGES, error_summary, split_counts, table1_frame
from brainage_lib.papers.tgb.gan import GANConfig, TGBCritic, TGBGenerator
from brainage_lib.papers.tgb.regressor import RegressorConfig, TGBRegressor
from brainage_lib.papers.tgb.synthesis import bin_fill, load_synthetic, synthesise, synthesise_at_age
from brainage_lib.papers.tgb.training import GANTrainConfig, GANResult, reconstruct, to_memory_format, train_gan
from brainage_lib.papers.tgb.transforms import TGBVolume
from brainage_lib.run.results import Recorder
from brainage_lib.run.seeds import combine, mean_sd, run_other_seeds

__all__ = ["GANS", "GATE_TEXT", "METHODS", "Configs", "TGBData", "augmented", "configs", "deviations",
           "difference_maps", "fig3_examples", "figures", "gan_of", "group_mae", "judge_claims", "magnitudes",
           "network_sizes", "new_regressor", "open_data", "over_seeds", "paper", "record_data", "record_gan",
           "record_gates", "record_training", "save_models", "start", "synthetic_set", "table1", "table1_frame",
           "train_regressor", "wilcoxon"]

METHODS = ("REG", "REG-GAN", "REG-GAN-TGB")
GANS = ("REG-GAN", "REG-GAN-TGB")


@dataclass
class TGBData:
    """The cohort, its sex-balanced subjects, their split and the cached network inputs."""

    cohort: Cohort  # as read (or simulated)
    data: Cohort  # after balancing sex per 1-year bin
    sizes: tuple[int, int, int]  # train, validation, test
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    volumes: np.ndarray  # (N, S, S, S) float16 memmap, rows = data.table rows
    train_ds: VolumeDataset
    val_ds: VolumeDataset
    test_ds: VolumeDataset

    @property
    def ages(self) -> np.ndarray:
        return self.data.ages

    @property
    def train_age(self) -> np.ndarray:
        return self.ages[self.train_idx]


def open_data(data_dir: str, data_seed: int, seed: int, cfg) -> TGBData:
    """Read (or simulate) the cohort, stop on real data that is not preprocessed, balance sex per 1-year bin
    (``data_seed``), split it stratified by age in the paper's proportions (``seed``) and cache the inputs."""
    sim = {"n": cfg.N_SUBJECTS or None, "seed": data_seed, "shape": cfg.SHAPE or None,
           "effect_region": cfg.EFFECT_REGION}
    cohort = open_cohort("abide_like", data_dir, **sim)
    check_input_space([cohort], "tgb", data_dir, cfg.ALLOW_UNREGISTERED)  # real data: stop unless preprocessed
    balanced = balance_by_sex(cohort.table, seed=data_seed)
    data = cohort.subset(cohort.table["participant_id"].isin(set(balanced["participant_id"])))
    sizes = split_counts(len(data))
    train_idx, val_idx, test_idx = stratified_split(data.ages, sizes, seed=seed)
    volumes = cached_array(data, TGBVolume(size=cfg.SIZE))
    train_ds, val_ds, test_ds = (VolumeDataset(volumes, data.ages, idx) for idx in (train_idx, val_idx, test_idx))
    return TGBData(cohort, data, sizes, train_idx, val_idx, test_idx, volumes, train_ds, val_ds, test_ds)


def record_data(rec: Recorder, d: TGBData) -> pd.DataFrame:
    """Record the cohort and split sizes beside the paper's, print them; returns the subjects per 1-year bin."""
    rec.record("data.N", len(d.cohort), paper=paper.N_SUBJECTS)
    rec.record("data.N_balanced", len(d.data), paper=paper.N_BALANCED)
    for sex, name in (("M", "male"), ("F", "female")):
        rec.record(f"data.{name}", int((d.data.table["sex"] == sex).sum()), paper=paper.N_PER_SEX)
    parts = (("train", d.train_idx), ("val", d.val_idx), ("test", d.test_idx))
    for (part, idx), n in zip(parts, paper.SPLIT):
        rec.record(f"split.{part}", len(idx), paper=n)
    year = np.floor(d.ages).astype(int)
    counts = pd.DataFrame({part: pd.Series(year[idx]).value_counts() for part, idx in parts}).fillna(0).astype(int).sort_index()
    counts.index = [f"{y}-{y + 1}" for y in counts.index]
    print(f"{len(d.cohort)} subjects -> {len(d.data)} after balancing sex per 1-year bin -> split {d.sizes} (paper: "
          f"{paper.N_SUBJECTS} -> {paper.N_BALANCED} -> {'/'.join(map(str, paper.SPLIT))}); input "
          f"{d.volumes.shape[1:]} ({d.volumes.dtype}).")
    return counts.T


class Configs(NamedTuple):
    reg: RegressorConfig
    gan: GANConfig
    reg_train: TrainConfig
    gan_train: GANTrainConfig


def configs(cfg, seed: int) -> Configs:
    """The networks' and the trainings' settings of this run."""
    return Configs(RegressorConfig(input_shape=(cfg.SIZE,) * 3, width=cfg.REG_WIDTH),
                   GANConfig(width=cfg.GAN_WIDTH, alpha=cfg.ALPHA, beta=cfg.BETA, lambda_gp=cfg.LAMBDA_GP,
                             output=cfg.GAN_OUTPUT),
                   TrainConfig(epochs=cfg.REG_EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.REG_LR, lr_step=cfg.LR_STEP,
                               lr_gamma=cfg.LR_GAMMA, loss="mse", seed=seed, max_steps=cfg.max_steps),
                   GANTrainConfig(epochs=cfg.GAN_EPOCHS, batch_size=cfg.BATCH_SIZE, lr=cfg.GAN_LR, lr_step=cfg.LR_STEP,
                                  lr_gamma=cfg.LR_GAMMA, n_critic=cfg.N_CRITIC, seed=seed, max_steps=cfg.max_steps))


def network_sizes(c: Configs) -> pd.DataFrame:
    """Channels and parameters of this run's networks beside the paper-size ones (shapes only, no memory)."""
    with torch.device("meta"):
        shapes = {"REG (and the task-guided branch)": (TGBRegressor(c.reg), TGBRegressor()),
                  "generator": (TGBGenerator(c.gan), TGBGenerator()), "critic": (TGBCritic(c.gan), TGBCritic())}
    return pd.DataFrame({"channels": [c.reg.level_channels, (c.gan.enc, c.gan.dec), c.gan.enc],
                         "parameters": [n_parameters(ours) for ours, _ in shapes.values()],
                         "paper-size parameters": [n_parameters(p) for _, p in shapes.values()]}, index=list(shapes))


def new_regressor(c: Configs, seed: int, k: int, device: torch.device) -> TGBRegressor:
    """A fresh REG, initialised from ``seed + k``."""
    torch.manual_seed(seed + k)
    return to_memory_format(TGBRegressor(c.reg), device, channels_last=True)


def gan_of(method: str, k: int, c: Configs, d: TGBData, engine, seed: int) -> GANResult:
    """Train the GAN of ``method`` (REG-GAN: eq. 3; REG-GAN-TGB: eq. 5, with its task-guided branch)."""
    torch.manual_seed(seed + 10 + k)
    branch = TGBRegressor(c.reg) if method == "REG-GAN-TGB" else None
    return train_gan(TGBGenerator(c.gan), TGBCritic(c.gan), d.train_ds, c.gan_train, engine, regressor=branch,
                     val=d.val_ds, desc=method)


def synthetic_set(method: str, g: GANResult, train_images: np.ndarray, d: TGBData, cfg, seed: int, force: bool,
                  device: torch.device):
    """Fill every 1-year bin of the training set to ``MIN_PER_BIN`` by eqs. 6-7 with ``g``'s generator, written to
    ``checkpoints/01_tgb/synthetic/<method>/`` and read back; returns the set and its fill per bin."""
    train_ids = d.data.table["participant_id"].iloc[d.train_idx].tolist()
    saved = synthesise(g.generator, train_images, d.train_age, cfg.checkpoint_dir / "synthetic" / method, device,
                       min_per_bin=cfg.MIN_PER_BIN, seed=seed, ids=train_ids, stage_key=None if force else g.stage_key)
    synth = load_synthetic(saved.root)
    return synth, bin_fill(d.train_age, synth.ages, cfg.MIN_PER_BIN)


def augmented(d: TGBData, synth) -> ConcatDataset:
    """The real training images and a synthetic set."""
    return ConcatDataset([d.train_ds, VolumeDataset(synth.images, synth.ages)])


def record_gan(rec: Recorder, method: str, g: GANResult, synth, fill: pd.DataFrame, n_train: int) -> None:
    """Record the synthetic set of ``method`` beside the paper's and its GAN's selected epoch and time."""
    rec.record(f"synthesis.{method}.n_synthetic", len(synth), paper=paper.N_SYNTHETIC)
    rec.record(f"synthesis.{method}.n_training_total", n_train + len(synth), paper=paper.N_TRAINING_TOTAL)
    rec.record(f"synthesis.{method}.bins_below_min", int((~fill["filled"]).sum()), paper=paper.BINS_BELOW_MIN)
    rec.record(f"training.{method}.gan_best_epoch", g.best_epoch)
    rec.record(f"training.{method}.gan_wall_time_s", g.wall_time_s, unit="s")


def record_training(rec: Recorder, results: dict[str, TrainResult], fills: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Record each regressor's selected epoch and time, print the bins left short; returns the fill per bin."""
    for m in METHODS:
        rec.record(f"training.{m}.reg_best_epoch", results[m].best_epoch)
        rec.record(f"training.{m}.reg_wall_time_s", results[m].wall_time_s, unit="s")
    short = {m: f["bin"][~f["filled"]].tolist() for m, f in fills.items() if (~f["filled"]).any()}
    print("Every 1-year bin reached the minimum." if not short else
          f"Bins no training pair within 1 year can reach (left short): {short}")
    return pd.concat({m: f.set_index("bin")[["real", "synthetic", "total"]] for m, f in fills.items()}, axis=1).T


@dataclass
class Evaluation:
    """Every method's predictions on the test and validation subjects, and the GANs' test reconstructions' L1."""

    test_age: np.ndarray
    val_age: np.ndarray
    preds: dict[str, np.ndarray]
    val_preds: dict[str, np.ndarray]
    abs_err: dict[str, np.ndarray]
    l1: dict[str, np.ndarray]  # per test image, per GAN


def table1(rec: Recorder, cfg, results: dict[str, TrainResult], gans: dict[str, GANResult], d: TGBData,
           train_images: np.ndarray, device: torch.device) -> Evaluation:
    """Record Table 1 (MSE, MAE, L1), the reconstruction gate's shares, the baselines and the validation MAEs, and
    show them in a paragraph."""
    test_age, val_age = d.ages[d.test_idx], d.ages[d.val_idx]
    preds = {m: results[m].predict(d.test_ds, device) for m in METHODS}
    val_preds = {m: results[m].predict(d.val_ds, device) for m in METHODS}
    abs_err = {m: np.abs(preds[m] - test_age) for m in METHODS}
    test_images = np.asarray(d.volumes[d.test_idx])
    for m in METHODS:
        summary = error_summary(preds[m], test_age)
        for metric in ("mse", "mae"):
            for i, stat in enumerate(("mean", "sd")):
                rec.record(f"table1.{m}.{metric}_{stat}", summary[f"{metric}_{stat}"],
                           paper=paper.PAPER_TABLE1[m][metric][i], unit="years²" if metric == "mse" else "years")
    l1, shares = {}, {}
    for m in GANS:
        test_recon = reconstruct(gans[m].generator, test_images, device)  # (N_test, S, S, S) float32
        l1[m] = np.abs(test_recon - test_images.astype(np.float32)).reshape(len(test_images), -1).mean(1)
        shares[m] = reconstruction_share(test_images, test_recon)
        rec.record(f"table1.{m}.l1_mean", l1[m].mean(), paper=paper.PAPER_TABLE1[m]["l1"][0])
        rec.record(f"table1.{m}.l1_sd", l1[m].std(ddof=1), paper=paper.PAPER_TABLE1[m]["l1"][1])
        rec.record(f"reconstruction.{m}.share", shares[m], note="share of test images whose reconstruction is closer "
                   "(L1) to its own input than to the median other test image")
    del test_recon
    mean_mae = rec.record("baseline.mean_prediction.mae", mean_prediction_mae(test_age), unit="years")
    mean_l1 = rec.record("baseline.mean_image.l1", np.abs(test_images - train_images.mean(0, dtype=np.float32)).mean())
    val_ref = rec.record("baseline.validation_mean_prediction.mae", mean_prediction_mae(val_age), unit="years")
    for m in METHODS:
        rec.record(f"validation.{m}.mae", np.abs(val_preds[m] - val_age).mean(), unit="years")
    display(Markdown(
        f"Profile **{cfg.profile}**, data **{rec.doc['data']}**, {len(d.test_idx)} test subjects (paper: "
        f"{paper.SPLIT[2]}). Validation ({len(d.val_idx)} subjects): predicting their own mean age gives MAE "
        f"{val_ref:.2f} y; " + ", ".join(f"{m} {rec.get(f'validation.{m}.mae'):.2f} y" for m in METHODS)
        + f" (learned: below {0.8 * val_ref:.2f} y). Test images: reconstructions closer to their own input than to "
        "the median other image for " + ", ".join(f"{m} {100 * shares[m]:.0f} %" for m in GANS)
        + " (needs 90 %); mean test L1 " + ", ".join(f"{m} {l1[m].mean():.4f}" for m in GANS)
        + f", of the mean training image {mean_l1:.4f}; predicting the test subjects' own mean age gives MAE "
        f"{mean_mae:.2f} y."))
    return Evaluation(test_age, val_age, preds, val_preds, abs_err, l1)


def save_models(cfg, rec: Recorder, results: dict[str, TrainResult], gans: dict[str, GANResult], c: Configs,
                ev: Evaluation, d: TGBData) -> None:
    """Save each regressor with its model card and an age-bias correction fitted on the validation subjects; print
    each path."""
    space = cohort_space(d.data)
    for m in METHODS:
        bc = fitted_bias_correction(ev.val_preds[m], ev.val_age, "the validation subjects")
        training = {"config": asdict(c.reg_train), "best_epoch": results[m].best_epoch + 1,
                    "gan": {"config": asdict(c.gan_train), "best_epoch": gans[m].best_epoch + 1} if m in gans else None}
        print(save_model(cfg, rec, m, results[m].model, results[m].stage_dir, architecture="TGBRegressor", config=asdict(c.reg),
                         transform=transform_spec(TGBVolume(size=cfg.SIZE)), inputs="volume", space=space,
                         test_mae=rec.get(f"table1.{m}.mae_mean"), target_mean=results[m].target_mean,
                         target_sd=results[m].target_sd, bias_correction=bc, training=training))


def wilcoxon(rec: Recorder, abs_err: dict[str, np.ndarray]) -> pd.DataFrame:
    """Record the paired Wilcoxon signed-rank test of every pair of methods; returns them as a table."""
    rows = []
    for a, b in (("REG", "REG-GAN"), ("REG", "REG-GAN-TGB"), ("REG-GAN", "REG-GAN-TGB")):
        p_abs, p_sq = wilcoxon_p(abs_err[a], abs_err[b]), wilcoxon_p(abs_err[a] ** 2, abs_err[b] ** 2)
        p_paper = paper.WILCOXON_P if b == "REG-GAN-TGB" else None
        rec.record(f"wilcoxon.{a}_vs_{b}.p", p_abs, paper=p_paper)
        rec.record(f"wilcoxon.{a}_vs_{b}.p_squared_error", p_sq, paper=p_paper)
        rec.record(f"wilcoxon.{a}_vs_{b}.median_abs_error_difference", float(np.median(abs_err[b] - abs_err[a])),
                   unit="years")
        rows.append({"pair": f"{a} vs {b}", "p (|error|)": p_abs, "p (error²)": p_sq, "paper": p_paper or "not reported",
                     "median |e_b| - |e_a| (years)": np.median(abs_err[b] - abs_err[a])})
    return pd.DataFrame(rows).set_index("pair")


def group_mae(rec: Recorder, ev: Evaluation, d: TGBData) -> pd.DataFrame:
    """Record and show the MAE per age group of the paper's discussion (with the training mean age as a constant
    prediction and the paper's values); returns the same with each model's linear age trend of errors taken out."""
    test_age, labels = ev.test_age, tuple(paper.PAPER_GROUP_MAE)
    group_rows = {}
    for m in METHODS:
        g = mae_by_group(test_age, ev.abs_err[m], GROUP_EDGES, labels=labels, include_all=False)
        for _, row in g.iterrows():
            rec.record(f"group_mae.{m}.{row['group']}", row["mae"],
                       paper=paper.PAPER_GROUP_MAE[row["group"]] if m == "REG-GAN-TGB" else None, unit="years")
        group_rows[m] = g.set_index("group")["mae"]
    group_table = pd.DataFrame(group_rows).T
    constant = mae_by_group(test_age, np.abs(d.train_age.mean() - test_age), GROUP_EDGES, labels=labels,
                            include_all=False)
    group_table.loc["training mean age (constant)"] = constant.set_index("group")["mae"]
    group_table.loc["REG-GAN-TGB (paper)"] = pd.Series(paper.PAPER_GROUP_MAE)
    detrended = {}
    for m in METHODS:
        detrended[m] = mag.detrended_group_mae(test_age, ev.preds[m])
        for grp, v in detrended[m].items():
            rec.record(f"group_mae_detrended.{m}.{grp}", v, unit="years")
    names = {grp: f"{grp} (n = {n} test)" for grp, n in zip(g["group"], g["n"])}
    display(group_table.rename(columns=names).round(2))
    return pd.DataFrame(detrended).T.rename(columns=names).round(2).rename_axis("errors' linear age trend taken out")


@dataclass
class Maps:
    """The Fig. 3 difference maps, the simulator's reference maps (None on real data) and their scores."""

    diff: dict[str, np.ndarray]  # source -> |mean(age 20) - mean(age 8)|
    refs: dict[str, Any] | None
    recovery: pd.DataFrame
    ratio_magnitude: Any  # the TGB / GAN map ratio's interval


def difference_maps(rec: Recorder, cfg, gans: dict[str, GANResult], train_images: np.ndarray, d: TGBData,
                    device: torch.device, seed: int) -> Maps:
    """The difference maps of the real images and of each GAN's reconstructions, their strengths beside the paper's
    maxima and, on simulated data, their recovery of the simulator's effect region against an age-permutation null."""
    train_age = d.train_age
    young = regions.nearest_age_indices(train_age, regions.YOUNG_AGE, cfg.N_DIFF)
    old = regions.nearest_age_indices(train_age, regions.OLD_AGE, cfg.N_DIFF)
    rec.record("diffmap.age8_group_mean_age", train_age[young].mean(), paper=paper.DIFFMAP_AGES["age8"], unit="years")
    rec.record("diffmap.age20_group_mean_age", train_age[old].mean(), paper=paper.DIFFMAP_AGES["age20"], unit="years")
    image_sets = {"real": train_images.astype(np.float32)}  # (N_train, S, S, S): real images and their reconstructions
    image_sets.update({m: reconstruct(gans[m].generator, train_images, device).astype(np.float16) for m in GANS})
    diff = {src: regions.mean_difference_map(imgs[young], imgs[old]) for src, imgs in image_sets.items()}
    refs = regions.reference_maps(d.data.ground_truth_dir, TGBVolume(size=cfg.SIZE))
    brain = refs["mask"] if refs is not None else image_sets["real"].mean(0) > 0.1
    for src, dm in diff.items():
        rec.record(f"diffmap.{src}.max", float(dm.max()), paper=paper.PAPER_DIFF_MAX.get(src))
        rec.record(f"diffmap.{src}.p{regions.STRENGTH_PERCENTILE:g}", regions.robust_strength(dm, brain))
    if refs is None:
        print("No ground_truth/ folder in this cohort (real data): region recovery cannot be scored and is skipped.")
        recovery = pd.DataFrame()
    else:
        recovery = regions.score_maps(image_sets, train_age, refs, cfg.N_DIFF, cfg.TOP_PERCENT, cfg.N_PERM, seed=seed)
        for src, row in recovery.iterrows():
            for stat in ("pearson_r", "dice_top", "p_dice", "p_r", "null_dice_95"):
                rec.record(f"recovery.{src}.effect.{stat}", row[stat])
        rec.record("recovery.chance_dice", float(recovery["chance"].iloc[0]))
        if "oracle" in refs:
            diff["oracle"] = refs["oracle"]
    ratio_magnitude = mag.diffmap_ratio_magnitude(image_sets["REG-GAN-TGB"], image_sets["REG-GAN"], young, old, brain,
                                                  seed=seed)
    return Maps(diff, refs, recovery, ratio_magnitude)


def magnitudes(rec: Recorder, ev: Evaluation, maps: Maps, seed: int) -> pd.DataFrame:
    """Record the paper's numbers beside this run's 95 % bootstrap intervals; returns them as a table."""
    mags = {**mag.table1_magnitudes(ev.test_age, ev.preds, ev.l1, seed=seed),
            **mag.group_magnitudes(ev.test_age, ev.preds["REG-GAN-TGB"], seed=seed),
            "tgb_stronger_diffmap.ratio": maps.ratio_magnitude}
    mag.record_magnitudes(rec, mags)
    return pd.DataFrame([{"claim": k.split(".")[0], "quantity": m.quantity, "paper": m.paper, "this run": m.value,
                          "95 % low": m.low, "95 % high": m.high, "paper inside": m.inside} for k, m in mags.items()]
                        ).set_index(["claim", "quantity"]).round(4)


def fig3_examples(gans: dict[str, GANResult], train_images: np.ndarray, train_age: np.ndarray, device: torch.device,
                  seed: int) -> dict[str, dict[float, np.ndarray]]:
    """One real image at ages 8 and 20 and, per GAN, one eq. 6 synthesis at each age (the reconstruction of the
    nearest real image where no training pair straddles the age, said so)."""
    examples = {"real": {a: train_images[regions.nearest_age_indices(train_age, a, 1)[0]].astype(np.float32)
                         for a in (8.0, 20.0)}}
    for m in GANS:
        examples[m] = {}
        for a in (8.0, 20.0):
            try:
                examples[m][a] = synthesise_at_age(gans[m].generator, train_images, train_age, a, 1, device,
                                                   seed=seed)[0][0]
            except BrainAgeError as exc:
                print(f"{m}, age {a:g}: {exc} Showing the reconstruction of the nearest real image instead.")
                examples[m][a] = reconstruct(gans[m].generator, examples["real"][a][None], device)[0]
    return examples


def record_gates(rec: Recorder) -> pd.DataFrame:
    """Record every gate from the recorded numbers and show what the gates are; returns the gates' table."""
    for gate in gates(rec.doc["records"]):
        rec.gate(gate)
    display(Markdown(GATE_TEXT))
    return rec.gates()


def judge_claims(rec: Recorder, cfg, seed: int, d: TGBData, ev: Evaluation) -> None:
    """Judge and show every claim; save the per-subject test predictions."""
    lines = rec.record_claims(claims(rec.doc["records"], rec.doc["data"]))
    display(Markdown(f"Profile **{cfg.profile}** on **{rec.doc['data']}**, model seed {seed}:\n\n" + "\n".join(lines)))
    test_ids = d.data.table["participant_id"].iloc[d.test_idx].to_numpy()
    rec.save_predictions(pd.DataFrame({"evaluation": "test", "participant_id": test_ids, "age": ev.test_age,
                                       **{m: ev.preds[m] for m in METHODS}}))


def over_seeds(cfg, rec: Recorder) -> pd.DataFrame:
    """Run the further model seeds and combine every claim's verdict over them; show Table 1 and every number with a
    paper value as mean ± sd over the seeds; returns the claims with their verdicts."""
    others = run_other_seeds(cfg)
    display(combine(rec, others))
    if others:
        display(Markdown("Table 1 over the model seeds (mean ± sd of each seed's value):"))
        display(table1_frame(rec.doc["records"], over_seeds=True))
        display(pd.DataFrame([{"quantity": k, "paper": e["paper"], f"this run ({len(others) + 1} seeds)": mean_sd(e)}
                              for k, e in rec.doc["records"].items()
                              if "paper" in e and "seeds_mean" in e and not k.startswith(("claims.", "table1."))]
                             ).set_index("quantity"))
    return rec.claims()[["key", "kind", "verdict", "seeds", "reason"]].set_index("key")


def deviations(rec: Recorder) -> None:
    """Record the deviations from the paper and show them."""
    fidelity.record(rec, DEVIATIONS)
    display(Markdown(fidelity.markdown(DEVIATIONS)))
