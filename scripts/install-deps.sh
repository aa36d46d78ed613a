#!/usr/bin/env bash
# Installs the Debian packages Switchboard builds against and tests with (Debian 12, as root).
set -euo pipefail
pkgs="nftables libnftables-dev libnftnl-dev libmnl-dev ipset libipset-dev conntrack libnetfilter-conntrack-dev iproute2 socat
  etcd-server openssl xz-utils curl python3 iptables"
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq $missing >/dev/null
fi
