#!/usr/bin/env bash
# Builds the manul CNI plugin as it ships: statically linked, so that it runs on any node's host
# (install-cni copies it there, and the host's C library may be older than the build's), as
# Calico's and the reference plugins do. The result is target/release/static/manul (under
# CARGO_TARGET_DIR when set); the workspace build keeps its dynamically linked target/release/manul.
# Usage: scripts/build-plugin.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# crt-static for this one binary only: as a workspace-wide flag it would break proc macros.
cargo rustc --release -p manul-agent --bin manul -- -C target-feature=+crt-static
mkdir -p "$target/release/static"
cp "$target/release/manul" "$target/release/static/manul.tmp"
mv "$target/release/static/manul.tmp" "$target/release/static/manul"
if readelf -l "$target/release/static/manul" | grep -q 'Requesting program interpreter'; then
  echo "$target/release/static/manul is dynamically linked: the static build failed" >&2
  exit 1
fi
echo "static CNI plugin: $target/release/static/manul"
