#!/usr/bin/env bash
# The demo command (README): builds sdnfwd and runs it on the embedded
# default cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cargo build --release --quiet
exec ./target/release/sdnfwd demo "$@"
