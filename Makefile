# `make run` and `make test` each bootstrap .venv by themselves on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull the CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	sh packaging/system-deps.sh gui
	$(VENV)/bin/torchwork --config examples/digits-cnn.toml

test: $(STAMP)
	sh packaging/system-deps.sh offscreen
	$(VENV)/bin/ruff check engine app tests bench
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/engine_overhead.py
	$(PY) bench/digits_cnn.py
	QT_QPA_PLATFORM=offscreen $(PY) bench/gui_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
