#!/usr/bin/env bash
# The build's own cost, measured from cold (README, "Build cost"): a release build and a build
# of every test, each in a fresh target directory, and the release binary's size. Takes about
# 20 minutes on a 2-core machine and leaves nothing behind.
#   bash benches/build-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cold() {
  local what="$1"; shift
  local dir
  dir="$(mktemp -d)"
  local start
  start="$(date +%s)"
  CARGO_TARGET_DIR="$dir" "$@" >/dev/null 2>&1
  local secs=$(( $(date +%s) - start ))
  printf '%-28s %dm %02ds\n' "$what" $((secs / 60)) $((secs % 60))
  if [ -f "$dir/release/ethproofs-daemon" ]; then
    local bytes
    bytes="$(stat -c %s "$dir/release/ethproofs-daemon")"
    printf '%-28s %s bytes (%s MiB)\n' "release binary" "$bytes" "$(( bytes / 1048576 ))"
  fi
  rm -rf "$dir"
}

echo "$(nproc) cores, $(rustc --version)"
cold "cold release build" cargo build --release --locked
# As .ci/run builds the tests: one-shot, without incremental compilation's bookkeeping.
CARGO_INCREMENTAL=0 cold "cold test build" cargo test --locked --all-targets --no-run
