#!/usr/bin/env bash
# Installs what manul's build, demo and tests need on Debian 12 (as root): the kernel tools,
# podman with the reference CNI plugins, nftables, protoc, busybox for the test image, BIRD 2
# and GoBGP for bgpd's interop tests, etcd (and openssl for its TLS test certificates) for the
# datastore and cluster tests, iperf3 and ethtool for the lab's benchmark, and
# kubernetes-validate (PyPI, through pip) for the manifests' validation test.
set -euo pipefail
packages=(
  iproute2 iputils-ping procps nftables iptables
  podman runc containernetworking-plugins busybox-static
  protobuf-compiler build-essential pkg-config
  bird2 gobgpd etcd-server etcd-client openssl iperf3 ethtool python3-pip
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "installing: kubernetes-validate (pip)"
  pip3 install --quiet --break-system-packages kubernetes-validate
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "cargo not found: install Rust with rustup (https://rustup.rs), then run this again" >&2
    exit 1
  fi
fi
