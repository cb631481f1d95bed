# autodoctor-db — every entry point. `make help` lists them.
#
# By default everything runs against this checkout's throwaway PostgreSQL 15 cluster
# (scripts/db.sh). Set PGHOST (and PGPORT, PGUSER, PGPASSWORD, PGDATABASE as needed) to
# target your own server instead: then no cluster is started and nothing is installed
# into it but the package itself (sqitch deploy).

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

VENV    := .venv
PY      := $(VENV)/bin/python
STAMPS  := .stamps
PYTHON  ?= python3

APT_PACKAGES := postgresql-15 postgresql-client-15 postgresql-15-pgtap sqitch \
                libtap-parser-sourcehandler-pgtap-perl postgresql-15-postgis-3 \
                postgresql-15-cron postgresql-15-plpgsql-check postgresql-15-wal2json pgbouncer \
                chromium fonts-dejavu-core

# Local mode (the throwaway cluster) unless the user named a server with PGHOST. The
# decision is exported, so that recursive makes (which inherit our PGHOST) keep it.
ifneq ($(AUTODOCTOR_LOCAL_DB),)
  LOCAL_DB := 1
else ifeq ($(strip $(PGHOST)),)
  LOCAL_DB := 1
endif

ifdef LOCAL_DB
  export AUTODOCTOR_LOCAL_DB := 1
  POOLER_PORT  := $(shell scripts/db.sh pooler-port)
  REPLICA_PORT := $(shell scripts/db.sh replica-port)
  export PGHOST     := 127.0.0.1
  export PGPORT     := $(shell scripts/db.sh port)
  export PGUSER     := postgres
  export PGDATABASE := autodoctor
endif
export PGDATABASE ?= autodoctor
export PGUSER ?= $(shell id -un)
export PGPORT ?= 5432

.PHONY: help deps db-start db-stop db-status db-wipe db-pooler db-replica deploy revert redeploy psql bench bench-quick \
        test check pgtap pytest lint demo dashboard clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --- set-up: idempotent, fast when already done -------------------------------------

$(STAMPS):
	@mkdir -p $@

$(STAMPS)/apt: Makefile | $(STAMPS)
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then :; else \
	    echo "deps: installing Debian packages: $(APT_PACKAGES)"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml | $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "deps: installing the Python package and its dev tools into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# squawk, the migration linter (`make check`): a binary wheel from PyPI, into the venv.
SQUAWK_VERSION := 2.70.0
$(STAMPS)/squawk: $(STAMPS)/venv
	@$(VENV)/bin/squawk --version 2>/dev/null | grep -qx 'squawk $(SQUAWK_VERSION)' || \
	    $(PY) -m pip install -q --disable-pip-version-check 'squawk-cli==$(SQUAWK_VERSION)'
	@touch $@

deps: $(STAMPS)/apt $(STAMPS)/venv ## install Debian packages and the virtualenv (once)

db-start: $(STAMPS)/apt ## start the throwaway cluster (no-op with your own PGHOST)
ifdef LOCAL_DB
	@scripts/db.sh start
endif

db-pooler: db-start ## start pgbouncer (transaction pooling) in front of the throwaway cluster
ifdef LOCAL_DB
	@scripts/db.sh pooler-start
endif

db-replica: db-start ## start a streaming hot standby of the throwaway cluster
ifdef LOCAL_DB
	@scripts/db.sh replica-start
endif

db-stop: ## stop the throwaway cluster (and its pooler and replica)
	@scripts/db.sh stop

db-status: ## is the throwaway cluster running?
	@scripts/db.sh status

db-wipe: ## stop the throwaway cluster and delete its data
	@scripts/db.sh wipe

deploy: db-start ## sqitch deploy --verify into $PGDATABASE
	@sqitch deploy --verify db:pg: | grep -v '^  [+] .* ok$$' || true
	@test "$$(sqitch status db:pg: 2>/dev/null | grep -c 'Nothing to deploy')" = 1 \
	    || { echo "deploy: sqitch deploy failed" >&2; sqitch status db:pg: >&2; exit 1; }

# Revert asks first (on a terminal; without one it needs CONFIRM=yes), and even then keeps
# every table that holds rows: the revert stops there, naming them, and `make deploy`
# brings back what it had reverted. Dropping the data takes ALLOW_DATA_LOSS=yes (it sets
# autodoctor.allow_data_loss = on for the revert, as PGOPTIONS does for plain sqitch).
revert: db-start ## sqitch revert, after asking; tables holding rows stay unless ALLOW_DATA_LOSS=yes
	@if [ "$(CONFIRM)" != yes ]; then \
	    if [ -t 0 ]; then \
	        read -r -p "Revert every change of autodoctor-db in database $$PGDATABASE on $$PGHOST:$$PGPORT?$(if $(filter yes,$(ALLOW_DATA_LOSS)), ALLOW_DATA_LOSS=yes: its data is DROPPED., Tables holding rows are kept.) [y/N] " answer; \
	        case "$$answer" in y|Y|yes|YES) ;; *) echo "revert: nothing reverted"; exit 1 ;; esac; \
	    else \
	        echo "revert: no terminal to ask on; run it in one, or pass CONFIRM=yes" >&2; exit 1; \
	    fi; \
	fi
	@$(if $(filter yes,$(ALLOW_DATA_LOSS)),PGOPTIONS="$$PGOPTIONS -c autodoctor.allow_data_loss=on") sqitch revert -y db:pg:

