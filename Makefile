# The two commands of the README: `make demo` and `make test`.  Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-postgres install browser preflight wheel-check bench manual clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium and CJK fonts for the real-browser tests (Debian packages).
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then \
	  echo "installing chromium and fonts-noto-cjk"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	fi

# Portal with demo data on http://127.0.0.1:5000 (sandbox ERP and invoice cloud included).
demo: $(STAMP)
	$(PY) -m portal.demo

# What the suite needs (Chromium, CJK fonts, PostgreSQL), checked before anything runs.
preflight: $(STAMP) browser
	$(PY) scripts/preflight.py

# The whole test suite twice, side by side: on SQLite (browser tests included) and on PostgreSQL
# (PORTAL_TEST_DATABASE_URL, default the local server; a loud banner and exit 3 when it does not answer).
# A failing pass fails the run, and so does one that collected nothing (pytest's 5).
test: preflight
	$(PY) scripts/test_passes.py

# The PostgreSQL pass alone (what `make test` runs beside the SQLite one).
PG_SUITE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
test-postgres: preflight
	PORTAL_TEST_DATABASE_URL=$${PORTAL_TEST_DATABASE_URL:-$(PG_SUITE_URL)} $(PY) -m pytest -q --ignore=tests/e2e

# The README's deployment path from a built wheel, in a throwaway virtualenv (CI runs it after the tests).
wheel-check: $(STAMP)
	PYTHON=$(PY) bash scripts/wheel-check

# The operations manual's screenshots (docs/manual/img, shown at /help/): the demo in a throwaway instance,
# each role's pages in headless Chromium. Run it after changing a page the manual shows, then commit the PNGs.
manual: $(STAMP) browser
	$(PY) scripts/manual_shots.py

bench: $(STAMP)
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
