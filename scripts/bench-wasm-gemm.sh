#!/usr/bin/env bash
# gemm's f32 matrix multiply on one core of headless Chromium, in GFLOP/s, for three
# builds of tools/wasm-gemm-bench: upstream gemm-f32 (SIMD128), the vendored gemm-f32
# (vendor/README.md: 8x4 kernels), and the vendored one with relaxed SIMD; then the same
# products natively on one core, with gemm's AVX2 + FMA kernels and (where the processor
# has AVX-512F) its AVX-512 ones: how far 128-bit SIMD can get from native code. The
# evidence for the vendored change; BENCHMARKS.md "wasm matrix multiply" records a run.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

crate="$ROOT/tools/wasm-gemm-bench"
out="$CARGO_TARGET_DIR/wasm-gemm-bench"
mkdir -p "$out"
patch=(--config "patch.crates-io.gemm-f32.path=\"$ROOT/vendor/gemm-f32\"")
build() { # NAME RUSTFLAGS [cargo args...]
  local name=$1 flags=$2
  shift 2
  CARGO_TARGET_DIR="$out/target-$name" RUSTFLAGS="$flags" \
    cargo build --quiet --manifest-path "$crate/Cargo.toml" --release \
    --target wasm32-unknown-unknown "$@" >&2
  cp "$out/target-$name/wasm32-unknown-unknown/release/wasm_gemm_bench.wasm" "$out/$name.wasm"
}
log "building upstream, vendored and vendored+relaxed (wasm32, release)"
build upstream "-C target-feature=+simd128"
build vendored "-C target-feature=+simd128" "${patch[@]}"
build vendored-relaxed "-C target-feature=+simd128,+relaxed-simd" "${patch[@]}"
log "$(chromium --version 2>/dev/null | head -1); $(lscpu | sed -n 's/^Model name: *//p'); load $(cut -d' ' -f1-3 /proc/loadavg)"
node "$crate/run.mjs" "$out/upstream.wasm" "$out/vendored.wasm" "$out/vendored-relaxed.wasm"
# Natively the vendored gemm-f32 is upstream's code (vendor/README.md); patched all the
# same, so that the last build leaves the crate's Cargo.lock as committed.
native() { # NAME [cargo args...]: the native rows, on one core
  local name=$1
  shift
  CARGO_TARGET_DIR="$out/target-native" cargo build --quiet --manifest-path "$crate/Cargo.toml" \
    --release --bin wasm-gemm-bench "${patch[@]}" "$@" >&2
  taskset -c 0 "$out/target-native/release/wasm-gemm-bench" "$name"
}
native native-avx2
if grep -q -m1 -w avx512f /proc/cpuinfo; then
  native native-avx512 --features avx512
fi
