# Two commands do all set-up on a fresh machine:
#   make up         start the service (embedded: SQLite + filesystem broker, two workers) on :8000;
#                   installs only what serving needs (ONNX Runtime, no PyTorch)
#   make test       lint and run the whole test suite (installs the test and training extras,
#                   starts local Redis/PostgreSQL if needed, installs Debian's chromium +
#                   chromium-driver for the browser tests and iproute2 for the multi-host
#                   tests if missing)
# and two are for development:
#   make test-fast  lint, then the unit and API tests against SQLite (no servers, no browser)
#   make train ARGS='--help'   rrr train with the training extras (PyTorch) installed
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --disable-pip-version-check -q
step    = @echo "==> $(1)"

.PHONY: up test test-fast install install-dev lint train clean

$(BIN)/python:
	$(call step,creating the virtual environment $(VENV) ($(PYTHON)))
	@$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Re-install only when the dependency list changed. Serving needs no PyTorch; the test and
# training extras (PyTorch, selenium, ...) are installed only for make test / make train.
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(call step,installing the service into $(VENV): ONNX Runtime engine, no PyTorch)
	@$(PIP) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(call step,installing the service with the test and training extras (PyTorch) into $(VENV))
	@$(PIP) -e '.[test,train]'
	@touch $@ $(VENV)/.installed-serve

install: $(VENV)/.installed-serve
install-dev: $(VENV)/.installed-dev

up: install
	$(call step,starting: rrr up)
	@$(BIN)/rrr up

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-dev lint
	scripts/ensure-services.sh
	scripts/install-browser.sh
	scripts/install-multihost-tools.sh
	$(BIN)/python -m pytest

test-fast: install-dev lint
	$(BIN)/python -m pytest tests --ignore=tests/integration --ignore=tests/browser -m 'not install'

train: install-dev
	$(BIN)/rrr train $(ARGS)

clean:
	rm -rf var .pytest_cache
