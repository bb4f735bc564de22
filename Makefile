VENV ?= .venv
PY := $(VENV)/bin/python
LINTED := buildbot_logfile buildbot_legacy_logs tests benchmarks tools

.PHONY: demo test test-floor lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Each target installs what it needs once; setup.cfg changes reinstall.
$(VENV)/.demo: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[demo]'
	touch $@

# CONSTRAINTS: a pip constraints file the test venv is held to.
$(VENV)/.test: $(PY) setup.cfg pyproject.toml $(CONSTRAINTS)
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS)) -e '.[test,lint]'
	touch $@

# Python 2.7 with 0.8.14's own client tools, for tests/test_pb_python2.py,
# where the machine has a Python 2.7 (pyenv's, or python2.7 on the PATH).
PYTHON2 := $(firstword $(wildcard $(HOME)/.pyenv/versions/2.7*/bin/python2.7) \
	$(shell command -v python2.7 2>/dev/null))
PIP2 := --quiet --disable-pip-version-check

$(VENV)/.python2: requirements-python2.txt | $(PY)
ifneq ($(PYTHON2),)
	$(PYTHON2) -m pip install $(PIP2) --target $(VENV)/python2-tools 'virtualenv<20.22'
	PYTHONPATH=$(VENV)/python2-tools $(PYTHON2) -m virtualenv --quiet --clear $(VENV)/python2
	$(VENV)/python2/bin/pip install $(PIP2) -r requirements-python2.txt
endif
	touch $@

demo: $(VENV)/.demo
	$(PY) tools/demo.py

lint: $(VENV)/.test
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/mypy

test: lint $(VENV)/.python2
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite again, on the oldest releases setup.cfg accepts, in a venv of its
# own (`make test` lints the code, which does not change with them).
FLOOR := .venv-floor

test-floor:
	$(MAKE) $(FLOOR)/.test $(FLOOR)/.python2 VENV=$(FLOOR) CONSTRAINTS=constraints-floor.txt
	$(FLOOR)/bin/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(FLOOR) demo _trial_temp* .pytest_cache .hypothesis .mypy_cache .ruff_cache *.egg-info
