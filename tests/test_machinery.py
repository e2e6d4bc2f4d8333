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
from brainage_lib.figures import save_figure
from brainage_lib.params import CORE, PROFILES, load_profile, resolve_params, resolve_profile
from brainage_lib.provenance import provenance
from brainage_lib.results import Recorder, load_results, to_jsonable
from brainage_lib.runner import check_run, notebook_names, parameter_types, parse_assignments, run_notebook, tidy_streams
from brainage_lib.seeding import seed_everything


def test_every_notebook_has_all_profiles_with_the_same_keys():
    names = notebook_names()
    assert "00_cohorts" in names
    for nb in names:
        keys = [set(yaml.safe_load((paths.params_dir() / f"{nb}.{p}.yaml").read_text())) for p in PROFILES]
        assert keys[0] == keys[1] == keys[2], nb


def test_resolve_params_overrides_and_errors():
    cfg = resolve_params("00_cohorts", "smoke", N_SUBJECTS=7, SHAPE=None)
    assert cfg.N_SUBJECTS == 7 and cfg.sources["N_SUBJECTS"] == "override"
    assert cfg.SHAPE == 32 and cfg.sources["SHAPE"] == "profile smoke"
    assert "REDUCED" in cfg.banner()
    with pytest.raises(BrainAgeError, match="Unknown parameter"):
        resolve_params("00_cohorts", "smoke", EPOCHS=3)
    with pytest.raises(BrainAgeError, match="Unknown profile 'fast'"):
        resolve_params("00_cohorts", "fast")
    assert resolve_profile("auto") == ("paper" if torch.cuda.is_available() else "quick")


def test_banner_lists_every_parameter_that_differs_from_the_paper_profile():
    paper = yaml.safe_load((paths.params_dir() / "03_lstm.paper.yaml").read_text())
    cfg = resolve_params("03_lstm", "quick", EPOCHS=paper["EPOCHS"])
    expected = sorted(k for k, v in cfg.values.items() if v != paper[k])
    assert "EPOCHS" not in expected and {"LR", "BATCH_SIZE"} <= set(expected)
    assert sorted(cfg.deviations()) == expected
    banner, table = cfg.banner(), cfg.table()
    assert all(f"`{k}` = {cfg[k]!r} (paper profile: {paper[k]!r})" in banner for k in expected)
    assert "`EPOCHS`" not in banner and sorted(table.index[table["differs"]]) == expected
    full = resolve_params("03_lstm", "paper")
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
    # what a notebook does: its parameters cell defines the core names, then resolve_params(NB, PROFILE, ...)
    ns = {"resolve_params": resolve_params, "PROFILE": "smoke", "DATA_DIR": "/data/x", "SEED": 7, "DEVICE": "cpu",
          "OUTPUT_DIR": str(tmp_path)}
    exec("cfg = resolve_params('00_cohorts', PROFILE, N_SUBJECTS=9)", ns)
    cfg = ns["cfg"]
    assert "SEED" not in cfg.values  # the notebook's own parameters (and cfg.table()) are unchanged
    recorded = {"PROFILE": "smoke", "DATA_DIR": "/data/x", "SEED": 7, "DEVICE": "cpu", "OUTPUT_DIR": str(tmp_path)}
    assert cfg.as_dict() == {**recorded, **cfg.values} and cfg.as_dict()["N_SUBJECTS"] == 9
    rec = Recorder("nbx", cfg.profile, "simulated", params=cfg.as_dict(), output_dir=tmp_path)
    rec.finalize()
    assert load_results("nbx", output_dir=tmp_path)["params"].items() >= recorded.items()
    fig, _ = plt.subplots()
    png = save_figure(fig, "nbx", "f", params=cfg.as_dict(), output_dir=tmp_path, formats=("png",))
    assert json.loads(png.with_suffix(".json").read_text())["params"].items() >= recorded.items()
    assert resolve_params("00_cohorts", "auto", core={"SEED": 1}).as_dict()["PROFILE"] == resolve_profile("auto")
    with pytest.raises(BrainAgeError, match="Unknown core parameter"):
        resolve_params("00_cohorts", "smoke", core={"EPOCHS": 1})


def test_every_notebook_parameter_has_a_checkable_type():
    for nb in notebook_names():
        assert set(CORE) | set(load_profile(nb, "smoke")) <= set(parameter_types(nb)), nb
    assert parameter_types("00_cohorts")["N_SUBJECTS"] == ((int,), True)
    assert parameter_types("00_cohorts")["SEED"] == ((int,), False)


def test_override_types_are_checked_before_running():
    prof, params = check_run("02_diff", "smoke", {"EPOCHS": 2, "LR": 1, "CHANNELS": "8,16", "N_TRAIN": None})
    assert prof == "smoke" and params == {"EPOCHS": 2, "LR": 1.0, "CHANNELS": "8,16", "N_TRAIN": None}
    assert isinstance(params["LR"], float)
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
