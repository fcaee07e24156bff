#!/usr/bin/env bash
# Installs what sdnfwd needs on a fresh Debian 12 machine (root), and nothing
# when it is all there already. Rust comes with the machine.
set -euo pipefail
pkgs=(gcc libc6-dev make pkg-config libelf-dev clang llvm m4 libpcap-dev
      openvswitch-switch iputils-ping iproute2 ethtool python3-seccomp iptables)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools/deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "tools/deps.sh: cargo not found (install Rust)" >&2; exit 1; }
for c in fmt clippy; do
  cargo "$c" --version >/dev/null 2>&1 || { echo "tools/deps.sh: cargo $c not found (rustup component add ${c/fmt/rustfmt})" >&2; exit 1; }
done
