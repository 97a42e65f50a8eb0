# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# `make run` installs only what the demo needs (the package and its dependencies: RUN_STAMP);
# `make test` adds the test and bench extras (STAMP).
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

# The optional compiled core (mypyc) lives in its own venv and build directory, never in src/.
COMPILED_VENV  := .venv-compiled
COMPILED_PY    := $(COMPILED_VENV)/bin/python
COMPILED_STAMP := $(COMPILED_VENV)/.installed
COMPILED_DIR   := build/compiled
OPS            ?= 1000000

.PHONY: run test test-fast gates bench bench-compare bench-compiled test-compiled clean

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# The live demo: node + API + web UI on http://127.0.0.1:8000, bots, data in .bastion-demo/ (Ctrl-C stops).
# It installs only the package and its runtime dependencies; the test extras (Playwright, Ray,
# schemathesis, psycopg) come with `make test`.
run: $(RUN_STAMP)
	$(VENV)/bin/bastion demo

# Two pytest workers (pytest-xdist), each taking whole test files (--dist loadfile: a file's
# module-scoped servers and browsers are started once); about 13 minutes on 2 cores, 20 on one worker.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

# The gates alone (also part of `make test`): ruff, mypy, the error catalogue, docstrings, import layers.
gates: $(STAMP)
	$(PY) -m pytest -q tests/test_gates.py tests/test_architecture.py

$(COMPILED_STAMP): pyproject.toml
	$(PYTHON) -m venv $(COMPILED_VENV)
	$(COMPILED_PY) -m pip install --quiet --upgrade pip
	$(COMPILED_PY) -m pip install --quiet -e '.[test,bench,compiled]'
	touch $(COMPILED_STAMP)

# Opt-in: compile the core with mypyc into build/compiled, run the state-machine benchmark pure and
# compiled on the same workload (OPS orders), and fail unless both end in the same state hash.
bench-compiled: $(COMPILED_STAMP)
	$(COMPILED_PY) benchmarks/build_compiled.py $(COMPILED_DIR)
	$(COMPILED_PY) benchmarks/run.py --ops $(OPS) --compiled $(COMPILED_DIR)

# Opt-in: every golden scenario, compiled core against pure core (builds its own copy in a tmp dir).
test-compiled: $(COMPILED_STAMP)
	BASTION_TEST_COMPILED=1 $(COMPILED_PY) -m pytest -q tests/test_compiled.py

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Our book side by side with PyPI order books on the fixed workload of the external comparison harness
# (not part of the repository; this target needs a checkout of it at the path below; one run, interleaved).
bench-compare: $(STAMP)
	$(PY) -m pip install --quiet '.[compare]'
	ENGINES="noop bastion_bench:Adapter orderly_chaos ref pyorderbook" PY=$(abspath $(PY)) \
	  PYTHONPATH=$(abspath src):$(abspath benchmarks) REPEAT=3 ../shared/bench/compare.sh

clean:
	rm -rf $(VENV) $(COMPILED_VENV) build *.egg-info src/*.egg-info
