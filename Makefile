# Two commands do all set-up on a fresh machine:
#   make up     start the service (embedded: SQLite + filesystem broker, one worker) on :8000
#   make test   lint and run the whole test suite (starts local Redis/PostgreSQL if needed,
#               installs Debian's chromium + chromium-driver for the browser tests if missing)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up test install lint clean

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

test: install lint
	scripts/ensure-services.sh
	scripts/install-browser.sh
	$(BIN)/python -m pytest

clean:
	rm -rf var .pytest_cache
