"""The library's import structure: shared layers below, one wing per paper above them, no cycles.

Every ``import`` statement of every module (top level or inside a function) is an edge. A module
may import its own package and packages of lower layers only; paper wings never import each other.
"""
from __future__ import annotations

import ast
from pathlib import Path

import brainage_lib

LIB = Path(brainage_lib.__file__).parent
# layer of each top-level part of brainage_lib; a module imports only parts of a lower layer or its own part
LAYERS = {
    "errors": 0, "paths": 0,
    "registry": 0.5,  # the paper plug-in contract: shared code finds the wings through it, never by name
    "metrics": 1, "run": 1.5,  # the results and seeds of a run speak the verdict vocabulary of metrics
    "simulation": 2,
    "data": 3, "engine": 3,
    "report": 4, "inference": 4, "preprocess": 4,
    "notebook": 4.5,  # a notebook's set-up call (parameters, engine, recorder; the paper found through the registry),
    "papers": 5,      # which each wing's notebook module hands to its notebook
    "bench": 6, "gpu_check": 6,
    "device": 6.5,  # the offline device check runs gpu-check and the notebooks
    "cli": 7, "__init__": 7,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("brainage_lib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("brainage_lib"):
            for a in node.names:  # "from brainage_lib.x import y" may import the module x.y
                sub = f"{node.module}.{a.name}"
                out.add(sub if (LIB.parent / (sub.replace(".", "/") + ".py")).is_file()
                        or (LIB.parent / sub.replace(".", "/")).is_dir() else node.module)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in LIB.rglob("*.py")}


def part(mod: str) -> str:
    return (mod.split(".") + ["__init__"])[1]


def wing(mod: str) -> str | None:
    """The paper wing (a package under papers/) of a module; None for shared modules such as papers.fidelity."""
    bits = mod.split(".")
    return bits[2] if len(bits) > 2 and bits[1] == "papers" and (LIB / "papers" / bits[2]).is_dir() else None


def test_every_part_has_a_layer():
    assert {part(m) for m in graph()} <= set(LAYERS)


def test_no_import_from_a_lower_layer_to_a_higher_one_and_none_between_wings():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if dep == "brainage_lib":
                continue
            same = part(dep) == part(mod)
            if not same and LAYERS[part(dep)] >= LAYERS[part(mod)] and part(mod) != "__init__":
                bad.append(f"{mod} -> {dep} (layer {part(mod)} may not import {part(dep)})")
            if wing(mod) and wing(dep) and wing(mod) != wing(dep):
                bad.append(f"{mod} -> {dep} (paper wings do not import each other)")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if d not in g:
                continue
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]) if d in stack else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checks_can_fail():
    fake = {"brainage_lib.run.params": {"brainage_lib.report.summary"},
            "brainage_lib.papers.tgb.x": {"brainage_lib.papers.lstm.y"}}
    assert LAYERS[part("brainage_lib.report.summary")] > LAYERS[part("brainage_lib.run.params")]
    assert wing("brainage_lib.papers.tgb.x") != wing("brainage_lib.papers.lstm.y")
    assert all(fake)
