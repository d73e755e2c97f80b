# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing; torch comes first from its pinned CPU wheel so that nothing
# later resolves a CUDA build from the registry.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/affectnet_yolo
DEMO_OUT ?= demo-out

.PHONY: demo test test-fast lint typecheck layers venv dev clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[train]'
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.base
dev: $(VENV)/.dev

demo: $(VENV)/.base
	@mkdir -p $(DEMO_OUT)
	$(PY) -c "from skimage.data import astronaut; from PIL import Image; Image.fromarray(astronaut()).save('$(DEMO_OUT)/astronaut.png')"
	$(VENV)/bin/ferkit predict $(DEMO_OUT)/astronaut.png --out $(DEMO_OUT)/predicted
	@echo "annotated photo and predictions.json are in $(DEMO_OUT)/predicted/"
	@if [ -d "$(DATA)" ]; then \
		$(VENV)/bin/ferkit inspect "$(DATA)" --out $(DEMO_OUT)/inspect; \
		echo "dataset figures, inspect.json and problems.csv are in $(DEMO_OUT)/inspect/"; \
	else \
		echo "(no dataset at $(DATA): make demo DATA=/path/to/dataset also inspects one)"; \
	fi

# The browser test drives Debian's chromium; installed here when missing (CI runs as root).
# Without it (no root, no registry) the test skips and says why.
test: $(VENV)/.dev
	@(command -v chromium && command -v chromedriver) >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		 apt-get install -y -qq --no-install-recommends chromium chromium-driver) || \
		echo "chromium could not be installed: the browser test will be skipped"
	$(PY) -m pytest -n 2 --dist loadgroup -q
	$(VENV)/bin/ruff check src tests benchmarks

# The everyday loop: the suite without the tests marked slow (builds, installs, training runs).
# `make test` stays the whole suite.
test-fast: $(VENV)/.dev
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow"

# CI runs it before the tests (.ci/run).
lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# mypy over src/ferkit with pyproject's [tool.mypy]; CI runs it after lint (.ci/run).
typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

# The import layers of pyproject's [tool.importlinter] (cli -> study -> serve/inference ->
# training/evaluation -> faces/reports -> features -> models -> data); CI runs it (.ci/run).
layers: $(VENV)/.dev
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
