# The verbs a user needs. Every target installs first (quick when nothing changed).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# a sweep directory for `make report`; empty: the newest under $SEGSER_OUTPUT_DIR/multirun
SWEEP_DIR ?=

.PHONY: install demo test test-slow lint format bench bench-transfer bench-real sweep report clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

demo: install  ## the main job on the built-in demo corpus
	$(BIN)/python -m segser.train experiment=demo

test: install  ## the default test suite (slow tests excluded)
	$(BIN)/python -m pytest

test-slow: install  ## the slow tests only
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check segser tests experiments notebooks
	$(BIN)/ruff format --check segser tests experiments notebooks

format: install
	$(BIN)/ruff check --fix segser tests experiments notebooks
	$(BIN)/ruff format segser tests experiments notebooks

BENCH_ARGS ?=
bench: install  ## one table of every figure (BENCH_ARGS="--cache-12h --hour" adds the long ones)
	$(BIN)/python experiments/bench.py --out outputs/bench.md $(BENCH_ARGS)

bench-transfer: install  ## frozen YAMNet: Table 4 grid time, cached vs backbone epochs, fine-tuning speed
	$(BIN)/python experiments/bench_transfer.py

bench-real: install  ## real speech: EmoDB + RAVDESS-dev speaker folds, the real_speech recipe and its levers vs eGeMAPS + SVM (ARGS=--quick)
	$(BIN)/python experiments/bench_real.py $(ARGS)

SWEEP ?= experiment=demo_sweep
sweep: install  ## a multirun sweep (default: the demo sweep; SWEEP="experiment=paper_table3 dataset.root=...")
	$(BIN)/python -m segser.train -m $(SWEEP)

report: install  ## tables and plots of the newest sweep (or SWEEP_DIR=...)
	$(BIN)/python -m segser.report $(SWEEP_DIR) --compare-paper

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