redeploy: revert deploy ## revert (asks, as above) then deploy again

psql: db-start ## an interactive shell on the database (pgcli when installed)
	@if command -v pgcli >/dev/null; then pgcli; else psql; fi

# --- tests -----------------------------------------------------------------------------

# The tests never use $PGDATABASE (the demo's, or yours): pgTAP runs in a scratch database
# created, deployed and dropped by scripts/with-test-db.sh, pytest in databases of its own
# (tests/python/conftest.py), each created and dropped by the run.
test: check $(STAMPS)/venv ## every test: check, pgTAP, pytest, lint (in scratch databases)
	@$(MAKE) --no-print-directory pgtap pytest lint

pgtap: db-start ## the pgTAP suite (pg_prove), in a scratch database
	@scripts/with-test-db.sh pgtap pg_prove --failures --ext .sql -r tests/pgtap

pytest: db-pooler db-replica $(STAMPS)/venv ## the pytest suite: directly, then the contract through pgbouncer
ifdef LOCAL_DB
	@AUTODOCTOR_TEST_REPLICA_PORT=$(REPLICA_PORT) $(PY) -m pytest tests/python
	@echo "--- the contract tests again, through pgbouncer (transaction pooling, no prepares) ---"
	@AUTODOCTOR_TEST_POOLER_PORT=$(POOLER_PORT) $(PY) -m pytest -q -m pooler tests/python
else
	@$(PY) -m pytest tests/python
	@echo "pytest: your own server (PGHOST): no pgbouncer or replica pass; the throwaway cluster runs them"
endif

# The rules .squawk.toml excepts everywhere, repeated for the second pass (a --exclude on
# the command line replaces the config file's list).
SQUAWK_EXCEPT := require-lock-timeout,require-statement-timeout,prefer-bigint-over-int

check: lint $(STAMPS)/squawk db-start ## lint, squawk over deploy/*.sql, catalog lints and plpgsql_check
	@$(VENV)/bin/squawk deploy/*.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),adding-foreign-key-constraint,constraint-missing-not-valid deploy/sessions.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),require-concurrent-index-creation deploy/mechanic_load.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),ban-drop-constraint deploy/outbox_dropped.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),ban-drop-constraint,ban-drop-not-null deploy/user_erasure.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),require-concurrent-index-creation deploy/pending_market_index.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),ban-drop-constraint deploy/service_radius_antipode.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),require-concurrent-index-creation deploy/request_fan_out_index.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),require-concurrent-index-creation deploy/pending_customer_index.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),require-concurrent-index-deletion,ban-drop-constraint,require-concurrent-index-creation deploy/unread_indexes.sql
	@$(VENV)/bin/squawk -c /dev/null --pg-version=15.0 \
	    --exclude=$(SQUAWK_EXCEPT),ban-drop-function deploy/drop_dispatch_helpers.sql
	@scripts/with-test-db.sh check pg_prove --failures --ext .sql tests/pgtap/90_lints.sql tests/pgtap/91_plpgsql_check.sql

lint: $(STAMPS)/venv ## ruff and mypy --strict (package, example service)
	@$(VENV)/bin/ruff check python tests examples scripts setup.py tools bench
	@$(VENV)/bin/ruff format --check python tests examples scripts setup.py tools bench
	@$(VENV)/bin/mypy --strict python/autodoctor_db examples/fastapi_app
	@$(PY) tools/async_to_sync.py --check

# --- benchmarks --------------------------------------------------------------------------

bench: $(STAMPS)/apt $(STAMPS)/venv ## benchmarks on a throwaway cluster of their own; rewrites BENCHMARKS.md (~10-15 min)
	@bench/run $(BENCH_ARGS)

bench-quick: $(STAMPS)/apt $(STAMPS)/venv ## the benchmark harness end to end on small volumes (~3 min)
	@bench/run --quick $(BENCH_ARGS)

# --- the main job ------------------------------------------------------------------------

# The demo writes fake users and requests: into the throwaway cluster's database only,
# unless you pass DEMO_ARGS=--yes with your own PGHOST.
demo: deploy $(STAMPS)/venv ## a scripted scenario: three mechanics race for one request
	@$(VENV)/bin/autodoctor-db demo $(DEMO_ARGS)

# The reference dashboard (examples/fastapi_app/dashboard.py) on the demo's data, seeded
# once; its sign-in is a development picker: a throwaway database only, unless you pass
# DASHBOARD_ARGS=--yes with your own PGHOST. DASHBOARD_PORT picks the port (8765).
dashboard: deploy $(STAMPS)/venv ## the web dashboard on the demo's data, at http://127.0.0.1:8765/
	@$(PY) -m examples.fastapi_app.serve_dashboard $(DASHBOARD_ARGS)

clean: ## remove the virtualenv and stamps (not the cluster: see db-wipe)
	rm -rf $(VENV) $(STAMPS) .pytest_cache .mypy_cache .ruff_cache
