# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make repro   build the environment and run the whole pipeline (dvc repro)
#   make test    build the environment and run every test, slow ones included
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
# Stage commands in dvc.yaml call `python`: it must be the environment's.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test test-fast bench screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# axe-core for the browser test's accessibility check (package.json); skipped where there is no npm
node_modules/.installed: package.json package-lock.json
	if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent && touch $@; fi

setup: $(VENV)/.installed node_modules/.installed

repro: setup
	dvc repro

test: setup
	HF_HUB_OFFLINE=1 python -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 python -m pytest -m "not slow"

bench: setup
	python bench/pipeline_time.py

# The README's pictures of the search page, from the default run's index (needs Chromium: apt-get install chromium)
screenshots: setup
	fashion-search screenshots "denim shorts" "a long skirt" --out reports

clean:
	rm -rf data models mlflow.db mlartifacts
	rm -f reports/retrieval_grid.png
