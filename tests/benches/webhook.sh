#!/usr/bin/env bash
# `make bench-webhook`: load on `palisade serve` over HTTPS on 127.0.0.1 with wrk, using a
# pod-creation AdmissionReview through pod-security (restricted), logging on at info, measured
# beside its anchor in the same run: an HTTPS server on the same stack (tokio with 2 workers,
# hyper, rustls) that only reads the body and answers, and the same server reading the review in
# one typed pass (tests/examples/https_anchor.rs). Prints req/s, p50, p99 and server CPU per
# request, and serve's CPU per request as a multiple of the anchor's. Then the rate-limit
# policy's admission home on the same review (a limit that takes a token on every request and
# never refuses), its buckets in the server's memory and in a local redis-server (when
# installed): the cost of a limit decision, as CPU per request above the anchor (with Redis, the
# server's and redis-server's CPU both count). Then the rego policy (Gatekeeper ConstraintTemplates
# on regorus) with library templates and Constraints read from their files (settingsFrom), each
# Constraint matching the review so that its template's Rego runs on every request: the cost of
# a Gatekeeper decision, as CPU per request above the anchor. Last, image-signature on the review
# with its images moved into the example OCI layout of signed images: without verification, then
# with every image's signature required (answered from the host's cache after the first
# request): what a cached image check adds to an admission request.
#
# wrk runs on the same cores as the server. By default it uses one thread: one wrk thread keeps
# up with the server (it drives as many requests per second as two do), and a second one only
# adds a fourth busy thread to the server's two workers on a 2-core machine, whose time slices
# then show in the tail. BENCH_WRK_THREADS=2 measures that configuration.
set -euo pipefail
palisade=$(realpath "$1")
policy=$(realpath "$2")
rate_limit=$(dirname "$policy")/rate_limit.wasm
rego=$(dirname "$policy")/rego.wasm
image_signature=$(dirname "$policy")/image_signature.wasm
images=$(realpath "$(dirname "$0")/../../policies/image-signature/examples/images")
# The same policy built for Kubewarden (a waPC module), beside the component, when built.
kubewarden=$(realpath -m "$(dirname "$policy")/../kubewarden/$(basename "$policy")")
library=$(realpath "$(dirname "$0")/../../policies/rego/library")
anchor=$(dirname "$palisade")/examples/https_anchor
review=$(realpath "$(dirname "$0")/pod-create-review.json")
seconds=${BENCH_SECONDS:-10}
port=${BENCH_PORT:-18643}
wrk_threads=${BENCH_WRK_THREADS:-1}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (load generator) from Debian"
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
[[ -x $anchor ]] || { echo "$anchor is missing: run make build"; exit 1; }

work=$(mktemp -d)
server=
redis=
trap 'kill "$server" $redis 2>/dev/null || true; rm -rf "$work"' EXIT
"$palisade" cert --out "$work/tls" 2>/dev/null
cat >"$work/palisade.yaml" <<YAML
listen: 127.0.0.1:$port
tls: {cert: tls/tls.crt, key: tls/tls.key}
policies:
  - id: pod-security
    module: $policy
    settings: {level: restricted, version: latest}
YAML
# A validating policy written with kubewarden-policy-sdk (the probe guest: privileged
# containers denied, as Kubewarden's pod-privileged policy does).
probe=$(dirname "$kubewarden")/kubewarden_probe.wasm
if [[ -f $kubewarden ]]; then
  cat >>"$work/palisade.yaml" <<YAML
  - id: pod-security-kubewarden
    module: $kubewarden
    settings: {level: restricted, version: latest}
YAML
fi
if [[ -f $probe ]]; then
  cat >>"$work/palisade.yaml" <<YAML
  - id: kubewarden-sdk
    module: $probe
    settings: {denyPrivileged: true}
