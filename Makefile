# The two commands of the README: `make run` and `make test`.
# Both create/update .venv only when pyproject.toml changed (stamp file), so they are
# quick once installed. torch is installed first as the pinned CPU build: a bare
# `torch` requirement would otherwise pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0

.PHONY: run test lint typecheck pytest venv browser postgres bench-ingest bench-query eval clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/newsrag serve

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will be skipped"; \
	  else echo "warning: chromium missing and not root; browser tests will be skipped"; fi; }

# Debian's PostgreSQL for the shared-library tests (they start their own server with
# initdb/pg_ctl in a temporary directory; the packaged cluster is not used).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "warning: could not install postgresql; Postgres tests will be skipped"; \
	  else echo "warning: postgresql missing and not root; Postgres tests will be skipped"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser postgres
	$(BIN)/pytest

test: lint typecheck pytest

eval: $(STAMP)
	$(BIN)/newsrag eval ../shared/eval/rtqa-dev

clean:
	rm -rf $(VENV) data eval-results .pytest_cache .mypy_cache .ruff_cache
