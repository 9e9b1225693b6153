# Two entry points for a newcomer (see README):
#   make demo   set everything up in .venv and run the main job
#   make test   set everything up in .venv (if needed) and run the test suite
# Both install through deploy/install.sh, as CI and the images do.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench-quick test-installs test-faults soak setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml deploy/install.sh
	PYTHON=$(PYTHON) deploy/install.sh dev $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/strata demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# The regression alarm CI runs after the tests (under 2 minutes): a small stack of its own, per-query counts
# (Triton round trips, rows scored, bytes fetched) against their budgets; the report in $STRATA_HOME/bench-quick.json.
bench-quick: $(STAMP)
	home="$${STRATA_HOME:-$$HOME/.strata}" && mkdir -p "$$home" && \
	HF_HUB_OFFLINE=1 $(BIN)/strata bench --quick --json "$$home/bench-quick.json"

# The installs from a wheel, each in a fresh venv outside the checkout (minutes; not part of `make test`).
test-installs: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m installs tests/installs

# A Ray Train worker killed mid-run; the run ends at the uninterrupted metrics (minutes; not part of `make test`).
test-faults: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m faults tests/training/engine/test_ray_faults.py

# Two minutes of load from Locust on the real stack, both directions with ingests (minutes; not part of `make test`).
soak: $(STAMP)
	$(BIN)/pip install --quiet -e ".[load]"
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -s -m soak tests/soak

clean:
	rm -rf $(VENV) *.egg-info build dist
