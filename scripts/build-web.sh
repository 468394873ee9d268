#!/usr/bin/env bash
# Builds the browser library into pkg/, two modules with one JavaScript API (web/worker.js
# picks one at run time, by feature detection):
#   pkg/medseg.js, pkg/medseg_bg.wasm (+ .d.ts): WebGPU (burn's wgpu backend) and the CPU
#     on one thread; stable Rust, features "wgpu".
#   pkg/threads/…: the CPU on a pool of Web Workers (rayon, wasm-bindgen-rayon), for pages
#     that are cross-origin isolated (SharedArrayBuffer) in browsers with relaxed SIMD
#     (its fused multiply-add in the matrix multiply: vendor/README.md); the pinned nightly of
#     toolchains/wasm-threads/ with `-Z build-std` (the standard library rebuilt with
#     atomics), features "threads", its own target dir. MEDSEG_WASM_THREADS=0 skips it
#     (the page then runs the CPU on one thread).
#   pkg/files.json: every file of pkg/, for the service worker to cache for offline use.
# Profile wasm-release of Cargo.toml, or MEDSEG_WASM_PROFILE=dev for a quick debug build;
# then wasm-bindgen (the pinned CLI that scripts/setup.sh installs) with --target web.
# Code is built with wasm SIMD (simd128: every current browser has it), which burn's CPU
# backend uses for its element-wise kernels (its matmul uses it either way); set
# MEDSEG_WASM_SIMD=0 for modules without it.
# Needs scripts/setup.sh to have run (wasm32 target, the nightly, wasm-bindgen-cli).
# CARGO_TARGET_DIR as in scripts/common.sh.
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

# The threaded module adds relaxed SIMD (Chrome/Edge 114+, Firefox 146+; not Safari, which
# runs WebGPU or the single-threaded module): gemm's and flex's multiply-adds as one
# instruction, 1.17x on the matrix multiplies (BENCHMARKS.md "wasm matrix multiply").
# web/worker.js checks for it.
SIMD=()
THREADS_SIMD=()
if [ "${MEDSEG_WASM_SIMD:-1}" = 1 ]; then
  SIMD=(-C target-feature=+simd128)
  THREADS_SIMD=(-C "target-feature=+simd128,+relaxed-simd")
fi
# Node before 22 compiles relaxed SIMD only when asked (for bindgen's import check).
NODE_WASM=()
if have node; then
  case "$(node --v8-options 2>/dev/null)" in
    *--experimental-wasm-relaxed-simd*) NODE_WASM=(--experimental-wasm-relaxed-simd) ;;
  esac
fi

# The wasm "name" section (function names for stack traces, ~7.6 MB of ~42 MB) is left
# out of the shipped modules; MEDSEG_WASM_NAMES=1 keeps it for debugging a panic's trace
# (console_error_panic_hook reports the panic message and location either way).
names=(--remove-name-section)
[ "${MEDSEG_WASM_NAMES:-0}" = 1 ] && names=()

