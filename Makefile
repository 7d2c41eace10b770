# The two commands a new machine needs: `make demo` and `make test`. Both set everything up.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,wordseg]'
	touch $@

demo: setup
	$(VENV)/bin/vinaforge run recipes/quickstart.yaml

test: setup
	$(VENV)/bin/pytest -q -ra

lint: setup
	$(VENV)/bin/ruff check vinaforge tests bench

bench: setup
	$(PY) bench/text_core.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
