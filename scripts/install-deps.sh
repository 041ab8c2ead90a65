#!/usr/bin/env bash
# Install what building and testing vkube needs on a fresh Debian machine:
# Go and govmomi (the vCenter simulator; Go also checks rendered keys and
# certificates with crypto/x509), cloud-init (cloud-config and network
# config checks), openssl and kubectl (key material, kubeconfigs), the
# linter shellcheck and containerd (bootstrap scripts, containerd configs),
# postgresql (the store's conformance suite starts its own server from
# /usr/lib/postgresql/<version>/bin), etcd (Debian's etcd-server: the etcd
# membership client runs against a real etcd its tests start on loopback
# addresses), qemu-utils (qemu-img: `vkube image import` converts
# qcow2/raw disks with it; tests and the demo build OVAs with it), and
# kubernetes-validate from PyPI (manifest schema checks).
# Idempotent: installs only what is missing.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for pkg in golang-go golang-github-vmware-govmomi-dev cloud-init openssl shellcheck containerd postgresql etcd-server qemu-utils; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# kubectl: the image may ship one; else Debian's kubernetes-client.
if ! command -v kubectl >/dev/null 2>&1; then
    missing+=(kubernetes-client)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    # The package enables a system etcd on 127.0.0.1:2379; the tests start their own.
    if [[ " ${missing[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null 2>&1; then
        $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
    fi
fi

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "installing kubernetes-validate (PyPI)" >&2
    python3 -m pip install --quiet kubernetes-validate >&2
    # pyenv installs console scripts behind shims that exist only after a rehash.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust 1.86 or later) is required" >&2
    exit 2
fi
