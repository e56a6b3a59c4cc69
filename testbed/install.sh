#!/usr/bin/env bash
# install.sh -- installs (as root, with apt) everything the mailsrv tests and testbed need.
# Idempotent: does nothing when every package is installed already.
#   TESTBED_EXTRA_PACKAGES="bind9-dnsutils"  adds packages (delv makes smoke.sh validate DNSSEC too)
set -euo pipefail

PKGS=(knot knot-dnsutils dovecot-imapd dovecot-pop3d postfix openssl python3-pytest python3-mypy valgrind clang libclang-rt-14-dev pkg-config
      libssl-dev time  # these two: make bench (bench/certcheck_bench.c links libssl; /usr/bin/time -v)
      dnsmasq-base unbound   # the home-router forwarder and a non-validating recursor (tests/roadblocks.rs)
      nginx-light)           # the web server of account discovery (testbed/web.sh)
# shellcheck disable=SC2206
PKGS+=(${TESTBED_EXTRA_PACKAGES:-})

missing=()
for p in "${PKGS[@]}"; do
    if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
if (( ${#missing[@]} == 0 )); then
    echo "install.sh: all ${#PKGS[@]} packages are installed"
    exit 0
fi
echo "install.sh: missing: ${missing[*]}"

SUDO=()
if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { echo "install.sh: run as root" >&2; exit 1; }
    SUDO=(sudo)
fi

# no package may start its daemon at install time (there is no init system to stop it again)
if [[ ! -x /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
fi
# postfix: no system configuration (the testbed writes its own main.cf under its DIR)
echo "postfix postfix/main_mailer_type select No configuration" | "${SUDO[@]}" debconf-set-selections

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PKGS[@]}"
