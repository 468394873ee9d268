#!/usr/bin/env bash
# Browser benchmark: encoder, decoder and propagation ms per frame of LiteMedSAM and the
# small SAM 2.1 fixture model, on WebGPU and on the CPU backend, in headless Chromium
# (tests/e2e/bench.mjs; environment knobs documented there). Same setup as
# scripts/test-browser.sh (builds pkg/, serves the root). WebGPU in headless Chromium here
# is SwiftShader, a CPU implementation: real GPUs are far faster.
set -euo pipefail
MEDSEG_E2E_RUN=bench exec "$(dirname "${BASH_SOURCE[0]}")/test-browser.sh" "$@"
