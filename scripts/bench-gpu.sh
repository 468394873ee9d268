#!/usr/bin/env bash
# Native GPU timings (burn's wgpu backend on Vulkan) of medsam2-t512 (random weights of
# the preset) and LiteMedSAM (real weights): image encoder, prompt + mask decoder, and
# video propagation per frame, in f32 and f16, with the f16 (and f32) masks checked
# against the CPU's f32 ones; then the same binary's CPU (flex) figures on the same
# machine. Ends with a Markdown table for BENCHMARKS.md ("Native GPU (wgpu)").
#
# Usage: scripts/bench-gpu.sh [run|pack]
#   run (default): the benchmark, on the machine with the GPU.
#   pack: on a machine with cargo's registry, builds the binary and puts what a run
#   needs into target/gpu-carry/ (an ignored path, under the device tool's 64 MiB
#   carry limit): medseg (stripped and gzipped: stripped alone it is over the limit),
#   LiteMedSAM weights (float16 file if the float32 one does not fit: timing does not
#   depend on the values, and the mask check compares the same weights on both sides),
#   the CT volume; then prints the command to run.
# Environment (all optional):
#   MEDSEG_BIN        a medseg built with `--features wgpu`, or pack's medseg.gz (else
#                     built here: cargo build --release --features wgpu --bin medseg)
#   MEDSEG_LITE       LiteMedSAM weights (default weights/lite_medsam.safetensors, else
#                     weights/.cache/lite_medsam.pth)
#   MEDSEG_CT         MedSAM .npz for the mask check (default the first ct-lesion case in
#                     ../shared/data/ct-lesion; its key slice 8 and lesion box)
#   GPU_BENCH_RUNS    timed encoder/decoder runs (5)
#   GPU_BENCH_FRAMES  propagated frames on wgpu (32); GPU_BENCH_CPU_FRAMES on the CPU (8)
#   GPU_BENCH_SIZE    frame side for propagation (512)
#   GPU_BENCH_DTYPES  float types on wgpu ("f32 f16")
#   GPU_BENCH_CPU     1: also the CPU figures (default 1)
#   GPU_BENCH_TIMEOUT seconds per medseg command before it is stopped (240)
#   GPU_BENCH_SOFTWARE 1: install Mesa's lavapipe (Debian's mesa-vulkan-drivers), a
#                     Vulkan driver that runs on the CPU, where no Vulkan driver is
#                     present. Only to test this script and the wgpu masks on a machine
#                     without a GPU: lavapipe is a CPU rasteriser, its times mean nothing.
# Run mode installs Vulkan's loader (Debian's libvulkan1) where it is missing: wgpu
# opens libvulkan.so.1 at run time. The GPU's own Vulkan driver comes with its driver.
# On the device machine (no network): carry a prebuilt binary and the weights, see
# BENCHMARKS.md "Native GPU (wgpu)".
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MODE=${1:-run}
case "$MODE" in run | pack) ;; *) die "usage: scripts/bench-gpu.sh [run|pack]" ;; esac
RUNS=${GPU_BENCH_RUNS:-5}
FRAMES=${GPU_BENCH_FRAMES:-32}
CPU_FRAMES=${GPU_BENCH_CPU_FRAMES:-8}
SIZE=${GPU_BENCH_SIZE:-512}
DTYPES=${GPU_BENCH_DTYPES:-f32 f16}
WITH_CPU=${GPU_BENCH_CPU:-1}
LIMIT=${GPU_BENCH_TIMEOUT:-240}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [[ ${MEDSEG_BIN:-} == *.gz ]]; then
  gzip -dc "$MEDSEG_BIN" >"$TMP/medseg" || die "could not unpack $MEDSEG_BIN"
  chmod +x "$TMP/medseg"
  MEDSEG=$TMP/medseg
elif [ -n "${MEDSEG_BIN:-}" ]; then
  MEDSEG=$MEDSEG_BIN
else
  phase build
  cargo build --release --features wgpu --bin medseg >&2
  MEDSEG="$CARGO_TARGET_DIR/release/medseg"
fi
[ -x "$MEDSEG" ] || die "no medseg binary at $MEDSEG"

LITE=${MEDSEG_LITE:-}
if [ -z "$LITE" ]; then
  for f in weights/lite_medsam.safetensors weights/.cache/lite_medsam.pth; do
    if [ -f "$f" ]; then
      LITE=$f
      break
    fi
  done