YAML
fi
# The same check by a WASI-mode Kubewarden policy (a fresh instance per request, as
# policy-evaluator runs them).
wasi=$(dirname "$kubewarden")/kubewarden_wasi.wasm
if [[ -f $wasi ]]; then
  cat >>"$work/palisade.yaml" <<YAML
  - id: kubewarden-wasi
    module: $wasi
    settings: {denyPrivileged: true}
YAML
fi
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("REVIEW"), "r"))
wrk.body = f:read("*a")
f:close()
LUA

wait_ready() {
  for _ in $(seq 100); do
    curl -sk -o /dev/null -X POST --data-binary "@$review" "https://127.0.0.1:$port/validate/${1:-pod-security}" && return
    sleep 0.1
  done
  echo "the server on port $port did not start"; exit 1
}

ticks=$(getconf CLK_TCK)
# CPU ticks of the server, and of redis-server when one is running.
cpu() { awk '{s += $14 + $15} END {print s}' "/proc/$server/stat" ${redis:+"/proc/$redis/stat"}; }
# One row of load on the running $server: prints the table row, sets $per_request (us).
load() {
  local label=$1 connections=$2 id=${3:-pod-security} threads before after out rps total p50 p99 errors
  threads=$((connections < wrk_threads ? connections : wrk_threads))
  before=$(cpu)
  out=$(REVIEW="$review" wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" "https://127.0.0.1:$port/validate/$id")
  after=$(cpu)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  per_request=$(awk -v d=$((after - before)) -v t="$ticks" -v n="$total" 'BEGIN {printf "%.1f", d / t / n * 1e6}')
  echo "| $label | $connections | $rps | $p50 | $p99 | $per_request us |"
  [[ -z $errors ]] || echo "  errors: $errors"
}

echo
echo "pod-security (restricted) on a $(wc -c <"$review")-byte pod CREATE review, HTTPS, $(nproc) cores, ${seconds}s per row, wrk with up to $wrk_threads thread(s) on the same cores"
echo
echo "| server | connections | req/s | p50 | p99 | server CPU per request |"
echo "|---|---:|---:|---:|---:|---:|"

"$anchor" "$port" "$work/tls/tls.crt" "$work/tls/tls.key" &
server=$!
wait_ready
load "anchor: read body, answer" 16
anchor_read=$per_request
kill "$server"; wait "$server" 2>/dev/null || true

"$anchor" "$port" "$work/tls/tls.crt" "$work/tls/tls.key" --parse &
server=$!
wait_ready
load "anchor: + typed parse of the review" 16
anchor_parse=$per_request
kill "$server"; wait "$server" 2>/dev/null || true

PALISADE_LOG=info PALISADE_CACHE_DIR="$work/cache" "$palisade" serve --config "$work/palisade.yaml" >"$work/server.log" 2>&1 &
server=$!
wait_ready
answer=$(curl -sk -X POST -H 'Content-Type: application/json' --data-binary "@$review" "https://127.0.0.1:$port/validate/pod-security")
grep -q '"allowed":true' <<<"$answer" || { echo "unexpected answer: $answer"; exit 1; }
for connections in 1 16 64; do
  load "palisade serve" "$connections"
  [[ $connections != 16 ]] || serve_16=$per_request
done
echo
awk -v s="$serve_16" -v a="$anchor_read" -v p="$anchor_parse" 'BEGIN {
  printf "at 16 connections: palisade serve %.1f us CPU per request = %.2fx the read-only anchor (%.1f us), %.2fx the parsing anchor (%.1f us); %.1f us above the read-only anchor\n", s, s / a, a, s / p, p, s - a }'
if [[ -f $kubewarden ]]; then
  echo
  echo "| server | connections | req/s | p50 | p99 | server CPU per request |"
  echo "|---|---:|---:|---:|---:|---:|"
  load "palisade serve, pod-security's Kubewarden waPC build" 16 pod-security-kubewarden
  awk -v k="$per_request" -v s="$serve_16" -v a="$anchor_read" 'BEGIN {
    printf "pod-security built for Kubewarden (waPC, settings sent with every request): %.1f us CPU per request = %.2fx the component (%.1f us), %.1f us above the read-only anchor\n", k, k / s, s, k - a }'
