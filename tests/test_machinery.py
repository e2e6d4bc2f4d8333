"""Notebook machinery: profiles, recorded results, figures, seeding, provenance, runner errors."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import yaml

from brainage_lib import paths
from brainage_lib.cli import main
from brainage_lib.errors import BrainAgeError
from brainage_lib.run.figures import save_figure
from brainage_lib.run.params import resolve_params, resolve_profile
from brainage_lib.run.provenance import provenance
from brainage_lib.run.results import Recorder, load_results, to_jsonable
from brainage_lib.run.runner import (check_run, parameters_namespace, parse_assignments, run_notebook,
                                     tidy_streams)
from brainage_lib.run.seeding import seed_everything


def cfg_of(nb: str, profile: str, **values):
    """What ``resolve_params(NB, globals())`` gives in notebook ``nb`` run with ``profile`` and ``values``."""
    return resolve_params(nb, parameters_namespace(nb, PROFILE=profile, **values))


def test_resolve_params_overrides_and_errors():
    cfg = cfg_of("00_cohorts", "smoke", N_SUBJECTS=7, SHAPE=None)
    assert cfg.N_SUBJECTS == 7 and cfg.sources["N_SUBJECTS"] == "override"
    assert cfg.SHAPE == 32 and cfg.sources["SHAPE"] == "profile smoke"
    assert "REDUCED" in cfg.banner()
    with pytest.raises(BrainAgeError, match="Unknown profile 'fast'"):
        cfg_of("00_cohorts", "fast")
    with pytest.raises(BrainAgeError, match="found no parameters"):
        resolve_params("00_cohorts", {"PROFILE": "smoke"})
    assert resolve_profile("auto") == ("paper" if torch.cuda.is_available() else "quick")


def test_resolve_params_refuses_a_profile_that_disagrees_with_the_cell(tmp_path, monkeypatch):
    for src in paths.params_dir().glob("00_cohorts.*.yaml"):
        (tmp_path / src.name).write_text(src.read_text())
    monkeypatch.setattr(paths, "params_dir", lambda: tmp_path)
    smoke = tmp_path / "00_cohorts.smoke.yaml"
    original = smoke.read_text()
    smoke.write_text(original + "EPOCHS: 3\n")
    with pytest.raises(BrainAgeError, match="EPOCHS not in the parameters cell"):
        cfg_of("00_cohorts", "smoke")
    smoke.write_text("\n".join(line for line in original.splitlines() if not line.startswith("SHAPE:")))
    with pytest.raises(BrainAgeError, match="has no value for SHAPE"):
        cfg_of("00_cohorts", "smoke")


def test_banner_lists_every_parameter_that_differs_from_the_paper_profile():
    paper = yaml.safe_load((paths.params_dir() / "03_lstm.paper.yaml").read_text())
    cfg = cfg_of("03_lstm", "quick", EPOCHS=paper["EPOCHS"])
    expected = sorted(k for k, v in cfg.values.items() if v != paper[k])
    assert "EPOCHS" not in expected and {"LR", "BATCH_SIZE"} <= set(expected)
    assert sorted(cfg.deviations()) == expected
    banner, table = cfg.banner(), cfg.table()
    assert all(f"`{k}` = {cfg[k]!r} (paper profile: {paper[k]!r})" in banner for k in expected)
    assert "`EPOCHS`" not in banner and sorted(table.index[table["differs"]]) == expected
    full = cfg_of("03_lstm", "paper")
    assert full.deviations() == [] and "Every parameter equals" in full.banner()


def test_recorder_keeps_previous_results_until_finalize(tmp_path):
    rec = Recorder("nbx", "smoke", "simulated", output_dir=tmp_path)
    rec.record("table.mae", np.float32(1.5), paper=1.32, unit="years")
    rec.finalize()
    first = load_results("nbx", output_dir=tmp_path)
    assert first["records"]["table.mae"] == {"value": 1.5, "paper": 1.32, "unit": "years"}
    assert first["provenance"]["git"] and "torch" in first["provenance"]["packages"]
    rec2 = Recorder("nbx", "smoke", "simulated", output_dir=tmp_path)
    rec2.record("table.mae", float("nan"))  # a run that dies before finalize()
    assert load_results("nbx", output_dir=tmp_path)["records"]["table.mae"]["value"] == 1.5
    partial = json.loads((tmp_path / "results" / "nbx.partial.json").read_text())
    assert partial["records"]["table.mae"]["value"] is None
    t = rec.table("table")
    assert list(t.columns[:3]) == ["quantity", "paper", "this run"] and t.iloc[0]["paper"] == 1.32


def test_to_jsonable_rejects_objects():
    assert to_jsonable({"a": np.arange(3), "b": np.bool_(True), "c": np.inf}) == {"a": [0, 1, 2], "b": True, "c": None}
    with pytest.raises(BrainAgeError):
        to_jsonable(object())
    with pytest.raises(BrainAgeError, match="No results for nope"):
        load_results("nope")


def test_save_figure_writes_png_pdf_and_sidecar(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = save_figure(fig, "nbx", "line", params={"N": 3}, output_dir=tmp_path, caption="a line")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (png.with_suffix(".pdf")).read_bytes()[:4] == b"%PDF"
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["params"] == {"N": 3} and side["caption"] == "a line" and "git" in side["provenance"]


def test_seeding_repeats_random_streams():
    seed_everything(5)
    a = (np.random.rand(3), torch.rand(3))
    seed_everything(5)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def test_provenance_fields():
    p = provenance()
    assert set(p) >= {"git", "python", "platform", "device", "packages"}
    assert p["packages"]["torch"].startswith(torch.__version__.split("+")[0])


def test_runner_rejects_unknown_notebook_and_parameters():
    with pytest.raises(BrainAgeError, match="No notebook 'nb_missing'"):
        run_notebook("nb_missing", profile="smoke")
    with pytest.raises(BrainAgeError, match=r"Unknown parameter\(s\) \['EPOCHS'\]"):
        run_notebook("00_cohorts", profile="smoke", params={"EPOCHS": 3})
    with pytest.raises(BrainAgeError, match="Unknown profile"):
        run_notebook("00_cohorts", profile="huge")
    assert parse_assignments(["N_SUBJECTS=40", "PRESETS=a,b", "X=1.5"]) == {"N_SUBJECTS": 40, "PRESETS": "a,b", "X": 1.5}
    with pytest.raises(BrainAgeError, match="KEY=VALUE"):
        parse_assignments(["N_SUBJECTS"])


def test_core_parameters_are_recorded_in_results_and_figures(tmp_path):
    recorded = {"PROFILE": "smoke", "DATA_DIR": "/data/x", "DATA_SEED": 3, "SEED": 7, "DEVICE": "cpu", "DEVICES": 2, "FORCE": True,
                "OUTPUT_DIR": str(tmp_path)}
    cfg = resolve_params("00_cohorts", parameters_namespace("00_cohorts", **recorded, N_SUBJECTS=9))
    assert "SEED" not in cfg.values  # the notebook's own parameters (and cfg.table()) are unchanged
    assert cfg.as_dict() == {**recorded, **cfg.values} and cfg.as_dict()["N_SUBJECTS"] == 9
    rec = cfg.recorder("simulated")
    rec.finalize()
    assert load_results("00_cohorts", output_dir=tmp_path)["params"].items() >= recorded.items()
    fig, _ = plt.subplots()
    png = rec.figure(fig, "f", "a caption", formats=("png",))
    assert png == tmp_path / "figures" / "00_cohorts" / "f.png"
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["params"].items() >= recorded.items() and side["caption"] == "a caption"
    assert cfg.checkpoint_dir == tmp_path / "checkpoints" / "00_cohorts"
    auto = resolve_params("00_cohorts", parameters_namespace("00_cohorts", PROFILE="auto"))
    assert auto.as_dict()["PROFILE"] == resolve_profile("auto")


def test_override_types_are_checked_before_running():
    prof, params = check_run("02_diff", "smoke", {"EPOCHS": 2, "LR": 1, "CHANNELS": "8,16", "N_TRAIN": None})
    assert prof == "smoke" and params == {"EPOCHS": 2, "LR": 1.0, "CHANNELS": "8,16", "N_TRAIN": None}
    assert isinstance(params["LR"], float)
    # YAML 1.1 reads 3e-4 (no dot) as text; a number written that way is still a number, an int stays whole
    _, params = check_run("02_diff", "smoke", parse_assignments(["BASELINE_LR=3e-4", "EPOCHS=2e0"]))
    assert params == {"BASELINE_LR": 3e-4, "EPOCHS": 2} and type(params["EPOCHS"]) is int
    with pytest.raises(BrainAgeError, match="EPOCHS of 02_diff expects int or null, got '2.5e0'"):
        check_run("02_diff", "smoke", {"EPOCHS": "2.5e0"})
    with pytest.raises(BrainAgeError, match=r"Parameter N_SUBJECTS of 00_cohorts expects int or null, got 'abc' \(str\)"):
        check_run("00_cohorts", "smoke", {"N_SUBJECTS": "abc"})
    with pytest.raises(BrainAgeError, match="expects int or null, got True"):
        check_run("00_cohorts", "smoke", {"N_SUBJECTS": True})
    with pytest.raises(BrainAgeError, match="SEED of 00_cohorts expects int, got None"):
        check_run("00_cohorts", "smoke", {"SEED": None})
    with pytest.raises(BrainAgeError, match="quote it"):
        check_run("00_cohorts", "smoke", {"EFFECT_REGION": 5})


@pytest.mark.parametrize("argv, message", [
    (["00_cohorts", "--profile", "nope"], "Unknown profile 'nope'"),
    (["nb_missing", "--profile", "smoke"], "No notebook 'nb_missing'"),
    (["00_cohorts", "--profile", "smoke", "-p", "NOPE=1"], "Unknown parameter(s) ['NOPE']"),
    (["00_cohorts", "--profile", "smoke", "-p", "N_SUBJECTS=abc"], "N_SUBJECTS of 00_cohorts expects int or null, got 'abc'"),
    (["01_tgb", "--profile", "smoke", "-p", "GAN_EPOCHS=x"], "GAN_EPOCHS of 01_tgb expects int"),
    (["all", "--profile", "smoke", "-p", "NOPE=1"], "Unknown parameter(s) ['NOPE'] for every notebook"),
    (["all", "--profile", "smoke", "-p", "SEEDS=x"], "SEEDS of 01_tgb expects int or null"),
    (["00_cohorts", "--profile", "smoke", "-p", "SEEDS=2"], "Unknown parameter(s) ['SEEDS']"),  # no models there
])
def test_a_refused_run_writes_nothing(tmp_path, capsys, argv, message):
    assert main(["run", *argv, "--output-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert list(tmp_path.iterdir()) == []  # no rendered/ folder, no index.html


def test_tidy_streams_keeps_the_last_state_of_progress_bars(tmp_path):
    import nbformat

    out = [nbformat.v4.new_output("stream", name="stderr", text="\rbar:   0%|"),
           nbformat.v4.new_output("stream", name="stderr", text="\rbar:  50%|"),
           nbformat.v4.new_output("stream", name="stdout", text="result 1\n"),
           nbformat.v4.new_output("stream", name="stdout", text="result 2\n"),
           nbformat.v4.new_output("stream", name="stderr", text="\rbar: 100%|\n")]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=out)])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    tidy_streams(path)
    got = [(o.name, o.text) for o in nbformat.read(str(path), as_version=4).cells[0].outputs]
    assert got == [("stderr", "bar:  50%|"), ("stdout", "result 1\nresult 2\n"), ("stderr", "bar: 100%|\n")]
