# gan_pack: `make sample` (torch-free, the shipped model) and `make test` are the two setup commands.
PYTHON ?= python3
VENV := .venv
RUNTIME_VENV := .venv-runtime
DATA ?= ../shared/data
RUN ?= runs/demo

.PHONY: setup runtime sample test lint test-runtime test-examples train export evaluate info benchmark benchmark-train clean

setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[train,dev,serve]'
	touch $@

# The runtime alone: numpy, onnxruntime, typer, pillow, scipy. No torch.
runtime: $(RUNTIME_VENV)/.installed
$(RUNTIME_VENV)/.installed: pyproject.toml
	test -d $(RUNTIME_VENV) || $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install -q --upgrade pip
	$(RUNTIME_VENV)/bin/pip install -q -e . pytest
	touch $@

sample: runtime
	$(RUNTIME_VENV)/bin/ganpack sample exported/mnist-cgan.onnx --per-class 10 --seed 0 -o samples.png

test: setup
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

# The runtime's tests in the torch-free venv (CI runs this after `make test`).
test-runtime: runtime
	@! $(RUNTIME_VENV)/bin/python -c "import torch" 2>/dev/null || (echo "torch is in $(RUNTIME_VENV)"; exit 1)
	$(RUNTIME_VENV)/bin/python -m pytest -q tests/test_runtime.py tests/test_cli.py tests/test_images.py \
		tests/test_evaluate.py tests/test_shipped.py tests/test_idx.py tests/test_config.py tests/test_report.py \
		tests/test_quantize.py tests/test_contract.py tests/test_runlog.py tests/test_files.py tests/test_limits.py \
		tests/test_noise.py tests/test_sampling.py tests/test_memory.py
	$(RUNTIME_VENV)/bin/ganpack sample exported/mnist-gan.onnx -n 16 -o /tmp/ganpack-ci-sample.png

# The Node.js and browser examples against Python's output (npm ci; Chromium from Debian).
test-examples: setup
	@command -v npm >/dev/null || { echo "SKIP examples: npm is not installed (apt-get install nodejs npm)"; exit 0; }; \
	cd examples/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund && cd ../web && npm ci --no-audit --no-fund
	$(VENV)/bin/python -m pytest -q -rs tests/test_examples.py

train: setup
	$(VENV)/bin/ganpack train --model cgan --epochs 3 --data-dir $(DATA)/mnist --out $(RUN)

export: setup
	$(VENV)/bin/ganpack export $(RUN) -o $(RUN).onnx

evaluate: runtime
	$(RUNTIME_VENV)/bin/ganpack evaluate exported/mnist-cgan.onnx --classifier exported/mnist-classifier.onnx \
		--data-dir $(DATA)/mnist

info: runtime
	$(RUNTIME_VENV)/bin/ganpack info exported/mnist-cgan.onnx

benchmark: setup
	$(VENV)/bin/python benchmarks/sampling.py
	$(VENV)/bin/python benchmarks/noise.py

# Training speed, tutorial loop vs gan_pack (GPU: add DEVICE=cuda CASES=mlp-64,mlp-1024,dcgan-64).
DEVICE ?= auto
CASES ?= mlp-64
benchmark-train: setup
	$(VENV)/bin/python benchmarks/train_speed.py --data-dir $(DATA)/mnist --device $(DEVICE) --cases $(CASES) --seconds 30

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) .pytest_cache samples.png
