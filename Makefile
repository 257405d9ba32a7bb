# Two commands: `make demo` (mini-TIMIT end to end) and `make test` (the test suite).
# Each creates, or reuses, the virtual environment in .venv by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= exp/mini_timit_small

.PHONY: demo test test-all

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/asr-prepare corpus=mini_timit corpus.size=small out=$(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''
