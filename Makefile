# `make run`, `make test` and `make package` each bootstrap .venv by themselves on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PACKAGE_STAMP := $(VENV)/.installed-package

.PHONY: run test test-fast test-bench bench package package-test clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull the CUDA build.
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

$(PACKAGE_STAMP): $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,package]'
	touch $(PACKAGE_STAMP)

run: $(STAMP)
	sh packaging/system-deps.sh gui
	$(VENV)/bin/torchwork --config examples/digits-cnn.toml

test: $(STAMP)
	sh packaging/system-deps.sh offscreen
	$(VENV)/bin/ruff check engine app tests bench packaging
	$(VENV)/bin/lint-imports
	# faulthandler stays on through the interpreter's shutdown: a crash there prints its stacks
	PYTHONFAULTHANDLER=1 QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q --durations=15 \
	    -m "not package and not bench"

# The benchmark scripts run end to end, shortened (their figures live in docs/benchmarks.md).
test-bench: $(STAMP)
	sh packaging/system-deps.sh offscreen
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m bench tests/test_bench_smoke.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not package"

bench: $(STAMP)
	$(PY) bench/engine_overhead.py
	$(PY) bench/digits_cnn.py
	QT_QPA_PLATFORM=offscreen $(PY) bench/gui_overhead.py

# The one-folder desktop bundle dist/torchwork/ (PyInstaller), and its test:
# it trains, exports and opens the window from the bundle (`make test` leaves it out).
package: $(PACKAGE_STAMP)
	sh packaging/build.sh

package-test: $(PACKAGE_STAMP)
	sh packaging/system-deps.sh offscreen
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m package tests/packaging

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
