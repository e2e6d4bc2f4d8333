"""The parameters cell of every notebook is the one list of its tunables; its three YAML profiles hold values only."""
from __future__ import annotations

import pytest
import yaml

from brainage_lib import paths
from brainage_lib.run.params import CORE, PROFILES, TRAINING_CORE, resolve_params
from brainage_lib.run.runner import notebook_names, parameter_types, parameters_namespace

NOTEBOOKS = notebook_names()


def test_every_notebook_is_checked():
    assert {"00_cohorts", "01_tgb", "02_diff", "03_lstm", "04_summary"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("nb", ["01_tgb", "02_diff", "03_lstm"])
def test_the_notebooks_that_train_take_compile(nb):
    assert parameter_types(nb)["COMPILE"] == ((str,), False)
    assert parameters_namespace(nb)["COMPILE"] == "auto"


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_parameters_cell_and_profiles_have_the_same_keys_and_types(nb):
    types = parameter_types(nb)  # from the cell's annotations, read independently of resolve_params
    assert set(CORE) <= set(types), f"{nb}: core parameters missing from the cell"
    tunables = set(types) - set(CORE) - set(TRAINING_CORE)
    for profile in PROFILES:
        f = paths.params_dir() / f"{nb}.{profile}.yaml"
        values = yaml.safe_load(f.read_text()) or {}
        assert set(values) == tunables, f"{f.name}: keys differ from the parameters cell: {set(values) ^ tunables}"
        for key, value in values.items():
            accepted, optional = types[key]
            if value is None:
                assert optional, f"{f.name}: {key} is null but the cell does not allow None"
                continue
            assert isinstance(value, accepted) and (bool in accepted or not isinstance(value, bool)), \
                f"{f.name}: {key} = {value!r} is not {accepted[0].__name__}"


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_one_convention_none_takes_the_profile_value(nb):
    ns = parameters_namespace(nb, PROFILE="smoke")
    tunables = [k for k in parameter_types(nb) if k not in CORE + TRAINING_CORE]
    assert all(ns[k] is None for k in tunables), f"{nb}: every tunable defaults to None (the profile's value)"
    cfg = resolve_params(nb, ns)
    smoke = yaml.safe_load((paths.params_dir() / f"{nb}.smoke.yaml").read_text()) or {}
    assert cfg.values == smoke and set(cfg.sources.values()) <= {"profile smoke"}


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_papermill_reads_every_parameter(nb, tmp_path):
    """papermill's inspection (what `papermill --help-notebook` shows) parses every entry of the cell."""
    import jupytext
    import papermill

    ipynb = tmp_path / f"{nb}.ipynb"
    jupytext.write(jupytext.read(paths.notebooks_dir() / f"{nb}.py"), ipynb)
    found = set(papermill.inspect_notebook(str(ipynb)))
    assert found == set(parameter_types(nb)), f"{nb}: papermill cannot parse {set(parameter_types(nb)) - found}"
