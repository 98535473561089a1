# make demo | make test | make bench. Each installs into .venv first (pinned by constraints.txt).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_DIR ?= demo-out
JOBS ?= 2

.PHONY: install test demo bench clean

$(VENV)/.installed: setup.py setup.cfg constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -n $(JOBS) -q

demo: install
	$(VENV)/bin/stdo-cluster "$$($(PY) -m stdo.clips bikes)" $(DEMO_DIR)/run --scale 4 --grid 10x5 --chunks 2 --force
	@echo "demo: RUN directory written to $(DEMO_DIR)/run"

bench: install
	$(PY) benchmarks/cluster_speed.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .hypothesis
