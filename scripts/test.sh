#!/usr/bin/env bash
# Runs manul's whole test suite as root: formatting, lints, unit and property tests, and the
# namespace, podman and portmap tests against the real kernel. Builds once, in release.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: the namespace and podman tests need it" >&2; exit 1; }
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
# The plugin as it ships (statically linked), and the test of it that needs it.
scripts/build-plugin.sh
cargo test --release --workspace --no-fail-fast
cargo test --release --workspace --test static_plugin -- --ignored   # --workspace: no rebuild
