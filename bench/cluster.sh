#!/usr/bin/env bash
# Cluster bench (issue 6): on one simulator with realistic method delays
# (clone 3 s, reconfigure 0.3 s, power-on 0.5 s), `vkube cluster apply` of a
# 3 control-plane + 20 worker cluster over 2 placement domains, then
# `vkube cluster delete`; then the same 23 nodes with the strongest peer, a
# pyVmomi script running each node's chain on PARALLEL threads, and the
# sequential pyVmomi loop (bench/pyvmomi_clone.py). Prints wall time and SOAP
# round trips (per node) of each, vkube/peer and vkube/limit. Exits non-zero
# if the apply or delete fails, the delete leaves VMs behind, or vkube is
# slower than the threaded peer.
#
#   bench/cluster.sh
#   PROFILE=release PARALLEL=8 WORKERS=20 bench/cluster.sh
#   CLONE_MS=3000 RECONFIGURE_MS=300 POWER_ON_MS=500 bench/cluster.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
profile="${PROFILE:-debug}"
parallel="${PARALLEL:-8}"
control_planes=3                     # vkube's control plane: 1, 3 or 5
workers="${WORKERS:-20}"
clone_ms="${CLONE_MS:-3000}"
reconfigure_ms="${RECONFIGURE_MS:-300}"
power_on_ms="${POWER_ON_MS:-500}"
nodes=$((control_planes + workers))

bash scripts/install-deps.sh
# pyVmomi from Debian (python3-pyvmomi), for the system Python.
pyvmomi_python=/usr/bin/python3
if ! "$pyvmomi_python" -W ignore -c 'import pyVmomi' 2>/dev/null; then
    echo "installing python3-pyvmomi" >&2
    sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get install -y -q python3-pyvmomi >&2
fi
vcsim="$(bash scripts/build-vcsim.sh | tail -n 1)"
if [ "$profile" = release ]; then cargo build --quiet --release -p vkube-cli; else cargo build --quiet -p vkube-cli; fi
vkube="${CARGO_TARGET_DIR:-$repo/target}/$profile/vkube"

