#!/usr/bin/env bash
# `make bench-webhook`: load on `palisade serve` over HTTPS on 127.0.0.1 with wrk, using a
# pod-creation AdmissionReview through pod-security (restricted), logging on at info.
# Prints req/s, p50, p99 and server CPU per request for 1, 16 and 64 connections.
#
# wrk runs on the same cores as the server. By default it uses one thread: one wrk thread keeps
# up with the server (it drives as many requests per second as two do), and a second one only
# adds a fourth busy thread to the server's two workers on a 2-core machine, whose time slices
# then show in the tail. BENCH_WRK_THREADS=2 measures that configuration.
set -euo pipefail
palisade=$(realpath "$1")
policy=$(realpath "$2")
review=$(realpath "$(dirname "$0")/pod-create-review.json")
seconds=${BENCH_SECONDS:-10}
port=${BENCH_PORT:-18643}
wrk_threads=${BENCH_WRK_THREADS:-1}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (load generator) from Debian"
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
"$palisade" cert --out "$work/tls" 2>/dev/null
cat >"$work/palisade.yaml" <<YAML
listen: 127.0.0.1:$port
tls: {cert: tls/tls.crt, key: tls/tls.key}
policies:
  - id: pod-security
    module: $policy
    settings: {level: restricted, version: latest}
YAML
cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("REVIEW"), "r"))
wrk.body = f:read("*a")
f:close()
LUA

PALISADE_LOG=info PALISADE_CACHE_DIR="$work/cache" "$palisade" serve --config "$work/palisade.yaml" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -sk "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
answer=$(curl -sk -X POST -H 'Content-Type: application/json' --data-binary "@$review" "https://127.0.0.1:$port/validate/pod-security")
grep -q '"allowed":true' <<<"$answer" || { echo "unexpected answer: $answer"; exit 1; }

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
echo
echo "pod-security (restricted) on a $(wc -c <"$review")-byte pod CREATE review, HTTPS, $(nproc) cores, ${seconds}s per row, wrk with up to $wrk_threads thread(s) on the same cores"
echo
echo "| connections | req/s | p50 | p99 | server CPU per request |"
echo "|---:|---:|---:|---:|---:|"
for connections in 1 16 64; do
  threads=$((connections < wrk_threads ? connections : wrk_threads))
  before=$(cpu)
  out=$(REVIEW="$review" wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" "https://127.0.0.1:$port/validate/pod-security")
  after=$(cpu)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)
  per=$(awk -v d=$((after - before)) -v t="$ticks" -v n="$total" 'BEGIN {printf "%.0f us", d / t / n * 1e6}')
  echo "| $connections | $rps | $p50 | $p99 | $per |"
  [[ -z $errors ]] || echo "  errors: $errors"
done
denied_logs=$(grep -c '"level":"INFO"' "$work/server.log" || true)
echo
echo "server log lines at info during the run: $denied_logs"
