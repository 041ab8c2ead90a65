//! The node-side shell: [`library`] (functions shared by the bootstrap
//! script and the systemd units, identical on every node) and
//! [`bootstrap`], the per-node script `vkube-bootstrap.service` runs at
//! every boot until it is done.
//!
//! What the bootstrap script does, each step safe to repeat after a
//! reboot:
//!
//! 1. Before kubeadm (skipped once `/etc/kubernetes/kubelet.conf` exists):
//!    find the NIC by its MAC (`/sys/class/net/*/address`, physical
//!    devices only), with DHCP detect the node's address (the source
//!    address of the route to the VIP, else the NIC's first global
//!    address, never the VIP itself), write the kube-vip manifest and the
//!    kubeadm config from their templates with those values, point
//!    containerd at the registry mirror and restart it, then run kubeadm,
//!    retrying with `kubeadm reset` until the API server behind the VIP
//!    answers.
//! 2. After kubeadm: delete the kubeadm config (token) and the staged CA
//!    keys; on the first node apply the add-on manifests in file-name
//!    order with the node's `admin.conf` (server-side apply, retried until
//!    the API answers), deleting each secret-bearing manifest once applied
//!    (others are renamed `*.applied`, so a reboot never re-applies an old
//!    version over one the runtime upgraded), and switch kube-vip from
//!    `super-admin.conf` to `admin.conf`; then mark the node done.

use std::fmt::Write as _;

use super::containerd::ENSURE_CONFIG_PATH;
use super::content::{
    ADDONS_DIR, ADMIN_KUBECONFIG, BOOTSTRAP_DONE, KUBEADM_CONFIG_PATH, KUBEADM_TEMPLATE_PATH,
    KUBE_VIP_PATH, KUBE_VIP_TEMPLATE_PATH, LIBRARY_PATH, OFFLOAD_UNIT, VKUBE_PKI,
};
use super::kube_vip::{self, ADMIN_CONF, SUPER_ADMIN_CONF};
use super::{shell_quote, NodeBootstrap, NIC_PLACEHOLDER, NODE_IP_PLACEHOLDER};
use crate::cluster::error::Error;
use crate::cluster::plan::NodeRole;

/// How many times the bootstrap script tries kubeadm before giving up.
pub const KUBEADM_ATTEMPTS: u32 = 30;
/// Seconds between kubeadm attempts.
pub const KUBEADM_RETRY_SECONDS: u32 = 20;
/// How many times each add-on manifest is applied before giving up.
pub const ADDON_ATTEMPTS: u32 = 60;
/// Seconds between add-on attempts.
pub const ADDON_RETRY_SECONDS: u32 = 10;

