# Everything installs itself: the pinned toolchain (ci/tools.sh) and the virtualenv (.venv).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/.cache/bin
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
HELM_ENV := HELM_PLUGINS=$(CURDIR)/.cache/helm/plugins HELM_CACHE_HOME=$(CURDIR)/.cache/helm/cache \
	HELM_CONFIG_HOME=$(CURDIR)/.cache/helm/config HELM_DATA_HOME=$(CURDIR)/.cache/helm/data
export PATH := $(BIN):$(VENV)/bin:$(PATH)
SANDBOX := $(CURDIR)/.cache/sandbox
PYTEST_ARGS ?=

.PHONY: help tools venv image images sandbox-up sandbox-down lint docs docs-check unit-chart unit-py integration test demo demo-down bench package release

help: ## Show every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

tools: ## Build the pinned toolchain into .cache/bin (a no-op when it is there)
	@bash ci/tools.sh

$(VENV)/.stamp: hooks/requirements-dev.txt hooks/constraints.txt hooks/pyproject.toml
	@python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r hooks/requirements-dev.txt -c hooks/constraints.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e hooks
	@touch $@

venv: $(VENV)/.stamp ## Create the virtualenv with pinned packages

image: tools ## Build the hook image from hooks/Dockerfile on bases made of Debian packages (.cache/images)
	@bash ci/images.sh hook

images: tools ## Build the hook image and the sandbox's images (pause, OCM, KubeFlex and what it runs, a shell)
	@bash ci/images.sh all

sandbox-up: images venv ## Start the sandbox (admin kubeconfig: .cache/sandbox/kubeconfig)
	@$(PY) -m tests.sandbox up --dir $(SANDBOX)

sandbox-down: venv ## Stop the sandbox and remove its files
	@$(PY) -m tests.sandbox down --dir $(SANDBOX)

lint: tools venv ## ruff (check, format), mypy --strict, helm lint --strict (helm 3, 4), ct lint, actionlint, helm-tool lint, versions agree, docs fresh
	@$(VENV)/bin/ruff check hooks tests ci bench
	@$(VENV)/bin/ruff format --check --quiet hooks tests ci bench || { echo "ruff format: run $(VENV)/bin/ruff format hooks tests ci bench"; exit 1; }
	@$(VENV)/bin/mypy --config-file hooks/pyproject.toml hooks/src tests bench ci
	@for helm in helm3 helm4; do for values in chart/ci/*-values.yaml; do \
		$(HELM_ENV) $$helm lint --strict chart -f $$values >/dev/null \
		  || { echo "helm lint: $$helm $$values failed:"; $(HELM_ENV) $$helm lint --strict chart -f $$values; exit 1; }; \
	done; echo "$$helm lint --strict: $$(ls chart/ci/*-values.yaml | wc -l) values files clean"; done
	@ct lint --charts chart --chart-yaml-schema .cache/ct/chart_schema.yaml --lint-conf .cache/ct/lintconf.yaml \
		--validate-maintainers=false --check-version-increment=false --skip-helm-dependencies >.cache/logs/ct-lint.log 2>&1 \
		|| { cat .cache/logs/ct-lint.log; echo "ct lint: failed"; exit 1; }
	@echo "ct lint: chart, Chart.yaml schema, yamllint and $$(ls chart/ci/*-values.yaml | wc -l) values files clean"
	@actionlint -shellcheck= -pyflakes= -oneline && echo "actionlint: $$(ls .github/workflows/*.yaml | wc -l) workflows clean"
	@$(PY) ci/check_versions.py
	@helm-tool lint -i chart/values.yaml -d chart/templates -e chart/values.linter.exceptions 2>&1 | sed 's/^/helm-tool lint: /'
	@$(MAKE) --no-print-directory docs-check

docs: tools venv ## Regenerate chart/README.md's values table, chart/values.schema.json and artifacthub.io/changes
	@bash ci/values_docs.sh --write
	@$(PY) ci/changelog.py --write

docs-check: tools venv ## Fail when the values table, the schema or artifacthub.io/changes is stale
	@bash ci/values_docs.sh --check
	@$(PY) ci/changelog.py

package: tools ## Package the chart into dist/ (its version from chart/Chart.yaml)
	@bash ci/release.sh package

release: image ## Push the hook image and the chart to REGISTRY=host[:port] (REGISTRY_CA=ca.crt when needed)
	@bash ci/release.sh release

unit-chart: tools ## helm-unittest suites in chart/tests, with helm 3 and helm 4
	@for helm in helm3 helm4; do echo "== helm-unittest ($$helm)"; $(HELM_ENV) $$helm unittest --strict chart; done

unit-py: venv ## Python unit tests of the hook package
	@$(PY) -m pytest hooks/tests -q $(PYTEST_ARGS)

integration: images venv ## Integration suite on a sandbox of its own, three tests at a time (tests/run.py)
	@$(PY) -m tests.run -q --durations=25 $(PYTEST_ARGS)

test: ## Lint, chart unit tests, Python unit tests, integration suite: stops at the first broken layer
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory lint; \
	$(MAKE) --no-print-directory unit-chart; \
	$(MAKE) --no-print-directory unit-py; \
	$(MAKE) --no-print-directory integration; \
	echo $$(( $$(date +%s) - start )) > .cache/make-test-seconds  # for make bench

demo: images venv ## Start the sandbox and install three ITSes with the real helm command
	@$(PY) -m tests.demo up --dir $(SANDBOX)

demo-down: venv ## Stop the demo's sandbox
	@$(PY) -m tests.sandbox down --dir $(SANDBOX)

bench: images venv ## Run the benchmarks; writes bench/results.json and bench/results.md
	@$(PY) -m bench --out bench
