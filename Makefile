# lookalike: `make run` serves the storefront on the bundled demo catalog; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_ENCODER ?= demo/encoder.pt
# One demo store per encoder: a new demo encoder never meets a store built by the old one.
DEMO_STORE ?= .demo-store/$(shell sha256sum $(DEMO_ENCODER) 2>/dev/null | cut -c1-12)
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: install system-deps test lint run demo-store clean

# The virtual environment is made from nothing; the stamp re-installs when pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The browser tests drive Debian's Chromium; the PostgreSQL tests start their own server with
# initdb/postgres. Both come from Debian's packages, installed only when missing.
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium fonts-liberation"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: lint system-deps
	$(BIN)/python -m pytest

# Resumable: a finished store is checked and left as it is, an interrupted one is completed.
demo-store: install
	$(BIN)/lookalike build --catalog demo/catalog.csv --encoder $(DEMO_ENCODER) --store $(DEMO_STORE)

run: install demo-store
	$(BIN)/lookalike serve --encoder $(DEMO_ENCODER) --store $(DEMO_STORE) --host $(HOST) --port $(PORT)

clean:
	rm -rf $(VENV) .demo-store .pytest_cache .ruff_cache
