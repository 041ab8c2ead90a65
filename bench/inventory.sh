#!/usr/bin/env bash
# Inventory bench: `vkube inventory` against simulators with ~50 and ~500
# VMs; prints wall time and vCenter API round trips for each. The round
# trips must not grow with the VM count (one container view, one retrieve).
# PROFILE=release for representative wall times (default: debug, faster to build).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
profile="${PROFILE:-debug}"
bash scripts/install-deps.sh
vcsim="$(bash scripts/build-vcsim.sh | tail -n 1)"
if [ "$profile" = release ]; then cargo build --quiet --release -p vkube-cli; else cargo build --quiet -p vkube-cli; fi
vkube="$repo/target/$profile/vkube"

run_one() {
    local vms_per_pool="$1" out log pid url start end trips count
    out="$(mktemp)"; log="$(mktemp)"
    # 1 cluster + 1 standalone host = 2 resource pools, so VMs = 2 x vms_per_pool.
    "$vcsim" -username bench -password bench-pw -vm "$vms_per_pool" >"$out" 2>"$log" &
    pid=$!
    for _ in $(seq 1 200); do [ -s "$out" ] && break; sleep 0.05; done
    url="$(head -n 1 "$out")"
    start=$(date +%s%N)
    result="$(VKUBE_URL="$url" VKUBE_USERNAME=bench VKUBE_PASSWORD=bench-pw VKUBE_INSECURE=1 \
        "$vkube" inventory -o json --stats 2>&1 >"$out.json")"
    end=$(date +%s%N)
    trips="$(printf '%s\n' "$result" | sed -n 's/^api-round-trips: //p')"
    count="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["virtualMachines"])' "$out.json")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -f "$out" "$out.json" "$log"
    printf '%-6s VMs  %8.1f ms  %s API round trips (after login)\n' "$count" "$(python3 -c "print(($end-$start)/1e6)")" "$trips"
    echo "$trips" >>"$trips_file"
}

trips_file="$(mktemp)"
echo "vkube inventory ($profile build), wall time includes login and logout:"
run_one 25
run_one 250
if [ "$(sort -u "$trips_file" | wc -l)" -ne 1 ]; then
    echo "FAIL: round trips grew with the VM count" >&2
    exit 1
fi
echo "round trips constant: $(head -n 1 "$trips_file")"
rm -f "$trips_file"
