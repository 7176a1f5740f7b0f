# VideoPoet-JAX: `make demo` runs the pipeline on tiny configs, `make test` the
# test suite. Each bootstraps .venv from setup.py by itself (CPU JAX).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/demo
QUALITY_DIR ?= runs/quality
# Pytest workers: the default suite is sized for a 2-core machine.
PYTEST_WORKERS ?= 2

.PHONY: demo quality test test-slow test-all venv peers kernels format clean

venv: $(STAMP)

# Reinstall when setup.py changes. `torch==2.13.0` is pinned in [parity]: it
# is the CPU wheel that this project's machines carry locally.
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,parity,kernels]'
	$(MAKE) kernels
	touch $(STAMP)

# The oneDNN 3D convolutions (XLA FFI, CPU) of the `kernels` extra,
# compiled with -Wall -Wextra (warnings shown) into ~/.cache/videopoet-jax.
# Without the extra, nothing to build: the XLA forms run. With it, a failed
# build fails here (and the default suite asserts the kernels are in use).
kernels:
	$(PY) -m videopoet.kernels

# Benchmark peers, without their dependencies (which would replace the pinned
# torch): EnCodec (codec_speed) and lucidrains' magvit2-pytorch with what its
# model module imports (tokenizer_speed; see benchmarks/magvit2_lucidrains.py).
peers: $(STAMP)
	$(PY) -m pip install --quiet --no-deps encodec==0.1.1 \
	  magvit2-pytorch==0.5.1 kornia==0.8.1 kornia-rs==0.2.0 beartype==0.23.1 \
	  gateloop-transformer==0.2.5 taylor-series-linear-attention==0.2.0 \
	  rotary-embedding-torch==0.9.1 jaxtyping==0.3.11 pytorch-warmup==0.2.0

demo: $(STAMP)
	RUN_DIR=$(RUN_DIR) bash experiments/demo.sh

# Tokenizers and an LM trained on synth_av (~1.5 CPU hours), then every task
# scored on test and test_heldout; resumable (see experiments/quality.sh).
quality: $(STAMP)
	RUN_DIR=$(QUALITY_DIR) bash experiments/quality.sh

test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m 'not slow' tests

test-slow: $(STAMP)
	$(PY) -m pytest -m slow tests

test-all: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

format: $(STAMP)
	$(PY) -m pyink videopoet tokenizers configs experiments tests benchmarks research setup.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
