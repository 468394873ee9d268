# shellcheck shell=bash
# Shared by the scripts in scripts/: sourced, never run. Sets ROOT (the repository root,
# made the working directory) and CARGO_TARGET_DIR, and gives small helpers.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

# A persistent target dir outside the clone, so CI and fresh clones reuse artifacts.
if [ -z "${HOME:-}" ]; then
  HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
  export HOME
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/medseg/target}"

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# The sha256 of a file (coreutils, else Python).
sha256_of() {
  if have sha256sum; then
    sha256sum "$1" | cut -d' ' -f1
  else
    python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
  fi
}

# The version of the `wasm-bindgen` crate in Cargo.lock, and of the installed CLI (the
# two must match).
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock
}
wasm_bindgen_installed() {
  wasm-bindgen --version | awk '{ print $2 }'
}

# The nightly that builds the threaded browser module (its toolchain file's channel).
threads_toolchain() {
  sed -n 's/^channel *= *"\(.*\)".*/\1/p' "$ROOT/toolchains/wasm-threads/rust-toolchain.toml"
}

# Runs a command as root: directly when we are root, else through non-interactive sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif have sudo && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

# `apt-get install`s the named Debian packages, running `apt-get update` once first.
# Fails (status 1) where there is no apt-get or no root.
APT_UPDATED=${APT_UPDATED:-}
apt_install() {
  have apt-get || return 1
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Phase timing: `phase NAME` starts one (ending the previous), `phase_end` ends the last.
# Each prints `== phase NAME: SECONDS s`.
PHASE_NAME=""
PHASE_START=0
phase_end() {
  if [ -n "$PHASE_NAME" ]; then
    printf '== phase %s: %d s\n' "$PHASE_NAME" $(($(date +%s) - PHASE_START))
  fi
  PHASE_NAME=""
}
phase() {
  phase_end
  PHASE_NAME=$1
  PHASE_START=$(date +%s)
  printf '== phase %s: start\n' "$PHASE_NAME"
}
