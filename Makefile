# Two commands do all set-up on a fresh machine (Python 3.11, git, make):
#   make serve   virtual environment, dependencies, the small models; serves http://127.0.0.1:8000
#   make test    the same plus test dependencies and models; runs the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TEST_MODELS := u2netp u2net multistyle26 arbitrary_predict arbitrary_transform

.PHONY: serve test install install-dev models bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[cpu,dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

models: install
	$(PY) -m app models fetch

serve: models
	mkdir -p var
	TRIALZONE_DEV_USER_HEADER=$${TRIALZONE_DEV_USER_HEADER-X-User-Id} $(PY) -m app serve --host 127.0.0.1 --port 8000

test: install-dev
	$(PY) -m app models fetch $(TEST_MODELS)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m pip install --quiet -e ".[cpu,dev,bench]"
	$(PY) -m app models fetch u2netp
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var test-artifacts