/// `/opt/vkube/lib.sh`: sourced by the bootstrap script, run as a
/// command by the units (`lib.sh tunnel-offload MAC`,
/// `lib.sh clear-guestinfo KEY…`). `VKUBE_SYS_NET` overrides
/// `/sys/class/net` (tests).
pub fn library() -> String {
    format!(
        r#"# vkube node library; generated, do not edit.
# Sourced by {bootstrap}; run as a command by vkube's systemd units.

vkube_log() {{
  echo "vkube: $*" >&2
}}

# vkube_nic MAC [TRIES]: the name of the physical NIC with MAC, waiting up
# to TRIES seconds for it to appear. The name is whatever the template's
# naming scheme gives it: vkube never renames the NIC.
vkube_nic() {{
  local mac=${{1,,}} tries=${{2:-60}} dev i
  for ((i = 0; i < tries; i++)); do
    for dev in "${{VKUBE_SYS_NET:-/sys/class/net}}"/*; do
      # Physical devices only: VLANs and bridges can share the MAC.
      [ -e "$dev/device" ] || continue
      if [ "$(cat "$dev/address" 2>/dev/null)" = "$mac" ]; then
        basename "$dev"
        return 0
      fi
    done
    sleep 1
  done
  return 1
}}

# vkube_node_ip NIC VIP [TRIES]: this node's address on NIC, waiting up to
# 2*TRIES seconds for one (DHCP): the source address of the route to VIP
# through NIC, else the NIC's first global address; never VIP itself, which
# kube-vip adds to the leader's NIC.
vkube_node_ip() {{
  local nic=$1 vip=$2 tries=${{3:-90}} family=-4 route dev src address i
  case "$vip" in *:*) family=-6 ;; esac
  for ((i = 0; i < tries; i++)); do
    route=$(ip "$family" -o route get "$vip" 2>/dev/null) || route=
    dev=$(sed -n -E 's/.* dev ([^ ]+).*/\1/p' <<<"$route")
    src=$(sed -n -E 's/.* src ([^ ]+).*/\1/p' <<<"$route")
    if [ "$dev" = "$nic" ] && [ -n "$src" ] && [ "$src" != "$vip" ]; then
      echo "$src"
      return 0
    fi
    address=$(ip "$family" -o addr show dev "$nic" scope global 2>/dev/null |
      awk -v vip="$vip" '{{ split($4, a, "/"); if (a[1] != vip) {{ print a[1]; exit }} }}')
    if [ -n "$address" ]; then
      echo "$address"
      return 0
    fi
    sleep 2
  done
  return 1
}}

# vkube_render TEMPLATE OUT MODE [KEY=VALUE...]: writes TEMPLATE to OUT
# (created with MODE before anything is written) with each @KEY@ replaced.
# Values must be plain words (interface names, addresses).
vkube_render() {{
  local template=$1 out=$2 mode=$3 pair key value
  shift 3
  local script=(-e '')
  for pair in "$@"; do
    key=${{pair%%=*}} value=${{pair#*=}}
    if ! [[ $value =~ ^[A-Za-z0-9_.:-]+$ ]]; then
      vkube_log "refusing to substitute @$key@ with '$value'"
      return 1
    fi
    script+=(-e "s|@$key@|$value|g")
  done
  install -m "$mode" /dev/null "$out.tmp" &&
    sed "${{script[@]}}" "$template" >"$out.tmp" &&
    mv -f "$out.tmp" "$out"
}}

{containerd}
# vkube_tunnel_offload MAC: turn off VMXNET3 UDP tunnel segmentation
# offload on the NIC with MAC (it corrupts VXLAN/Geneve traffic on
# hardware version 14+: pods reach each other by ICMP but not TCP).
vkube_tunnel_offload() {{
  local nic
  nic=$(vkube_nic "$1") || {{
    vkube_log "no network interface with MAC $1"
    return 1
  }}
  ethtool -K "$nic" tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off
}}

# vkube_clear_guestinfo KEY...: overwrite guestinfo KEYs (and KEY.encoding)
# so bootstrap secrets are no longer readable from inside the guest.
vkube_clear_guestinfo() {{
  local tool key candidate
  tool=$(command -v vmware-rpctool || true)
  for candidate in /usr/share/oem/bin/vmware-rpctool /oem/bin/vmware-rpctool; do
    if [ -z "$tool" ] && [ -x "$candidate" ]; then tool=$candidate; fi
  done
  if [ -z "$tool" ]; then
    vkube_log "vmware-rpctool not found: guestinfo stays readable inside the guest"
    return 0
  fi
  for key in "$@"; do
    if "$tool" "info-set $key ---" && "$tool" "info-set $key.encoding  "; then
      vkube_log "cleared $key"
    else
      vkube_log "could not clear $key"
    fi
  done
}}

# vkube_apply_addon FILE SECRET [ATTEMPTS] [DELAY]: server-side apply FILE
# with the node's admin.conf, retrying until the API server answers. Once
# applied, a SECRET (1) file is deleted, any other renamed FILE.applied; a
# missing FILE counts as applied before.
vkube_apply_addon() {{
  local file=$1 secret=$2 attempts=${{3:-{addon_attempts}}} delay=${{4:-{addon_delay}}} i
  if [ ! -f "$file" ]; then
    vkube_log "$(basename "$file") was applied before"
    return 0
  fi
  for ((i = 1; i <= attempts; i++)); do
    if kubectl --kubeconfig {admin_kubeconfig} --request-timeout=30s apply \
      --server-side --force-conflicts --field-manager=vkube -f "$file"; then
      if [ "$secret" = 1 ]; then rm -f "$file"; else mv -f "$file" "$file.applied"; fi
      vkube_log "applied $(basename "$file") (attempt $i)"
      return 0
    fi
    sleep "$delay"
  done
  vkube_log "could not apply $(basename "$file") in $attempts attempts"
  return 1
}}

if [ "${{BASH_SOURCE[0]}}" = "$0" ]; then
  case "${{1:-}}" in
    tunnel-offload) vkube_tunnel_offload "$2" ;;
    clear-guestinfo) shift; vkube_clear_guestinfo "$@" ;;
    *)
      echo "usage: $0 tunnel-offload MAC | clear-guestinfo KEY..." >&2
      exit 2
      ;;
  esac
fi
"#,
        bootstrap = super::content::BOOTSTRAP_SCRIPT_PATH,
        containerd = ENSURE_CONFIG_PATH,
        addon_attempts = ADDON_ATTEMPTS,
        addon_delay = ADDON_RETRY_SECONDS,
        admin_kubeconfig = ADMIN_KUBECONFIG,
    )
}

/// The add-on manifest path of `file_name` on the node.
pub fn addon_path(file_name: &str) -> String {
    format!("{ADDONS_DIR}/{file_name}")
}

