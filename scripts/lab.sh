#!/usr/bin/env bash
# The lab: a 4-node manul cluster in network namespaces on this machine (etcd, a top-of-rack
# router running BIRD that routes between two node subnets and peers with every node, each node
# running manul-agent and manul-bgpd, two pods per node through the CNI plugin, an outside host),
# then the BGP sessions, each node's routes by kind and the connectivity matrix (ping and TCP
# for every pod pair and to the outside host, with the path each took); removes everything and
# exits non-zero if a path fails. Run as root on Debian 12.
# Arguments go to `manul-lab run`: --nodes N, --pods N, --topology mesh|route-reflector,
# --tor on|off, --etcd-members 1|3. `scripts/lab.sh up ...` keeps the lab (then
# `target/release/manul-lab status` and `target/release/manul-lab down`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: the lab creates network namespaces" >&2; exit 1; }
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --bins
if [ "${1:-}" = "up" ]; then
  shift
  exec ./target/release/manul-lab up "$@"
fi
exec ./target/release/manul-lab run "$@"
