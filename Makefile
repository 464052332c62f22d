# Two commands do all set-up on a fresh machine:
#   make up         start the service (embedded: SQLite + filesystem broker, one worker) on :8000
#   make test       lint and run the whole test suite (starts local Redis/PostgreSQL if needed,
#                   installs Debian's chromium + chromium-driver for the browser tests if missing)
# and one is for the edit-test loop:
#   make test-fast  lint, then the unit and API tests against SQLite (no servers, no browser)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up test test-fast install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Re-install only when the dependency list changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -e '.[test,train]'
	touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/rrr up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	scripts/ensure-services.sh
	scripts/install-browser.sh
	$(BIN)/python -m pytest

test-fast: install lint
	$(BIN)/python -m pytest tests --ignore=tests/integration --ignore=tests/browser

clean:
	rm -rf var .pytest_cache
