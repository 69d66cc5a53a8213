# rightsizer: `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python
VENV := .venv/.pyproject.sha256

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)

##@ Everyday
.PHONY: demo test
demo: ## Bring up the local GPU cluster, run the operator and deploy the examples
	hack/demo

test: test-deps lint typecheck verify test-unit test-chart test-contract test-integration ## Everything CI runs

$(VENV): pyproject.toml
	hack/bootstrap

##@ Checks
.PHONY: lint fmt typecheck verify
lint: $(VENV) ## ruff (lint and format check)
	.venv/bin/ruff check operator tests bench e2e
	.venv/bin/ruff format --check operator tests bench e2e

fmt: $(VENV) ## Format the code
	.venv/bin/ruff format operator tests bench e2e
	.venv/bin/ruff check --fix operator tests bench e2e

typecheck: $(VENV) ## mypy (strict) and the import-layer contracts
	.venv/bin/mypy
	.venv/bin/lint-imports

verify: $(VENV) ## Fail if generated files (CRDs, the chart's copy of them, manifests/, the dashboard) are stale
	.venv/bin/rightsizer crds crds --check
	.venv/bin/rightsizer crds charts/rightsizer/crds --check
	$(PY) hack/manifests.py --check
	$(PY) hack/dashboard.py --check

crds: $(VENV) ## Regenerate crds/ from the API models
	.venv/bin/rightsizer crds crds

##@ Install artefacts
.PHONY: chart-crds manifests lock helm-lint
chart-crds: crds ## Copy the generated CRDs into the Helm chart (charts/rightsizer/crds)
	cp crds/*.yaml charts/rightsizer/crds/

manifests: chart-crds ## Render manifests/rightsizer.yaml (plain YAML install) from the chart
	$(PY) hack/manifests.py

lock: $(VENV) ## Pin the operator image's runtime dependencies (requirements.lock) to the versions in .venv
	$(PY) hack/lock_requirements.py

helm-lint: $(VENV) ## helm lint --strict the chart (the value matrix runs in test-chart)
	"$$($(PY) -c 'from hack.manifests import helm_binary; print(helm_binary())')" lint --strict charts/rightsizer

##@ Tests
.PHONY: test-deps test-unit test-chart test-contract test-integration
test-deps: ## Install the system tools the tests need (openssl, prometheus) from Debian when missing
	hack/test-deps

test-unit: $(VENV) ## Pure-core unit tests
	$(PY) -m pytest tests/unit -q

test-chart: $(VENV) helm-lint ## The chart in every mode, agreement with the operator, manifests drift, Argo CD, Dockerfile
	e2e/cluster/build argocd
	$(PY) -m pytest tests/chart tests/argocd -q

test-contract: $(VENV) ## Generated vLLM arguments and metric names against the pinned vLLM release
	$(PY) hack/vllm_wheel.py --fetch
	$(PY) -m pytest tests/contract -q

test-integration: $(VENV) test-deps ## Against a real API server (brings the local plane up when KUBECONFIG is unset)
	e2e/cluster/build
	$(PY) -m pytest tests/integration -q -m integration

##@ Cluster
.PHONY: cluster-up cluster-down
cluster-up: ## Build (first time) and start the local control plane with simulated GPU nodes
	e2e/cluster/up

cluster-down: ## Stop the local control plane
	e2e/cluster/down

##@ Benchmarks
.PHONY: bench
bench: $(VENV) ## Sizing accuracy and speed
	$(PY) bench/sizing_accuracy.py
