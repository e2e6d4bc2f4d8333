"""Recorder.claim verdicts and per-subject predictions written with the results."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from brainage_lib.errors import BrainAgeError
from brainage_lib.run.results import Recorder, claims_frame, load_predictions


def test_claim_verdicts_and_fields(tmp_path):
    rec = Recorder("99_test", "smoke", "simulated", output_dir=tmp_path)
    assert rec.claim("a", "A beats B", True, "1.0 vs 2.0", "MAE_A < MAE_B", paper="0.9 vs 1.1") == "reproduced"
    assert rec.claim("b", "B beats A", False, "2.0 vs 1.0", "MAE_B < MAE_A") == "not reproduced"
    assert rec.claim("c", "region found", None, "not measured", "Dice above chance") == "not testable"
    assert rec.claim("d", "A beats C", True, "x", "r", untestable_because="C did not learn") == "not testable"
    assert rec.claim("e", "A beats D", True, "x", "r", untestable_because=math.nan) == "reproduced"  # a table's empty cell
    assert rec.claim("f", "sim check", False, "x", "r", kind="check") == "failed"
    with pytest.raises(BrainAgeError, match="kind"):
        rec.claim("g", "?", True, "x", "r", kind="guess")
    rec.finalize()
    doc = json.loads((tmp_path / "results" / "99_test.json").read_text())
    frame = claims_frame(doc).set_index("key")
    assert frame.loc["a", "rule"] == "MAE_A < MAE_B" and frame.loc["a", "paper"] == "0.9 vs 1.1"
    assert frame.loc["d", "reason"] == "C did not learn" and frame.loc["f", "kind"] == "check"
    assert "reason" not in doc["records"]["claims.e"]


def test_predictions_are_written_only_by_finalize(tmp_path):
    rec = Recorder("99_test", "smoke", "simulated", output_dir=tmp_path)
    with pytest.raises(BrainAgeError, match="participant_id"):
        rec.save_predictions(pd.DataFrame({"evaluation": ["test"], "age": [1.0]}))
    rec.save_predictions(pd.DataFrame({"evaluation": ["test"] * 2, "participant_id": ["s1", "s2"], "age": [5.0, 6.0],
                                       "m": [5.5, 6.5]}))
    assert load_predictions("99_test", tmp_path) is None
    rec.finalize()
    assert load_predictions("99_test", tmp_path)["m"].tolist() == [5.5, 6.5]
