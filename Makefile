# The two commands a new machine needs: `make demo` and `make test`. Both set everything up.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test lint bench clean collect-demo gguf-runtime

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml apps/collect/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,wordseg,ray,merge,fit,factory,serve]'
	$(PY) -m pip install -q -e 'apps/collect[test]'  # the collection app (its own package) + playwright
	touch $@

# The llama.cpp runtime that verifies GGUF exports (optional: its tests skip without it; CI installs it).
# Built from source, about 11 minutes on 2 cores (pip caches the wheel). GGML_NATIVE=OFF: a native
# build crashes with SIGILL on q8_0 on VMs that advertise AMX but fault on it.
gguf-runtime: setup
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip install -q -e '.[gguf]'

demo: setup
	$(VENV)/bin/vinaforge run recipes/quickstart.yaml

# The community collection app with our Vietnamese seed data, on SQLite: http://127.0.0.1:8300
# (demo accounts in docs/collect.md). Not part of `make demo`.
collect-demo: setup
	$(VENV)/bin/vinaforge collect serve --seed --db sqlite:///runs/collect-demo.db --reviews-needed 1 --port 8300

test: setup
	$(VENV)/bin/pytest -q -ra --durations=30

lint: setup
	$(VENV)/bin/ruff check vinaforge tests bench apps

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
	$(PY) bench/generate.py --requests 24 --batch-size 8 --max-new-tokens 32

clean:
	rm -rf runs .pytest_cache .ruff_cache
