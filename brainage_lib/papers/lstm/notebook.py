"""What notebook 03_lstm uses, in one import: ``from brainage_lib.papers.lstm import notebook as lstm``.

The wing's own parts (data, models, training, evaluation, gates, claims, figures, the paper's numbers) and
the shared ones the notebook needs, re-exported, and the bookkeeping of each of the notebook's steps
(recording tables, saving model cards, combining seeds) as one function each, so that a cell reads as a
step of the paper.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from brainage_lib.data.space import check_input_space
from brainage_lib.engine.training import TrainConfig, TrainResult, n_parameters
from brainage_lib.inference.cards import cohort_space, save_model, transform_spec
from brainage_lib.metrics.verdicts import GATE_TEXT
from brainage_lib.notebook import start
from brainage_lib.papers import fidelity
from brainage_lib.papers.lstm import claims, figures, gates, paper
from brainage_lib.papers.lstm.claims import claim_magnitudes, record_reference, rules_text
from brainage_lib.papers.lstm.data import LSTMData, load_data
from brainage_lib.papers.lstm.deviations import DEVIATIONS
from brainage_lib.papers.lstm.evaluation import (CNN3D_NAME, DISC, LSTM_NAME, MODELS, REP, REP_YOUNG, Evaluation,
                                                 parse_shape, predictions_frame, record_cs,
                                                 record_overall, record_paired, record_table,
                                                 record_training_times, record_young_discovery, seeds_wide, wide)
from brainage_lib.papers.lstm.evaluation import build_models as _build_models
from brainage_lib.papers.lstm.transforms import AtlasVolume, LSTMSlices
from brainage_lib.papers.lstm.training import evaluations, predict_all, train_models
from brainage_lib.run.results import Recorder
from brainage_lib.run.seeds import combine, run_other_seeds

__all__ = ["CNN3D_NAME", "DEVIATIONS", "GATE_TEXT", "LSTM_NAME", "MODELS", "TrainConfig", "age_distributions",
           "check_input_space", "claims", "deviations", "evaluations", "figures", "finish", "gate_numbers", "gates",
           "judge_claims", "load_data", "model_builder", "over_seeds", "paper", "paper_table", "parse_shape",
           "predict_all", "record_cs", "record_data", "record_models", "record_overall", "record_paired",
           "record_reference", "record_young_discovery", "save_models", "start", "train_models", "training_times"]

TABLE_EVALUATION = {"table1": DISC, "table2": REP, "table3": REP_YOUNG}  # paper table -> the evaluation it reports


def deviations(rec: Recorder) -> None:
    """Record the readings of the paper and the deviations from it, and show them."""
    fidelity.record(rec, DEVIATIONS)
    display(Markdown(fidelity.markdown(DEVIATIONS)))


def record_data(rec: Recorder, data: LSTMData, young: str) -> tuple[dict[str, str], pd.DataFrame]:
    """Record what this data cannot test and the subjects of each part beside the paper's cohort sizes; show the
    data used. Returns ``missing`` (evaluation key or regime -> why not testable) and the table of sizes."""
    missing = data.not_testable()
    for k, why in missing.items():
        rec.record(f"not_testable.{k}", why)
    display(Markdown(data.used("data", young)))
    sizes = data.sizes(young)
    for k, v in sizes.items():
        rec.record(f"data.n.{k}", v)
    rec.record("data.paper_n_discovery", len(data.disc), paper=paper.N_DISCOVERY)
    rec.record("data.paper_n_replication", len(data.repl) if data.repl is not None else None,
               paper=paper.N_REPLICATION, note=data.no_replication)
    return missing, pd.Series(sizes, name="subjects").to_frame()


def age_distributions(data: LSTMData):
    """Paper Fig. 1: ages of the discovery split and of the replication cohort."""
    repl_ages = data.repl.ages if data.repl is not None else None
    return figures.age_distributions(data.disc.ages[data.train_idx], data.disc.ages[data.test_idx], repl_ages,
                                     data.no_replication)


def model_builder(atlas: tuple[int, int, int], cfg) -> partial:
    """A function building both models afresh at this run's sizes."""
    return partial(_build_models, atlas, cfg.SLICE_SIZE, cfg.POOL_K, cfg.WIDTH, stem_kernel=cfg.STEM_KERNEL)


def record_models(rec: Recorder, models: Mapping, stem_kernel: int) -> pd.DataFrame:
    """Record both models' parameter counts and the 3D stem; print the stem's reading; returns the counts."""
    for name, m in models.items():
        rec.record(f"model.{name}.parameters", n_parameters(m))
    rec.record(f"model.{CNN3D_NAME}.stem_kernel", stem_kernel)
    reading = {7: "standard ResNet18 stem", 3: "the paper's literal 3x3x3"}.get(stem_kernel, "neither reading")
    sk = stem_kernel
    print(f"STEM_KERNEL = {sk}: 3D-ResNet18 stem {sk}x{sk}x{sk}, stride 2 ({reading}); 2D slice encoder: ResNet18's 7x7 stem")
    return pd.DataFrame({"parameters": {k: f"{n_parameters(m):,}" for k, m in models.items()}})


def paper_table(rec: Recorder, name: str, evals: Mapping[str, Evaluation], data: LSTMData,
                missing: Mapping[str, str], young: str) -> pd.DataFrame:
    """Show the data of paper table ``name``, record it (saying why where it is in the cohort's own bins) and
    return it as "paper / this run" per model and age group."""
    display(Markdown(data.used(TABLE_EVALUATION[name], young)))
    table = record_table(rec, name, evals, missing)
    if table.attrs["bins"].why:
        print(table.attrs["bins"].why)
    return wide(table)


