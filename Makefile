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
	$(PY) -m pip install -q -e '.[dev,wordseg,ray]'
	touch $@

demo: setup
	$(VENV)/bin/vinaforge run recipes/quickstart.yaml

test: setup
	$(VENV)/bin/pytest -q -ra

lint: setup
	$(VENV)/bin/ruff check vinaforge tests bench

# Benchmarks on ../shared/data (baselines need the `bench` extra); results go to bench/out/ and
# are recorded by hand in docs/benchmarks.md with the machine they ran on.
SHARED ?= ../shared/data
bench: setup
	$(PY) -m pip install -q -e '.[dev,wordseg,bench]'
	$(PY) bench/text_core.py --data $(SHARED)/vi_text/news_baomoi_magizbox.jsonl.gz
	$(PY) bench/curate.py --limit 3000
	$(PY) bench/tokenizer.py --data $(SHARED)
	$(PY) bench/train_throughput.py --preset cpu-tiny --threads 1
	$(PY) bench/eval.py --items 60

clean:
	rm -rf runs .pytest_cache .ruff_cache
