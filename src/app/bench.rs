//! Timing the loaded model on its device: the image encoder and the prompt + mask
//! decoder on a synthetic frame of the model's input size, each run ending in a read
//! back (so the device has finished), and LiteMedSAM's decoder training step on the
//! fine-tuning oracle's batch. Used by `medseg bench` and the browser's `bench()`,
//! each with its own clock.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::app::error::{AppError, AppResult};
use crate::app::model::LoadedModel;
use crate::app::training::{FineTuneConfig, FineTuner, TrainBatch};
use crate::io::image::RgbImage;
use crate::model::lite_medsam::LiteMedSam;
use crate::predictor::{ImagePrompt, Sam2ImagePredictor};
use crate::readback::read_f32;
use crate::weights::{HostTensor, TensorStore};

/// Median times in ms over the runs after the first (which includes warm-up, e.g.
/// shader compilation on WebGPU).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchFigures {
    pub first_encoder_ms: f64,
    pub encoder_ms: f64,
    pub decoder_ms: f64,
    /// Timed runs of each, after the first.
    pub runs: usize,
    /// The model's input side in pixels.
    pub image_size: usize,
}

/// Times `runs` (at least 1) encoder and decoder passes after a first one; `now()` is
/// the caller's clock in ms.
pub async fn bench_model(
    model: &LoadedModel,
    runs: usize,
    now: &dyn Fn() -> f64,
) -> AppResult<BenchFigures> {
    let runs = runs.max(1);
    let s = model.image_size();
    let image = synthetic_image(s);
    let b = s as f32;
    let box_xyxy = [b * 0.3, b * 0.3, b * 0.7, b * 0.7];
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    match model {
        LoadedModel::Sam2(m) => {
            let p = Sam2ImagePredictor::new(m);
            let prompt = ImagePrompt {
                box_xyxy: Some(box_xyxy),
                points: Vec::new(),
            };
            for _ in 0..=runs {
                let t = now();
                let e = p.set_image(&image)?;
                read_f32(e.features.embed.clone().slice([0..1, 0..1, 0..1, 0..1])).await?;
                enc.push(now() - t);
                let t = now();
                p.predict(&e, &prompt).await?;
                dec.push(now() - t);
            }
        }
        LoadedModel::LiteMedSam(m) => {
            let grey: Vec<u8> = image.grey().collect();
            let input = m.transform().prepare_gray(&grey, s, s)?;
            for _ in 0..=runs {
                let t = now();
                let e = m.encode(m.input_tensor(&input));
                read_f32(e.clone().slice([0..1, 0..1, 0..1, 0..1])).await?;
                enc.push(now() - t);
                let t = now();
                let (low, _) = m.decode(e, box_xyxy);
                read_f32(low).await?;
                dec.push(now() - t);
            }
        }
    }
    Ok(BenchFigures {
        first_encoder_ms: enc[0],
        encoder_ms: median(&enc[1..]),
        decoder_ms: median(&dec[1..]),
        runs,
        image_size: s,
    })
}

/// A smooth test pattern (a bright disk on a gradient) of side `s`.
pub fn synthetic_image(s: usize) -> RgbImage {
    let mut data = Vec::with_capacity(s * s * 3);
    let c = s as f32 / 2.0;
    for y in 0..s {
        for x in 0..s {
            let r = ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
            let v = if r < s as f32 / 5.0 {
                220
            } else {
                ((x + y) * 100 / (2 * s)) as u8
            };
            data.extend([v, v, v]);
        }
    }
    RgbImage {
        width: s,
        height: s,
        data,
    }
}

/// The median of `v` (`NaN` when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}

/// Median times in ms of LiteMedSAM decoder training steps on one batch (the
/// fine-tuning oracle's, BENCHMARKS.md), after warm-up steps.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FineTuneStepFigures {
    /// A whole step: forward, loss, backward over every micro-batch, then AdamW.
    pub step_ms: f64,
    /// The forward pass and loss alone (graph recorded, loss read back), timed
    /// separately from the steps: the rest of a step is backward and AdamW.
    pub forward_ms: f64,
    /// The AdamW update within a step.
    pub adamw_ms: f64,
    /// The total loss of the first step (before any update), to check the batch.
    pub first_loss: f64,
    pub batch: usize,
    pub micro_batch: usize,
    /// Timed steps, after the warm-up ones.
    pub runs: usize,
}

/// Warm-up steps before the timed ones (as `scripts/bench_finetune_step.py`).
pub const FINE_TUNE_WARM_UP: usize = 2;

/// Times `runs` (at least 1) training steps of a fresh [`FineTuner`] on `batch` (the
/// decoder moves at each, as in training) after [`FINE_TUNE_WARM_UP`] ones; `now()`
/// is the caller's clock in ms.
pub async fn bench_finetune_step(
    model: &LiteMedSam,
    batch: &TrainBatch,
    config: FineTuneConfig,
    runs: usize,
    now: &dyn Fn() -> f64,
) -> AppResult<FineTuneStepFigures> {
    let runs = runs.max(1);
    let mut tuner = FineTuner::new(model, config);
    let (mut step, mut forward, mut adamw) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_loss = f64::NAN;
    for i in 0..FINE_TUNE_WARM_UP + runs {
        let t = now();
        let loss = tuner.loss(batch).total();
        read_f32(loss).await?;
        let f = now() - t;

        let t = now();
        let g = tuner.gradients(batch).await.map_err(AppError::engine)?;
        let t_apply = now();
        tuner.apply_checked(&g).map_err(AppError::engine)?;
        let end = now();
        if i == 0 {
            first_loss = g.loss.total;
        }
        if i >= FINE_TUNE_WARM_UP {
            forward.push(f);
            step.push(end - t);
            adamw.push(end - t_apply);
        }
    }
    Ok(FineTuneStepFigures {
        step_ms: median(&step),
        forward_ms: median(&forward),
        adamw_ms: median(&adamw),
        first_loss,
        batch: batch.len(),
        micro_batch: config.micro_batch,
        runs,
    })
}