fi
if [[ -f $probe ]]; then
  load "palisade serve, kubewarden-policy-sdk policy (privileged check)" 16 kubewarden-sdk
fi
if [[ -f $wasi ]]; then
  load "palisade serve, Kubewarden WASI-mode policy (privileged check)" 16 kubewarden-wasi
fi
denied_logs=$(grep -c '"level":"INFO"' "$work/server.log" || true)
echo "server log lines at info during the run: $denied_logs"

# The rate-limit policy: one limit on pod creations per namespace, a billion a second (every
# request takes a token; none is refused), its buckets in memory, then in redis-server.
rate_limit_rows() {
  local store=$1 label=$2 resource=${3:-pods}
  cat >"$work/rate-limit.yaml" <<YAML
listen: 127.0.0.1:$port
tls: {cert: tls/tls.crt, key: tls/tls.key}
$store
policies:
  - id: rate-limit
    module: $rate_limit
    capabilities: {rateLimit: true}
    settings:
      limits: [{name: pods, type: Namespace, requests: 1000000000, per: 1s, match: {resources: [$resource], operations: [CREATE]}}]
YAML
  PALISADE_LOG=info PALISADE_CACHE_DIR="$work/cache" "$palisade" serve --config "$work/rate-limit.yaml" >"$work/rate-limit.log" 2>&1 &
  server=$!
  wait_ready rate-limit
  answer=$(curl -sk -X POST -H 'Content-Type: application/json' --data-binary "@$review" "https://127.0.0.1:$port/validate/rate-limit")
  grep -q '"allowed":true' <<<"$answer" && ! grep -q warnings <<<"$answer" || { echo "unexpected answer: $answer"; exit 1; }
  load "palisade serve, rate-limit ($label)" 16 rate-limit
  kill "$server"; wait "$server" 2>/dev/null || true
}
kill "$server"; wait "$server" 2>/dev/null || true
if [[ -f $rate_limit ]]; then
  echo
  echo "rate-limit (admission home) on the same review: one limit, a token taken per request"
  echo
  echo "| server | connections | req/s | p50 | p99 | server CPU per request |"
  echo "|---|---:|---:|---:|---:|---:|"
  rate_limit_rows "" "no limit matches: no take" configmaps
  untaken=$per_request
  rate_limit_rows "" "buckets in memory"
  memory=$per_request
  redis_port=$((port + 1))
  if command -v redis-server >/dev/null; then
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
    redis=$!
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    rate_limit_rows "rateLimit: {redis: {url: \"redis://127.0.0.1:$redis_port/\"}}" "buckets in redis-server, its CPU counted"
    kill "$redis"; wait "$redis" 2>/dev/null || true
    redis=
    echo
    awk -v u="$untaken" -v m="$memory" -v r="$per_request" -v a="$anchor_read" 'BEGIN {
      printf "rate-limit: %.1f us CPU per request with buckets in memory (%.2fx the read-only anchor), %.1f us with Redis (server + redis-server); a take costs %.1f us in memory, %.1f us with Redis, over the same policy taking nothing (%.1f us)\n", m, m / a, r, m - u, r - u, u }'
  else
    echo "redis-server is not installed: the Redis row is skipped"
  fi
fi

