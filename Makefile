# brainage companion: `make reproduce` renders every notebook; `make test` runs the tests.
# The first target that needs Python creates .venv (torch 2.13.0, then this package) and
# registers its `python3` Jupyter kernel.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PREP_STAMP := $(VENV)/.preprocess-deps-2
PROFILE ?= auto
DATA_DIR ?=
OUTPUT_DIR ?=
ARGS ?=
DEVICES ?=
SEEDS ?=
PARALLEL ?=
COMPILE ?=
FORCE ?=
PORT ?= 8888
TEST_WORKERS ?= auto  # pytest-xdist workers of make test (auto: one per core; 0: one process)
IP ?= 127.0.0.1
# `make lab` opens a browser unless this is an SSH session or a Linux machine without a display
NO_BROWSER ?= $(if $(SSH_CONNECTION),1,$(if $(filter Linux,$(shell uname -s)),$(if $(DISPLAY)$(WAYLAND_DISPLAY),,1)))
NOTEBOOKS := $(patsubst notebooks/%.py,%,$(sort $(wildcard notebooks/[0-9][0-9]_*.py)))
RUN_OPTS = $(if $(DATA_DIR),-p DATA_DIR=$(DATA_DIR)) $(if $(OUTPUT_DIR),--output-dir $(OUTPUT_DIR)) \
  $(if $(DEVICES),-p DEVICES=$(DEVICES)) $(if $(SEEDS),-p SEEDS=$(SEEDS)) \
  $(if $(COMPILE),-p COMPILE=$(COMPILE)) $(if $(PARALLEL),--parallel $(PARALLEL)) \
  $(if $(filter 1 yes true True,$(FORCE)),-p FORCE=True) $(ARGS)

LAB_VIEWERS := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json

.PHONY: help venv browser preprocess-deps lab reproduce smoke paper-dryrun test test-dryrun test-long test-preprocess bench gpu-check device-bundle clean distclean $(NOTEBOOKS)

help:
	@echo "make reproduce      render every notebook (PROFILE=auto: paper with CUDA, else quick)"
	@echo "make test           unit tests + notebook smoke runs (+ the report in headless chromium), on every core"
	@echo "make test-dryrun    the paper profile of every notebook on tiny cohorts, with its checks"
	@echo "make test-long      that dry run and the other tests of minutes each, which make test leaves out (CI runs it)"
	@echo "make test-preprocess  the preprocessing tests, with every notebook on preprocessed heads vs MNI (~25 min)"
	@echo "make <notebook>     one notebook: $(NOTEBOOKS)"
	@echo "make lab            JupyterLab on notebooks/ (kernel \"Python 3 (brainage)\"); PORT=8888 IP=127.0.0.1 NO_BROWSER=1"
	@echo "make smoke          every notebook with PROFILE=smoke into build/smoke/"
	@echo "make paper-dryrun   every notebook's paper profile at the paper's sizes on tiny cohorts, 2 steps per stage, into build/paper-dryrun/"
	@echo "make bench          throughput benchmarks into bench/results.json"
	@echo "make preprocess-deps  the optional dependencies of brainage preprocess (antspyx, deepbet, nimare)"
	@echo "make gpu-check      every paper training stage on the GPU (minutes): samples/s, memory, TFLOP/s, hours; bench/gpu.json"
	@echo "make device-bundle  build/device/ for an offline GPU node (< 60 MiB): there, bash device/run.sh OUT prints one table"
	@echo "make clean          remove results, figures, renderings, cache (keeps simulated data and .venv)"
	@echo "make distclean      also remove simulated data and .venv"
	@echo "Variables: PROFILE=smoke|quick|paper|auto  DATA_DIR=/path/to/cohort  OUTPUT_DIR=dir  ARGS='-p KEY=VALUE'"
	@echo "           DEVICES=4 (GPUs per training stage, DDP)  FORCE=1 (retrain finished stages instead of loading them)"
	@echo "           SEEDS=1 (model seeds per paper notebook; quick and paper: 3)"
	@echo "           PARALLEL=auto|3 (paper notebooks at once; auto: as many as fit the GPU by make gpu-check)"
	@echo "           COMPILE=auto|on|off (torch.compile the generators and regressors; auto: as make gpu-check found)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (brainage)" >/dev/null
	@touch $@

reproduce: $(STAMP)
	$(PY) -m brainage_lib.cli run all --profile $(PROFILE) $(RUN_OPTS)

$(NOTEBOOKS): $(STAMP)
	$(PY) -m brainage_lib.cli run $@ --profile $(PROFILE) $(RUN_OPTS)

# JupyterLab for students: the notebooks/*.py files open as notebooks (jupytext's contents manager, which
# its wheel enables as a server extension; a double click opens them as notebooks through jupytext's own
# setting, written inside the venv), run on the venv's `python3` kernel in notebooks/, and write results/,
# figures/ and checkpoints/ where `make` would (the project root, or OUTPUT_DIR).
# From another machine: `make lab NO_BROWSER=1` here, then on yours `ssh -N -L 8888:localhost:8888 user@host`
# and open the http://127.0.0.1:8888/lab/tree/notebooks?token=... address printed below (or IP=0.0.0.0 on a trusted network).
lab: $(STAMP) $(LAB_VIEWERS)
	$(if $(OUTPUT_DIR),BRAINAGE_OUTPUT_DIR=$(abspath $(OUTPUT_DIR))) $(PY) -m jupyterlab --ServerApp.root_dir="$(CURDIR)" \
	  --LabApp.default_url=/lab/tree/notebooks --LabApp.app_settings_dir="$(CURDIR)/.jupyterlab/settings" \
	  --ip=$(IP) --port=$(PORT) \
	  $(if $(filter 1 yes true,$(NO_BROWSER)),--no-browser) $(if $(filter 0,$(shell id -u)),--allow-root)

