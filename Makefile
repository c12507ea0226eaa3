# xnorfault: `make demo` runs the main job, `make test` runs lint and tests.
# Both create the virtual environment first when it is missing or out of date.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.xnorfault-installed

.PHONY: setup demo test lint pytest benchmarks clean

setup: $(STAMP)

# torch is pinned to the 2.13.0 CPU wheel and installed first, so that no
# dependency resolves to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[train,dev]"
	touch $@

demo: setup
	mkdir -p runs/demo
	$(BIN)/xnorfault mram table
	$(BIN)/xnorfault mram curve -o runs/demo/write_voltage_vs_pulse.png
	@echo "figure written to runs/demo/write_voltage_vs_pulse.png"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: setup
	$(BIN)/python -m pytest

test: lint pytest

benchmarks: setup
	$(BIN)/python benchmarks/mram.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .ruff_cache
