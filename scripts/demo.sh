#!/usr/bin/env bash
# The one-node demo: starts manul-agent in a node namespace, runs two podman containers on a
# manul network, shows their addresses, the node's routes and what talks to what (ping between
# the containers and to the node, HTTP through portmap), and cleans up. Run as root on Debian 12.
# Flags: --keep (leave it running and print how to look around), --quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: the demo creates network namespaces" >&2; exit 1; }
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --bins
exec ./target/release/manul-demo "$@"
