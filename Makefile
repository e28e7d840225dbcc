# Kefu: `make run` starts the stack, `make test` runs every test. Both set up what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
RASA_VENV := .venv-rasa
# A stamp per environment, named after a hash of its dependency files: edits re-install.
APP_HASH  := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
RASA_HASH := $(shell cat requirements-rasa.txt | sha256sum | cut -c1-12)
APP_STAMP := $(VENV)/.stamp-$(APP_HASH)
RASA_STAMP := $(RASA_VENV)/.stamp-$(RASA_HASH)
PY        := $(VENV)/bin/python
RASA      := RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2 $(RASA_VENV)/bin/rasa
# The assistant's training inputs; `rasa train` itself skips work when its fingerprint matches.
TRAIN_ARGS := --config config.yml --domain bot/domain --data nlu_data --out models --fixed-model-name kefu

.PHONY: help setup system-packages run run-cluster profile-turn test test-fast test-faults migrate demo-data worker bench bench-turns bench-gateway bench-scale bench-scale-alternate bench-desk bench-reports bench-ingest train shell eval-nlu validate clean

help:
	@echo "make run    - set up, migrate, load demo data, start the stack (SQLite, no Redis needed)"
	@echo "make test   - set up (incl. Chromium and CJK fonts via apt when missing), then run every test"
	@echo "make train  - train the assistant (only when its data or configuration changed)"
	@echo "make shell  - chat with the assistant in the terminal as a demo customer"
	@echo "make eval-nlu - NLU evaluation on tests/nlu (tuned vs Rasa's default pipeline),"
	@echo "              tests/nlu_dev (out-of-scope rejection too) and product substitution"
	@echo "make run-cluster - 2 gateways, 2 Rasa, 2 action servers, workers, desk on PostgreSQL + Redis"
	@echo "make test-faults - the fault suite on that stack (KEFU_TEST_DATABASE_URL, KEFU_TEST_REDIS_URL)"
	@echo "make profile-turn - where a turn's CPU goes (py-spy over gateway, Rasa, actions)"
	@echo "make bench  - SLA timer benchmark; make bench-turns - assistant turn latency;"
	@echo "              make bench-gateway - widget WebSocket vs straight to Rasa (see README)"
	@echo "make bench-scale - stock Rasa vs make run vs the cluster at 1-100 conversations"
	@echo "make bench-scale-alternate - p50 at 1 conversation, stock and cluster taking turns"

$(APP_STAMP): pyproject.toml
	@PY310=$$(sh scripts/python310.sh) || exit 1; \
	if [ ! -x $(VENV)/bin/python ] || ! $(VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then \
		rm -rf $(VENV); echo "creating $(VENV) with $$PY310"; "$$PY310" -m venv $(VENV); fi
	@$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.stamp-*; touch $@

$(RASA_STAMP): requirements-rasa.txt
	@PY310=$$(sh scripts/python310.sh) || exit 1; \
	if [ ! -x $(RASA_VENV)/bin/python ] || ! $(RASA_VENV)/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then \
		rm -rf $(RASA_VENV); echo "creating $(RASA_VENV) with $$PY310"; "$$PY310" -m venv $(RASA_VENV); fi
	@$(RASA_VENV)/bin/python -m pip install -q --upgrade pip
	$(RASA_VENV)/bin/python -m pip install -q -r requirements-rasa.txt
	@$(RASA_VENV)/bin/rasa --version >/dev/null 2>&1 || { echo "error: rasa does not start in $(RASA_VENV)"; exit 1; }
	@rm -f $(RASA_VENV)/.stamp-*; touch $@

setup: $(APP_STAMP) $(RASA_STAMP)

# Chromium and CJK fonts, for the widget's browser tests only (`make run` does not need them):
# installed via apt when missing and root, otherwise one line saying what to install.
system-packages:
	@sh scripts/system_packages.sh

migrate: $(APP_STAMP)
	$(PY) -m ticketing.core.migrate

run: setup train
	$(PY) scripts/run_stack.py

# the production layout on one machine (2 of each, supervised) against PostgreSQL and Redis:
# KEFU_DATABASE_URL=postgresql+psycopg://... KEFU_REDIS_URL=redis://... make run-cluster
run-cluster: setup train
	$(PY) scripts/run_cluster.py

train: $(RASA_STAMP)
	$(RASA) train $(TRAIN_ARGS)

validate: $(RASA_STAMP)
	$(RASA) data validate --domain bot/domain --data nlu_data --config config.yml

shell: setup train
	$(PY) scripts/shell.py

eval-nlu: setup train
	$(PY) scripts/eval_nlu.py --model models/kefu.tar.gz --baseline --gate

worker: $(APP_STAMP)
	$(PY) -m ticketing.desk.worker

test: system-packages setup train
	$(PY) -m pytest

test-fast: system-packages $(APP_STAMP)
	$(PY) -m pytest -x -q

# kill -9 of each kind of process, a Redis restart and a PostgreSQL outage under load (issue 13)
test-faults: setup train
	$(PY) -m pytest -m faults tests/faults

bench: $(APP_STAMP)
	$(PY) bench/sla_timers.py --reset  # var/bench-sla.db unless KEFU_BENCH_DATABASE_URL is set

bench-turns: setup train
	$(PY) bench/turn_latency.py

profile-turn: setup train
	@$(VENV)/bin/py-spy --version >/dev/null 2>&1 || $(PY) -m pip install -q 'py-spy>=0.3.14'
	$(PY) bench/profile_turn.py

bench-gateway: setup train
	$(PY) bench/gateway_load.py

bench-scale: setup train
	$(PY) bench/scale.py  # PostgreSQL kefu_bench_scale (dropped and created each run), Redis db 13 (flushed)

bench-scale-alternate: setup train
	$(PY) bench/scale_alternate.py  # p50 at 1 conversation, stock and cluster taking turns

bench-desk: $(APP_STAMP)
	$(PY) bench/desk_load.py  # PostgreSQL kefu_bench_desk (created and seeded) and Redis at 127.0.0.1

bench-reports: $(APP_STAMP)
	$(PY) bench/reports.py  # PostgreSQL kefu_bench_reports: 1,000,000 tickets generated once (~4.5 min), day cells built (~12 s), then reused

bench-ingest: $(APP_STAMP)
	$(PY) bench/ingest.py  # PostgreSQL kefu_bench_ingest (emptied each run): 100,000 orders by CSV, 20,000 by the shop API

clean:
	rm -rf $(VENV) $(RASA_VENV) models var/kefu.db* var/rasa