$(LAB_VIEWERS): $(STAMP)
	$(PY) -m jupytext_config --settings-file $@ set-default-viewer python

smoke: $(STAMP)
	$(PY) -m brainage_lib.cli run all --profile smoke --output-dir build/smoke $(ARGS)

# A rehearsal of `make reproduce` on a GPU: the paper's networks and input sizes on tiny cohorts, two optimiser
# steps per training stage, then evaluation, figures and claims as usual. `make test-dryrun` runs it with its
# checks (tests/test_paper_dryrun.py); CI runs that after `make test`.
paper-dryrun: $(STAMP)
	$(PY) -m brainage_lib.cli run all --profile paper -p DRY_RUN=True --output-dir build/paper-dryrun $(ARGS)

test: $(STAMP) browser $(PREP_STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15 -m "not paper_dryrun and not native_comparison and not long"

# The paper profile of every notebook at the paper's sizes on tiny cohorts, with its checks (tests/test_paper_dryrun.py;
# about 13 CPU-minutes, most of it the paper-size GAN): CI runs it after `make test` (.ci/run)
test-dryrun: $(STAMP)
	$(PY) -m pytest -q -m paper_dryrun --durations=5

# What `make test` leaves out to stay within 10 minutes on 2 cores: the paper-profile dry run and the tests that take
# minutes each (byte-identical preprocessing reruns, concurrent shards). CI runs it after `make test`.
test-long: $(STAMP) $(PREP_STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=10 -m "paper_dryrun or long"

# Everything about preprocessing, including each notebook run on preprocessed scanner-space heads against the same
# cohort simulated in MNI space (tests/test_preprocess_notebooks.py, about 25 minutes on 2 cores: not in `make test`)
test-preprocess: $(STAMP) $(PREP_STAMP)
	$(PY) -m pytest -q -m preprocessing

# The report test drives a real headless browser: Debian's chromium, installed here when
# missing and possible (root with apt-get); otherwise that test is skipped and says why.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the report test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "no chromium (and no root apt-get to install it): the browser test will be skipped"; fi

# `brainage preprocess` and `brainage simulate --space native`: antspyx pins numpy<2.4 and scipy<1.16, NiMARE
# nilearn<0.14, older than the project's, and pip would downgrade all three. So they go in without their pins
# (--no-deps), at the exact versions the preprocessing tests pass with, beside the project's numpy, scipy and nilearn;
# what they import that the project does not bring is named here (requests: `import ants` needs it; of NiMARE only a
# template file is read). `make test` installs them too (once), so those tests run; where they cannot be installed
# (offline), it says so in a banner and goes on, and those tests skip, saying why.
PREP_DEPS := deepbet==1.0.2 requests
PREP_NODEPS := antspyx==0.6.3 nimare==0.22.1
preprocess-deps: $(PREP_STAMP)

$(PREP_STAMP): $(STAMP)
	@( $(PY) -m pip install --quiet $(PREP_DEPS) && $(PY) -m pip install --quiet --no-deps $(PREP_NODEPS) \
	   && $(PY) -c "import ants, deepbet" && echo "$(PREP_DEPS) $(PREP_NODEPS)" > $@ ) \
	  || { printf '\n%s\n%s\n%s\n%s\n\n' "########################################################################" \
	         "WARNING: the preprocessing dependencies ($(PREP_DEPS) $(PREP_NODEPS)) could not be installed." \
	         "brainage preprocess is unavailable and its tests (tests/test_preprocess*.py) will be SKIPPED." \
	         "########################################################################" >&2; }

bench: $(STAMP)
	$(PY) -m brainage_lib.cli bench

# For the few minutes a GPU is available: a fixed number of steps of every paper-profile training stage at
# the paper's sizes, fp32 and bf16, and the extrapolated wall time of each notebook and of `make reproduce`.
gpu-check: $(STAMP)
	$(PY) -m brainage_lib.cli gpu-check $(ARGS)

# For a GPU node without a package index (Python 3.12 with its own CUDA torch): build/device/ holds the project's
# wheel, cp312 manylinux wheels of what the node lacks (device/wheels.txt), the notebooks and run.sh; it says its size.
# NODE_PYTHON=3.12 is the node's Python; DEVICE_LOCAL=1 builds it for this machine's Python from .venv, with no index.
NODE_PYTHON ?= 3.12
DEVICE_LOCAL ?=
device-bundle: $(STAMP)
	$(PY) -m brainage_lib.device.bundle --python-version $(NODE_PYTHON) $(if $(filter 1 yes true,$(DEVICE_LOCAL)),--local)

clean:
	find results figures rendered -mindepth 1 ! -name .gitkeep -exec rm -rf {} + 2>/dev/null || true
	rm -rf cache build bench seeds

distclean: clean
	rm -rf data $(VENV)
