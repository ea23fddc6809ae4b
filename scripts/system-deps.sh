#!/bin/sh
# Debian packages the test suite drives: Chromium (UI tests, through playwright) and iproute2 (`ip`, to bring
# up loopback inside `unshare -n` for the offline test). Installs only what is missing.
set -eu
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing="$missing iproute2"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing — run: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "installing Debian packages:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
