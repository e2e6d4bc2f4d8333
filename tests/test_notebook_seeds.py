"""SEEDS through a notebook kernel, as users run it: each paper notebook (smoke) with two model seeds on one cohort.

03_lstm runs in ``make test``; 01_tgb and 02_diff (a minute or two each) in ``make test-long``."""
from __future__ import annotations

import json

import pytest
from conftest import smoke_root

from brainage_lib.metrics.verdicts import combine_seeds, is_finite
from brainage_lib.run.results import load_results
from brainage_lib.run.runner import run_notebook

pytestmark = pytest.mark.notebook


DATA_RECORDS = {"01_tgb": "data.N", "02_diff": "data.", "03_lstm": "data.n."}  # what describes the cohort


@pytest.fixture(scope="module", params=[pytest.param("01_tgb", marks=pytest.mark.long),
                                        pytest.param("02_diff", marks=pytest.mark.long), "03_lstm"])
def two_seeds(request, tmp_path_factory):
    nb = request.param
    shared = smoke_root(tmp_path_factory)  # the smoke runs' simulated data and cache: the same cohort
    out = tmp_path_factory.mktemp(f"two_seeds_{nb}")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(shared / "data"))
    mp.setenv("BRAINAGE_CACHE", str(shared / "cache"))
    try:
        run_notebook(nb, profile="smoke", params={"SEEDS": 2}, output_dir=out, progress=False)
    finally:
        mp.undo()
    other = json.loads((out / "seeds" / "seed-1" / "results" / f"{nb}.json").read_text())
    return load_results(nb, output_dir=out), other


def test_the_second_seed_ran_on_the_same_cohort_with_its_own_model_seed(two_seeds):
    first, other = two_seeds
    assert (first["params"]["SEED"], first["params"]["SEEDS"]) == (0, 2)
    assert (other["params"]["SEED"], other["params"]["SEEDS"], other["params"]["DATA_SEED"]) == (1, 1, 0)
    data = [k for k in first["records"] if k.startswith(DATA_RECORDS[first["notebook"]])]
    assert data and all(first["records"][k]["value"] == other["records"][k]["value"] for k in data)
    maes = [k for k, e in first["records"].items() if "paper" in e and "seeds_mean" in e]
    assert maes, "no number with a paper value was combined over the seeds"
    assert any(other["records"][k]["value"] != first["records"][k]["value"] for k in maes)  # another model seed


def test_each_claim_reports_the_verdict_shared_by_the_seeds(two_seeds):
    first, other = two_seeds
    claims = {k: e for k, e in first["records"].items() if k.startswith("claims.")}
    assert claims
    for key, e in claims.items():
        assert set(e["per_seed"]) == {"0", "1"}
        assert e["per_seed"]["1"] == other["records"][key]["value"]  # the other run's own verdict
        expected = e["per_seed"]["0"] if e["per_seed"]["0"] == e["per_seed"]["1"] else "unstable"  # 80 % of 2: both
        assert e["value"] == expected == combine_seeds(list(e["per_seed"].values()))[0]
    for key, e in first["records"].items():
        if "seeds_mean" in e:
            vals = [v for v in (e["value"], other["records"][key]["value"]) if is_finite(v)]
            assert e["seeds_mean"] == pytest.approx(sum(vals) / len(vals)) and e["seeds_n"] == len(vals)
