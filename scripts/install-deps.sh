#!/usr/bin/env bash
# Install what building and testing vkube needs on a fresh Debian machine:
# Go and govmomi (the vCenter simulator), cloud-init (cloud-config schema
# checks), and kubernetes-validate from PyPI (StorageClass schema checks).
# Idempotent: installs only what is missing.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for pkg in golang-go golang-github-vmware-govmomi-dev cloud-init; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
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
