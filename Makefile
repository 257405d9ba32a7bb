# Two commands: `make demo` (mini-TIMIT end to end) and `make test` (the test suite).
# Each creates, or reuses, the virtual environment in .venv by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= exp/mini_timit_small

.PHONY: demo test test-fast

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# task/gmm=mini_timit: GMM sizes for small's one hour of speech (Kaldi's 2500 leaves / 15000 Gaussians are for
# TIMIT's three: on one hour, tri1 decoded worse than mono with them).
# The GMM stages run with one OpenMP thread: extraction already uses both cores, and
# spin-waiting OpenMP threads on a busy 2-core machine made them several times slower.
demo: $(STAMP)
	$(VENV)/bin/asr-prepare corpus=mini_timit corpus.size=small out=$(DEMO_DIR)/corpus
	OMP_NUM_THREADS=1 $(VENV)/bin/asr-train recipe=timit_ligru data.root=$(DEMO_DIR)/corpus exp_dir=$(DEMO_DIR)/timit_ligru stop_stage=align \
		task/gmm=mini_timit

# The whole suite (what CI runs): slow end-to-end tests included.
test: $(STAMP)
	$(PY) -m pytest -q -m ''

test-fast: $(STAMP)
	$(PY) -m pytest -q
