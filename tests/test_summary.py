"""Summary statistics: bootstrap intervals against scipy and known cases, tables built from records."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from brainage_lib.errors import BrainAgeError
from brainage_lib.report import summary as S
from brainage_lib.run.results import Recorder


def test_bootstrap_constant_shift_gives_a_degenerate_interval():
    y = np.linspace(5, 20, 40)
    t = S.bootstrap_differences(y, y + 1.0, y + 3.0, n_boot=300).set_index("metric")
    assert t.loc["MAE", "difference"] == pytest.approx(2.0)
    assert t.loc["MAE", "ci_low"] == pytest.approx(2.0) and t.loc["MAE", "ci_high"] == pytest.approx(2.0)
    assert t.loc["r", "ci_low"] == pytest.approx(0.0, abs=1e-12) and not t.loc["r", "excludes_0"]
    assert t.loc["MAE", "excludes_0"] and t.loc["MAE", "n"] == 40


def test_bootstrap_matches_scipy_paired_percentile_interval(rng):
    y = rng.uniform(5, 25, 120)
    a = y + rng.normal(0, 2.0, 120)
    b = y + rng.normal(0, 3.0, 120)
    ours = S.bootstrap_differences(y, a, b, n_boot=5000, seed=1).set_index("metric")

    def mae_diff(yy, aa, bb, axis=-1):
        return np.abs(bb - yy).mean(axis) - np.abs(aa - yy).mean(axis)

    def r_diff(yy, aa, bb, axis=-1):
        def r(p):
            yc, pc = yy - yy.mean(axis, keepdims=True), p - p.mean(axis, keepdims=True)
            return (yc * pc).sum(axis) / np.sqrt((yc ** 2).sum(axis) * (pc ** 2).sum(axis))
        return r(bb) - r(aa)

    for metric, fn in (("MAE", mae_diff), ("r", r_diff)):
        ref = stats.bootstrap((y, a, b), fn, paired=True, vectorized=True, n_resamples=5000, method="percentile",
                              confidence_level=0.95, random_state=2).confidence_interval
        width = ref.high - ref.low
        assert ours.loc[metric, "difference"] == pytest.approx(fn(y, a, b))
        assert abs(ours.loc[metric, "ci_low"] - ref.low) < 0.1 * width
        assert abs(ours.loc[metric, "ci_high"] - ref.high) < 0.1 * width
    r2 = lambda p: 1 - np.sum((p - y) ** 2) / np.sum((y - y.mean()) ** 2)  # noqa: E731
    assert ours.loc["R²", "a"] == pytest.approx(r2(a)) and ours.loc["R²", "b"] == pytest.approx(r2(b))
    assert ours.loc["MAE", "excludes_0"]  # sd 3 vs 2 on 120 subjects is a clear difference


def test_bootstrap_rejects_bad_input():
    with pytest.raises(BrainAgeError, match="one length"):
        S.bootstrap_differences([1, 2, 3], [1, 2], [1, 2, 3])
    with pytest.raises(BrainAgeError, match="at least 3"):
        S.bootstrap_differences([1, np.nan, 3], [1, 2, 3], [1, 2, 3])


# how a paper notebook describes its paper in its results: the summary reads table titles from there
FAKE_PAPER = {"short": "LSTM", "title": "a paper", "tables": {"table1": "Table 1: discovery MAE per age group (trained 0-22 y)"}}


def _fake_run(out, nb="03_lstm"):
    rec = Recorder(nb, "smoke", "simulated", output_dir=out, paper=FAKE_PAPER)
    rec.record("table1.A.Average", 1.5, paper=1.07, unit="years")
    rec.record("data.n", 10)
    rec.claim("a_better", "A beats B", True, "1.5 vs 2.0", "MAE_A < MAE_B", paper="1.07 vs 0.96")
    rec.claim("region", "region found", None, "not measured", "Dice > chance")
    y = np.arange(10.0)
    rec.save_predictions(pd.DataFrame({"evaluation": ["test"] * 10, "participant_id": [f"s{i}" for i in range(10)],
                                       "age": y, "A": y + 1, "B": y - 2}))
    rec.finalize()


def test_claims_show_the_data_they_were_judged_on(tmp_path):
    rec = Recorder("02_diff", "smoke", "/data/one", output_dir=tmp_path, paper=FAKE_PAPER)
    rec.claim("a", "A beats B", True, "1.5 vs 2.0", "MAE_A < MAE_B", judged_on="held-out 20 % of one")
    rec.claim("b", "B survives", None, "n/a", "p < 0.05", untestable_because="no patients")  # as older notebooks
    rec.finalize()
    assert "judged_on" not in rec.doc["records"]["claims.b"]
    claims = S.claims_table(S.collect(tmp_path))
    assert claims["judged on"].tolist() == ["held-out 20 % of one", ""]
    html = S.style_claims(claims)
    assert "<th>this run</th><th>magnitude</th><th>seeds</th><th>judged on</th><th>rule</th>" in html
    assert "<td>1.5 vs 2.0</td><td>—</td><td>one seed</td><td>held-out 20 % of one</td><td>MAE_A &lt; MAE_B</td>" in html
    assert "<td>n/a</td><td>—</td><td>one seed</td><td></td><td>p &lt; 0.05</td>" in html


def test_tables_from_recorded_results(tmp_path):
    _fake_run(tmp_path)
    docs = S.collect(tmp_path)
    assert list(docs) == ["03_lstm"]
    pv = S.paper_values(docs["03_lstm"])
    assert pv.to_dict("records") == [{"table": "Table 1: discovery MAE per age group (trained 0-22 y)",
                                      "quantity": "A.Average", "paper": "1.07", "this run": "1.5", "unit": "years",
                                      "profile": "smoke", "data": "simulated"}]
    claims = S.claims_table(docs)
    assert claims["verdict"].tolist() == ["reproduced", "not testable"]
    counts = S.verdict_counts(claims)
    assert counts.loc["LSTM"].to_dict() == {"reproduced": 1, "direction only": 0, "not reproduced": 0, "unstable": 0,
                                            "not testable": 1, "claims": 2}
    boot = S.predictions_bootstrap("03_lstm", tmp_path, n_boot=200).set_index("metric")
    assert boot.loc["MAE", "difference"] == pytest.approx(1.0) and boot.loc["MAE", "method a"] == "A"
