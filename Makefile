# Every routine command of the workspace. `make test` is exactly what CI runs.
# Host code is always built with one command line (`--release --workspace --all-targets`) so
# wasmtime is compiled once, not once per package subset (feature unification).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
WASM_TARGETS := wasm32-wasip1 wasm32-wasip2
# Policies build into their own target dir so guest and host builds never wait on each other.
POLICY_DIR := target/policies
PALISADE := target/release/palisade
POD_SECURITY := $(POLICY_DIR)/admission-component/pod_security.wasm
# Every home of every crate that declares [package.metadata.policy]: `crate@home@target`.
POLICY_HOMES = $(shell $(CARGO) metadata --format-version 1 --no-deps --offline 2>/dev/null | python3 -c 'import json,sys; [print(p["name"]+"@"+h+"@"+t) for p in json.load(sys.stdin)["packages"] for h, t in sorted(((p.get("metadata") or {}).get("policy") or {}).get("homes", {}).items())]')

.PHONY: all toolchain policies build tools test run bench bench-webhook soak fuzz bless fmt lint docs ci clean

all: build

## toolchain: install the wasm targets if they are missing
toolchain:
	@for t in $(WASM_TARGETS); do \
	  if ! rustup target list --installed | grep -qx "$$t"; then \
	    echo "installing the $$t target"; rustup target add "$$t"; \
	  fi; \
	done

