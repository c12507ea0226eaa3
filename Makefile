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

# The main job on the embedded digits data: the MRAM operating points of the paper, binarized
# LeNet-4 trained with bit errors in its activations at BER 0 and 0.04, exported to ONNX and
# injected with the flip rates of an MRAM written at 0.5 V for 10 ns.
demo: setup
	mkdir -p runs/demo
	$(BIN)/xnorfault mram table
	$(BIN)/xnorfault mram curve -o runs/demo/write_voltage_vs_pulse.png
	$(BIN)/xnorfault train --model lenet4 --data digits --ber 0,0.04 --epochs 3 --out runs/demo/train
	$(BIN)/xnorfault plot runs/demo/train -o runs/demo/accuracy_vs_epoch.png
	$(BIN)/xnorfault export runs/demo/train --point ber=0.04 -o runs/demo/lenet4.onnx --testset runs/demo/test.npz
	$(BIN)/xnorfault inject runs/demo/lenet4.onnx -o runs/demo/lenet4_faulty.onnx --voltage 0.5 --pulse 10ns --device paper
	@echo "figures and models written to runs/demo/"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: setup
	$(BIN)/python -m pytest

test: lint pytest

benchmarks: setup
	$(BIN)/python benchmarks/mram.py
	$(BIN)/python benchmarks/train_overhead.py
	$(BIN)/python benchmarks/flip_overhead.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache .ruff_cache
