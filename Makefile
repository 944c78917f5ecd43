# The README's two commands: `make demo` and `make test`. Each sets up .venv itself
# (idempotent: reused while pyproject.toml, the torch spec and the extras are unchanged).
#
# GPU users: make demo TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= lm,dev
HOST ?= 127.0.0.1
PORT ?= 8501
BIN := $(VENV)/bin
# The stamp records what the environment was built from; any change rebuilds it.
ENV_KEY := $(shell cat pyproject.toml 2>/dev/null | sha256sum | cut -c1-16) $(TORCH_SPEC) [$(EXTRAS)]

.PHONY: env demo test lint clean-cache help

help:
	@echo "make demo   set up .venv, train the demo model if none is cached, start the dashboard on $(HOST):$(PORT)"
	@echo "make test   set up .venv, run ruff and the whole test suite"
	@echo "Overrides: TORCH_SPEC='...' (GPU builds), EXTRAS=dev (skip the language model), PORT=8502"

env:
	@if [ -x $(BIN)/python ] && [ "$$(cat $(VENV)/.stamp 2>/dev/null)" = "$(ENV_KEY)" ]; then \
		echo "env: $(VENV) is current"; \
	else \
		echo "env: creating $(VENV) ($(TORCH_SPEC), extras $(EXTRAS))"; \
		rm -f $(VENV)/.stamp; \
		$(PYTHON) -m venv $(VENV) && \
		$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip && \
		$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC) && \
		$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]" && \
		echo "$(ENV_KEY)" > $(VENV)/.stamp; \
	fi

demo: env
	$(BIN)/gatlens dashboard --dataset demo --host $(HOST) --port $(PORT)

test: env
	$(BIN)/ruff check engine dashboard tests scripts
	$(BIN)/python -m pytest -q

lint: env
	$(BIN)/ruff check engine dashboard tests scripts
	$(BIN)/ruff format --check engine dashboard tests scripts

clean-cache:
	rm -rf data/cache