work="$(mktemp -d)"
vcsim_pid=""
cleanup() {
    if [ -n "$vcsim_pid" ]; then kill "$vcsim_pid" 2>/dev/null || true; wait "$vcsim_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$vcsim" -username bench -password bench-pw -cluster 2 -ds 2 \
    -privileges catalogs/privileges/vsphere-8.txt -privileges catalogs/privileges/vsphere-extra.txt \
    -method-delay "CloneVM_Task=$clone_ms,ReconfigVM_Task=$reconfigure_ms,PowerOnVM_Task=$power_on_ms" \
    >"$work/vcsim.out" 2>"$work/vcsim.log" &
vcsim_pid=$!
for _ in $(seq 1 200); do [ -s "$work/vcsim.out" ] && break; sleep 0.05; done
url="$(head -n 1 "$work/vcsim.out")"
[ -n "$url" ] || { echo "FAIL: the simulator printed no URL" >&2; cat "$work/vcsim.log" >&2; exit 1; }

export VKUBE_URL="$url" VKUBE_USERNAME=bench VKUBE_PASSWORD=bench-pw VKUBE_INSECURE=1 VKUBE_STATE="$work/state.db"
export VC_URL="$url" VC_USERNAME=bench VC_PASSWORD=bench-pw
py() { "$pyvmomi_python" -W ignore "$repo/bench/pyvmomi_clone.py" "$@"; }
quiet() { grep -v '^warning: TLS verification is off' || true; }

# The two placement domains must exist under these names.
"$vkube" inventory -o json 2>/dev/null >"$work/inventory.json"
python3 - "$work/inventory.json" <<'EOF'
import json, sys
inv = json.load(open(sys.argv[1]))
have = {o["path"] for k in ("computeClusters", "resourcePools", "datastores", "networks") for o in inv[k]}
want = {"/DC0/host/DC0_C0", "/DC0/host/DC0_C0/Resources", "/DC0/datastore/LocalDS_0", "/DC0/network/VM Network",
        "/DC0/host/DC0_C1", "/DC0/host/DC0_C1/Resources", "/DC0/datastore/LocalDS_1", "/DC0/network/DC0_DVPG0"}
missing = sorted(want - have)
if missing:
    sys.exit(f"FAIL: not in the simulator's inventory: {missing}")
EOF

# The shared two-domain example, scaled to the bench's size.
python3 - "$repo/examples/cluster-two-az.yaml" "$work/cluster.yaml" "$control_planes" "$workers" <<'EOF'
import sys
src, dst, control_planes, workers = sys.argv[1:]
text = open(src).read().replace("name: two-az", "name: bench", 1)
text = text.replace("  controlPlane:\n    replicas: 1", f"  controlPlane:\n    replicas: {control_planes}", 1)
text = text.replace("    - name: workers\n      replicas: 3", f"    - name: workers\n      replicas: {workers}", 1)
if f"replicas: {control_planes}" not in text or f"replicas: {workers}" not in text:
    sys.exit("FAIL: examples/cluster-two-az.yaml no longer has the replica lines this bench scales")
open(dst, "w").write(text)
EOF

"$vkube" ippool import -f examples/ippools.yaml 2>&1 | quiet >/dev/null
# The cluster's CPI/CSI user the example spec names, with its roles (not timed).
printf 'Cl0ud-Pa55!\n' >"$work/cloud.password"
"$vkube" cluster credentials set demo-cloud --username k8s-demo@vsphere.local \
    --password-file "$work/cloud.password" 2>&1 | quiet >/dev/null
"$vkube" roles apply vsphere-cloud --principal k8s-demo@vsphere.local \
    --bind datacenter=/DC0 --bind compute-cluster=/DC0/host/DC0_C0 --bind compute-cluster=/DC0/host/DC0_C1 \
    --bind datastore=/DC0/datastore/LocalDS_0 --bind datastore=/DC0/datastore/LocalDS_1 \
    --bind vm-folder=/DC0/vm 2>&1 | quiet >/dev/null
baseline="$(py vms)"

# --- vkube: apply (timed), then delete ---
echo "vkube cluster apply: $control_planes control plane + $workers workers, --parallel $parallel ($profile build)..." >&2
start=$(date +%s.%N)
if ! "$vkube" --stats cluster apply -f "$work/cluster.yaml" --parallel "$parallel" >"$work/apply.out" 2>"$work/apply.err"; then
    echo "FAIL: vkube cluster apply failed:" >&2
    quiet <"$work/apply.err" >&2; cat "$work/apply.out" >&2
    exit 1
fi
end=$(date +%s.%N)
vkube_trips="$(sed -n 's/^api-round-trips: //p' "$work/apply.err" | tail -n 1)"
passes="$(sed -n 's/.* in \([0-9]*\) pass(es).*/\1/p' "$work/apply.out")"
py ops bench- >"$work/ops.json"

if ! "$vkube" cluster delete bench --shutdown-timeout 1 >"$work/delete.out" 2>"$work/delete.err"; then
    echo "FAIL: vkube cluster delete failed:" >&2
    quiet <"$work/delete.err" >&2; cat "$work/delete.out" >&2
    exit 1
fi
after="$(py vms)"
python3 - "$baseline" "$after" <<'EOF'
import json, sys
before, after = (json.loads(a) for a in sys.argv[1:3])
left = sorted(set(after["names"]) - set(before["names"]))
if left or after["count"] != before["count"]:
    sys.exit(f"FAIL: vkube cluster delete left VMs behind: {left}")
EOF

# --- pyVmomi: the same chains on $parallel threads, then sequentially ---
# shellcheck disable=SC2054 # the commas are inside --domain values
domains=(--domain /DC0/host/DC0_C0/Resources,/DC0/datastore/LocalDS_0
         --domain /DC0/host/DC0_C1/Resources,/DC0/datastore/LocalDS_1)
echo "pyVmomi, $parallel threads: $nodes nodes..." >&2
py clone --nodes "$nodes" --threads "$parallel" --folder pyvmomi-threads "${domains[@]}" >"$work/threads.json"
echo "pyVmomi sequential clone loop: $nodes nodes (~$(( nodes * (clone_ms + reconfigure_ms + power_on_ms) / 1000 )) s)..." >&2
py clone --nodes "$nodes" "${domains[@]}" >"$work/pyvmomi.json"

# --- report ---
python3 - "$work/ops.json" "$work/pyvmomi.json" "$work/threads.json" <<EOF
import json, math, sys
ops = json.load(open(sys.argv[1]))
peer = json.load(open(sys.argv[2]))
threaded = json.load(open(sys.argv[3]))
nodes, cps, workers, parallel = $nodes, $control_planes, $workers, $parallel
clone_s, reconfigure_s, power_on_s = $clone_ms / 1000, $reconfigure_ms / 1000, $power_on_ms / 1000
start, end = $start, $end
vkube_wall, vkube_trips, passes = end - start, int("$vkube_trips"), "$passes"

if len(ops) != nodes:
    sys.exit(f"FAIL: the event log shows {len(ops)} vkube nodes, expected {nodes}")
count = lambda kind: max(len(o[kind]) for o in ops.values())
clones, reconfigures, power_ons = count("clone"), count("reconfigure"), count("powerOn")
# The slowest node's chain of delayed calls, as vkube made them (event log).
chain = clones * clone_s + reconfigures * reconfigure_s + power_ons * power_on_s
# Workers wait for the control plane: two waves of ceil(n / parallel) chains.
cp_waves, worker_waves = math.ceil(cps / parallel), math.ceil(workers / parallel)
limit = chain * (cp_waves + worker_waves)
naive = chain * math.ceil(nodes / parallel)

rows = [("vkube", nodes, vkube_wall, vkube_trips),
        (f"pyVmomi x{parallel}", threaded["nodes"], threaded["wall_s"], threaded["round_trips"]),
        ("pyVmomi loop", peer["nodes"], peer["wall_s"], peer["round_trips"])]
print(f"{'tool':<14}{'nodes':>6}{'wall s':>9}{'round trips':>13}{'per node':>10}")
for tool, n, wall, trips in rows:
    print(f"{tool:<14}{n:>6}{wall:>9.1f}{trips:>13}{trips / n:>10.1f}")
print()
print(f"vkube / pyVmomi x{parallel}: {vkube_wall / threaded['wall_s']:.2f}"
      f" | vkube / pyVmomi loop: {vkube_wall / peer['wall_s']:.2f}")
print(f"vkube per node (event log): {clones} clone, {reconfigures} reconfigure, {power_ons} power-on")
print(f"node chain = {clones} x {clone_s:g} + {reconfigures} x {reconfigure_s:g} + {power_ons} x {power_on_s:g} = {chain:.1f} s")
print(f"limit = chain x (ceil({cps}/{parallel}) + ceil({workers}/{parallel})) = {chain:.1f} x {cp_waves + worker_waves} = {limit:.1f} s"
      f" (workers wait for the control plane)")
print(f"vkube wall / limit: {vkube_wall / limit:.2f} ({vkube_wall - limit:+.1f} s)"
      f"; against chain x ceil({nodes}/{parallel}) = {naive:.1f} s, ignoring that wait: {vkube_wall / naive:.2f}")

# Where vkube's wall time went (simulator event times; a clone's event comes
# when its delayed call returns, so the call started clone_s earlier).
def span(prefix):
    group = [o for name, o in ops.items() if name.startswith(prefix)]
    return min(o["clone"][0] for o in group) - clone_s, max(o["powerOn"][-1] for o in group)
cp_first, cp_last = span("bench-cp-")
w_first, w_last = span("bench-workers-")
print(f"vkube timeline ({passes} passes): start to first clone {cp_first - start:.1f} s"
      f" | control plane {cp_last - cp_first:.1f} s (limit {chain * cp_waves:.1f})"
      f" | to first worker clone {w_first - cp_last:.1f} s"
      f" | workers {w_last - w_first:.1f} s (limit {chain * worker_waves:.1f})"
      f" | after last power-on {end - w_last:.1f} s")
peer_limit = (clone_s + reconfigure_s + power_on_s) * math.ceil(nodes / parallel)
print(f"one chain per node, no waiting for the control plane: limit {peer_limit:.1f} s;"
      f" vkube / that limit: {vkube_wall / peer_limit:.2f}")
if vkube_wall > threaded["wall_s"]:
    sys.exit(f"FAIL: vkube ({vkube_wall:.1f} s) is slower than pyVmomi on {parallel} threads ({threaded['wall_s']:.1f} s)")
EOF
