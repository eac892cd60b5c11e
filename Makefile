# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_REDIS_CACHE_URL ?= redis://127.0.0.1:6379/12

.PHONY: setup chromium run run-durable durable test lint format bench bench-durable clean

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

setup: $(VENV)/.installed

# The browser test drives Debian's Chromium (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# The console on SQLite with the embedded broker: demo data, a worker and the web server.
run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@echo "Console: http://$(HOST):$(PORT)/admin/  API docs: http://$(HOST):$(PORT)/api/docs/  (Ctrl-C stops all)"
	trap 'kill 0' EXIT; \
	$(VENV)/bin/celery -A snowbuddy worker --beat --loglevel info --concurrency 2 & \
	$(VENV)/bin/gunicorn snowbuddy.wsgi --bind $(HOST):$(PORT) --workers 2 --access-logfile - ; \
	wait

# The local durable stack alone (emulator, Lambda stand-in, Durable API, moto, GlobalCoach).
durable: setup
	$(PY) -m workflows.durable.local.stack --console-url http://$(HOST):$(PORT)

# The console on the durable engine: the local durable stack, then the console pointed at it.
run-durable: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	rm -f var/durable/console.env
	trap 'kill 0' EXIT; \
	$(PY) -m workflows.durable.local.stack --console-url http://$(HOST):$(PORT) --env-file var/durable/console.env & \
	for i in $$(seq 1 120); do test -s var/durable/console.env && break; sleep 0.5; done; \
	test -s var/durable/console.env || { echo "the local durable stack did not start: see var/durable/logs"; exit 1; }; \
	set -a; . var/durable/console.env; set +a; \
	echo "Console on the durable engine: http://$(HOST):$(PORT)/admin/ (Ctrl-C stops all)"; \
	$(VENV)/bin/celery -A snowbuddy worker --beat --loglevel info --concurrency 2 & \
	$(VENV)/bin/gunicorn snowbuddy.wsgi --bind $(HOST):$(PORT) --workers 2 --access-logfile - ; \
	wait

# The whole suite on PostgreSQL and Redis, with a real Celery worker process and a real browser.
test: setup chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) REDIS_CACHE_URL=$(TEST_REDIS_CACHE_URL) \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup
	$(PY) bench/engine_bench.py

bench-durable: setup
	$(PY) bench/durable_bench.py

clean:
	rm -rf var .pytest_cache .ruff_cache