# The rego policy: one library template with one Constraint (its files read by settingsFrom),
# checked first on the review (the expected answer, a denial naming the Constraint) and on a
# variant of it (a sed script; empty when the review itself is denied) that the Constraint must
# deny, so the Constraint matches the review and its Rego runs; then loaded.
rego_rows() {
  local label=$1 expected=$2 template=$3 constraint=$4 variant=$5 answer name
  cat >"$work/rego.yaml" <<YAML
listen: 127.0.0.1:$port
tls: {cert: tls/tls.crt, key: tls/tls.key}
policies:
  - id: rego
    module: $rego
    settingsFrom:
      template: $template
      constraints: [$constraint]
YAML
  PALISADE_LOG=info PALISADE_CACHE_DIR="$work/cache" "$palisade" serve --config "$work/rego.yaml" >"$work/rego.log" 2>&1 &
  server=$!
  wait_ready rego
  name=$(awk '$1 == "name:" {print $2; exit}' "$constraint")
  answer=$(curl -sk -X POST -H 'Content-Type: application/json' --data-binary "@$review" "https://127.0.0.1:$port/validate/rego")
  grep -q "\"allowed\":$expected" <<<"$answer" || { echo "unexpected answer ($label): $answer"; exit 1; }
  [[ $expected == true ]] || grep -q "\\[$name\\]" <<<"$answer" || { echo "unexpected denial ($label): $answer"; exit 1; }
  answer=$(sed "$variant" "$review" | curl -sk -X POST -H 'Content-Type: application/json' --data-binary @- "https://127.0.0.1:$port/validate/rego")
  grep -q '"allowed":false' <<<"$answer" && grep -q "\\[$name\\]" <<<"$answer" || { echo "the constraint $name does not review the pod ($label): $answer"; exit 1; }
  load "palisade serve, rego $label" 16 rego
  rego_logs=$(grep -c '"level":"INFO"' "$work/rego.log" || true)
  kill "$server"; wait "$server" 2>/dev/null || true
}
if [[ -f $rego ]]; then
  # The samples' matches adapted to the review (a Pod in namespace shop): no-privileged reviews
  # only prod-* and staging, owner-label only Namespaces.
  sed '/^    namespaces:/d' "$library/privileged-containers/samples/no-privileged/constraint.yaml" >"$work/no-privileged.yaml"
  sed 's/kinds: \["Namespace"\]/kinds: ["Pod"]/; s/All namespaces/All pods/' "$library/required-labels/samples/owner-label/constraint.yaml" >"$work/owner-label.yaml"
  cat >"$work/team-label.yaml" <<'YAML'
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: RequiredLabels
metadata:
  name: pods-must-have-team
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Pod"]
    excludedNamespaces: ["kube-*"]
  parameters:
    labels:
      - key: team
        allowedRegex: "^[a-z][a-z0-9-]*$"
YAML
  echo
  echo "rego (Gatekeeper templates on regorus, admission home) on the same review: one library template, one Constraint reviewing the pod"
  echo
  echo "| server | connections | req/s | p50 | p99 | server CPU per request |"
  echo "|---|---:|---:|---:|---:|---:|"
  rego_rows "allowed-repos, repo-must-be-internal: allowed" true \
    "$library/allowed-repos/template.yaml" "$library/allowed-repos/samples/repo-must-be-internal/constraint.yaml" \
    's#registry.example.com/shop/web#docker.io/shop/web#'
  repos=$per_request
  rego_rows "privileged-containers, no-privileged in every namespace: allowed" true \
    "$library/privileged-containers/template.yaml" "$work/no-privileged.yaml" \
    's#"add":\["NET_BIND_SERVICE"\]}#"add":["NET_BIND_SERVICE"]},"privileged":true#'
  privileged=$per_request
  rego_rows "required-labels, team label matching a regexp: allowed" true \
    "$library/required-labels/template.yaml" "$work/team-label.yaml" \
    's#"team":"checkout"#"team":"Checkout!"#'
  team=$per_request
  rego_rows "required-labels, owner-label on Pods: denied" false \
    "$library/required-labels/template.yaml" "$work/owner-label.yaml" \
    ''
  owner=$per_request
  echo
  awk -v a="$anchor_read" -v ps="$serve_16" -v r="$repos" -v v="$privileged" -v t="$team" -v o="$owner" 'BEGIN {
    printf "rego at 16 connections, CPU per request above the read-only anchor (%.1f us): allowed-repos %.1f us (%.2fx the anchor), privileged-containers %.1f us (%.2fx), required-labels allowed %.1f us (%.2fx), denied %.1f us (%.2fx); pod-security restricted: %.1f us (%.2fx)\n", a, r - a, r / a, v - a, v / a, t - a, t / a, o - a, o / a, ps - a, ps / a }'
  echo "server log lines at info during the denied row: $rego_logs (one per denial)"
