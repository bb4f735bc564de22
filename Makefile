VENV ?= .venv
PY := $(VENV)/bin/python
LINTED := buildbot_logfile buildbot_legacy_logs tests benchmarks tools

.PHONY: demo test lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Each target installs what it needs once; setup.cfg changes reinstall.
$(VENV)/.demo: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.test: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

demo: $(VENV)/.demo
	$(PY) tools/demo.py

lint: $(VENV)/.test
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) demo _trial_temp* .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
