#!/usr/bin/env bash
# Run the harness' own Go tests (tools/vcsim/harness_test.go) in GOPATH mode
# against Debian's govmomi. Extra arguments go to `go test`, e.g. -run TestBinary -v.
# With VCSIM_BIN=/path/to/vcsim, TestBinary exercises that binary instead of
# the test binary acting as main().
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/tools/vcsim"
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= exec go test "$@" ./...
