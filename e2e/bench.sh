#!/usr/bin/env bash
# Builds the workspace in release (plugin, agent, bench) and runs the CNI latency benchmark.
# Usage: e2e/bench.sh [--pods N] [--concurrent M] [--json out.json]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
exec target/release/manul-cni-bench "$@"
