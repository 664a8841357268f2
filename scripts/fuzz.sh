#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60) with libFuzzer,
# seeded from tests/data, and prints executions per target. A crash stops the run with the
# input saved under fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz needs rustc's -Z flags (sanitizers, coverage); the machine's stable toolchain
# accepts them with RUSTC_BOOTSTRAP=1, so no nightly toolchain is needed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
# The workspace's release profile has fat LTO (for the engine's speed); with the sanitizer
# coverage passes it leaves undefined __sancov_gen_ symbols at link time.
export CARGO_PROFILE_RELEASE_LTO=false
cd "$top/fuzz"
echo "==> building the fuzz targets"
cargo fuzz build -O 2>&1 | grep -v '^\s*Compiling' || true

seed() {
  local target=$1 dir="$top/fuzz/corpus/$1"
  mkdir -p "$dir"
  case $target in
    message) cp "$top"/tests/data/*.gpg "$top"/tests/data/*.asc "$dir"/ 2>/dev/null || true ;;
    mail) cp "$top"/tests/data/mail/* "$dir"/ 2>/dev/null || true
          # The same mail as an mbox, for inspect --mailbox's splitting.
          for f in "$top"/tests/data/mail/*.eml; do
            printf 'From a@example.org Mon Nov 23 10:00:00 2026\n'; cat "$f"; echo
          done > "$dir/seed.mbox" ;;
    parsers) printf 'keep-unlocked = 10m\npinentry = ~/p\n' > "$dir/config"
             printf -- '--status-fd\0002\0--decrypt\0-&3' > "$dir/gpg-args" ;;
    card_responses) printf '\002\220\000' > "$dir/ok" ;;
  esac
}

for target in $(cargo fuzz list); do
  seed "$target"
  log=$(mktemp)
  if ! cargo fuzz run -O "$target" "$top/fuzz/corpus/$target" -- \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FAILED (input in fuzz/artifacts/$target/)" >&2
    rm -f "$log"
    exit 1
  fi
  execs=$(awk -F: '/stat::number_of_executed_units/ {gsub(/ /, "", $NF); print $NF}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz: $target: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, no crash"
  rm -f "$log"
done