## policies: build every policy crate for each of its homes (the cargo feature of the home's
## name, the home's wasm target, the `wasm` profile) into target/policies/<home>/<crate>.wasm
policies: toolchain
	@$(CARGO) fetch --locked >/dev/null
	@for spec in $(POLICY_HOMES); do \
	  IFS=@ read -r crate home target <<<"$$spec"; \
	  echo "building policy $$crate for $$home ($$target)"; \
	  $(CARGO) build --locked --quiet --profile wasm --target "$$target" --target-dir $(POLICY_DIR)/build/$$home \
	    --features "$$home" -p "$$crate"; \
	  mkdir -p $(POLICY_DIR)/$$home; \
	  built=$(POLICY_DIR)/build/$$home/$$target/wasm/$${crate//-/_}.wasm; out=$(POLICY_DIR)/$$home/$${crate//-/_}.wasm; \
	  cmp -s "$$built" "$$out" || cp "$$built" "$$out"; \
	done

## build: the host (CLI, runtime, tests, benches) and every policy
build: policies
	$(CARGO) build --locked --release --workspace --all-targets

## tools: the outside programs some tests use, installed from Debian where they are missing and
## apt-get is usable: docker-registry (push/pull, host/cli/tests/all/oci.rs), kubectl (the
## kustomize base, tests/tests/all/deploy.rs; Debian's kubernetes-client) and redis-server (token
## buckets shared by two webhooks, tests/tests/all/rate_limits.rs). helm has no Debian
## package: its tests run where it is installed. Never fails: a test whose program is missing
## is reported as skipped at the end of `make test`.
tools:
	@missing=(); \
	command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || missing+=(docker-registry); \
	command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client); \
	command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server); \
	if [ $${#missing[@]} -gt 0 ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing $${missing[*]} (Debian packages) for the tests that use them"; \
	    apt-get install -y -qq "$${missing[@]}" >/dev/null 2>&1 \
	      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$${missing[@]}" >/dev/null 2>&1; } \
	      || echo "could not install $${missing[*]}: the tests that use them will be reported as skipped"; \
	  else \
	    echo "$${missing[*]} missing and apt-get is not usable here: the tests that use them will be reported as skipped"; \
	  fi; \
	fi

## test: build everything and run every test (unit, doc, fixtures natively and in wasm, CLI),
## a short run of every fuzz target (tests/fuzz), then say which tests were skipped and why (a
## skip never reads as a pass)
test: build tools
	@rm -f target/test-skips.log
	$(CARGO) test --locked --release --workspace
	bash tests/fuzz/run.sh smoke
	@if [ -s target/test-skips.log ]; then \
	  echo; echo "$$(sort -u target/test-skips.log | wc -l) skipped:"; sort -u target/test-skips.log | sed 's/^/  /'; \
	else \
	  echo; echo "0 skipped: every test ran"; \
	fi

## run: build, run the CLI demo, then serve the webhook on https://127.0.0.1:8443 (Ctrl-C stops)
run: build
	@bash host/webhook/examples/run.sh $(PALISADE) $(POD_SECURITY)

## bench: criterion benchmarks: pod-security native vs wasm (component and Kubewarden waPC build), load cold vs cached, `palisade run`
## process; the proxy filters (request-guard, zero-trust, OPA-Envoy rego, rate-limit) through the
## proxy-wasm host (plugin start, per request, hostcalls); rego's Gatekeeper templates native vs wasm;
## image signatures: bundles (key, keyless), an image's first verification and cached ones
bench: build
	$(CARGO) bench --locked --workspace --bench pod_security --bench proxy_filter --bench rego
	$(CARGO) bench --locked -p palisade-supply-chain --features testing --bench verify

## bench-webhook: load on `palisade serve` (wrk over HTTPS on 127.0.0.1), pod-security restricted
## (its component, its Kubewarden waPC build, and a kubewarden-policy-sdk policy), then rate-limit's admission home (buckets in memory and in redis-server), then rego's (library templates),
## then image-signature's (registries only, then signatures verified from the cache)
bench-webhook: build
	@bash tests/benches/webhook.sh $(PALISADE) $(POD_SECURITY)

## fuzz: every fuzz target (tests/fuzz: the review codec, the JSON tape, settings, scenarios,
## proxy-wasm header pairs and properties, OCI layouts, group expressions, the server's
## configuration, request paths) for FUZZ_SECONDS each, or FUZZ_RUNS executions each when set;
## FUZZ_TARGET=<name> runs one
FUZZ_SECONDS ?= 120
FUZZ_RUNS ?=
FUZZ_TARGET ?=
fuzz: toolchain
	bash tests/fuzz/run.sh $(if $(FUZZ_RUNS),runs $(FUZZ_RUNS),time $(FUZZ_SECONDS)) $(FUZZ_TARGET)

## soak: SOAK_SECONDS (an hour) of load on `palisade serve` with hostile policies, reloads and
## attacks on 127.0.0.1; RSS and descriptors over time, then a summary (tests/soak/soak.py)
SOAK_SECONDS ?= 3600
soak: build
	@command -v wrk >/dev/null || { echo "installing wrk (load generator) from Debian"; apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
	python3 tests/soak/soak.py $(PALISADE) $(POLICY_DIR)/admission-component $(SOAK_SECONDS)

## bless: rewrite every fixture's expected file from the native evaluation (review the diff!)
bless:
	PALISADE_BLESS=1 $(CARGO) test --locked --release --workspace --test fixtures

## docs: regenerate the README's CLI reference from `palisade reference`
docs: build
	@$(PALISADE) reference > target/cli-reference.md
	@python3 -c 'import re,sys; r=open("README.md").read(); ref=open("target/cli-reference.md").read(); s="<!-- cli-reference:start -->"; e="<!-- cli-reference:end -->"; open("README.md","w").write(r[:r.index(s)+len(s)]+"\n"+ref+r[r.index(e):])'
	@echo "README.md CLI reference regenerated"

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path tests/fuzz/Cargo.toml

## lint: formatting, and clippy with warnings as errors on the host and on the policies' wasm target
lint: toolchain
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path tests/fuzz/Cargo.toml --check
	$(CARGO) clippy --locked --release --workspace --all-targets -- -D warnings
	@for spec in $(POLICY_HOMES); do \
	  IFS=@ read -r crate home target <<<"$$spec"; \
	  $(CARGO) clippy --locked --quiet --profile wasm --target "$$target" --target-dir $(POLICY_DIR)/build/$$home \
	    --features "$$home" -p "$$crate" -- -D warnings; \
	done

ci: test lint

clean:
	$(CARGO) clean
