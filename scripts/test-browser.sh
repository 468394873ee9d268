#!/usr/bin/env bash
# The browser tests: headless Chromium (Debian's, WebGPU on SwiftShader) driven by
# playwright-core through node's test runner, against the app served by `medseg serve`.
#
#   1. pkg/ (scripts/build-web.sh; MEDSEG_SKIP_WEB_BUILD=1 keeps the pkg/ there is);
#   2. the test data the page needs, copied from ../shared (read-only, never served) to
#      test-output/e2e-data/ (git-ignored; the served root is the repository root);
#   3. `medseg serve --root . --port P` on a free loopback port (stopped at exit);
#   4. node --test --test-concurrency=1 tests/e2e/ (extra arguments are passed to node,
#      e.g. --test-name-pattern=parity; .mjs paths replace tests/e2e/, e.g.
#      tests/e2e/02-parity.test.mjs). Screenshots go to test-output/screenshots/.
# Needs scripts/setup.sh (chromium, node, playwright-core, wasm-bindgen-cli).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DATA=test-output/e2e-data

[ -x /usr/bin/chromium ] || die "no /usr/bin/chromium: run scripts/setup.sh"
[ -d node_modules/playwright-core ] || die "no node_modules/playwright-core: run scripts/setup.sh"

if [ "${MEDSEG_SKIP_WEB_BUILD:-0}" != 1 ]; then
  scripts/build-web.sh
fi
[ -f pkg/medseg_bg.wasm ] || die "no pkg/medseg_bg.wasm: run scripts/build-web.sh"

# The server: a medseg binary built by test.sh (debug) or serve.sh (release), else build one.
find_medseg() {
  local b best=""
  for b in "$CARGO_TARGET_DIR/debug/medseg" "$CARGO_TARGET_DIR/release/medseg"; do
    if [ -x "$b" ] && { [ -z "$best" ] || [ "$b" -nt "$best" ]; }; then best=$b; fi
  done
  [ -n "$best" ] && printf '%s\n' "$best"
}
MEDSEG_BIN=${MEDSEG_BIN:-$(find_medseg || true)}
if [ -z "$MEDSEG_BIN" ]; then
  cargo build --bin medseg
  MEDSEG_BIN="$CARGO_TARGET_DIR/debug/medseg"
fi
# The server, and the CLI that tests/e2e/09-one-engine.test.mjs compares the page with.
export MEDSEG_BIN

# Test data under the served root; this run's screenshots only.
mkdir -p "$DATA" test-output/screenshots
if [ "${MEDSEG_E2E_RUN:-test}" != bench ]; then rm -f test-output/screenshots/*.png; fi
copy() { # SRC DEST: copies when missing or different
  if ! cmp -s "$1" "$2"; then cp -f "$1" "$2"; fi
}
copy ../shared/fixtures/sam2-small/weights.safetensors "$DATA/sam2-small.safetensors"
copy ../shared/data/ct-lesion/CT_Lesion_000001_02_01_008-023.nii.gz "$DATA/ct1.nii.gz"
if [ -s weights/lite_medsam.safetensors ]; then
  lite_url=/weights/lite_medsam.safetensors
elif [ -s weights/.cache/lite_medsam.pth ]; then
  # Not converted yet (hidden paths are never served): the checkpoint loads as it is.
  copy weights/.cache/lite_medsam.pth "$DATA/lite_medsam.pth"
  lite_url=/$DATA/lite_medsam.pth
else
  die "no LiteMedSAM weights: run scripts/fetch-weights.sh"
fi

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
"$MEDSEG_BIN" serve --root . --port "$port" >test-output/e2e-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  if node -e 'require("http").get(process.argv[1],r=>process.exit(r.statusCode<500?0:1)).on("error",()=>process.exit(1))' \
    "http://127.0.0.1:$port/index.html"; then
    break
  fi
  sleep 0.2
done
log "serving $ROOT on http://127.0.0.1:$port/ ($MEDSEG_BIN, pid $server)"

export MEDSEG_URL="http://127.0.0.1:$port"
export MEDSEG_LITE_URL="$lite_url"
if [ "${MEDSEG_E2E_RUN:-test}" = bench ]; then
  # MEDSEG_BENCH_T512=FILE: also time a medsam2-t512 checkpoint (converted .safetensors).
  if [ -n "${MEDSEG_BENCH_T512:-}" ]; then
    copy "$MEDSEG_BENCH_T512" "$DATA/medsam2-t512.safetensors"
    export MEDSEG_BENCH_T512_URL="/$DATA/medsam2-t512.safetensors"
  fi
  node tests/e2e/bench.mjs "$@"
else
  files=()
  opts=()
  for a in "$@"; do
    case "$a" in
      *.mjs) files+=("$a") ;;
      *) opts+=("$a") ;;
    esac
  done
  [ ${#files[@]} -gt 0 ] || files=(tests/e2e/)
  node --test --test-concurrency=1 "${opts[@]}" "${files[@]}"
fi
