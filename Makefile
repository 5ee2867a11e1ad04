# geo-operator — every target runs on Node 24 from node_modules/.bin (the `node` npm package).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
REPORTS := .test-reports

.PHONY: help deps tools tools-all tools-node tools-node-binaries generate lint typecheck build test test-unit test-integration test-faults e2e demo demo-corrupt e2e-kind bench-latency bench-blob clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.package-lock.json ## Install npm dependencies (and Node 24) with npm ci

tools: ## Provide system packages and the kube-apiserver/etcd/kubectl/helm/MinIO binaries
	bash hack/tools/ensure-system.sh
	bash hack/tools/ensure.sh >/dev/null

tools-node: tools-node-binaries ## Provide what the real node of `make e2e` needs: container packages, kubelet & co, CoreDNS
	bash hack/tools/ensure-system.sh --node

# Every Kubernetes binary in one `go build` (and CoreDNS); needs no root.
tools-node-binaries:
	bash hack/tools/ensure.sh --node >/dev/null

generate: deps ## Regenerate CRD YAML and TypeScript types from src/api/v1alpha1/crds.ts
	node hack/generate.ts

lint: deps ## ESLint
	eslint .

typecheck: deps ## TypeScript strict type check
	tsc -p tsconfig.json --noEmit

build: deps ## Compile to dist/ (what the container image runs)
	rm -rf dist && tsc -p tsconfig.build.json

test-unit: deps ## Unit tests of pure logic (no servers)
	vitest run --project unit

test-integration: deps tools ## Integration tests against real kube-apiserver, PostgreSQL, MinIO and git
	vitest run --project integration

test-faults: deps tools ## The fault suite (test/faults/): one table of scenarios, expected and observed
	vitest run --project faults

# The real-node end to end (hack/node/run.sh): builds the image, starts a single-node cluster in a
# network namespace with no route out, runs test/e2e inside it and tears it down. Needs root; where
# it cannot run it fails loudly (exit 3), it never passes silently.
E2E_RUN = bash hack/node/run.sh -- vitest run --project e2e --reporter=default --reporter=json --reporter=./hack/vitest-unhandled-errors.ts --outputFile.json=$(REPORTS)/e2e.json

e2e: deps tools-node tools ## End to end on a real node: image, kubelet, helm install, real Pods (root)
	@mkdir -p $(REPORTS)
	$(E2E_RUN)

# Tools through provision.sh: one `go build` makes every Kubernetes binary, kube-apiserver and
# kubectl included, so their shared packages compile once, while etcd, helm and MinIO build beside
# it. The node's system packages are installed in the e2e step, so a machine that cannot have them
# (no root) still runs the other tests, and the e2e step fails loudly.
tools-all: ## Everything `make test` provisions, the two Go builds side by side (hack/tools/provision.sh)
	bash hack/tools/provision.sh

test: deps tools-all lint typecheck ## Everything: set-up, lint, typecheck, unit, integration, fault suite and real-node e2e tests
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	@status=0; \
	vitest run --project unit --reporter=default --reporter=json --reporter=./hack/vitest-unhandled-errors.ts --outputFile.json=$(REPORTS)/unit.json || status=1; \
	vitest run --project integration --reporter=default --reporter=json --reporter=./hack/vitest-unhandled-errors.ts --outputFile.json=$(REPORTS)/integration.json || status=1; \
	vitest run --project faults --reporter=default --reporter=json --reporter=./hack/vitest-unhandled-errors.ts --outputFile.json=$(REPORTS)/faults.json || status=1; \
	{ bash hack/tools/ensure-system.sh --node && $(E2E_RUN); } || status=1; \
	node hack/test-summary.ts $(REPORTS)/unit.json $(REPORTS)/integration.json $(REPORTS)/faults.json $(REPORTS)/e2e.json || status=1; \
	exit $$status

demo: deps tools ## Local control plane, databases, object stores and git server with the samples applied
	node cmd/demo.ts $(DEMO_ARGS)

demo-corrupt: deps ## In a second terminal during `make demo`: corrupt one replicated object and watch it heal
	node hack/demo/corrupt.ts

# Benchmarks run on demand, never from `make test` (docs/performance.md). BENCH_ARGS=--quick is a
# smoke run under two minutes; --help lists the options.
bench-latency: deps tools ## Change-to-synced latency, event vs scan mode, on real servers (~1 h; BENCH_ARGS=--quick: < 2 min)
	node bench/latency/run.ts $(BENCH_ARGS)

.PHONY: bench-registry bench-operator
bench-registry: deps ## Registry at 10M rows: backfill vs generate_series, status vs COUNT, claims with 1/4/16 workers (~15 min; BENCH_ARGS=--quick: < 2 min)
	node bench/registry/run.ts $(BENCH_ARGS)

bench-operator: deps tools ## Manager with 200 ReplicableTypes: reconcile latency, memory over time (~10 min; BENCH_ARGS=--quick: < 3 min)
	node bench/operator/run.ts $(BENCH_ARGS)

bench-blob: deps tools ## Blob sync and verification vs rclone, SHA-256 vs openssl, one table (~8 min; BENCH_ARGS=--quick: < 2 min)
	node bench/blob/run.ts $(BENCH_ARGS)

e2e-kind: ## End to end in a kind cluster (needs Docker)
	bash test/e2e/kind.sh

clean: ## Remove build output and test reports
	rm -rf dist $(REPORTS) coverage
