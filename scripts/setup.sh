#!/usr/bin/env bash
# Install what the build, the demo and the tests need on a fresh Debian 12 machine.
# Idempotent: skips apt when everything is already there. g++ and clang: the header is
# tested in every C and C++ mode with both compilers (tests/header_modes.rs); pkg-config:
# the install test (tests/install.rs).
#
# Real-server tests (tests/mariadb*.rs, tests/apache*.rs, tests/servers/): MariaDB, Apache
# httpd (with apxs from apache2-dev to build the fault module), their clients and load
# generators; squid and libecap3-dev for the squid tests to come. The tests start their own
# private servers on loopback high ports; the Debian services these packages would start are
# kept from starting (policy-rc.d during the install) and stopped and disabled if they run.
set -euo pipefail

PKGS=(gcc g++ clang libc6-dev make procps pkg-config binutils
    mariadb-server mariadb-client libmariadb-dev mariadb-test
    apache2 apache2-dev apache2-utils sysbench wrk
    squid libecap3-dev)
SERVICES=(mariadb apache2 squid)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep maintainer scripts from starting services (invoke-rc.d honours policy-rc.d; exit
    # 101 = action forbidden). Only ours is removed afterwards.
    own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if ((own_policy)); then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi

# Stop and disable the packaged services if anything started them anyway: the tests run
# their own servers and a system one would hold the default ports and /run sockets.
for s in "${SERVICES[@]}"; do
    [[ -e /etc/init.d/$s || -e /lib/systemd/system/$s.service ]] || continue
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now -q "$s" 2>/dev/null || true
    else
        command -v update-rc.d >/dev/null && update-rc.d "$s" disable >/dev/null 2>&1 || true
    fi
done
# Whatever still runs from a packaged start: stop it by its pid file.
for pidfile in /run/mysqld/mysqld.pid /run/apache2/apache2.pid /run/squid.pid; do
    [[ -s $pidfile ]] || continue
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        echo "setup: stopping the packaged server with pid $pid ($pidfile)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

command -v cargo >/dev/null || { echo "setup: cargo not found (Rust toolchain required)" >&2; exit 1; }
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
