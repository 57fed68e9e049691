# The README's commands. Each target bootstraps .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint format bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bioflow.demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

# ruff, then the import contracts of docs/architecture.md ([tool.importlinter] in pyproject.toml)
lint: $(STAMP)
	$(VENV)/bin/ruff check bioflow tests benchmarks data_recipes
	$(VENV)/bin/ruff format --check bioflow tests benchmarks data_recipes
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format bioflow tests benchmarks data_recipes
	$(VENV)/bin/ruff check --fix bioflow tests benchmarks data_recipes

# Static HTML in docs/_build/html; the tutorials are executed (cached in docs/_build/.jupyter_cache).
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -n -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt --no-deps torchcfm
	$(PY) benchmarks/dynamics_vs_torchcfm.py

clean:
	rm -rf $(VENV) runs docs/_build docs/generated docs/tutorials
