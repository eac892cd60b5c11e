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
SAM_CLI_VERSION ?= 1.170.0
SAM_VENV ?= var/sam
# sam build installs the functions' dependencies with the runtime's own Python (python3.13).
# (A pyenv shim is no use: sam runs `python3.13` by name; take the interpreter itself.)
LAMBDA_PYTHON ?= $(shell ls $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1 || true)
LAMBDA_PYTHON := $(or $(LAMBDA_PYTHON),$(shell command -v python3.13 2>/dev/null))
# The filled database of `make seed-scale` / `make bench-admin` (create it first: createdb scale).
SCALE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/scale
SCALE_SEARCHES ?= 1000000

OIDC_TEST_PROVIDER := tests/oidc/node_modules/.package-lock.json

CATALOGUES := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/*.po))

.PHONY: setup chromium gettext messages oidc-provider prometheus run run-durable durable test lint format bench bench-durable bench-search seed-scale bench-admin lambda-build clean

# requirements.txt is what a deployment installs; requirements-dev.txt adds the tests' and dev tools.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The compiled catalogues are build output (not committed): msgfmt when installed, else polib.
$(CATALOGUES): %.mo: %.po $(VENV)/.installed
	$(PY) -m snowbuddy.compile_catalogues

setup: $(VENV)/.installed $(CATALOGUES)

# The browser test drives Debian's Chromium (Playwright's own browser download is not used), with a
# font for the Traditional Chinese pages of its screenshots.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	@fc-list :lang=zh-tw 2>/dev/null | grep -q . || { apt-get update -qq && apt-get install -y -qq fonts-noto-cjk; } \
		|| echo "no CJK font: the Chinese screenshots will show boxes (the tests do not depend on it)"

# makemessages, compilemessages and the catalogue test use Debian's gettext (msgfmt, xgettext).
gettext:
	@command -v msgfmt >/dev/null || { apt-get update -qq && apt-get install -y -qq gettext; }

# New console strings into locale/zh_Hant/LC_MESSAGES/django.po (then translate each; `make test` checks).
messages: setup gettext
	$(PY) manage.py makemessages -l zh_Hant --add-location file --no-obsolete \
		--ignore '.venv/*' --ignore 'var/*' --ignore 'node_modules/*' --ignore 'tests/*' --ignore 'bench/*' --ignore 'devtools/*'
	$(PY) -m snowbuddy.compile_catalogues

# promtool (the alert rules' tests) and the Prometheus server of the live alert test.
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus; }

# The single sign-on tests run a real OpenID Provider (node's oidc-provider, pinned in tests/oidc).
oidc-provider: $(OIDC_TEST_PROVIDER)

$(OIDC_TEST_PROVIDER): tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund

# The demo logins sign in with a password alone (the second factor is for real deployments; set
# STAFF_REQUIRE_MFA=true to try it). No identity provider is needed: the password form stays on.
run run-durable: export STAFF_REQUIRE_MFA ?= false

# The console on SQLite with the embedded broker: demo data, a worker and the web server.
run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT)
	@echo "Console: http://$(HOST):$(PORT)/ (the admin)  API docs: http://$(HOST):$(PORT)/api/docs/  (Ctrl-C stops all)"
	trap 'kill 0' EXIT; \
	$(VENV)/bin/celery -A snowbuddy worker --beat --loglevel info --concurrency 2 & \
	$(VENV)/bin/gunicorn -c python:snowbuddy.gunicorn_conf snowbuddy.wsgi --bind $(HOST):$(PORT) --workers 2 --access-logfile - ; \
	wait

# The local durable stack alone (emulator, Lambda stand-in, Durable API, moto, GlobalCoach).
durable: setup
	$(PY) -m devtools.durable_local.stack --console-url http://$(HOST):$(PORT)

# The console on the durable engine: the local durable stack, then the console pointed at it.
run-durable: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT)
	rm -f var/durable/console.env
	trap 'kill 0' EXIT; \
	$(PY) -m devtools.durable_local.stack --console-url http://$(HOST):$(PORT) --env-file var/durable/console.env & \
	for i in $$(seq 1 120); do test -s var/durable/console.env && break; sleep 0.5; done; \
	test -s var/durable/console.env || { echo "the local durable stack did not start: see var/durable/logs"; exit 1; }; \
	set -a; . var/durable/console.env; set +a; \
	echo "Console on the durable engine: http://$(HOST):$(PORT)/admin/ (Ctrl-C stops all)"; \
	$(VENV)/bin/celery -A snowbuddy worker --beat --loglevel info --concurrency 2 & \
	$(VENV)/bin/gunicorn -c python:snowbuddy.gunicorn_conf snowbuddy.wsgi --bind $(HOST):$(PORT) --workers 2 --access-logfile - ; \
	wait

# The whole suite on PostgreSQL and Redis, with a real Celery worker process and a real browser,
# then the mutation check: each guard's tests must kill its mutation (bench/mutation_check.py, on
# <test database>_mut; about 3 minutes, docs/RELIABILITY.md).
test: setup chromium gettext oidc-provider prometheus
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) REDIS_CACHE_URL=$(TEST_REDIS_CACHE_URL) \
		$(VENV)/bin/pytest $(PYTEST_ARGS)
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) TEST_REDIS_URL=$(TEST_REDIS_URL) TEST_REDIS_CACHE_URL=$(TEST_REDIS_CACHE_URL) \
		$(PY) bench/mutation_check.py

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

# The Lambda package of workflows/durable/template.yaml: stage the Lambda side and the engine,
# sam build (from PyPI, no container), then print each function's size and fail on any Django.
lambda-build: setup
	@test -n "$(LAMBDA_PYTHON)" || { echo "sam build needs python3.13 (the functions' runtime)"; exit 1; }
	$(PY) -m workflows.durable.package
	test -x $(SAM_VENV)/bin/sam || { $(PYTHON) -m venv $(SAM_VENV) && \
		$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION); }
	PATH="$(dir $(LAMBDA_PYTHON)):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build \
		--template-file workflows/durable/template.yaml --build-dir var/lambda/build
	$(PY) -m workflows.durable.package --check var/lambda/build

# 1,000,000 searches with their events, results, executions… in SCALE_DATABASE_URL (a few minutes, ~3 GB).
# SEED_ARGS=--replace refills it; see `python -m devtools.seed_scale --help` (dev tooling, not a manage.py command).
seed-scale: setup
	DATABASE_URL=$(SCALE_DATABASE_URL) $(PY) manage.py migrate --noinput
	DATABASE_URL=$(SCALE_DATABASE_URL) $(PY) -m devtools.seed_scale --searches $(SCALE_SEARCHES) $(SEED_ARGS)

# Median time and query count of each admin page on that database (BENCH_ARGS=--explain for plans).
bench-admin: setup
	DATABASE_URL=$(SCALE_DATABASE_URL) $(PY) bench/admin_bench.py $(BENCH_ARGS)

# Needs PostgreSQL (a throwaway <db>_search_bench is created and dropped) and Redis.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bench
bench-search: setup
	DATABASE_URL=$(BENCH_DATABASE_URL) $(PY) bench/search_path_bench.py

clean:
	rm -rf var .pytest_cache .ruff_cache
