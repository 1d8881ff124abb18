# `make train` and `make test` set up .venv on first use, then run.
# Override TORCH_SPEC elsewhere, e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
ARGS ?=
LINT_PATHS := rndx tests hydra_plugins $(wildcard benchmarks)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Headless backends for MuJoCo and pygame (the code also sets these defaults itself).
export MUJOCO_GL ?= egl
export SDL_VIDEODRIVER ?= dummy

.PHONY: install train test test-all bench lint format clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, so pip does not resolve the default (CUDA) wheel through the rndx requirement.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

# `make train` is the first run a new user sees: configs/experiment/quickstart.yaml, minutes on
# a laptop CPU with a useful result. EXPERIMENT=null trains the full default recipe instead.
# One torch thread: the nets are small MLPs and extra threads only contend (16k quickstart
# steps on a loaded 2-core machine: 39-108 s with one thread, 200-253 s with torch's default).
# Hydra drops a config group with `~experiment` (`experiment=null` is an error there), so
# EXPERIMENT=null or an empty EXPERIMENT becomes that; quoted, or the shell may expand the ~.
EXPERIMENT ?= quickstart
EXPERIMENT_OVERRIDE = $(if $(filter-out null,$(strip $(EXPERIMENT))),experiment=$(EXPERIMENT),'~experiment')
TRAIN_THREADS ?= 1
train: $(STAMP)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PY) -m rndx.train $(EXPERIMENT_OVERRIDE) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q $(ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

bench: $(STAMP)
	$(PY) -m pip install -e ".[dev,bench]"
	@set -e; for f in benchmarks/[!_]*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(PY) "$$f"; done

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

format: $(STAMP)
	$(PY) -m ruff format $(LINT_PATHS)
	$(PY) -m ruff check --fix $(LINT_PATHS)

clean:
	rm -rf dist build .pytest_cache .ruff_cache