fi

# The image-signature policy on the same review, its three images rewritten to images of the
# example OCI layout that are signed with the key alpha: once with only the checks that need no
# registry (allowed registries, no :latest), then requiring alpha's signature on every image.
# After the first request every verification is answered from the host's result cache, so the
# difference between the two rows is what a cached image check adds to an admission request.
# Serves image-signature with the settings $1, answers the review once, and checks the answer
# says allowed: $2; with a label $3, loads it.
image_signature_row() {
  local settings=$1 expected=$2 label=${3:-} answer
  cat >"$work/images.yaml" <<YAML
listen: 127.0.0.1:$port
tls: {cert: tls/tls.crt, key: tls/tls.key}
policies:
  - id: image-signature
    module: $image_signature
    capabilities: {supplyChain: true}
    settings: $settings
hostOperations:
  registry:
    ociDirectory: $images/registry
    trustedRoot: $images/trusted_root.json
YAML
  PALISADE_LOG=info PALISADE_CACHE_DIR="$work/cache" "$palisade" serve --config "$work/images.yaml" >"$work/images.log" 2>&1 &
  server=$!
  wait_ready image-signature
  answer=$(curl -sk -X POST -H 'Content-Type: application/json' --data-binary "@$review" "https://127.0.0.1:$port/validate/image-signature")
  grep -q "\"allowed\":$expected" <<<"$answer" || { echo "unexpected answer (settings $settings): $answer"; exit 1; }
  [[ -z $label ]] || load "palisade serve, image-signature $label" 16 image-signature
  kill "$server"; wait "$server" 2>/dev/null || true
}
if [[ -f $image_signature ]]; then
  sed -E 's#registry.example.com/shop/(migrate|web):1.8.2#registry.example.com/team/signed:v1#; s#registry.example.com/shop/metrics-sidecar:0.4.0#registry.example.com/team/two-keys:v1#' \
    "$review" >"$work/signed-review.json"
  review=$work/signed-review.json
  key() { awk '{printf "%s\\n", $0}' "$images/keys/$1.pub"; }
  echo
  echo "image-signature (admission home) on the review with 3 containers of 2 signed images of the example layout (cosign .sig tags, ECDSA P-256)"
  echo
  echo "| server | connections | req/s | p50 | p99 | server CPU per request |"
  echo "|---|---:|---:|---:|---:|---:|"
  # A key that signed nothing is refused: the rows below do check signatures.
  image_signature_row "{rules: [{images: ['**'], signatures: [{entries: [{key: \"$(key mallory)\"}]}]}]}" false
  image_signature_row "{allowedRegistries: [registry.example.com], denyLatest: true}" true \
    "registries and :latest only (no registry access)"
  static=$per_request
  image_signature_row "{allowedRegistries: [registry.example.com], denyLatest: true, rules: [{images: ['registry.example.com/team/*'], signatures: [{entries: [{key: \"$(key alpha)\"}]}]}]}" true \
    "+ alpha's signature on every image (cached)"
  signed=$per_request
  echo
  awk -v a="$anchor_read" -v s="$static" -v v="$signed" 'BEGIN {
    printf "image-signature at 16 connections: %.1f us CPU per request without verification, %.1f us with 3 containers (2 distinct images) verified from the cache: %.1f us per request, %.1f us per distinct image; %.1f us above the read-only anchor (%.1f us)\n", s, v, v - s, (v - s) / 2, v - a, a }'
fi
