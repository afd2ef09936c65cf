# maomao: `make demo` sets everything up and runs the two-operator walkthrough;
# `make test` installs and runs lint, types, import layers and the whole suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install sysdeps demo test lint pytest bench lock clean

# Debian packages the suite uses (sandbox runner, ssh git server); as root, once.
SYSDEPS := bwrap:bubblewrap sshd:openssh-server openssl:openssl
sysdeps:
	@missing=""; for pair in $(SYSDEPS); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: missing$$missing (tests that need them are skipped)"; fi; fi

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/mao demo

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

pytest: install sysdeps
	$(VENV)/bin/pytest -q

test: lint pytest

BENCH_VENV := .venv-bench

$(BENCH_VENV)/.installed: bench/competitors.lock
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/competitors.lock
	touch $@

bench: install $(BENCH_VENV)/.installed
	$(PY) bench/store.py
	$(PY) bench/datasets.py
	$(PY) bench/runs.py
	$(PY) bench/api.py
	$(PY) bench/scheduler.py
	$(PY) bench/spikes.py
	$(PY) bench/follow.py
	$(PY) bench/compare.py

# Re-pin every dependency (needs the network): the lock file is what installs use.
lock:
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	$(VENV)/bin/uv pip compile bench/competitors.in --python-version 3.11 -o bench/competitors.lock

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
