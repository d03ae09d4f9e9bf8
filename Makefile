# Spectral Diffusion Book: every set-up step is here, so that a fresh clone needs only `make book` or `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
JOBS ?= 1
RETRAIN ?= 0
LAB_ARGS ?=
CONSTRAINTS ?= requirements/constraints-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: help venv browser test test-unit test-notebooks book notebooks html bench lab clean

help:
	@echo "make book   - create .venv, execute every notebook (PROFILE=$(PROFILE)), render _build/html"
	@echo "              at cpu the chapters read the shipped results/cpu; RETRAIN=1 trains afresh and rewrites them"
	@echo "              JOBS=2 executes two notebooks at once (each kernel gets its share of the cores)"
	@echo "make test   - create .venv, run the unit tests and every notebook at the smoke profile"
	@echo "make bench  - regularizer overhead and throughput, as ratios"
	@echo "make lab    - JupyterLab in the project environment (LAB_ARGS=--allow-root in a container)"

venv: $(STAMP)

# Re-installs only when the dependency description changes; `make venv` is quick when nothing did.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,docs,diffusers,audio-metrics]"
	touch $(STAMP)

# Unit tests and every notebook at the smoke profile (two workers), then the HTML book built from those executed
# notebooks and inspected in headless Chromium.
test: venv browser
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 -q -m "not rendered" tests
	$(PY) -m pytest -q -m rendered tests

# Debian's chromium for the rendered-page tests; where it cannot be installed, those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	  echo "note: no Chromium could be installed; the rendered-page tests will skip"

test-unit: venv
	$(PY) -m pytest -q -m "not notebook" tests

test-notebooks: venv
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -q -m notebook tests

# Execute the notebooks with papermill into _build/src (the sources stay clean), then render the stored outputs.
# RETRAIN=1: the chapters train at cpu instead of reading results/cpu, and overwrite it (see experiments/shipped.py).
# JOBS>1: each kernel is capped at cores/JOBS threads; inside that, spectral_lib.device shares the cores among the
# processes that train at the moment.
notebooks: venv
	$(PY) scripts/execute_notebooks.py --profile $(PROFILE) --out _build/src --jobs $(JOBS) \
	  $(if $(filter 1 yes true,$(RETRAIN)),--retrain,)

html: venv
	$(PY) scripts/execute_notebooks.py --sources-only --out _build/src
	$(VENV)/bin/jupyter-book build _build/src --path-output .
	@echo "Book: $(CURDIR)/_build/html/index.html"

book: notebooks html

bench: venv
	$(PY) -m spectral_lib.bench

lab: venv
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab]"
	$(VENV)/bin/jupyter lab --notebook-dir=book $(LAB_ARGS)

clean:
	rm -rf _build .pytest_cache
