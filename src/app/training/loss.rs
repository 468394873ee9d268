//! The official LiteMedSAM training loss (`train_one_gpu.py`, as the MedSAM2 paper's
//! transfer learning uses it): MONAI `DiceLoss(sigmoid=True, squared_pred=True,
//! reduction="mean")` + `BCEWithLogitsLoss()` + `MSELoss()` of the IoU head against
//! the IoU of the thresholded mask, weights 1/1/1.
//!
//! SAM 2 / MedSAM2 heads have an object-score head too; official SAM 2 training
//! (`training/loss_fns.py` `MultiStepMultiMasksAndIous` as MedSAM2 configures it:
//! `loss_class: 1`, `focal_gamma_obj_score: 0.0`, `focal_alpha_obj_score: -1`, which is
//! plain BCE with logits) trains it against "the ground truth has foreground"
//! ([`object_score_loss`]), added to the three terms above with weight 1.
//!
//! Every term is a mean over the samples of a per-sample value, so a micro-batch's
//! loss weighted by its share of the batch adds up to the batch's loss.

use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};

/// MONAI's default `smooth_nr` and `smooth_dr`.
const DICE_SMOOTH: f32 = 1e-5;

/// The loss terms of one batch, each a one-element tensor carrying the graph.
#[derive(Clone, Debug)]
pub struct LossTensors {
    pub dice: Tensor<1>,
    pub bce: Tensor<1>,
    pub iou_mse: Tensor<1>,
    /// The object-score head's term (SAM 2); `None` for a model without the head.
    pub object_score: Option<Tensor<1>>,
}

impl LossTensors {
    /// The objective: the terms, each with weight 1.
    pub fn total(&self) -> Tensor<1> {
        let masks = self.dice.clone() + self.bce.clone() + self.iou_mse.clone();
        match &self.object_score {
            Some(o) => masks + o.clone(),
            None => masks,
        }
    }
}

/// Sums over the two spatial axes of `[B, 1, H, W]`, one row at a time and then the
/// rows, so that no f32 sum runs over more than `max(H, W)` terms: `[B]`.
fn spatial_sum(x: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = x.dims();
    x.reshape([b * c, h, w])
        .sum_dim(2)
        .sum_dim(1)
        .reshape([b * c])
}

/// The loss of low-res logits `[B, 1, H, W]` and predicted IoU `[B, 1]` against
/// ground-truth masks `[B, 1, H, W]` (0/1).
pub fn lite_medsam_loss(logits: Tensor<4>, iou_pred: Tensor<2>, gt: Tensor<4>) -> LossTensors {
    let [b, c, h, w] = logits.dims();
    let samples = (b * c) as f32;

    // MONAI DiceLoss: per sample and channel 1 − (2·Σpg + s)/(Σg² + Σp² + s), mean.
    let p = sigmoid(logits.clone());
    let inter = spatial_sum(p.clone() * gt.clone());
    let ground = spatial_sum(gt.clone() * gt.clone());
    let pred = spatial_sum(p.clone() * p);
    let dice_f = -((inter * 2.0 + DICE_SMOOTH) / (ground + pred + DICE_SMOOTH)) + 1.0;
    let dice = dice_f.sum() / samples;

    // BCE with logits in its stable form, max(x, 0) − x·y + log(1 + e^−|x|).
    let bce_el =
        relu(logits.clone()) - logits.clone() * gt.clone() + (-logits.clone().abs()).exp().log1p();
    let bce = spatial_sum(bce_el).sum() / (samples * (h * w) as f32);

    // The IoU head's target: IoU of sigmoid(logits) > 0.5 with the ground truth,
    // a constant (computed without gradient). Counts are exact in f32.
    let m = sigmoid(logits.detach()).greater_elem(0.5).float();
    let g = gt.greater_elem(0.5).float();
    let both = m.clone() * g.clone();
    let inter = spatial_sum(both.clone());
    let union = spatial_sum(m + g - both);
    let target = (inter / union.clamp_min(1.0)).reshape([b, c]);
    let diff = iou_pred - target;
    let iou_mse = (diff.clone() * diff).sum() / samples;

    LossTensors {
        dice,
        bce,
        iou_mse,
        object_score: None,
    }
}

/// BCE with logits of the object-score logits `[B, 1]` against whether each
/// ground truth `[B, 1, H, W]` has foreground (`target_obj` of `loss_fns.py`), the
/// mean over the samples.
pub fn object_score_loss(object_score_logits: Tensor<2>, gt: Tensor<4>) -> Tensor<1> {
    let [b, _] = object_score_logits.dims();
    let present = spatial_sum(gt.greater_elem(0.0).float())
        .greater_elem(0.0)
        .float()
        .reshape([b, 1]);
    let x = object_score_logits;
    let el = relu(x.clone()) - x.clone() * present + (-x.abs()).exp().log1p();
    el.sum() / b as f32
}
