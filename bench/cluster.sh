#!/usr/bin/env bash
# Cluster bench (issues 6 and 13): on a simulator with realistic method
# delays (clone 3 s, reconfigure 0.3 s, power-on 0.5 s), `vkube cluster
# apply --wait created` (the simulator runs no Kubernetes) of a 3
# control-plane + 20 worker cluster over 2 placement domains and `vkube
# cluster delete`, against the strongest peer: a pyVmomi script
# running each node's chain (clone, reconfigure, power-on; for delete
# power-off, destroy) on PARALLEL threads (bench/pyvmomi_clone.py). ROUNDS
# (3) interleaved rounds, vkube then the peer, each run on a fresh
# simulator; medians reported. Prints wall times and SOAP round trips,
# vkube/peer and vkube/limit. Exits non-zero if an apply or delete fails, a
# delete leaves VMs behind, or vkube's median is slower than the peer's
# (create or delete). The sequential pyVmomi loop (~88 s a run) is not run
# any more: three of them would triple the bench's time for a row vkube
# beats sevenfold.
#
#   bench/cluster.sh
#   PROFILE=release PARALLEL=8 WORKERS=20 ROUNDS=3 bench/cluster.sh
#   CLONE_MS=3000 RECONFIGURE_MS=300 POWER_ON_MS=500 bench/cluster.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
profile="${PROFILE:-debug}"
parallel="${PARALLEL:-8}"
rounds="${ROUNDS:-3}"
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
stop_sim() {
    if [ -n "$vcsim_pid" ]; then kill "$vcsim_pid" 2>/dev/null || true; wait "$vcsim_pid" 2>/dev/null || true; fi
    vcsim_pid=""
}
cleanup() {
    stop_sim
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A fresh simulator for each timed run: no run pays for another's VMs or events.
start_sim() {
    : >"$work/vcsim.out"
    "$vcsim" -username bench -password bench-pw -cluster 2 -ds 2 \
        -privileges catalogs/privileges/vsphere-8.txt -privileges catalogs/privileges/vsphere-extra.txt \
        -method-delay "CloneVM_Task=$clone_ms,ReconfigVM_Task=$reconfigure_ms,PowerOnVM_Task=$power_on_ms" \
        >"$work/vcsim.out" 2>"$work/vcsim.log" &
    vcsim_pid=$!
    for _ in $(seq 1 200); do [ -s "$work/vcsim.out" ] && break; sleep 0.05; done
    url="$(head -n 1 "$work/vcsim.out")"
    [ -n "$url" ] || { echo "FAIL: the simulator printed no URL" >&2; cat "$work/vcsim.log" >&2; exit 1; }
    export VKUBE_URL="$url" VC_URL="$url"
}

export VKUBE_USERNAME=bench VKUBE_PASSWORD=bench-pw VKUBE_INSECURE=1
export VC_USERNAME=bench VC_PASSWORD=bench-pw
py() { "$pyvmomi_python" -W ignore "$repo/bench/pyvmomi_clone.py" "$@"; }
quiet() { grep -v '^warning: TLS verification is off' || true; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$1" "$2"; }
trips_of() { sed -n 's/^api-round-trips: //p' "$1" | tail -n 1; }

# The shared two-domain example, scaled to the bench's size.
python3 - "$repo/examples/cluster-two-az.yaml" "$work/cluster.yaml" "$control_planes" "$workers" <<'PY'
import sys
src, dst, control_planes, workers = sys.argv[1:]
text = open(src).read().replace("name: two-az", "name: bench", 1)
text = text.replace("  controlPlane:\n    replicas: 1", f"  controlPlane:\n    replicas: {control_planes}", 1)
text = text.replace("    - name: workers\n      replicas: 3", f"    - name: workers\n      replicas: {workers}", 1)
if f"replicas: {control_planes}" not in text or f"replicas: {workers}" not in text:
    sys.exit("FAIL: examples/cluster-two-az.yaml no longer has the replica lines this bench scales")
open(dst, "w").write(text)
PY
printf 'Cl0ud-Pa55!\n' >"$work/cloud.password"

# One vkube round on a fresh simulator: setup (not timed), apply and delete
# (timed), the apply's event log, and a check that nothing is left.
vkube_round() {
    local r=$1
    start_sim
    export VKUBE_STATE="$work/state-$r.db"
    # The two placement domains must exist under these names.
    "$vkube" inventory -o json 2>/dev/null >"$work/inventory.json"
    python3 - "$work/inventory.json" <<'PY'
import json, sys
inv = json.load(open(sys.argv[1]))
have = {o["path"] for k in ("computeClusters", "resourcePools", "datastores", "networks") for o in inv[k]}
want = {"/DC0/host/DC0_C0", "/DC0/host/DC0_C0/Resources", "/DC0/datastore/LocalDS_0", "/DC0/network/VM Network",
        "/DC0/host/DC0_C1", "/DC0/host/DC0_C1/Resources", "/DC0/datastore/LocalDS_1", "/DC0/network/DC0_DVPG0"}
missing = sorted(want - have)
if missing:
    sys.exit(f"FAIL: not in the simulator's inventory: {missing}")
PY
    "$vkube" ippool import -f examples/ippools.yaml 2>&1 | quiet >/dev/null
    # The cluster's CPI/CSI user the example spec names, with its roles.
    "$vkube" cluster credentials set demo-cloud --username k8s-demo@vsphere.local \
        --password-file "$work/cloud.password" 2>&1 | quiet >/dev/null
    "$vkube" roles apply vsphere-cloud --principal k8s-demo@vsphere.local \
        --bind datacenter=/DC0 --bind compute-cluster=/DC0/host/DC0_C0 --bind compute-cluster=/DC0/host/DC0_C1 \
        --bind datastore=/DC0/datastore/LocalDS_0 --bind datastore=/DC0/datastore/LocalDS_1 \
        --bind vm-folder=/DC0/vm 2>&1 | quiet >/dev/null
    local baseline after t0 t1 t2 t3 passes
    baseline="$(py vms)"

    echo "round $r: vkube cluster apply, $control_planes control plane + $workers workers, --parallel $parallel ($profile build)..." >&2
    t0=$(now)
    if ! "$vkube" --stats cluster apply -f "$work/cluster.yaml" --parallel "$parallel" --wait created >"$work/apply.out" 2>"$work/apply.err"; then
        echo "FAIL: vkube cluster apply failed:" >&2
        quiet <"$work/apply.err" >&2; cat "$work/apply.out" >&2
        exit 1
    fi
    t1=$(now)
    py ops bench- >"$work/ops-$r.json"
    echo "round $r: vkube cluster delete..." >&2
    t2=$(now)
    if ! "$vkube" --stats cluster delete bench --shutdown-timeout 1 >"$work/delete.out" 2>"$work/delete.err"; then
        echo "FAIL: vkube cluster delete failed:" >&2
        quiet <"$work/delete.err" >&2; cat "$work/delete.out" >&2
        exit 1
    fi
    t3=$(now)
    after="$(py vms)"
    python3 - "$baseline" "$after" <<'PY'
import json, sys
before, after = (json.loads(a) for a in sys.argv[1:3])
left = sorted(set(after["names"]) - set(before["names"]))
if left or after["count"] != before["count"]:
    sys.exit(f"FAIL: vkube cluster delete left VMs behind: {left}")
PY
    passes="$(sed -n 's/.* in \([0-9]*\) pass(es).*/\1/p' "$work/apply.out")"
    printf '{"start": %s, "end": %s, "create_s": %s, "create_trips": "%s", "delete_s": %s, "delete_trips": "%s", "passes": "%s"}\n' \
        "$t0" "$t1" "$(elapsed "$t0" "$t1")" "$(trips_of "$work/apply.err")" \
        "$(elapsed "$t2" "$t3")" "$(trips_of "$work/delete.err")" "$passes" >"$work/vkube-$r.json"
    stop_sim
}

# One peer round on a fresh simulator: the same nodes' chains on $parallel
# threads, then their removal on $parallel threads (both timed).
# shellcheck disable=SC2054 # the commas are inside --domain values
domains=(--domain /DC0/host/DC0_C0/Resources,/DC0/datastore/LocalDS_0
         --domain /DC0/host/DC0_C1/Resources,/DC0/datastore/LocalDS_1)
peer_round() {
    local r=$1
    start_sim
    echo "round $r: pyVmomi, $parallel threads: $nodes nodes, then their removal..." >&2
    py clone --nodes "$nodes" --threads "$parallel" --folder pyvmomi-threads --keep "${domains[@]}" >"$work/peer-create-$r.json"
    py delete --folder pyvmomi-threads --threads "$parallel" >"$work/peer-delete-$r.json"
    stop_sim
}

for r in $(seq 1 "$rounds"); do
    vkube_round "$r"
    peer_round "$r"
done

# --- report ---
python3 - "$work" "$rounds" "$nodes" "$parallel" "$clone_ms" "$reconfigure_ms" "$power_on_ms" <<'PY'
import json, math, statistics, sys
work = sys.argv[1]
rounds, nodes, parallel = (int(a) for a in sys.argv[2:5])
clone_s, reconfigure_s, power_on_s = (int(a) / 1000 for a in sys.argv[5:8])
load = lambda name: json.load(open(f"{work}/{name}"))
runs = range(1, rounds + 1)
vkube = [load(f"vkube-{r}.json") for r in runs]
peer_create = [load(f"peer-create-{r}.json") for r in runs]
peer_delete = [load(f"peer-delete-{r}.json") for r in runs]
ops = [load(f"ops-{r}.json") for r in runs]
for o in ops:
    if len(o) != nodes:
        sys.exit(f"FAIL: the event log shows {len(o)} vkube nodes, expected {nodes}")
med = statistics.median

rows = [
    ("create", "vkube", [v["create_s"] for v in vkube], [v["create_trips"] for v in vkube]),
    ("create", f"pyVmomi x{parallel}", [p["wall_s"] for p in peer_create], [p["round_trips"] for p in peer_create]),
    ("delete", "vkube", [v["delete_s"] for v in vkube], [v["delete_trips"] for v in vkube]),
    ("delete", f"pyVmomi x{parallel}", [p["wall_s"] for p in peer_delete], [p["round_trips"] for p in peer_delete]),
]
print(f"{'':<7}{'tool':<13}{'median s':>9}  {'runs s':<18}{'round trips':>12}")
for what, tool, walls, trips in rows:
    runs_s = " ".join(f"{w:.2f}" for w in walls)
    print(f"{what:<7}{tool:<13}{med(walls):>9.2f}  {runs_s:<18}{' '.join(str(t) for t in trips):>12}")
print()
# One node's chain of delayed calls, as vkube made them (event log, the
# busiest node of any run).
count = lambda o, kind: max(len(n[kind]) for n in o.values())
clones, reconfigures, power_ons = (max(count(o, k) for o in ops) for k in ("clone", "reconfigure", "powerOn"))
chain = clones * clone_s + reconfigures * reconfigure_s + power_ons * power_on_s
waves = math.ceil(nodes / parallel)
limit = chain * waves
create, peer = med(rows[0][2]), med(rows[1][2])
delete, peer_del = med(rows[2][2]), med(rows[3][2])
print(f"vkube per node (event log): {clones} clone, {reconfigures} reconfigure, {power_ons} power-on;"
      f" passes per apply: {' '.join(v['passes'] for v in vkube)}")
print(f"limit = chain x ceil({nodes}/{parallel}) = ({clones} x {clone_s:g} + {reconfigures} x {reconfigure_s:g}"
      f" + {power_ons} x {power_on_s:g}) x {waves} = {limit:.1f} s")
print(f"create: vkube / pyVmomi x{parallel}: {create / peer:.2f} | vkube / limit: {create / limit:.2f} ({create - limit:+.1f} s)")
print(f"delete: vkube / pyVmomi x{parallel}: {delete / peer_del:.2f}")
# Where vkube's create time went (simulator event times; a clone's event
# comes when its delayed call returns, so the call started clone_s earlier).
def timeline(v, o):
    first_clone = min(n["clone"][0] for n in o.values()) - clone_s
    last_power_on = max(n["powerOn"][-1] for n in o.values())
    return first_clone - v["start"], last_power_on - first_clone, v["end"] - last_power_on
parts = [timeline(v, o) for v, o in zip(vkube, ops)]
print(f"vkube create timeline (medians): start to first clone {med(p[0] for p in parts):.2f} s"
      f" | first clone to last power-on {med(p[1] for p in parts):.2f} s (limit {limit:.1f})"
      f" | last power-on to exit {med(p[2] for p in parts):.2f} s")
failed = []
if create > peer:
    failed.append(f"vkube creates slower ({create:.2f} s) than pyVmomi on {parallel} threads ({peer:.2f} s)")
if delete > peer_del:
    failed.append(f"vkube deletes slower ({delete:.2f} s) than pyVmomi on {parallel} threads ({peer_del:.2f} s)")
if failed:
    sys.exit("FAIL: " + "; ".join(failed))
PY
