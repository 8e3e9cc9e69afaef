#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder (cargo-fuzz / libFuzzer): docs/FUZZING.md.
#
#   scripts/fuzz.sh smoke [SECONDS]      each target for SECONDS (default 5): what CI runs
#   scripts/fuzz.sh long [RUNS]          each target for RUNS executions (default 1000000)
#   scripts/fuzz.sh run TARGET [ARGS…]   one target, libFuzzer ARGS as given
#   scripts/fuzz.sh build                the instrumented binaries only
#
# Targets run one at a time, each as one libFuzzer process (no -jobs: one job, no fork). Inputs: fuzz/seeds/T
# (committed), fuzz/regressions/T (committed crashes, fixed) and fuzz/corpus/T (what the
# fuzzer found, not committed). A crash stops the run with a non-zero status; libFuzzer
# leaves the input in fuzz/artifacts/T/ — keep it under fuzz/regressions/T/ with the fix.
#
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets it take the nightly flags
# cargo-fuzz passes. No sanitizer (`-s none`): Lode's decoders are safe Rust, and ASan would
# double the build and halve the executions; debug assertions (`-a`) are on, so integer
# overflow panics like any other bug.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
FUZZ_FLAGS=(-s none -a)
TARGETS=(block transaction header header_chain gossip sync_request sync_response rpc chain_spec wallet_file devnet_file node_key)
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# The file targets write their input to a scratch dir for every execution: in memory if the
# machine has /dev/shm (a hundred times faster than disk), removed at the end.
scratch_root=/dev/shm
[ -d "$scratch_root" ] && [ -w "$scratch_root" ] || scratch_root="${TMPDIR:-/tmp}"
scratch="$(mktemp -d "$scratch_root/lode-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

build() {
  # The committed fuzz/Cargo.lock must be current (CI builds what was reviewed).
  cargo metadata --locked --format-version 1 >/dev/null
  cargo fuzz build "${FUZZ_FLAGS[@]}"
}

# run TARGET libFuzzer-args…: the target over its corpus, seeds and regression inputs.
run() {
  local t="$1"
  shift
  mkdir -p "corpus/$t"
  local dirs=("corpus/$t" "seeds/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "${dirs[@]}" -- -print_final_stats=1 -timeout=10 -max_len=8192 "$@"
}

# summary TARGET LOG: one line of executions, time and rate from libFuzzer's final stats.
summary() {
  local t="$1" log="$2" runs secs
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  local cov
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-14s %10s execs %6ss %9s exec/s  cov %s\n' "$t" "${runs:-?}" "${secs:-?}" \
    "$(( ${runs:-0} / (${secs:-0} > 0 ? ${secs:-1} : 1) ))" "${cov:-?}"
}

sweep() {
  local label="$1"
  shift
  local logs="$scratch/logs" failed=0
  mkdir -p "$logs"
  for t in "${TARGETS[@]}"; do
    echo "fuzz: $label $t" >&2
    if ! run "$t" "$@" >"$logs/$t" 2>&1; then
      failed=1
      echo "fuzz: $t FAILED — the crashing input is in fuzz/artifacts/$t/" >&2
      grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$logs/$t" >&2 || tail -20 "$logs/$t" >&2
    fi
    summary "$t" "$logs/$t"
  done
  return "$failed"
}

case "${1:-}" in
  build) build ;;
  smoke)
    build
    sweep smoke "-max_total_time=${2:-5}"
    ;;
  long)
    build
    sweep long "-runs=${2:-1000000}"
    ;;
  run)
    [ -n "${2:-}" ] || { echo "usage: scripts/fuzz.sh run TARGET [libFuzzer args…]" >&2; exit 2; }
    t="$2"
    shift 2
    build
    run "$t" "$@"
    ;;
  *)
    echo "usage: scripts/fuzz.sh smoke [SECONDS] | long [RUNS] | run TARGET [ARGS…] | build" >&2
    exit 2
    ;;
esac
