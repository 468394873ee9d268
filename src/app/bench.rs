//! Timing the loaded model on its device: the image encoder and the prompt + mask
//! decoder on a synthetic frame of the model's input size, each run ending in a read
//! back (so the device has finished). Used by `medseg bench` and the browser's
//! `bench()`, each with its own clock.

use serde::Serialize;

use crate::app::error::AppResult;
use crate::app::model::LoadedModel;
use crate::io::image::RgbImage;
use crate::predictor::{ImagePrompt, Sam2ImagePredictor};
use crate::readback::read_f32;

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
