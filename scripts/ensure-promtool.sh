#!/usr/bin/env bash
# Install promtool (Debian's prometheus package) when it is missing: the tests check that
# the supervisor's merged /metrics is valid Prometheus exposition text with it.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
    exit 0
fi
echo "promtool not found: installing the prometheus package with apt-get" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to apt-get install prometheus" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Only the tool is needed: the package's service is not started (policy-rc.d says no).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
