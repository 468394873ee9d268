#!/usr/bin/env bash
# THE serve command (README.md): sets up a fresh machine, builds the CLI and the browser
# app on the default model (LiteMedSAM), and serves the repository root at
# http://127.0.0.1:${PORT:-8080}/ (loopback only) with `medseg serve`.
#
# Steps: scripts/setup.sh; cargo build --release --bin medseg; scripts/fetch-weights.sh
# (converts the weights with that binary); the wasm package into pkg/; medseg serve.
# CARGO_TARGET_DIR (default ~/.cache/medseg/target) persists between runs.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${PORT:-8080}"
MEDSEG_BIN="$CARGO_TARGET_DIR/release/medseg"
WASM_TARGET=wasm32-unknown-unknown

build_cli() {
  cargo build --release --bin medseg
}

fetch_weights() {
  MEDSEG_BIN="$MEDSEG_BIN" scripts/fetch-weights.sh
}

# The browser library, release build.
build_wasm() {
  cargo build --lib --release --target "$WASM_TARGET"
}

# Turns the raw wasm into the JS + wasm package under pkg/. For now a placeholder that
# copies the raw module: the browser app adds wasm-bindgen (pinned wasm-bindgen-cli,
# installed by setup.sh) here.
wasm_bindgen_pkg() {
  local wasm="$CARGO_TARGET_DIR/$WASM_TARGET/release/medseg.wasm"
  [ -f "$wasm" ] || die "no $wasm after the wasm build"
  mkdir -p pkg
  cp -f "$wasm" pkg/medseg_bg.wasm
  log "pkg/medseg_bg.wasm: raw module, wasm-bindgen not wired yet (browser app)"
}

phase setup
scripts/setup.sh
phase cli
build_cli
phase weights
fetch_weights
phase wasm
build_wasm
wasm_bindgen_pkg
phase_end

log "open http://127.0.0.1:$PORT/"
exec "$MEDSEG_BIN" serve --root . --port "$PORT"
