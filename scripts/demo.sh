#!/usr/bin/env bash
# The one-node demo: starts manul-agent in a node namespace, runs two podman containers on a
# manul network, shows their addresses, the node's routes and a ping between them, and cleans
# up. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: the demo creates network namespaces" >&2; exit 1; }
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --bins
exec ./target/release/manul-demo "$@"
