# xnorfault: `make demo` runs the main job, `make test` runs lint and tests.
# Both create the virtual environment first when it is missing or out of date.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.xnorfault-installed
# Larq Compute Engine needs tensorflow 2.16, whose protobuf and ml_dtypes pins conflict with
# current onnx: it gets an environment of its own, which xnorfault finds and calls by itself.
LCE_VENV  := .venv-lce
LCE_STAMP := $(LCE_VENV)/.xnorfault-installed

.PHONY: setup demo test test-fast test-arm lint layers pytest benchmarks docs clean

setup: $(STAMP) $(LCE_STAMP)

# torch is pinned to the 2.13.0 CPU wheel and installed first, so that no
# dependency resolves to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[train,dev,tensorboard,mlflow,ray]"
	touch $@

# The pins of the `lce` extra (pyproject.toml); tf-keras without its dependencies (it asks for the
# full tensorflow package), and xnorfault itself without its own (their onnx needs protobuf 6).
$(LCE_STAMP): pyproject.toml
	test -x $(LCE_VENV)/bin/python || $(PYTHON) -m venv $(LCE_VENV)
	$(LCE_VENV)/bin/python -m pip install --quiet "tensorflow-cpu==2.16.2" "larq==0.14.0" "larq-compute-engine==0.16.0" "numpy<2"
	$(LCE_VENV)/bin/python -m pip install --quiet --no-deps "tf-keras==2.16.0"
	$(LCE_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

# The main job on the embedded digits data: the MRAM operating points of the paper; binarized
# LeNet-4 trained with bit errors in its activations at BER 0 and 0.04; both exported to ONNX
# and evaluated under a write-voltage sweep of the paper's MRAM (10 ns pulses); the BER-0.04
# model also under the write model "previous" (a write fails only where it must switch); the
# three sweeps overlaid in one figure (voltage_sweeps.png).
DEMO := runs/demo
SWEEP := --voltage 0.40:0.80:0.05 --pulse 10ns --mram-device paper --repeats 5 --max-drop 0.01

demo: setup
	mkdir -p $(DEMO)
	$(BIN)/xnorfault mram table
	$(BIN)/xnorfault mram curve -o $(DEMO)/write_voltage_vs_pulse.png
	$(BIN)/xnorfault train --model lenet4 --data digits --ber 0,0.04 --epochs 3 --out $(DEMO)/train
	$(BIN)/xnorfault plot $(DEMO)/train -o $(DEMO)/accuracy_vs_epoch.png
	$(BIN)/xnorfault export $(DEMO)/train --point ber=0 -o $(DEMO)/lenet4_ber0.onnx --testset $(DEMO)/test.npz
	$(BIN)/xnorfault export $(DEMO)/train --point ber=0.04 -o $(DEMO)/lenet4_ber0.04.onnx
	$(BIN)/xnorfault inject $(DEMO)/lenet4_ber0.04.onnx -o $(DEMO)/lenet4_ber0.04_faulty.onnx --voltage 0.5 --pulse 10ns
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.onnx --data $(DEMO)/test.npz $(SWEEP) --plot $(DEMO)/voltage_sweep_ber0.png --csv $(DEMO)/voltage_sweep_ber0.csv
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.04_faulty.onnx --data $(DEMO)/test.npz $(SWEEP) --plot $(DEMO)/voltage_sweep_ber0.04.png --csv $(DEMO)/voltage_sweep_ber0.04.csv
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.04_faulty.onnx --data $(DEMO)/test.npz $(SWEEP) --write-model previous --plot $(DEMO)/voltage_sweep_ber0.04_previous.png --csv $(DEMO)/voltage_sweep_ber0.04_previous.csv
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.onnx --data $(DEMO)/test.npz $(SWEEP) --json > $(DEMO)/voltage_sweep_ber0.json
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.04_faulty.onnx --data $(DEMO)/test.npz $(SWEEP) --json > $(DEMO)/voltage_sweep_ber0.04.json
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.04_faulty.onnx --data $(DEMO)/test.npz $(SWEEP) --write-model previous --json > $(DEMO)/voltage_sweep_ber0.04_previous.json
	$(BIN)/xnorfault plot $(DEMO)/voltage_sweep_ber0.json $(DEMO)/voltage_sweep_ber0.04.json $(DEMO)/voltage_sweep_ber0.04_previous.json -o $(DEMO)/voltage_sweeps.png --label "trained at BER 0, iid writes" --label "trained at BER 0.04, iid writes" --label "trained at BER 0.04, write model previous"
	$(BIN)/xnorfault evaluate $(DEMO)/lenet4_ber0.04_faulty.onnx --data $(DEMO)/test.npz --voltage 0.40:0.60:0.05 --pulse 10ns --mram-device paper-varied --chips 20 --repeats 2 --max-drop 0.01 --csv $(DEMO)/chips_ber0.04.csv
	$(BIN)/xnorfault optimize $(DEMO)/lenet4_ber0.04.onnx --data $(DEMO)/test.npz --max-drop 0.05 --plot $(DEMO)/optimize_ber0.04.png --operating-points $(DEMO)/operating_points_ber0.04.toml
	@echo "figures, models and tables written to $(DEMO)/"

lint: setup layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layering contracts of pyproject.toml ([tool.importlinter]), imports inside functions
# counted. import-linter reads a package from its folder, and xnorfault.exporters, .runtimes and
# .targets live in top-level folders (setuptools package-dir): it reads a copy laid out as the
# wheel installs it, in build/layers (made here, removed first).
LAYERS := build/layers
layers: setup
	rm -rf $(LAYERS) && mkdir -p $(LAYERS)
	cp -r xnorfault $(LAYERS)/xnorfault
	for folder in exporters runtimes targets; do cp -r $$folder $(LAYERS)/xnorfault/$$folder; done
	cd $(LAYERS) && $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/pyproject.toml --no-cache

# The LCE tests run (not skip) whenever the LCE environment was built, as here.
pytest: setup
	XNORFAULT_REQUIRE_LCE=1 $(BIN)/python -m pytest

test: lint pytest

# The inner loop: lint and every test not marked slow (processes, Ray, fresh venvs, the
# notebook, NiN); `make test` (CI) runs them all.
test-fast: lint
	$(BIN)/python -m pytest -m "not slow" -q

# The Raspberry Pi bundle on an emulated aarch64 (qemu-user on a debootstrapped arm64 Debian
# root, cached in .cache/arm64/): predictions at p = 0 equal x86's, flip rates binomial.
test-arm: setup
	$(BIN)/python tests/arm/run_arm_check.py

# The reference documentation as a static site in site/ (API from the docstrings, formulas
# rendered; the command-line reference; the README as the guide). A warning fails the build.
docs: setup
	$(BIN)/python docs/build.py site

# The speed aims, every row a ratio measured side by side in one run (about 3 minutes on two
# cores), and the MRAM model's solve times. The other scripts in benchmarks/ go deeper into one
# figure each and run on demand.
benchmarks: setup
	$(BIN)/python benchmarks/speed_table.py
	$(BIN)/python benchmarks/mram.py

clean:
	rm -rf $(VENV) $(LCE_VENV) .cache runs build site *.egg-info .pytest_cache .ruff_cache
