#!/usr/bin/env bash
# IPAM bench: PROCESSES processes x ALLOCATIONS allocations against one
# SQLite state file, then the same number of releases. Prints operations/s
# and proves zero duplicate addresses (from what every process was told and
# from the state file itself). Exits non-zero if verification fails.
#
#   bench/ipam.sh                      # 8 x 2000
#   PROCESSES=4 ALLOCATIONS=500 bench/ipam.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PROCESSES="${PROCESSES:-8}"
ALLOCATIONS="${ALLOCATIONS:-2000}"

cargo build --quiet --release -p vkube-store --bin ipam-bench
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bench="$target_dir/release/ipam-bench"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bench" run --state "$work/state.db" --processes "$PROCESSES" --allocations "$ALLOCATIONS"
