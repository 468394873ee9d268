#!/usr/bin/env bash
# Builds the browser library into pkg/: the crate for wasm32-unknown-unknown (profile
# wasm-release of Cargo.toml, or MEDSEG_WASM_PROFILE=dev for a quick debug build), then
# wasm-bindgen (the pinned CLI that scripts/setup.sh installs) with --target web:
#   pkg/medseg.js, pkg/medseg_bg.wasm (+ .d.ts).
# Code is built with wasm SIMD (simd128: every current browser has it), which burn's CPU
# backend uses for its element-wise kernels (its matmul uses it either way); set
# MEDSEG_WASM_SIMD=0 for a module without it.
# web/worker.js imports pkg/medseg.js. Needs scripts/setup.sh to have run (wasm32 target,
# wasm-bindgen-cli). CARGO_TARGET_DIR as in scripts/common.sh.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

TARGET=wasm32-unknown-unknown
PROFILE="${MEDSEG_WASM_PROFILE:-wasm-release}"
case "$PROFILE" in
  dev) OUT_DIR="$CARGO_TARGET_DIR/$TARGET/debug" ;;
  *) OUT_DIR="$CARGO_TARGET_DIR/$TARGET/$PROFILE" ;;
esac

want=$(wasm_bindgen_version)
have wasm-bindgen || die "wasm-bindgen is not installed: run scripts/setup.sh"
got=$(wasm_bindgen_installed)
[ "$got" = "$want" ] || die "wasm-bindgen $got does not match the crate's $want: run scripts/setup.sh"

if [ "${MEDSEG_WASM_SIMD:-1}" = 1 ]; then
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-} -C target-feature=+simd128"
fi

t0=$(date +%s)
log "cargo build --lib --profile $PROFILE --target $TARGET"
cargo build --lib --profile "$PROFILE" --target "$TARGET"
t1=$(date +%s)

wasm="$OUT_DIR/medseg.wasm"
[ -f "$wasm" ] || die "no $wasm after the build"
rm -rf pkg.partial
# The wasm "name" section (function names for stack traces, ~7.6 MB of ~42 MB) is left
# out of the shipped module; MEDSEG_WASM_NAMES=1 keeps it for debugging a panic's trace
# (console_error_panic_hook reports the panic message and location either way).
names=(--remove-name-section)
[ "${MEDSEG_WASM_NAMES:-0}" = 1 ] && names=()
wasm-bindgen --target web "${names[@]}" --out-dir pkg.partial --out-name medseg "$wasm"
# The module may import only what wasm-bindgen's JS provides. A C function a Rust crate
# declares and nothing defines (openjp2's malloc & co., see src/io/dicom/wasm_libc.rs)
# becomes an "env" import that no browser can satisfy: refuse it here, by name (where
# node is installed: scripts/serve.sh may run without it; the browser tests always have it).
env_imports=""
if have node; then
  env_imports=$(node -e '
    const m = new WebAssembly.Module(require("fs").readFileSync(process.argv[1]));
    console.log(WebAssembly.Module.imports(m).filter((i) => i.module === "env").map((i) => i.name).join(" "));
  ' pkg.partial/medseg_bg.wasm)
fi
[ -z "$env_imports" ] || die "pkg.partial/medseg_bg.wasm imports undefined C functions from \"env\": $env_imports"
rm -rf pkg
mv pkg.partial pkg
log "pkg/medseg_bg.wasm: $(wc -c <pkg/medseg_bg.wasm | tr -d ' ') bytes ($PROFILE)" \
  "(cargo $((t1 - t0)) s, wasm-bindgen $(($(date +%s) - t1)) s)"
