#!/bin/sh
# Install the Debian Prometheus server and promtool (used by tests/integration/observability).
# Idempotent: does nothing when both are already on PATH. Run as root (CI) before the tests.
set -eu
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a system service where an init system exists; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
command -v prometheus
command -v promtool
