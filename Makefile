# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench bench-compare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/bastion demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Our book side by side with PyPI order books on ../shared/bench's fixed workload (one run, interleaved).
bench-compare: $(STAMP)
	$(PY) -m pip install --quiet '.[compare]'
	ENGINES="noop bastion_bench:Adapter orderly_chaos ref pyorderbook" PY=$(abspath $(PY)) \
	  PYTHONPATH=$(abspath src):$(abspath benchmarks) REPEAT=3 ../shared/bench/compare.sh

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