def save_models(cfg, rec: Recorder, trained: Mapping[tuple[str, str], TrainResult], evals: Mapping[str, Evaluation],
                tcfg: TrainConfig, data: LSTMData, atlas: tuple[int, int, int], young: str) -> None:
    """Save each of the four trainings with its model card (``<regime>_<model>.model.pt``); print each path."""
    space = cohort_space(data.disc)
    for (regime, name), res in trained.items():
        lstm = name == LSTM_NAME
        tf = LSTMSlices(atlas_shape=atlas, slice_size=cfg.SLICE_SIZE) if lstm else AtlasVolume(atlas_shape=atlas)
        mae = evals[DISC].mae(name) if regime == "0-22" else rec.get(f"young_discovery_test.young.{name}")
        label = f"{name}, trained {'0-22' if regime == '0-22' else young} y"
        print(save_model(cfg, rec, f"{regime}_{name.replace('+', '_').replace(' ', '')}", res.model, res.stage_dir, model=label,
                         architecture="ResNetLSTM" if lstm else "ResNet3D", config=asdict(res.model.config),
                         transform=transform_spec(tf), inputs="slice_sequence" if lstm else "volume", space=space,
                         test_mae=mae, target_mean=res.target_mean, target_sd=res.target_sd, bias_correction=None,
                         training={"config": asdict(tcfg), "epochs_trained": len(res.history)}))


def gate_numbers(evals: Mapping[str, Evaluation], pred: Mapping[tuple[str, str, str], np.ndarray], data: LSTMData,
                 young_test: np.ndarray, young: str, missing: Mapping[str, str]) -> gates.GateNumbers:
    """The numbers each gate decides on: every model on the discovery test subjects of its own training range,
    and its predictions on the replication cohort."""
    young_ages = data.disc.ages[data.test_idx][young_test]
    young_preds = None if "young" in missing else {m: pred[("young", "discovery", m)] for m in MODELS}
    return gates.gate_numbers(gates.held_out_sets(evals.get(DISC), young_ages, young_preds, young), evals, missing)


def _amp_used(tcfg: TrainConfig, device) -> bool:
    return tcfg.amp and device.type == "cuda"


def training_times(rec: Recorder, trained: Mapping[tuple[str, str], TrainResult], tcfg: TrainConfig, device,
                   young: str, missing: Mapping[str, str]) -> pd.DataFrame:
    """Record the wall time of each training and the 3D / LSTM ratios beside the paper's hours; print them."""
    amp_used = _amp_used(tcfg, device)
    wall_s = {k: res.wall_time_s for k, res in trained.items()}
    times = record_training_times(rec, wall_s, young, amp_used, missing)
    ratio = times.loc["3D / LSTM"].to_numpy()
    hours = paper.PAPER_TRAIN_HOURS_K80
    print(f"on {device}, bf16 autocast: {'yes' if amp_used else 'no'} (TrainConfig.amp={tcfg.amp}, used on CUDA only)")
    not_trained = f"; {missing['young']}" if "young" in missing else ""
    print(f"3D / LSTM training-time ratio: trained 0-22 y {ratio[0]:.2f}; trained {young} y {ratio[1]:.2f} "
          f"(paper, trained 0-6 y on a K80: {hours[CNN3D_NAME]:g} h / {hours[LSTM_NAME]:g} h = "
          f"{hours[CNN3D_NAME] / hours[LSTM_NAME]:.2f}){not_trained}")
    return times.round(2)


def judge_claims(cfg, rec: Recorder, evals: Mapping[str, Evaluation], trained: Mapping[tuple[str, str], TrainResult],
                 tcfg: TrainConfig, device, young: str, missing: Mapping[str, str], gate_nums: gates.GateNumbers,
                 data_label: str) -> None:
    """Show the rules, judge every claim (with the paper's numbers beside this run's bootstrap intervals), show
    the verdicts and save the per-subject predictions."""
    display(Markdown(rules_text()))
    magnitudes = claim_magnitudes(evals)  # paired bootstrap intervals of the paper's numbers, recorded with each claim
    wall_s = {k: res.wall_time_s for k, res in trained.items()}
    amp_used = _amp_used(tcfg, device)
    rows = claims.claims(evals, wall_s, young, f"{device}{', bf16 autocast' if amp_used else ''}", missing,
                         gates=gate_nums, magnitudes=magnitudes)
    lines = rec.record_claims(rows)
    if cfg.profile != "paper":
        lines.append(f"\nThis was a **{cfg.profile}** run on {data_label}: reduced sizes and epochs, "
                     "so a claim with a paper number is at best \"direction only\" and verdicts describe this "
                     "configuration, not the paper's.")
    display(Markdown("\n".join(lines)))
    rec.save_predictions(predictions_frame(evals))


def over_seeds(cfg, rec: Recorder) -> None:
    """Run the further model seeds, combine every claim's verdict over the seeds and show the paper's tables as
    mean ± sd over them."""
    others = run_other_seeds(cfg)
    display(combine(rec, others))
    for name in ("table1", "table2", "table3"):
        display(Markdown(f"**{paper.PAPER['tables'][name]}** (paper / this run)"))
        display(seeds_wide(rec.doc, name))


def finish(rec: Recorder, t_start: float) -> None:
    """Record the notebook's wall time and write the results file."""
    rec.record("wall_time_s", time.time() - t_start, unit="s")
    print("results:", rec.finalize())
