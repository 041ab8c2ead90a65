#!/usr/bin/env bash
# vkube's main job, end to end against the bundled vCenter simulator:
# installs what is missing, builds vkube and the simulator, starts a
# simulator (2 datacenters x 2 clusters), and runs vkube against it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/install-deps.sh
vcsim="$(bash scripts/build-vcsim.sh | tail -n 1)"
echo "== building vkube"
cargo build --quiet -p vkube-cli
vkube="$repo/target/debug/vkube"

work="$(mktemp -d)"
ca="$work/vcsim-ca.pem"
"$vcsim" -username demo-admin -password 'demo-Pa55' -dc 2 -cluster 2 -host 2 -vm 2 -ds 2 -pod 1 \
    -ca-out "$ca" -privileges catalogs/privileges/vsphere-8.txt -privileges catalogs/privileges/vsphere-extra.txt \
    >"$work/vcsim.out" 2>"$work/vcsim.log" &
sim_pid=$!
cleanup() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    [ -s "$work/vcsim.out" ] && break
    sleep 0.1
done
url="$(head -n 1 "$work/vcsim.out")"

# Connection settings as govc users have them; the simulator's CA is trusted explicitly.
export GOVC_URL="$url" GOVC_USERNAME=demo-admin GOVC_PASSWORD='demo-Pa55' GOVC_DATACENTER=DC0
export VKUBE_CA_FILE="$ca" VKUBE_STATE="$work/state.db"

step() { printf '\n\033[1m$ vkube %s\033[0m\n' "$*"; "$vkube" "$@"; }

step about
step ls /
step ls host
step inventory
step ippool create nodes --subnet 10.20.0.0/24 --gateway 10.20.0.1 --name-servers 10.20.0.2 --exclude 10.20.0.2-10.20.0.9
step ippool ls
echo
echo "demo finished: vkube talked to $url"
