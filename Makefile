# VideoPoet-JAX: `make demo` runs the pipeline on tiny configs, `make test` the
# test suite. Each bootstraps .venv from setup.py by itself (CPU JAX).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/demo
# Pytest workers: the default suite is sized for a 2-core machine.
PYTEST_WORKERS ?= 2

.PHONY: demo test test-slow test-all venv format clean

venv: $(STAMP)

# Reinstall when setup.py changes. `torch==2.13.0` is pinned in [parity]: it
# is the CPU wheel that this project's machines carry locally.
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,parity]'
	touch $(STAMP)

demo: $(STAMP)
	RUN_DIR=$(RUN_DIR) bash experiments/demo.sh

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m 'not slow' tests

test-slow: $(STAMP)
	$(PY) -m pytest -m slow tests

test-all: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

format: $(STAMP)
	$(PY) -m pyink videopoet tokenizers configs experiments tests benchmarks setup.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
