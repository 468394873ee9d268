#!/usr/bin/env bash
# THE serve command (README.md): sets up a fresh machine, builds the CLI and the browser
# app on the default model (LiteMedSAM), and serves the repository root at
# http://127.0.0.1:${PORT:-8080}/ (loopback only) with `medseg serve`.
#
# Steps: scripts/setup.sh; cargo build --release --bin medseg; scripts/fetch-weights.sh
# (converts the weights with that binary); the wasm package into pkg/
# (scripts/build-web.sh); medseg serve.
# CARGO_TARGET_DIR (default ~/.cache/medseg/target) persists between runs.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${PORT:-8080}"
MEDSEG_BIN="$CARGO_TARGET_DIR/release/medseg"

build_cli() {
  cargo build --release --bin medseg
}

fetch_weights() {
  MEDSEG_BIN="$MEDSEG_BIN" scripts/fetch-weights.sh
}

phase setup
MEDSEG_SKIP_BROWSER_TESTS=1 scripts/setup.sh
phase cli
build_cli
phase weights
fetch_weights
phase wasm
scripts/build-web.sh
phase_end

log "open http://127.0.0.1:$PORT/"
exec "$MEDSEG_BIN" serve --root . --port "$PORT"
