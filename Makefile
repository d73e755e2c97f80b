# Two entry points on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing; torch comes first from its pinned CPU wheel so that nothing
# later resolves a CUDA build from the registry.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/affectnet_yolo
DEMO_OUT ?= demo-out

.PHONY: demo test lint venv dev clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.base
dev: $(VENV)/.dev

demo: $(VENV)/.base
	@if [ -d "$(DATA)" ]; then \
		$(VENV)/bin/ferkit inspect "$(DATA)" --out $(DEMO_OUT); \
		echo "figures, inspect.json and problems.csv are in $(DEMO_OUT)/"; \
	else \
		echo "make demo inspects a dataset: none found at $(DATA)."; \
		echo "Point it at one: make demo DATA=/path/to/affectnet_yolo (a YOLO folder with"; \
		echo "data.yaml), a class-folder dataset such as fer2013/, or the FER2013 CSV."; \
	fi

test: $(VENV)/.dev
	$(PY) -m pytest -n 2 -q
	$(VENV)/bin/ruff check src tests benchmarks

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
