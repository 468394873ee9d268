#!/usr/bin/env bash
# THE test command (README.md; .ci/run calls it): sets up a fresh machine, then runs every
# test. Each phase prints `== phase NAME: SECONDS s`; the last line is the summary. Exits
# non-zero when any phase fails.
#
# Phases: setup (scripts/setup.sh: Rust target, weights, node packages), lint (bash -n and
# ShellCheck on every script, the JavaScript type check: tsc on jsconfig.json,
# jsconfig.sw.json and jsconfig.e2e.json; scripts/check-sw-shell.mjs; cargo fmt --check;
# cargo clippy -D warnings, native and wasm32), build (tests and
# the dev medseg binary), weights (convert the default model with that binary), test
# (cargo test --all-targets --no-fail-fast), web (the browser app's engine as shipped:
# scripts/build-web.sh, the two release wasm modules into pkg/), browser (the
# headless-Chromium end-to-end tests, scripts/test-browser.sh, against that pkg/ and the
# dev medseg binary as the server). Cold release wasm builds take ~17 min (WebGPU module)
# and ~8 min (threaded CPU module) on 2 cores; later runs reuse CARGO_TARGET_DIR.
#
# Dev profile on purpose: Cargo.toml builds the dependencies at opt-level 3 there, so the
# tests run fast without a release build. CARGO_TARGET_DIR (default
# ~/.cache/medseg/target) persists between runs. Extra arguments go to `cargo test`
# (e.g. scripts/test.sh serve).
set -uo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

T0=$(date +%s)
failed=()
skipped=()

# run_phase NAME COMMAND...: runs it timed; records a failure.
run_phase() {
  local name=$1 rc
  shift
  phase "$name"
  "$@"
  rc=$?
  phase_end
  if [ "$rc" -ne 0 ]; then
    echo "== phase $name FAILED (exit $rc)"
    failed+=("$name")
  fi
  return "$rc"
}

lint_scripts() {
  local f ok=0
  for f in scripts/*.sh .ci/run; do
    bash -n "$f" || ok=1
  done
  if have shellcheck; then
    shellcheck -x scripts/*.sh .ci/run || ok=1
  else
    echo "no shellcheck: scripts/setup.sh did not install it" >&2
    ok=1
  fi
  return $ok
}

# The JavaScript type check (tsc, the typescript pinned in package.json, installed by
# scripts/setup.sh): the page (jsconfig.json), the service worker (jsconfig.sw.json) and
# the browser tests (jsconfig.e2e.json); and that the service worker's offline shell lists
# every page module.
lint_js() {
  if [ ! -x node_modules/.bin/tsc ]; then
    if [ "${MEDSEG_SKIP_BROWSER_TESTS:-0}" = 1 ]; then
      echo "(MEDSEG_SKIP_BROWSER_TESTS=1: setup installed no node packages; JavaScript type check skipped)"
      return 0
    fi
    echo "no node_modules/.bin/tsc: scripts/setup.sh did not install the node packages" >&2
    return 1
  fi
  local ok=0 config
  for config in jsconfig.json jsconfig.sw.json jsconfig.e2e.json; do
    node_modules/.bin/tsc -p "$config" || ok=1
  done
  node scripts/check-sw-shell.mjs || ok=1
  return $ok
}

# Rust: formatting, and clippy with warnings as errors for the native targets (library,
# CLI, tests) and for the browser's wasm32 library (a code path only the browser
# compiles is linted too). Clippy's check builds share CARGO_TARGET_DIR, so only the
# first run is slow.
lint_rust() {
  local ok=0
  cargo fmt --check || ok=1
  cargo clippy --all-targets -- -D warnings || ok=1
  # The single-threaded module's features; the threaded one differs by one re-export and
  # needs the nightly with build-std (the web phase builds it).
  cargo clippy --lib --target wasm32-unknown-unknown --features wgpu -- -D warnings || ok=1
  return $ok
}

lint() {
  local ok=0
  lint_scripts || ok=1
  lint_js || ok=1
  lint_rust || ok=1
  return $ok
}

build_all() {
  cargo test --all-targets --no-run &&
    cargo build --bin medseg
}

convert_weights() {
  MEDSEG_BIN="$CARGO_TARGET_DIR/debug/medseg" scripts/fetch-weights.sh
}

run_tests() {
  cargo test --all-targets --no-fail-fast "$@"
}

run_browser_tests() {
  MEDSEG_SKIP_WEB_BUILD=1 MEDSEG_BIN="$CARGO_TARGET_DIR/debug/medseg" scripts/test-browser.sh
}

echo "== medseg tests: CARGO_TARGET_DIR=$CARGO_TARGET_DIR, $(rustc --version 2>/dev/null)"
run_phase setup scripts/setup.sh
run_phase lint lint
built=0
if run_phase build build_all; then
  built=1
  run_phase weights convert_weights
  run_phase test run_tests "$@"
else
  skipped+=(weights test)
fi
# The browser tests need the web build, the medseg binary (their server) and the weights.
if run_phase web scripts/build-web.sh && [ "$built" = 1 ] && [ -s weights/lite_medsam.safetensors ]; then
  run_phase browser run_browser_tests
else
  skipped+=(browser)
fi

total=$(($(date +%s) - T0))
if [ ${#failed[@]} -eq 0 ]; then
  echo "== summary: OK, all phases passed in $total s"
else
  msg="== summary: FAILED: ${failed[*]}"
  [ ${#skipped[@]} -gt 0 ] && msg+=" (skipped: ${skipped[*]})"
  echo "$msg; $total s"
  exit 1
fi
