# Two commands on a fresh Debian/Ubuntu machine: `make run` and `make test`.
# Both are idempotent: the venv is only reinstalled when a requirements file changes.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
# Only this machine can open the app; `make run ADDRESS=0.0.0.0` shares it on the network.
ADDRESS ?= 127.0.0.1
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test bench lint dataset chromium clean

run: $(VENV)/.runtime-installed dataset
	$(BIN)/python -m fmnist.ui.server --server.address $(ADDRESS) --server.port $(PORT)

test: $(VENV)/.test-installed dataset chromium
	$(BIN)/ruff check .
	$(BIN)/python -m tests.run

bench: $(VENV)/.test-installed dataset chromium
	$(BIN)/python -m bench

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { sh tools/ensure-apt.sh python3-venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }

# The project itself goes in editable (its code stays here), without dependencies (the
# pins above are the ones): `fmnist` and `python -m fmnist` then work from any folder.
$(VENV)/.runtime-installed: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.test-installed: requirements-test.txt requirements-cluster.txt $(VENV)/.runtime-installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

# The original IDX files from Debian's package, unless the user already has them.
# Without apt the app falls back to Keras's downloader at first start.
dataset:
	@test -n "$$FMNIST_DATA_DIR" || test -d /usr/share/datasets/fashion-mnist \
		|| test -d $$HOME/.keras/datasets/fashion-mnist \
		|| sh tools/ensure-apt.sh dataset-fashion-mnist \
		|| echo "note: the app will try Keras's downloader instead"

# Debian's Chromium for the browser tests (Playwright cannot download its own here),
# and an emoji font so that screenshots show the icons users see.
chromium:
	@test -x /usr/bin/chromium || test -n "$$CHROMIUM_PATH" || sh tools/ensure-apt.sh chromium
	@test -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf || sh tools/ensure-apt.sh fonts-noto-color-emoji || true

clean:
	rm -rf $(VENV) test-output .pytest_cache .ruff_cache
