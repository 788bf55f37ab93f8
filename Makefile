# gan_pack: `make sample` (the runtime on the shipped model), `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BASE_VENV ?= .venv-runtime
ONNX_VENV ?= .venv-onnx
# The torch this project is tested with (the [train] extra takes any torch>=2.6,<3).
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1
DATA ?= ../shared/data
RUN ?= runs/demo
TREE_LIMIT ?= 50000000
BASE_ONLY = not torch and not onnx and not serve

.PHONY: setup runtime sample test test-fast lint check-size test-base test-onnx test-runtime test-examples \
	train export evaluate info benchmark benchmark-train clean

# The full environment: every extra, the tested torch.
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_PIN) -e '.[train,dev,serve,images]'
	touch $@

# The base install alone: numpy, onnxruntime, typer, pillow, scipy. No torch, no onnx.
runtime: $(BASE_VENV)/.installed
$(BASE_VENV)/.installed: pyproject.toml
	test -d $(BASE_VENV) || $(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/pip install -q --upgrade pip
	$(BASE_VENV)/bin/pip install -q -e . pytest hypothesis
	touch $@

# The base install and the [onnx] extra (pack, quantize, optimize). Still no torch.
$(ONNX_VENV)/.installed: pyproject.toml
	test -d $(ONNX_VENV) || $(PYTHON) -m venv $(ONNX_VENV)
	$(ONNX_VENV)/bin/pip install -q --upgrade pip
	$(ONNX_VENV)/bin/pip install -q -e '.[onnx]' pytest pyyaml hypothesis
	touch $@

sample: runtime
	$(BASE_VENV)/bin/ganpack sample exported/mnist-cgan/ -n 100 --nrow 10 --seed 0 -o samples.png

# Every test, in the full environment.
test: setup
	$(VENV)/bin/python -m pytest -q

# The quick loop: everything but the process-level and whole-pipeline tests (kills, full disks,
# torchrun, the browser, several exports).
test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow"

lint: setup check-size
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The tracked tree stays small enough to travel with data to a GPU machine.
check-size:
	@$(PYTHON) -c "import os, subprocess; \
	names = subprocess.run(['git', 'ls-files', '-z'], capture_output=True, check=True).stdout.decode().split('\0'); \
	total = sum(os.path.getsize(n) for n in names if os.path.isfile(n)); \
	print(f'tracked tree: {total:,} bytes (limit {$(TREE_LIMIT):,})'); raise SystemExit(total >= $(TREE_LIMIT))"

# The tests that need only the base install, in it (torch and onnx absent); then a real sample.
test-base: runtime
	@! $(BASE_VENV)/bin/python -c "import torch" 2>/dev/null || (echo "torch is in $(BASE_VENV)"; exit 1)
	@! $(BASE_VENV)/bin/python -c "import onnx" 2>/dev/null || (echo "onnx is in $(BASE_VENV)"; exit 1)
	$(BASE_VENV)/bin/python -m pytest -q -m "$(BASE_ONLY) and not slow"
	$(BASE_VENV)/bin/ganpack sample exported/mnist-gan/ -n 16 -o /tmp/ganpack-ci-sample.png

# The tests that need the base install and onnx, without torch: pack, quantize, optimize among them.
test-onnx: $(ONNX_VENV)/.installed
	@! $(ONNX_VENV)/bin/python -c "import torch" 2>/dev/null || (echo "torch is in $(ONNX_VENV)"; exit 1)
	$(ONNX_VENV)/bin/python -m pytest -q -m "not torch and not serve and not slow"

test-runtime: test-base test-onnx

# The Node.js and browser examples against Python's output (npm ci; Chromium from Debian).
test-examples: setup
	@command -v npm >/dev/null || { echo "SKIP examples: npm is not installed (apt-get install nodejs npm)"; exit 0; }; \
	cd examples/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund && cd ../web && npm ci --no-audit --no-fund
	$(VENV)/bin/python -m pytest -q -rs tests/examples

train: setup
	$(VENV)/bin/ganpack train --model cgan --epochs 3 --data-dir $(DATA)/mnist --out $(RUN)

export: setup
	$(VENV)/bin/ganpack export $(RUN) -o $(RUN).onnx

evaluate: runtime
	$(BASE_VENV)/bin/ganpack evaluate exported/mnist-cgan/ --classifier exported/mnist-classifier.onnx \
		--data-dir $(DATA)/mnist

info: runtime
	$(BASE_VENV)/bin/ganpack info exported/mnist-cgan/

benchmark: setup
	$(VENV)/bin/python benchmarks/sampling.py
	$(VENV)/bin/python benchmarks/noise.py

# Training speed, tutorial loop vs gan_pack (GPU: add DEVICE=cuda CASES=mlp-64,mlp-1024,dcgan-64).
DEVICE ?= auto
CASES ?= mlp-64
benchmark-train: setup
	$(VENV)/bin/python benchmarks/train_speed.py --data-dir $(DATA)/mnist --device $(DEVICE) --cases $(CASES) --seconds 30

clean:
	rm -rf $(VENV) $(BASE_VENV) $(ONNX_VENV) .pytest_cache samples.png
