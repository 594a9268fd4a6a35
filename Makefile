# make test        set up .venv if needed, then run the test suite
# make quickstart  set up .venv if needed, then run the demo: InstructGPT in miniature + the classification methods, one report (llmkit quickstart)
#
# torch: `torch==2.13.0` takes the CPU wheel on the project's machines. Elsewhere, for a CPU-only
# machine use `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"`;
# a torch already in .venv (e.g. a CUDA build) is kept.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,demo,bitsandbytes,deepspeed
PYTEST_ARGS ?=

.PHONY: test quickstart setup lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

quickstart: $(VENV)/.installed
	$(VENV)/bin/llmkit quickstart

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check llmkit tests

clean:
	rm -rf runs .cache .pytest_cache
