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
vkube="${CARGO_TARGET_DIR:-$repo/target}/debug/vkube"

work="$(mktemp -d)"
ca="$work/vcsim-ca.pem"
"$vcsim" -username demo-admin -password 'demo-Pa55' -dc 2 -cluster 2 -host 2 -vm 2 -ds 1 -pod 1 \
    -method-delay CloneVM_Task=400,ReconfigVM_Task=50,PowerOnVM_Task=100 \
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
echo; echo "### Permissions: what the vkube profile needs, granted and checked"
binds=(--bind datacenter=/DC0 --bind compute-cluster=/DC0/host/DC0_C0 --bind datastore=/DC0/datastore/LocalDS_0
       --bind network=/DC0/network/DC0_DVPG0 --bind vm-folder=/DC0/vm)
step roles list
step roles apply vkube --principal k8s-svc@vsphere.local "${binds[@]}" --dry-run
step roles apply vkube --principal k8s-svc@vsphere.local "${binds[@]}"
step roles check vkube --principal k8s-svc@vsphere.local "${binds[@]}"

echo; echo "### Regions and zones as vSphere tags"
step zones setup -f examples/topology.yaml
step zones ls
step zones validate || true   # findings exit 1; the demo goes on
step zones render --csi

echo; echo "### Static IP pools"
step ippool import -f examples/ippools.yaml
step ippool ls

echo; echo "### The cluster's own vCenter user for the cloud provider (CPI) and CSI driver"
printf '%s\n' 'demo-Cloud-Pa55' >"$work/cloud.password"
step cluster credentials set demo-cloud --username k8s-demo@vsphere.local --password-file "$work/cloud.password"
step cluster credentials ls
cloud_binds=(--bind datacenter=/DC0 --bind compute-cluster=/DC0/host/DC0_C0 --bind datastore=/DC0/datastore/LocalDS_0
             --bind vm-folder=/DC0/vm)
step roles apply vsphere-cloud --principal k8s-demo@vsphere.local "${cloud_binds[@]}"
step roles check vsphere-csi --principal k8s-demo@vsphere.local "${cloud_binds[@]}" --bind node-vms=/DC0/vm

echo; echo "### A node image: an image-builder style OVA for Kubernetes v1.30.2, imported as a template"
image=ubuntu-2204-kube-v1.30.2
ova="$(bash scripts/build-demo-ova.sh "$work/images" "$image" v1.30.2)"
step image import "$ova" --name "$image" --datastore datastore/LocalDS_0 --folder vm \
    --network "network/VM Network" --template --snapshot --prop guestinfo.hostname=node
step image import "$ova" --name "$image" --datastore datastore/LocalDS_0 --folder vm   # the same image: nothing to do
step image ls
step image check "$image" -f examples/cluster.yaml
# The demo cluster is built from the imported template.
sed "s#template: /DC0/vm/DC0_C0_RP0_VM0#template: /DC0/vm/$image#" examples/cluster.yaml >"$work/cluster.yaml"
# A spec for another Kubernetes version is refused before anything is cloned.
sed 's#kubernetesVersion: v1.30.2#kubernetesVersion: v1.29.4#' "$work/cluster.yaml" >"$work/cluster-v1.29.yaml"
step cluster plan -f "$work/cluster-v1.29.yaml" || true   # refused: the image carries v1.30.2

echo; echo "### A cluster: 3 control-plane nodes and 2 worker pools over 2 placement domains"
step cluster plan -f "$work/cluster.yaml"
step cluster apply -f "$work/cluster.yaml"
step cluster apply -f "$work/cluster.yaml"
step cluster describe demo
echo; echo "### Its add-ons (CNI, vSphere CPI and CSI, StorageClasses per zone), delivered with the first control-plane node"
step cluster addons demo
step cluster cloud-config demo
step state show
step ippool allocations nodes
step cluster scale demo --pool workers --replicas 1
step cluster kubeconfig demo --out "$work/demo.kubeconfig"
step cluster events demo
step cluster delete demo --shutdown-timeout 1
step ls /DC0/vm
echo
echo "demo finished: vkube talked to $url"