# bindgen WASM OUT_DIR: wasm-bindgen's JS and module into OUT_DIR. The module may import
# only what wasm-bindgen's JS provides. A C function a Rust crate declares and nothing
# defines (openjp2's malloc & co., see src/io/dicom/wasm_libc.rs) becomes an "env" import
# that no browser can satisfy: refuse it here, by name (where node is installed:
# scripts/serve.sh may run without it; the browser tests always have it).
bindgen() {
  local wasm=$1 out=$2 env_imports=""
  [ -f "$wasm" ] || die "no $wasm after the build"
  wasm-bindgen --target web "${names[@]}" --out-dir "$out" --out-name medseg "$wasm"
  if have node; then
    env_imports=$(node "${NODE_WASM[@]}" -e '
      const m = new WebAssembly.Module(require("fs").readFileSync(process.argv[1]));
      console.log(WebAssembly.Module.imports(m).filter((i) => i.module === "env").map((i) => i.name).join(" "));
    ' "$out/medseg_bg.wasm")
  fi
  [ -z "$env_imports" ] || die "$out/medseg_bg.wasm imports undefined C functions from \"env\": $env_imports"
}

threads_build() {
  # Shared memory: atomics and bulk memory in every crate, the standard library included
  # (build-std); memory imported (threads share it) with a maximum (4 GiB, all wasm32
  # can address); the TLS symbols and __heap_base exported, which wasm-bindgen's thread
  # transform reads (nightlies from 2026-05 stop exporting __heap_base on their own).
  # --allow-undefined: Rust >= 1.96 no longer passes it to wasm-ld, and openjp2 (also a
  # cdylib) would not link alone; the final module's imports are checked by bindgen().
  local flags=(-C "target-feature=+atomics,+bulk-memory,+mutable-globals" "${THREADS_SIMD[@]}"
    -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296
    -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size
    -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
    -C link-arg=--export=__heap_base -C link-arg=--allow-undefined)
  # From the toolchain file's folder, so that rustup runs the pinned nightly.
  cd toolchains/wasm-threads &&
    CARGO_TARGET_DIR="$threads_target" CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${flags[*]}" \
      cargo build --manifest-path "$ROOT/Cargo.toml" -Z build-std=std,panic_abort \
      --lib --profile "$PROFILE" --target "$TARGET" --features threads
}

rm -rf pkg.partial
threads=${MEDSEG_WASM_THREADS:-1}
threads_target="$CARGO_TARGET_DIR/wasm-threads"
threads_log="$CARGO_TARGET_DIR/wasm-threads.log"
t0=$(date +%s)
# The two builds run side by side: each has long single-threaded stretches (the largest
# crates, the final codegen and link) that the other fills. The threaded build's output
# goes to its log, printed once it is done.
if [ "$threads" = 1 ]; then
  log "cargo +$(threads_toolchain) build -Z build-std=std,panic_abort --lib --profile $PROFILE --target $TARGET --features threads (output: $threads_log)"
  mkdir -p "$CARGO_TARGET_DIR"
  # The status is written whatever happens (under `set -e` a failing command would end
  # the subshell before it), and never left over from an earlier build.
  rm -f "$threads_log.status" "$threads_log.end"
  (
    rc=0
    threads_build >"$threads_log" 2>&1 || rc=$?
    echo "$rc" >"$threads_log.status"
    date +%s >"$threads_log.end"
  ) &
  threads_pid=$!
fi
log "cargo build --lib --profile $PROFILE --target $TARGET --features wgpu"
single_ok=1
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-} ${SIMD[*]}" \
  cargo build --lib --profile "$PROFILE" --target "$TARGET" --features wgpu || single_ok=0
t1=$(date +%s)
timing="single-threaded: cargo $((t1 - t0)) s"
if [ "$threads" = 1 ]; then
  wait "$threads_pid" || true
  cat "$threads_log" >&2
  [ "$(cat "$threads_log.status" 2>/dev/null)" = 0 ] || die "the threaded module's build failed (above)"
  timing+="; threaded: cargo $(($(cat "$threads_log.end") - t0)) s"
fi
[ "$single_ok" = 1 ] || die "the single-threaded module's build failed (above)"
t2=$(date +%s)
bindgen "$OUT_DIR/medseg.wasm" pkg.partial
if [ "$threads" = 1 ]; then
  case "$PROFILE" in
    dev) bindgen "$threads_target/$TARGET/debug/medseg.wasm" pkg.partial/threads ;;
    *) bindgen "$threads_target/$TARGET/$PROFILE/medseg.wasm" pkg.partial/threads ;;
  esac
fi
timing+="; wasm-bindgen $(($(date +%s) - t2)) s"

# What the service worker caches (paths from the app's root), snippets included: the
# threaded module's worker helper sits under a hashed folder name.
(
  cd pkg.partial
  sep=""
  printf '['
  while IFS= read -r f; do
    printf '%s"pkg/%s"' "$sep" "${f#./}"
    sep=","
  done < <(find . -type f ! -name '*.d.ts' ! -name files.json | sort)
  printf ']\n'
) >pkg.partial/files.json
rm -rf pkg
mv pkg.partial pkg
log "pkg/medseg_bg.wasm: $(wc -c <pkg/medseg_bg.wasm | tr -d ' ') bytes" \
  "$( [ -f pkg/threads/medseg_bg.wasm ] && echo "pkg/threads/medseg_bg.wasm: $(wc -c <pkg/threads/medseg_bg.wasm | tr -d ' ') bytes")" \
  "($PROFILE; $timing)"
