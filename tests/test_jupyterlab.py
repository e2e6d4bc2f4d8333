"""JupyterLab for students (`make lab`): the notebooks/*.py open as notebooks, through the server's
contents API and in headless chromium. No kernel is started; the server is always stopped."""
from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_report import _browser

from brainage_lib import paths

NOTEBOOK = "notebooks/01_tgb.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, url: str, token: str, log: Path):
        self.url, self.token, self.log = url, token, log

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab`'s server, headless: 127.0.0.1 on a free port, a random token, the project root, no browser.

    Jupyter's per-user folders point into the test's tmp dir; there, as `make lab` does in the venv,
    jupytext's own setting makes a double click (or the notebook's URL) open .py notebooks as notebooks.
    """
    tmp = tmp_path_factory.mktemp("jupyterlab")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "user-settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    viewers = tmp / "config" / "labconfig" / "default_setting_overrides.json"
    subprocess.run([sys.executable, "-m", "jupytext_config", "--settings-file", str(viewers),
                    "set-default-viewer", "python"], env=env, check=True, capture_output=True)
    port, token = _free_port(), secrets.token_hex(24)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={paths.project_root()}", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--no-browser",
           # as `make lab`: the project's settings, which turn off the news pop-up
           f"--LabApp.app_settings_dir={paths.project_root() / '.jupyterlab' / 'settings'}",
           "--LabApp.notebook_starts_kernel=False",  # opening the notebook must not start a kernel
           f"--FileCheckpoints.root_dir={tmp / 'checkpoints'}"]  # nor leave .ipynb_checkpoints/ in the project
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 45
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                server.api("status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 45 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield server
    finally:
        try:  # nothing should have started a kernel; shut down any that did before the server goes
            for k in server.api("kernels") if proc.poll() is None else []:
                server.api(f"kernels/{k['id']}", method="DELETE")
        except Exception:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_contents_api_serves_the_py_notebook_as_a_notebook(lab):
    model = lab.api(f"contents/{NOTEBOOK}?content=1")
    assert model["type"] == "notebook" and model["format"] == "json", model["type"]
    cells = model["content"]["cells"]
    params = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and params[0]["cell_type"] == "code" and "PROFILE" in params[0]["source"]
    assert model["content"]["metadata"]["kernelspec"]["name"] == "python3"
    # the notebooks' kernel is this environment's Python
    specs = lab.api("kernelspecs")
    argv0 = specs["kernelspecs"]["python3"]["spec"]["argv"][0]
    assert Path(argv0).parent == Path(sys.executable).parent or argv0 in ("python", "python3"), argv0


def test_lab_does_not_ask_to_fetch_news(lab):
    assert '.jupyterlab/settings' in (paths.project_root() / "Makefile").read_text()
    req = urllib.request.Request(f"{lab.url}/lab/api/settings/@jupyterlab/apputils-extension:notification",
                                 headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        schema = json.loads(r.read())["schema"]
    assert schema["properties"]["fetchNews"]["default"] == "false"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_notebook_opens_in_headless_chromium(lab, tmp_path):
    exe, sync_playwright = _browser()
    shot = tmp_path / "jupyterlab_01_tgb.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", wait_until="domcontentloaded")
            # a notebook view (not the text editor) whose parameters cell is on screen
            cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell", has_text="PROFILE").first
            cell.wait_for(state="visible", timeout=45_000)
            # JupyterLab draws a notebook lazily, cell by cell: wait for the title and the parameters cell, which
            # are enough to show a notebook view (cells beyond the screen may never be drawn)
            page.wait_for_function(
                "document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell').length >= 2", timeout=30_000
            )
            page.wait_for_timeout(500)  # let the layout settle before the picture
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert _png_size(shot) == (1280, 900) and shot.stat().st_size > 20_000
    assert lab.api("kernels") == []  # opening the notebook started no kernel
