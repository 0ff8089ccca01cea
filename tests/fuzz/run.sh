#!/usr/bin/env bash
# Runs the fuzz targets of this folder with cargo-fuzz (libFuzzer), from the project root.
#
#   tests/fuzz/run.sh smoke            every target for FUZZ_SMOKE_RUNS executions (`make test`)
#   tests/fuzz/run.sh time SECONDS     every target for SECONDS each (`make fuzz`)
#   tests/fuzz/run.sh time SECONDS T   target T only
#   tests/fuzz/run.sh runs N [T]       every target (or T) for N executions each
#
# Each target starts from its seed corpus (corpus/<target>, kept in the repository) and from what
# earlier runs on this machine found (target/fuzz/corpus/<target>); new inputs are saved there,
# never in the repository. A finding stops the run with the input that triggered it under
# target/fuzz/artifacts/<target>/ and the command that replays it.
#
# Built with stable Rust and no sanitizer (`-s none`): the code under test has no unsafe code of
# its own, and the coverage instrumentation needs no nightly. Where cargo-fuzz cannot be
# installed or the build cannot run, the smoke run is reported as skipped in
# target/test-skips.log, with the reason; it never reads as a pass.
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=${1:?usage: run.sh smoke | time SECONDS [TARGET] | runs N [TARGET]}
FUZZ_DIR=tests/fuzz
WORK=target/fuzz
SKIPS=target/test-skips.log
SMOKE_RUNS=${FUZZ_SMOKE_RUNS:-20000}
BUILD=(-O -a -s none --fuzz-dir "$FUZZ_DIR" --target-dir "$WORK/build")
if [ -n "${FUZZ_CODEGEN_UNITS:-}" ]; then BUILD+=(--codegen-units "$FUZZ_CODEGEN_UNITS"); fi

skip() {
  mkdir -p target
  echo "fuzz smoke run: skipped: $1" | tee -a "$SKIPS"
  exit 0
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io) for the fuzz targets"
  cargo install --locked --quiet cargo-fuzz \
    || { [ "$mode" = smoke ] && skip "cargo-fuzz could not be installed"; exit 2; }
fi

targets=$(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
if [ "$mode" != smoke ] && [ -n "${3:-}" ]; then targets=$3; fi

started=$(date +%s)
if ! cargo fuzz build "${BUILD[@]}"; then
  echo "the fuzz targets do not build" >&2
  df -h "$WORK" >&2 || true
  exit 2
fi
echo "fuzz targets built in $(( $(date +%s) - started )) s"

declare -A executed
for t in $targets; do
  mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
  case $mode in
    smoke) limit=(-runs="$SMOKE_RUNS") ;;
    time) limit=(-max_total_time="${2:?seconds}") ;;
    runs) limit=(-runs="${2:?executions}") ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  log="$WORK/$t.log"
  if ! cargo fuzz run "${BUILD[@]}" "$t" "$WORK/corpus/$t" "$FUZZ_DIR/corpus/$t" -- \
      "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$WORK/artifacts/$t/" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz target $t found a failure; the input is in $WORK/artifacts/$t/;" \
      "replay it with: cargo fuzz run ${BUILD[*]} $t <input>" >&2
    exit 1
  fi
  executed[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  printf '  %-18s %12s executions, corpus %s inputs\n' "$t" "${executed[$t]}" \
    "$(find "$WORK/corpus/$t" "$FUZZ_DIR/corpus/$t" -type f | wc -l)"
done
echo "fuzzing passed: $(wc -w <<<"$targets") targets, no finding, $(( $(date +%s) - started )) s"
