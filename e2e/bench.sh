#!/usr/bin/env bash
# Builds the workspace in release (agent, bench) and the plugin as it ships (statically linked),
# and runs the CNI latency benchmark with that plugin.
# Usage: e2e/bench.sh [--pods N] [--concurrent M] [--json out.json]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
scripts/build-plugin.sh
exec target/release/manul-cni-bench --plugin target/release/static/manul "$@"
