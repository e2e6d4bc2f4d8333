"""The device bundle rehearsed on this CPU: built for this machine's Python, installed offline into a fresh folder
for an interpreter that has only the GPU node's packages, run to the end with every section in its JSON.

Run once per session (a module fixture): bundle, install and run take about a minute. The notebook step dry-runs
one notebook at the smoke profile (``tests/test_paper_dryrun.py`` already runs every paper dry run), and gpu-check
two stages (``tests/test_gpu_check.py`` runs them all).
"""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import time

import pytest
from device_node import node_distributions, node_interpreter
from packaging.requirements import Requirement

from brainage_lib.device.bundle import build_bundle, folder_mib, wheel_list
from brainage_lib.device.driver import SECTIONS

pytestmark = [pytest.mark.notebook, pytest.mark.long]  # a minute and a half of rehearsal: make test-long, which CI runs after make test


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    base = tmp_path_factory.mktemp("device")
    size = build_bundle(base / "device", local=True, verbose=False)
    python = node_interpreter(base / "node")
    env = {"HOME": os.environ.get("HOME", str(base)), "PATH": "/usr/bin:/bin", "PYTHON": str(python),
           "SITE": str(base / "site"), "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull,
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",  # any registry call would fail
           "PYTHONHASHSEED": "0"}
    t0 = time.time()
    done = subprocess.run(["bash", str(base / "device" / "run.sh"), str(base / "out"), "--profile", "smoke",
                           "--notebooks", "03_lstm", "--stages", "REG,3D-ResNet18", "--steps", "1"],
                          env=env, capture_output=True, text=True, timeout=900, cwd=base)
    return {"base": base, "size": size, "python": python, "done": done, "seconds": time.time() - t0}


def test_the_bundle_runs_offline_to_the_end_with_every_section(rehearsal):
    done, out = rehearsal["done"], rehearsal["base"] / "out"
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    report = json.loads((out / "device.json").read_text())
    assert report["finished"] is True and all(s in report for s in SECTIONS)
    assert not any("error" in report[s] for s in SECTIONS), {s: report[s].get("error") for s in SECTIONS}
    assert report["sanity"]["cuda_available"] is False and report["sanity"]["torch"]
    assert report["sanity"]["brainage_lib"].startswith(str(rehearsal["base"] / "site"))  # the bundle's wheel ran
    assert [r["stage"] for r in report["gpu_check"]["stages"]] == ["REG", "3D-ResNet18"]
    assert all(r["engine"]["step_s"] > 0 and r["hours"] > 0 for r in report["gpu_check"]["stages"])
    assert list(report["precision"]) == ["tgb"]  # the papers that declare a device check: TGB's bf16 vs fp32
    tgb = report["precision"]["tgb"]
    gp = tgb["gradient_penalty"]
    assert gp["fp32"] > 0 and gp["bf16"] > 0 and -1 <= tgb["gan_step"]["critic_update"]["cosine"] <= 1
    assert report["notebooks"] == {"03_lstm": {"ok": True, "seconds": report["notebooks"]["03_lstm"]["seconds"]}}
    assert json.loads((out / "notebooks" / "results" / "03_lstm.json").read_text())["params"]["DRY_RUN"] is True
    assert "device check" in done.stdout and "notebook 03_lstm" in done.stdout  # the table at the end
    assert "gradient penalty" in done.stdout  # TGB's lines in it
    print(f"rehearsal: {rehearsal['size']:.1f} MiB bundle, {rehearsal['seconds']:.0f} s install + run")


def test_the_wheels_came_from_the_bundle_into_a_fresh_folder(rehearsal):
    """The notebooks' dependencies were installed from the bundle (the stand-in node has none of them), the
    project's own wheel too, and nothing the node has was installed over it."""
    install = json.loads((rehearsal["base"] / "out" / "install.json").read_text())
    assert install["pip_exit_code"] == 0 and install["target"] == str(rehearsal["base"] / "site")
    names = {_norm(w.split("-")[0]) for w in install["installed"]}
    assert {"monai", "nibabel", "nilearn", "papermill", "jupytext", "ipykernel", "brainage-companion"} <= names
    assert not names & set(node_distributions())
    probe = "import monai, papermill, brainage_lib; print(monai.__file__); print(brainage_lib.__file__)"
    where = subprocess.run([str(rehearsal["python"]), "-c", probe], capture_output=True, text=True,
                           env={"PYTHONPATH": install["target"], "PATH": "/usr/bin:/bin"}, cwd=rehearsal["base"])
    assert where.returncode == 0 and all(line.startswith(install["target"]) for line in where.stdout.split())
    bare = subprocess.run([str(rehearsal["python"]), "-c", "import monai"], capture_output=True, env={},
                          cwd=rehearsal["base"])
    assert bare.returncode != 0  # without the bundle's folder the stand-in node has no MONAI


def test_the_bundle_is_small_and_its_wheel_list_is_closed(rehearsal):
    """Under 60 MiB; every requirement of a listed package is listed or on the node (debugpy aside: the kernel's
    optional debugger)."""
    assert rehearsal["size"] < 60 and folder_mib(rehearsal["base"] / "device") == pytest.approx(rehearsal["size"])
    listed = {_norm(r.split("==")[0]) for r in wheel_list()}
    node = set(node_distributions())
    missing = set()
    for name in listed:
        for text in md.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if _norm(req.name) not in listed | node | {"debugpy"}:
                missing.add(f"{name} needs {req.name}")
    assert not missing, sorted(missing)
