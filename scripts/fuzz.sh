#!/usr/bin/env bash
# Fuzzing of every parser of user data (issue 13; FUZZING.md records the runs):
#   scripts/fuzz.sh [TARGET|all] [SECONDS]      default: all targets, 600 s each
# Targets (fuzz/targets.rs): safetensors pytorch nifti npz image frames dicom arguments.
# Builds fuzz/ with cargo-fuzz (installed here, pinned, when missing) on the nightly pinned
# in toolchains/wasm-threads/ (libFuzzer's coverage instrumentation and AddressSanitizer
# need a nightly), with overflow checks and debug assertions on. Each target's corpus
# (~/.cache/medseg/fuzz/corpus/TARGET, kept between runs) starts from fuzz/seeds/TARGET
# (and, for dicom, pydicom's small test files from the environment scripts/setup.sh
# installs). libFuzzer runs for SECONDS with a 2 GB memory limit (a small file that makes
# us allocate more is a finding: sizes are checked before allocating) and 30 s per input.
# Every crash, out-of-memory or timeout input is copied to fuzz/regressions/TARGET/, which
# tests/fuzz_regressions.rs runs in `cargo test`: fix it, keep the file. Prints a line per
# target (seconds, executions, corpus size, findings); exits 1 if there were findings.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CARGO_FUZZ_VERSION=0.13.2
ALL=(safetensors pytorch nifti npz image frames dicom arguments)
what=${1:-all}
seconds=${2:-600}
case "$what" in
  all) targets=("${ALL[@]}") ;;
  *)
    [[ " ${ALL[*]} " == *" $what "* ]] || die "unknown target '$what': one of ${ALL[*]}, or all"
    targets=("$what")
    ;;
esac
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || die "SECONDS must be a positive whole number, got '$seconds'"

channel=$(threads_toolchain)
if ! rustup run "$channel" rustc --version >/dev/null 2>&1; then
  log "rustup toolchain install $channel"
  rustup toolchain install "$channel" --profile minimal >&2
fi
if ! cargo fuzz --version 2>/dev/null | grep -q -F "$CARGO_FUZZ_VERSION"; then
  log "cargo install cargo-fuzz --version $CARGO_FUZZ_VERSION"
  CARGO_TARGET_DIR="$HOME/.cache/medseg/cargo-fuzz-target" \
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force >&2
  rm -rf "$HOME/.cache/medseg/cargo-fuzz-target"
fi

work="$HOME/.cache/medseg/fuzz"
fuzz=(cargo "+$channel" fuzz)
build=(--target-dir "$work/target" --debug-assertions)
log "building the targets (${targets[*]}) with $channel"
"${fuzz[@]}" build "${build[@]}" >&2

# pydicom's test files under 80 KB: every transfer syntax MedSeg decodes, and some it refuses.
dicom_seeds() {
  local py="$HOME/.cache/medseg/dicom-venv/bin/python" dir
  [ -x "$py" ] || return 0
  dir=$("$py" -c 'import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files"))')
  find "$dir" -maxdepth 1 -name '*.dcm' -size -80k -exec cp -n {} "$1/" \;
}

found=0
summary=()
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  mkdir -p "$corpus" "$artifacts" "$ROOT/fuzz/regressions/$t"
  cp -n "$ROOT/fuzz/seeds/$t/"* "$corpus/" 2>/dev/null || true
  [ "$t" = dicom ] && dicom_seeds "$corpus"
  log "$t: ${seconds} s from $(find "$corpus" -type f | wc -l) inputs"
  before=$(find "$artifacts" -type f | wc -l)
  rc=0
  "${fuzz[@]}" run "${build[@]}" "$t" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 2>"$work/$t.log" || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  new=$(($(find "$artifacts" -type f | wc -l) - before))
  for f in "$artifacts"/*; do
    [ -f "$f" ] && cp -n "$f" "$ROOT/fuzz/regressions/$t/"
  done
  if [ "$rc" != 0 ] || [ "$new" -gt 0 ]; then
    found=1
    log "$t: finding(s), see $work/$t.log (tail below); inputs copied to fuzz/regressions/$t/"
    tail -30 "$work/$t.log" >&2
  fi
  summary+=("$(printf '%-12s %6s s %12s execs %6s corpus %3s new findings (exit %s)' \
    "$t" "$seconds" "${execs:-?}" "$(find "$corpus" -type f | wc -l)" "$new" "$rc")")
done
printf '%s\n' "${summary[@]}"
exit "$found"
