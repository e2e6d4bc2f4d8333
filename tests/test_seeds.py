"""Model seeds: verdicts combined over seeds, numbers with a paper value as mean and sd over seeds."""
from __future__ import annotations

import numpy as np
import pytest

from brainage_lib.errors import BrainAgeError
from brainage_lib.run.results import Recorder
from brainage_lib.run.seeds import combine, mean_sd, other_seeds, seed_output_dir, seeds_table


def _run(tmp_path, seed: int, verdicts: dict[str, bool | None], mae: float) -> Recorder:
    rec = Recorder("99_seeds", "quick", "simulated", params={"SEED": seed, "DATA_SEED": 0}, output_dir=tmp_path / str(seed))
    rec.record("table1.A.mae", mae, paper=1.7)
    rec.record("table1.A.n", 40)  # no paper value: not combined
    for key, outcome in verdicts.items():
        rec.claim(key, f"claim {key}", outcome, "x", "rule")
    return rec


def test_combine_over_three_seeds(tmp_path):
    first = _run(tmp_path, 0, {"a": True, "b": True, "c": None}, 1.0)
    others = {s: _run(tmp_path, s, {"a": True, "b": False, "c": None}, m).doc for s, m in ((1, 2.0), (2, 3.0))}
    table = combine(first, others)
    r = first.doc["records"]
    assert r["claims.a"]["value"] == "reproduced" and r["claims.a"]["agreement"] == "reproduced in 3 of 3 seeds"
    assert r["claims.b"]["value"] == "unstable"
    assert r["claims.b"]["agreement"] == "reproduced in 1 of 3 seeds; not reproduced in 2 of 3 seeds"
    assert r["claims.b"]["per_seed"] == {"0": "reproduced", "1": "not reproduced", "2": "not reproduced"}
    assert r["claims.c"]["value"] == "not testable"
    assert r["table1.A.mae"]["seeds_mean"] == pytest.approx(2.0)
    assert r["table1.A.mae"]["seeds_sd"] == pytest.approx(np.std([1.0, 2.0, 3.0], ddof=1))
    assert r["table1.A.mae"]["value"] == 1.0  # the first seed's own number stays
    assert "seeds_mean" not in r["table1.A.n"]
    assert table.loc["b", ["seed 0", "seed 1", "seed 2"]].tolist() == ["reproduced", "not reproduced", "not reproduced"]
    assert mean_sd(r["table1.A.mae"]) == "2 ± 1 (3 seeds)"


def test_one_seed_changes_nothing(tmp_path):
    rec = _run(tmp_path, 0, {"a": True}, 1.0)
    before = {k: dict(v) for k, v in rec.doc["records"].items()}
    t = combine(rec, {})
    assert rec.doc["records"] == before and t.loc["a", "agreement"] == "reproduced in 1 of 1 seeds"
    assert seeds_table(rec.doc).loc["a", "seed 0"] == "reproduced"


def test_seed_numbers_and_folders(tmp_path):
    assert other_seeds(7, 3) == [8, 9] and other_seeds(0, 1) == []
    with pytest.raises(BrainAgeError, match="SEEDS"):
        other_seeds(0, 0)
    assert seed_output_dir(str(tmp_path), 8) == tmp_path.resolve() / "seeds" / "seed-8"
