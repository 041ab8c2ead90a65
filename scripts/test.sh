#!/usr/bin/env bash
# Run every vkube test: installs what is missing, builds the vCenter
# simulator, runs its own Go tests, then the whole Rust workspace (unit
# tests and the integration tests that each start a simulator).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/install-deps.sh
bash scripts/build-vcsim.sh >/dev/null

echo "== simulator harness tests"
bash scripts/test-vcsim.sh

echo "== Rust workspace tests"
# Checks that need external tools must run, not skip, here.
export VKUBE_REQUIRE_CLOUD_INIT=1
export VKUBE_REQUIRE_KUBERNETES_VALIDATE=1
export VKUBE_VCSIM_BIN="$repo/target/vcsim/vcsim"
cargo test --workspace --locked "$@"