fi
[ -f "$LITE" ] || die "no LiteMedSAM weights (set MEDSEG_LITE; see weights/README.md)"
CT=${MEDSEG_CT:-../shared/data/ct-lesion/CT_Lesion_000001_02_01_008-023.npz}
[ -f "$CT" ] || die "no CT volume for the mask check at $CT (set MEDSEG_CT)"

if [ "$MODE" = pack ]; then
  CARRY=target/gpu-carry
  rm -rf "$CARRY"
  mkdir -p "$CARRY"
  if have strip; then strip -o "$TMP/medseg" "$MEDSEG"; else cp "$MEDSEG" "$TMP/medseg"; fi
  gzip -c "$TMP/medseg" >"$CARRY/medseg.gz"
  ct_name=$(basename "$CT")
  cp "$CT" "$CARRY/$ct_name"
  budget=$((60 * 1024 * 1024))
  used=$(($(stat -c %s "$CARRY/medseg.gz") + $(stat -c %s "$CT")))
  if [ $((used + $(stat -c %s "$LITE"))) -le "$budget" ] && [[ $LITE == *.safetensors ]]; then
    cp "$LITE" "$CARRY/lite_medsam.safetensors"
  else
    log "float32 weights do not fit the carry limit next to the binary: storing float16"
    "$MEDSEG" convert "$LITE" "$CARRY/lite_medsam.safetensors" --half >&2
  fi
  du -b "$CARRY"/*
  total=$(du -cb "$CARRY"/* | tail -1 | cut -f1)
  [ "$total" -le $((64 * 1024 * 1024)) ] || die "$CARRY holds $total bytes: over the 64 MiB carry limit"
  echo "carry: [\"$CARRY\"]  ($total bytes)"
  echo "command: MEDSEG_BIN=$CARRY/medseg.gz MEDSEG_LITE=$CARRY/lite_medsam.safetensors" \
    "MEDSEG_CT=$CARRY/$ct_name scripts/bench-gpu.sh 2>&1 | tee \"\$OUT/bench-gpu.log\""
  exit 0
fi

# wgpu loads Vulkan's loader at run time, and a driver through its ICD files.
vulkan_loader() { "$(command -v ldconfig || echo /sbin/ldconfig)" -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; }
vulkan_drivers() { compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null; }
phase vulkan
if ! vulkan_loader; then
  apt_install libvulkan1 >&2 || die "no Vulkan loader (libvulkan.so.1) and apt-get could not install libvulkan1"
fi
if [ "${GPU_BENCH_SOFTWARE:-0}" = 1 ] && ! compgen -G '/usr/share/vulkan/icd.d/lvp_icd.*.json' >/dev/null; then
  apt_install mesa-vulkan-drivers >&2 || die "GPU_BENCH_SOFTWARE=1: apt-get could not install mesa-vulkan-drivers (lavapipe)"
fi
vulkan_drivers || log "no Vulkan driver (ICD file) in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d: wgpu will find no adapter"
# Mesa's Vulkan drivers probe Wayland, which prints an error per device opened where
# XDG_RUNTIME_DIR is unset (headless machines): give it an empty one.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$TMP}

phase machine
echo "== machine"
echo "date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "binary: $MEDSEG ($("$MEDSEG" --version))"
if have lscpu; then lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Socket)' || true; fi
if have nvidia-smi; then
  nvidia-smi -L || true
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
  echo "nvidia-smi: not present"
fi
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || true
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

ROWS=()
ADAPTER=""
OUT=$TMP/out

# run CMD...: runs medseg under the time limit, output shown and kept in $OUT; returns
# medseg's status (124: stopped at the limit).
run() {
  echo
  echo "\$ medseg $*"
  local rc=0
  timeout "$LIMIT" "$MEDSEG" "$@" >"$OUT" 2>&1 || rc=$?
  cat "$OUT"
  if [ "$rc" -ne 0 ]; then echo "(exit $rc$([ "$rc" -eq 124 ] && echo ", stopped after $LIMIT s"))"; fi
  if [ -z "$ADAPTER" ]; then ADAPTER=$(sed -n 's/^device \(wgpu: .*\) dtype .*/\1/p' "$OUT" | head -1); fi
  return "$rc"
}
# field PATTERN: the number before " ms" on the output's line matching PATTERN.
field() { grep -E "$1" "$OUT" | head -1 | sed -E 's/^[^0-9]*([0-9.]+) ms.*/\1/' || true; }
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | \`medseg $6\` |"); }
# failed STATUS: what the row of a command that failed says.
failed() {
  if grep -q 'has no f16 arithmetic' "$OUT"; then
    echo "not run: no f16 on this adapter"
  else
    echo "failed (exit $1)"
  fi
}

# bench MODEL_LABEL DEVICE DTYPE ARGS...: encoder and decoder.
bench() {
  local label=$1 dev=$2 dtype=$3
  shift 3
  local args=(bench "$@" --device "$dev" --dtype "$dtype" --runs "$RUNS")
  if run "${args[@]}"; then
    row "$label" "$dev $dtype" "encoder (first run)" "$(field '^encoder') ($(field '^first encoder'))" "" "${args[*]}"
    row "$label" "$dev $dtype" "prompt + decoder" "$(field '^prompt \+ decoder')" "" "${args[*]}"
  else
    row "$label" "$dev $dtype" "encoder, decoder" "$(failed $?)" "" "${args[*]}"
  fi
}

# video DEVICE DTYPE FRAMES: medsam2-t512 propagation.
video() {
  local dev=$1 dtype=$2 frames=$3
  local args=(bench-video --random medsam2-t512 --frames "$frames" --size "$SIZE" --device "$dev" --dtype "$dtype")
  if run "${args[@]}"; then
    local med first
    med=$(sed -nE 's/.*median of the rest ([0-9.]+) ms.*/\1/p' "$OUT")
    first=$(sed -nE 's/^per frame: first propagated ([0-9.]+) ms.*/\1/p' "$OUT")
    row "medsam2-t512" "$dev $dtype" "propagation per frame (first)" "$med ($first)" "${SIZE}², $frames frames" "${args[*]}"
  else
    row "medsam2-t512" "$dev $dtype" "propagation per frame" "$(failed $?)" "" "${args[*]}"
  fi
}

# check MODEL_LABEL DTYPE ARGS...: wgpu masks against the CPU's f32 ones.
check() {
  local label=$1 dtype=$2
  shift 2
  local args=(bench "$@" --device wgpu --dtype "$dtype" --check-masks --check-slice "$CT")
  if run "${args[@]}"; then
    local line
    while IFS= read -r line; do
      local iou diff
      iou=$(sed -nE 's/.*IoU ([0-9.]+).*/\1/p' <<<"$line")
      diff=$(sed -nE 's/.*max \|logit diff\| ([^ ]+) \(cpu f32 max \|logit\| ([^)]+)\).*/\1 (of max abs logit \2)/p' <<<"$line")
      row "$label" "wgpu $dtype vs cpu f32" "mask check: ${line%%: box*}" "IoU $iou, max abs logit diff $diff" "" "${args[*]}"
    done < <(grep ' IoU ' "$OUT")
  else
    row "$label" "wgpu $dtype vs cpu f32" "mask check" "$(failed $?)" "" "${args[*]}"
  fi
}

# The adapter first: without one, stop here with the reason.
phase wgpu
if ! run bench --model "$LITE" --device wgpu --dtype f32 --runs 1; then
  if grep -q "no wgpu adapter\|without the \`wgpu\` feature" "$OUT"; then
    die "no wgpu device: $(tail -1 "$OUT")"
  fi
fi
echo
echo "adapter: ${ADAPTER:-?}"
SOFTWARE=""
if [[ $ADAPTER == *", Cpu,"* ]]; then
  SOFTWARE="; a software (CPU) adapter: its times mean nothing, only the mask checks count"
  echo "WARNING: this adapter is a CPU rasteriser (lavapipe or the like), not a GPU: its times mean nothing"
fi

for dtype in $DTYPES; do
  bench "LiteMedSAM" wgpu "$dtype" --model "$LITE"
  if grep -q 'has no f16 arithmetic' "$OUT"; then
    echo
    echo "== $dtype: skipped, the adapter cannot compute in it: $(grep -m1 'has no f16 arithmetic' "$OUT")"
    continue
  fi
  bench "medsam2-t512" wgpu "$dtype" --random medsam2-t512
  video wgpu "$dtype" "$FRAMES"
  check "LiteMedSAM" "$dtype" --model "$LITE"
  check "medsam2-t512" "$dtype" --random medsam2-t512
done

if [ "$WITH_CPU" = 1 ]; then
  phase cpu
  bench "LiteMedSAM" cpu f32 --model "$LITE"
  bench "medsam2-t512" cpu f32 --random medsam2-t512
  video cpu f32 "$CPU_FRAMES"
fi
phase_end

echo
echo "== table (ms, median of $RUNS runs after a warm-up; adapter: ${ADAPTER:-?}$SOFTWARE)"
echo "| model | device | what | ms | input | command |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