/// The node's bootstrap script.
pub fn bootstrap(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let spec = input.spec;
    let mac = input.mac()?;
    let lease = input.static_lease()?;
    let control_plane = input.is_control_plane();
    let mut s = String::new();
    let w = &mut s;
    let _ = write!(
        w,
        r#"#!/bin/bash
# vkube bootstrap of {node} ({role:?}); generated, do not edit.
# Run at every boot by vkube-bootstrap.service until it is done; every step
# is safe to repeat.
set -uo pipefail
export PATH=/opt/bin:/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
export LC_ALL=C
. {library}

if [ -f {done} ]; then
  vkube_log 'node already bootstrapped'
  exit 0
fi

if [ ! -f /etc/kubernetes/kubelet.conf ]; then
  swapoff -a
  systemctl daemon-reload
"#,
        node = input.node,
        role = input.role,
        library = LIBRARY_PATH,
        done = BOOTSTRAP_DONE,
    );
    // The NIC name is needed by kube-vip, and to find the DHCP address.
    if control_plane || lease.is_none() {
        let _ = writeln!(w, "  mac={}", shell_quote(&mac));
        let _ = write!(
            w,
            r#"  nic=$(vkube_nic "$mac") || {{
    vkube_log "no network interface with MAC $mac"
    exit 1
  }}
"#
        );
    }
    match lease {
        Some(lease) => {
            let _ = writeln!(w, "  node_ip={}", shell_quote(&lease.address.to_string()));
        }
        None => {
            let _ = writeln!(w, "  vip={}", shell_quote(&input.vip.to_string()));
            let _ = write!(
                w,
                r#"  node_ip=$(vkube_node_ip "$nic" "$vip") || {{
    vkube_log "no address on $nic (DHCP)"
    exit 1
  }}
"#
            );
        }
    }
    let _ = writeln!(w, "  vkube_log \"node address $node_ip\"");
    if spec.disable_tunnel_offload() {
        let _ = writeln!(w, "  systemctl enable --now {OFFLOAD_UNIT}");
    }
    if spec.registry().is_some() {
        let _ = writeln!(w, "  vkube_containerd_certs_d");
    }
    if spec.registry().is_some() || spec.proxy().is_some() {
        // containerd must see the mirror config and proxy drop-in
        // before kubeadm pulls images through it.
        let _ = writeln!(w, "  systemctl restart containerd");
    }
    if control_plane {
        let _ = writeln!(
            w,
            "  vkube_render {KUBE_VIP_TEMPLATE_PATH} {KUBE_VIP_PATH} 0644 \"{}=$nic\" || exit 1",
            placeholder_key(NIC_PLACEHOLDER)
        );
    }
    let _ = writeln!(
        w,
        "  vkube_render {KUBEADM_TEMPLATE_PATH} {KUBEADM_CONFIG_PATH} 0600 \"{}=$node_ip\" || exit 1",
        placeholder_key(NODE_IP_PLACEHOLDER)
    );
    let restore = if control_plane {
        format!(
            "    # `kubeadm reset` deletes both; restore them before each attempt.
    mkdir -p /etc/kubernetes/pki /etc/kubernetes/manifests
    cp -a {VKUBE_PKI}/. /etc/kubernetes/pki/
    install -m 0644 {KUBE_VIP_PATH} /etc/kubernetes/manifests/kube-vip.yaml
"
        )
    } else {
        String::new()
    };
    let command = match input.role {
        NodeRole::Init => "init",
        NodeRole::ControlPlane | NodeRole::Worker => "join",
    };
    let _ = write!(
        w,
        r#"  joined=
  for attempt in $(seq 1 {KUBEADM_ATTEMPTS}); do
{restore}    if kubeadm {command} --config {KUBEADM_CONFIG_PATH}; then
      vkube_log "kubeadm {command} done after $attempt attempt(s)"
      joined=1
      break
    fi
    kubeadm reset --force || true
    sleep {KUBEADM_RETRY_SECONDS}
  done
  if [ -z "$joined" ]; then
    vkube_log 'kubeadm {command} failed {KUBEADM_ATTEMPTS} times'
    exit 1
  fi
fi

# The token and the staged CA keys are not needed any more.
rm -f {KUBEADM_CONFIG_PATH} {KUBEADM_TEMPLATE_PATH}
rm -rf {VKUBE_PKI}
"#
    );
    let addons = input.node_addons();
    let mut sorted: Vec<_> = addons.iter().collect();
    sorted.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    if !sorted.is_empty() {
        let _ = writeln!(w, "addons_applied=1");
        for manifest in sorted {
            let _ = writeln!(
                w,
                "vkube_apply_addon {} {} || addons_applied=",
                shell_quote(&addon_path(&manifest.file_name)),
                u8::from(manifest.has_secrets)
            );
        }
    }
    if kube_vip::kubeconfig(input) == SUPER_ADMIN_CONF {
        let _ = write!(
            w,
            r#"# kube-vip needed super-admin.conf only until kubeadm init made admin.conf work.
if grep -q 'path: {SUPER_ADMIN_CONF}' /etc/kubernetes/manifests/kube-vip.yaml 2>/dev/null; then
  sed -i 's#path: {SUPER_ADMIN_CONF}#path: {ADMIN_CONF}#' /etc/kubernetes/manifests/kube-vip.yaml
fi
"#
        );
    }
    if !addons.is_empty() {
        let _ = write!(
            w,
            r#"if [ -z "$addons_applied" ]; then
  vkube_log 'some add-ons are not applied yet; the next boot retries them'
  exit 1
fi
"#
        );
    }
    let _ = write!(w, "touch {BOOTSTRAP_DONE}\nvkube_log 'bootstrap done'\n");
    Ok(s)
}

/// `KEY` of an `@KEY@` placeholder.
fn placeholder_key(placeholder: &str) -> &str {
    placeholder.trim_matches('@')
}