/// The fine-tuning oracle's batch (`batch.embedding`, `batch.box256`, `batch.gt256` of
/// `../shared/fixtures/finetune/lite-medsam-step.safetensors`) grown to `n` samples,
/// a multiple of its size: copy `k` of the samples has its boxes pushed out by `2k`
/// px within the 256 frame (as `tests/finetune.rs`' batch of 16 and
/// `scripts/bench_finetune_step.py`).
pub fn oracle_batch(store: &TensorStore, n: usize, device: &Device) -> AppResult<TrainBatch> {
    let get = |k: &str| {
        store
            .get(k)
            .ok_or_else(|| AppError::bad_input(format!("the fixture has no tensor `{k}`")))
    };
    let (emb, boxes, gt) = (
        get("batch.embedding")?,
        get("batch.box256")?,
        get("batch.gt256")?,
    );
    let b = emb.shape.first().copied().unwrap_or(0);
    if b == 0 || n == 0 || !n.is_multiple_of(b) || boxes.shape != [b, 4] {
        return Err(AppError::bad_input(format!(
            "batch {n}: a multiple of the fixture's {b} samples (boxes {:?})",
            boxes.shape
        )));
    }
    let reps = n / b;
    let mut grown = Vec::with_capacity(n * 4);
    for k in 0..reps {
        let d = 2.0 * k as f32;
        for r in boxes.data.chunks_exact(4) {
            grown.extend([
                (r[0] - d).max(0.0),
                (r[1] - d).max(0.0),
                (r[2] + d).min(255.0),
                (r[3] + d).min(255.0),
            ]);
        }
    }
    let repeat = |h: &HostTensor| -> AppResult<Tensor<4>> {
        if h.shape.len() != 4 {
            return Err(AppError::bad_input(format!(
                "the fixture's batch tensors are 4-D, got {:?}",
                h.shape
            )));
        }
        Ok(Tensor::cat(vec![h.to_tensor::<4>(device); reps], 0))
    };
    let batch = TrainBatch {
        embeddings: repeat(emb)?,
        high_res: None,
        boxes: Tensor::from_data(TensorData::new(grown, [n, 4]), device),
        gt: repeat(gt)?,
    };
    Ok(batch)
}

/// How far a model's masks on another device or float type are from a reference
/// run's: one image, one box.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaskCheck {
    /// IoU of the masks (logits > 0); 1 when both are empty.
    pub iou: f64,
    /// The largest |logit difference| over the compared logits.
    pub max_abs_logit: f64,
    /// The largest |logit| of the reference: the scale `max_abs_logit` is read against
    /// (random weights give logits near 0, where a small difference flips signs).
    pub max_abs_reference: f64,
    /// Foreground pixels of the reference mask and of the other one.
    pub reference_pixels: usize,
    pub pixels: usize,
    /// How many logits were compared (SAM 2: the full-size mask; LiteMedSAM: its
    /// 256×256 low-res logits).
    pub logits: usize,
}

/// Compares `candidate`'s mask logits to `reference`'s (the same weights loaded on
/// another device or in another float type) for `image` and one box in its pixels.
pub async fn compare_masks(
    reference: &LoadedModel,
    candidate: &LoadedModel,
    image: &RgbImage,
    box_xyxy: [f32; 4],
) -> AppResult<MaskCheck> {
    let a = box_logits(reference, image, box_xyxy).await?;
    let b = box_logits(candidate, image, box_xyxy).await?;
    if a.len() != b.len() {
        return Err(AppError::engine(format!(
            "the two models gave {} and {} logits: not the same model",
            a.len(),
            b.len()
        )));
    }
    let (mut inter, mut union, mut ra, mut rb) = (0usize, 0usize, 0usize, 0usize);
    let (mut max_abs_logit, mut max_abs_reference) = (0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        let (p, q) = (*x > 0.0, *y > 0.0);
        inter += usize::from(p && q);
        union += usize::from(p || q);
        ra += usize::from(p);
        rb += usize::from(q);
        max_abs_reference = max_abs_reference.max(x.abs() as f64);
        // NaN counts as infinitely far.
        let d = (x - y).abs() as f64;
        max_abs_logit = if d.is_nan() {
            f64::INFINITY
        } else {
            max_abs_logit.max(d)
        };
    }
    Ok(MaskCheck {
        iou: if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        },
        max_abs_logit,
        max_abs_reference,
        reference_pixels: ra,
        pixels: rb,
        logits: a.len(),
    })
}

/// The mask logits of one box on `image` (single mask output).
async fn box_logits(
    model: &LoadedModel,
    image: &RgbImage,
    box_xyxy: [f32; 4],
) -> AppResult<Vec<f32>> {
    match model {
        LoadedModel::Sam2(m) => {
            let p = Sam2ImagePredictor::new(m);
            let e = p.set_image(image)?;
            let prompt = ImagePrompt {
                box_xyxy: Some(box_xyxy),
                points: Vec::new(),
            };
            Ok(p.predict(&e, &prompt).await?.logits)
        }
        LoadedModel::LiteMedSam(m) => {
            let grey: Vec<u8> = image.grey().collect();
            let p = m
                .segment_gray(&grey, image.height, image.width, box_xyxy)
                .await?;
            Ok(p.low_res_logits)
        }
    }
}
