"""The paper plug-in contract: every wing's Paper names parts that exist, of the kind shared code expects."""
from __future__ import annotations

import pytest

from brainage_lib import paths, registry
from brainage_lib.data.transforms import Transform, get_transform
from brainage_lib.errors import BrainAgeError
from brainage_lib.preprocess.recipes import Recipe, get_recipe
from brainage_lib.run.runner import notebook_names
from brainage_lib.simulation.presets import Preset, presets


def test_every_paper_names_parts_that_load():
    found = registry.papers()
    assert list(found) == ["tgb", "diff", "lstm"]
    for name, paper in found.items():
        assert (paths.notebooks_dir() / f"{paper.notebook}.py").is_file()
        assert registry.paper_of_notebook(paper.notebook) is paper
        for tname in paper.transforms:
            assert isinstance(get_transform(tname), Transform)
        assert isinstance(paper.load("recipe"), Recipe) and get_recipe(name) is paper.load("recipe")
        assert all(isinstance(p, Preset) for p in paper.load("presets"))
        for builder, config in paper.architectures.values():
            assert callable(registry.load(builder)) and (config is None or isinstance(registry.load(config), type))
        assert callable(paper.load("bench")) and callable(paper.load("gpu_stages")) and callable(paper.load("claims"))
        assert paper.load("deviations"), f"{name}: its list of deviations from the paper is empty"
        if paper.device_check:
            run, lines = paper.load("device_check")
            assert callable(run) and callable(lines)
        numbers = paper.load("numbers").PAPER
        assert numbers["short"] == paper.short and numbers["title"] == paper.title and numbers["tables"]


def test_merged_views_keep_the_papers_order_and_the_report_runs_last():
    assert list(presets()) == ["abide_like", "lifespan_train", "clinical_test", "als_like", "nihpd_like", "mghbch_like"]
    assert registry.transform_names() == ["tgb", "diff", "lstm", "atlas"]
    assert registry.recipe_names() == ["tgb", "diff", "lstm"]
    assert notebook_names()[-1] == registry.REPORT_NOTEBOOK


@pytest.mark.parametrize("ref", ["no_colon_at_all.missing", "brainage_lib.registry:", "brainage_lib.registry:Nope"])
def test_a_bad_reference_is_a_clear_error(ref):
    with pytest.raises(BrainAgeError, match="brainage_lib|reference|import"):
        registry.load(ref)


def test_unknown_names_list_what_exists():
    with pytest.raises(BrainAgeError, match="tgb, diff, lstm, atlas"):
        get_transform("nope")
    with pytest.raises(BrainAgeError, match="tgb, diff, lstm"):
        get_recipe("nope")
