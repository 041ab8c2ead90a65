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
export VKUBE_REQUIRE_GO=1
export VKUBE_REQUIRE_OPENSSL=1
export VKUBE_REQUIRE_KUBECTL=1
export VKUBE_REQUIRE_SHELLCHECK=1
export VKUBE_REQUIRE_CONTAINERD=1
export VKUBE_REQUIRE_ETCD=1
export VKUBE_REQUIRE_QEMU_IMG=1
export VKUBE_REQUIRE_POSTGRES=1
export VKUBE_VCSIM_BIN="$repo/target/vcsim/vcsim"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Doc tests are off (the crates carry none that run); every binary's result
# is summed into one closing line.
set +e
cargo test --workspace --locked --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(sed -n 's/^test result: .* \([0-9]\+\) passed;.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -n 's/^test result: .* \([0-9]\+\) failed;.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "vkube: $passed passed, $failed failed"
exit "$status"
