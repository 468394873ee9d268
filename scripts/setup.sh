#!/usr/bin/env bash
# Installs what MedSeg's build and tests need, idempotently: each step checks before it
# installs, so a second run does nothing. Called by scripts/test.sh and scripts/serve.sh;
# safe to run by hand. Needs a Rust toolchain (rustup) of at least the Cargo.toml
# rust-version; installs everything else (apt-get runs `apt-get update` once, first).
#
# Steps are functions, run in order by main(). What only the tests and the JavaScript
# type check need (chromium, node + the pinned playwright-core and typescript, the DICOM
# oracles) is skipped with MEDSEG_SKIP_BROWSER_TESTS=1 (scripts/serve.sh does).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The Rust toolchain is the one thing this script cannot install.
check_rust() {
  if ! have cargo || ! have rustc; then
    die "cargo/rustc not found: install Rust with rustup (version >= $(rust_version_needed))"
  fi
  local need have_v
  need=$(rust_version_needed)
  have_v=$(rustc --version | cut -d' ' -f2)
  if [ "$(printf '%s\n%s\n' "$need" "$have_v" | sort -V | head -n1)" != "$need" ]; then
    die "rustc $have_v is older than the rust-version $need of Cargo.toml ('rustup update')"
  fi
}

rust_version_needed() {
  sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1
}

# The browser build's target.
ensure_wasm_target() {
  local target=wasm32-unknown-unknown
  if [ -d "$(rustc --print sysroot)/lib/rustlib/$target" ]; then
    return 0
  fi
  have rustup || die "the Rust target $target is missing and there is no rustup to add it"
  log "rustup target add $target"
  rustup target add "$target" >&2
}

# The pinned nightly (with the standard library's sources) that builds the threaded
# browser module: toolchains/wasm-threads/rust-toolchain.toml names it.
ensure_threads_toolchain() {
  local channel
  channel=$(threads_toolchain)
  [ -n "$channel" ] || die "no channel in toolchains/wasm-threads/rust-toolchain.toml"
  if rustup run "$channel" rustc --version >/dev/null 2>&1 &&
    [ -d "$(rustup run "$channel" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    return 0
  fi
  have rustup || die "the threaded browser module needs rustup to install $channel"
  log "rustup toolchain install $channel (rust-src)"
  rustup toolchain install "$channel" --profile minimal --component rust-src >&2
}

# The default model (LiteMedSAM): downloaded, checked, and converted when a medseg binary
# exists (scripts/serve.sh and scripts/test.sh build one and run this again).
ensure_weights() {
  "$ROOT/scripts/fetch-weights.sh"
}

# wasm-bindgen-cli at exactly the version of the `wasm-bindgen` crate in Cargo.lock (the
# CLI and the crate must match). Installed with `cargo install` into ~/.cargo/bin.
ensure_wasm_bindgen_cli() {
  local want got
  want=$(wasm_bindgen_version)
  [ -n "$want" ] || die "no wasm-bindgen in Cargo.lock"
  if have wasm-bindgen; then
    got=$(wasm_bindgen_installed)
    [ "$got" = "$want" ] && return 0
    log "wasm-bindgen $got installed, Cargo.lock wants $want"
  fi
  log "cargo install wasm-bindgen-cli --version $want"
  # Its own target dir: the project's CARGO_TARGET_DIR holds the project's builds.
  CARGO_TARGET_DIR="$HOME/.cache/medseg/wasm-bindgen-cli-target" \
    cargo install wasm-bindgen-cli --version "$want" --force >&2
  rm -rf "$HOME/.cache/medseg/wasm-bindgen-cli-target"
}

# Headless Chromium for the browser tests (Debian's package: WebGPU through SwiftShader).
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  apt_install chromium fonts-dejavu-core >&2 || die "could not install chromium with apt-get"
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
}

# ShellCheck for the lint phase (Debian's package).
ensure_shellcheck() {
  have shellcheck && return 0
  apt_install shellcheck >&2 || die "could not install shellcheck with apt-get"
}

# Node.js (the test runner and the type checker), at least 20.
ensure_node() {
  if have node && have npm; then
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] && return 0
    log "node $(node --version) is older than 20 (playwright-core needs 20)"
  fi
  apt_install nodejs npm >&2 || die "could not install nodejs/npm with apt-get"
}

# The pinned devDependencies of package.json / package-lock.json (playwright-core, and
# typescript for the lint phase's JavaScript type check): `npm ci` when any is missing or
# at another version.
ensure_node_packages() {
  local stale
  # shellcheck disable=SC2016 # the ${...} are JavaScript template literals, for node
  stale=$(node -e '
    const fs = require("fs");
    for (const [name, want] of Object.entries(require("./package.json").devDependencies)) {
      let got = "";
      try { got = JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`, "utf8")).version; } catch {}
      if (got !== want) console.log(`${name}@${want}`);
    }')
  [ -z "$stale" ] && return 0
  log "npm ci (${stale//$'\n'/ })"
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the tests use Debian's chromium, never a download.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2
}

# The DICOM oracles of the tests (issue 11): Debian's dcm2niix (geometry) and dicom3tools
# (dciodvfy, the validator), and a Python venv with pydicom + its codec plug-ins (the
# decoding oracle), pydicom-data (the conformance corpus the tests read by path) and
# highdicom (a real Segmentation reader), pinned. The venv is made once and reinstalled
# only when `pip freeze` lacks a pinned version.
DICOM_VENV="$HOME/.cache/medseg/dicom-venv"
DICOM_PY_PINS=(
  pydicom==3.0.2 pydicom-data==1.0.0 pylibjpeg==2.1.0 pylibjpeg-libjpeg==2.5.0
  pylibjpeg-openjpeg==2.6.0 pylibjpeg-rle==2.2.0 highdicom==0.28.2 numpy==2.4.6
)
ensure_dicom_tools() {
  if ! have dcm2niix || ! have dciodvfy; then
    apt_install dcm2niix dicom3tools >&2 || die "could not install dcm2niix and dicom3tools with apt-get"
  fi
}
ensure_dicom_venv() {
  local py="$DICOM_VENV/bin/python" frozen missing=()
  if [ ! -x "$py" ]; then
    have python3 || apt_install python3 >&2 || die "could not install python3 with apt-get"
    log "python3 -m venv $DICOM_VENV"
    if ! python3 -m venv "$DICOM_VENV" >&2; then
      rm -rf "$DICOM_VENV"
      apt_install python3-venv >&2 || die "could not install python3-venv with apt-get"
      python3 -m venv "$DICOM_VENV" >&2
    fi
  fi
  frozen=$("$py" -m pip freeze 2>/dev/null || true)
  for pin in "${DICOM_PY_PINS[@]}"; do
    grep -qixF "$pin" <<<"$frozen" || missing+=("$pin")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "pip install ${missing[*]}"
  "$py" -m pip install -q --disable-pip-version-check "${DICOM_PY_PINS[@]}" >&2
}

main() {
  check_rust
  ensure_wasm_target
  ensure_threads_toolchain
  ensure_weights
  ensure_wasm_bindgen_cli
  ensure_shellcheck
  if [ "${MEDSEG_SKIP_BROWSER_TESTS:-0}" != 1 ]; then
    ensure_chromium
    ensure_node
    ensure_node_packages
    ensure_dicom_tools
    ensure_dicom_venv
  fi
  log "done"
}

main "$@"
