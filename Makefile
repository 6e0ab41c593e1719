# Baton: the two commands a newcomer needs are `make up` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
LOCAL := deploy/local
PYTEST_ARGS ?=

.PHONY: help install up down status logs test schemas lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

install: ## install everything missing: uv + Python deps, Java/Maven, Kafka jars, PostgreSQL
	$(LOCAL)/bootstrap.sh
	$(LOCAL)/kafka.sh install
	$(LOCAL)/postgres.sh install

up: install ## install, start Kafka, PostgreSQL and the five services, publish examples/stories
	$(LOCAL)/stack.sh up

down: ## stop the services, Kafka and PostgreSQL started by `make up`
	$(LOCAL)/stack.sh down

status: ## say what runs, what is stopped and what is half-started
	$(LOCAL)/stack.sh status

logs: ## the last lines of every service's log
	$(LOCAL)/stack.sh logs

test: install ## install, then lint, type check, schema drift and all tests on a real Kafka and PostgreSQL
	$(LOCAL)/test.sh $(PYTEST_ARGS)

schemas: ## regenerate the JSON Schemas in schemas/
	.venv/bin/python -m baton_common.schemas

lint: ## ruff lint and format check only
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
