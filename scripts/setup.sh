#!/usr/bin/env bash
# Install what the build, the demo and the tests need on a fresh Debian 12 machine.
# Idempotent: skips apt when everything is already there. g++ and clang: the header is
# tested in every C and C++ mode with both compilers (tests/header_modes.rs); pkg-config:
# the install test (tests/install.rs).
set -euo pipefail

PKGS=(gcc g++ clang libc6-dev make procps pkg-config binutils)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found (Rust toolchain required)" >&2; exit 1; }
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
