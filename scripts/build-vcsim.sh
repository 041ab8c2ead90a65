#!/usr/bin/env bash
# Build vkube's vCenter simulator harness (tools/vcsim) with Debian's govmomi.
# Idempotent: installs go/govmomi if missing, rebuilds only when a
# tools/vcsim/*.go file is newer than the binary. Works from any cwd.
# Last line of output: the binary's absolute path.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gopath=/usr/share/gocode
govmomi="$gopath/src/github.com/vmware/govmomi"
out_dir="$repo/target/vcsim"
bin="$out_dir/vcsim"

if ! command -v go >/dev/null 2>&1 || [ ! -d "$govmomi" ]; then
    echo "installing golang-go and golang-github-vmware-govmomi-dev" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go golang-github-vmware-govmomi-dev >&2
fi

need_build=0
if [ ! -x "$bin" ]; then
    need_build=1
else
    for f in "$repo"/tools/vcsim/*.go; do
        if [ "$f" -nt "$bin" ]; then need_build=1; break; fi
    done
fi

if [ "$need_build" -eq 1 ]; then
    mkdir -p "$out_dir"
    echo "building $bin" >&2
    (cd "$repo" && GO111MODULE=off GOPATH="$gopath" GOFLAGS= go build -o "$bin.tmp" ./tools/vcsim)
    mv -f "$bin.tmp" "$bin"
fi

echo "$bin"
