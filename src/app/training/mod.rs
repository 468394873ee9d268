//! Fine-tuning the heads of LiteMedSAM and of SAM 2.1 / MedSAM2 on a user's labelled
//! slices (issue 10), on the very modules inference runs: the frozen image encoder's
//! features (computed once, outside the loop) go through the prompt encoder and the
//! mask decoder with burn's autodiff; the official loss ([`loss`]) and PyTorch's AdamW
//! ([`adamw`]) update the mask decoder and, optionally, the prompt encoder. A
//! hand-written loop (burn-train spawns threads, which wasm does not have).
//!
//! **LiteMedSAM** (`train_one_gpu.py`): one box (SAM 1 `boxes=`), the single-mask
//! token, the loss on the 256×256 low-res logits against the ground truth at 256.
//!
//! **SAM 2.1 / MedSAM2** (MedSAM2's training, `training/model/sam2.py` `SAM2Train` and
//! `training/loss_fns.py` of bowang-lab/MedSAM2, which are SAM 2's): the box as its two
//! corner points plus the padding point (`_forward_sam_heads` passes `boxes=None`); the
//! first mask token (`multimask_output=False` for a box: two points; torch's training
//! mode skips the dynamic single-mask choice, [`MaskOutput::FirstToken`]); the masks
//! of objects scored absent set to −1024 (no gradient through them) and the low-res
//! logits upsampled bilinearly to the model input (`high_res_multimasks`), where the
//! loss is taken against the ground truth at the model's size, as official training
//! takes it. The same three terms as LiteMedSAM (Dice, BCE, IoU MSE), plus the object
//! score as official training treats it: BCE with logits against "the ground truth has
//! foreground", weight 1 (MedSAM2's `loss_class: 1`, focal γ 0 / α −1 = plain BCE).
//! Official training also multiplies the mask terms by that target; every sample here
//! has foreground (`Dataset` keeps no empty one), so the factor is 1 and left out.
//!
//! **`conv_s0` / `conv_s1` stay frozen.** They are the mask decoder's projections of
//! the stride-4 and stride-8 backbone features, but they run inside the image-feature
//! step (`forward_image`), whose output is computed once per slice and flip and
//! cached, like the encoder's embedding. Training them would mean caching the
//! unprojected features instead (256 channels at stride 4 and 8: about 5× the memory
//! per slice at 512 px, which the browser's 4 GB engine cannot spare) and projecting
//! them again at every step, for two 1×1 convolutions whose job is to adapt the frozen
//! encoder's features, not the user's structure. They keep the base weights, get no
//! gradient and no optimiser step (official MedSAM2 training, which also trains the
//! encoder, updates them). `no_mem_embed`, added to the stride-16 features of an image
//! without memory, belongs to the same cached step and stays frozen too.
//!
//! The host kernels of `model::cpu_kernels` record no gradients, so they step aside
//! for tensors that carry autodiff: the heads train through burn's own ops while
//! inference keeps its kernels.

pub mod adamw;
pub mod checkpoint;
pub mod data;
pub mod loss;
pub mod params;
pub mod rng;
pub mod run;

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::model::lite_medsam::LiteMedSam;
use crate::model::sam::mask_decoder::{MaskDecoder, MaskOutput};
use crate::model::sam::prompt_encoder::PromptEncoder;
use crate::model::sam2::{Sam2Model, mask_absent_objects, upsample_bilinear};
use crate::readback::{ReadbackError, read_f32};
use crate::weights::HostTensor;
use crate::weights::remap::{LITE_MEDSAM_RULES, Rename, SAM2_RULES};

pub use adamw::{AdamW, AdamWConfig};
pub use checkpoint::{TUNED_METADATA_KEY, tuned_checkpoint};
pub use data::{CaseSummary, DataTransform, Dataset, Labels, SampleView, jittered_box};
pub use loss::{LossTensors, lite_medsam_loss, object_score_loss};
pub use run::{EpochRecord, Phase, Progress, RunConfig, RunReport, StopReason, TrainingRun};

/// How the heads are trained.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FineTuneConfig {
    pub optimizer: AdamWConfig,
    /// Samples per forward and backward pass: a batch's gradient is accumulated over
    /// passes of at most this many samples, which bounds memory, not the result.
    pub micro_batch: usize,
    /// Also train the prompt encoder; the mask decoder always trains.
    pub train_prompt_encoder: bool,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            optimizer: AdamWConfig::default(),
            micro_batch: 4,
            train_prompt_encoder: false,
        }
    }
}

/// Which model's heads are trained: how a batch goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heads {
    /// SAM 1 heads (LiteMedSAM).
    LiteMedSam,
    /// SAM 2.1 heads (MedSAM2): high-res features and an object-score head.
    Sam2,
}

impl Heads {
    /// The remap between the official checkpoint's keys and the module tree.
    fn rules(self) -> &'static [Rename] {
        match self {
            Heads::LiteMedSam => LITE_MEDSAM_RULES,
            Heads::Sam2 => SAM2_RULES,
        }
    }
}

/// A batch of samples at the model's input size `S`.
#[derive(Clone, Debug)]
pub struct TrainBatch {
    /// Image embeddings from the frozen encoder, `[B, C, h, w]` (SAM 2: with
    /// `no_mem_embed` added, as for an image without memory).
    pub embeddings: Tensor<4>,
    /// SAM 2: the `conv_s0`/`conv_s1`-projected stride-4 and stride-8 features,
    /// `[B, C/8, 4h, 4w]` and `[B, C/4, 2h, 2w]`; `None` for LiteMedSAM.
    pub high_res: Option<[Tensor<4>; 2]>,
    /// Box prompts in model-input pixels, `[B, 4]` (`x0, y0, x1, y1`).
    pub boxes: Tensor<2>,
    /// Ground-truth masks at the model input's size, 0/1, `[B, 1, S, S]` (LiteMedSAM's
    /// low-res logits are that size; SAM 2's are upsampled to it).
    pub gt: Tensor<4>,
}

impl TrainBatch {
    pub fn len(&self) -> usize {
        self.embeddings.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples `start..start + len`.
    fn narrow(&self, start: usize, len: usize) -> Self {
        Self {
            embeddings: self.embeddings.clone().narrow(0, start, len),
            high_res: self
                .high_res
                .as_ref()
                .map(|hr| hr.clone().map(|t| t.narrow(0, start, len))),
            boxes: self.boxes.clone().narrow(0, start, len),
            gt: self.gt.clone().narrow(0, start, len),
        }
    }
}

/// What the heads make of a batch.
#[derive(Clone, Debug)]
pub struct HeadsOutput {
    /// Mask logits at the model input's size, `[B, 1, S, S]`: LiteMedSAM's low-res
    /// logits; SAM 2's low-res logits, absent objects at −1024, upsampled.
    pub logits: Tensor<4>,
    /// Predicted IoU, `[B, 1]`.
    pub iou: Tensor<2>,
    /// SAM 2's object-score logits, `[B, 1]`.
    pub object_score: Option<Tensor<2>>,
}

/// The loss terms of a batch as numbers (each a mean over the batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LossTerms {
    pub dice: f64,
    pub bce: f64,
    pub iou_mse: f64,
    /// The object-score term (SAM 2 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_score: Option<f64>,
    pub total: f64,
}

impl LossTerms {
    fn is_finite(&self) -> bool {
        [self.dice, self.bce, self.iou_mse, self.total]
            .iter()
            .chain(&self.object_score)
            .all(|v| v.is_finite())
    }

    /// Adds `w · other`, term by term.
    pub(crate) fn add_scaled(&mut self, other: &LossTerms, w: f64) {
        self.dice += w * other.dice;
        self.bce += w * other.bce;
        self.iou_mse += w * other.iou_mse;
        self.total += w * other.total;
        if let Some(o) = other.object_score {
            *self.object_score.get_or_insert(0.0) += w * o;
        }
    }
}

/// Why a training step could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the training batch is empty")]
    EmptyBatch,
    #[error("the training batch's tensors do not fit together: {0}")]
    Shape(String),
    #[error(
        "the loss is not a number at step {step} (Dice {:.4}, BCE {:.4}, IoU MSE {:.4}{}); \
         the model is left as it was before that step",
        terms.dice, terms.bce, terms.iou_mse,
        terms.object_score.map_or_else(String::new, |o| format!(", object score {o:.4}"))
    )]
    NonFinite { step: usize, terms: LossTerms },
    #[error(transparent)]
    Readback(#[from] ReadbackError),
}

/// A batch's loss and its gradient with respect to every trained parameter.
#[derive(Default)]
pub struct BatchGradients {
    pub loss: LossTerms,
    /// Flattened row-major, without autodiff.
    grads: HashMap<ParamId, Tensor<1>>,
}

/// The trainable heads of a model and their optimiser.
pub struct FineTuner {
    decoder: MaskDecoder,
    prompt_encoder: PromptEncoder,
    optimizer: AdamW,
    config: FineTuneConfig,
    heads: Heads,
    /// The model input's side.
    image_size: usize,
    steps: usize,
}

impl FineTuner {
    /// Starts from LiteMedSAM's heads (copied; `model` itself is not changed).
    pub fn new(model: &LiteMedSam, config: FineTuneConfig) -> Self {
        Self::with_heads(
            &model.sam_mask_decoder,
            &model.sam_prompt_encoder,
            Heads::LiteMedSam,
            model.image_size(),
            config,
        )
    }

    /// Starts from a SAM 2 / MedSAM2 model's heads (copied; `model` is not changed).
    pub fn sam2(model: &Sam2Model, config: FineTuneConfig) -> Self {
        Self::with_heads(
            &model.sam_mask_decoder,
            &model.sam_prompt_encoder,
            Heads::Sam2,
            model.image_size(),
            config,
        )
    }

    fn with_heads(
        decoder: &MaskDecoder,
        prompt_encoder: &PromptEncoder,
        heads: Heads,
        image_size: usize,
        config: FineTuneConfig,
    ) -> Self {
        let prompt_encoder = if config.train_prompt_encoder {
            prompt_encoder.clone().train()
        } else {
            prompt_encoder.valid()
        };
        let mut decoder = decoder.clone().train();
        // Part of the cached image-feature step (see the module doc): frozen.
        decoder.conv_s0 = decoder.conv_s0.map(Module::freeze);
        decoder.conv_s1 = decoder.conv_s1.map(Module::freeze);
        Self {
            decoder,
            prompt_encoder,
            optimizer: AdamW::new(config.optimizer),
            config,
            heads,
            image_size,
            steps: 0,
        }
    }

    pub fn heads(&self) -> Heads {
        self.heads
    }

    fn check(&self, batch: &TrainBatch) -> Result<(), TrainError> {
        let b = batch.len();
        if b == 0 {
            return Err(TrainError::EmptyBatch);
        }
        let s = self.image_size;
        let boxes = batch.boxes.dims();
        let gt = batch.gt.dims();
        let high_res = batch
            .high_res
            .as_ref()
            .map(|hr| hr.each_ref().map(|t| t.dims()));
        let high_res_fit = match (self.heads, high_res) {
            (Heads::LiteMedSam, None) => true,
            (Heads::Sam2, Some([s0, s1])) => s0[0] == b && s1[0] == b,
            _ => false,
        };
        if boxes != [b, 4] || gt != [b, 1, s, s] || !high_res_fit {
            return Err(TrainError::Shape(format!(
                "embeddings {:?}, high-res features {high_res:?}, boxes {boxes:?}, ground \
                 truth {gt:?} for a {s}×{s} model input",
                batch.embeddings.dims()
            )));
        }
        Ok(())
    }

    /// The prompt encoder (boxes) and the mask decoder (one mask, as training's
    /// `multimask_output=False`) on `batch`, carrying the graph of the trained heads.
    pub fn forward(&self, batch: &TrainBatch) -> HeadsOutput {
        self.run_heads(
            &self.prompt_encoder,
            &self.decoder,
            batch.embeddings.clone(),
            batch.high_res.clone(),
            batch.boxes.clone(),
            MaskOutput::FirstToken,
        )
    }

    /// The loss of `batch` with its graph (see the module doc for the recipes).
    pub fn loss(&self, batch: &TrainBatch) -> LossTensors {
        let out = self.forward(batch);
        let mut terms = lite_medsam_loss(out.logits, out.iou, batch.gt.clone());
        terms.object_score = out
            .object_score
            .map(|o| object_score_loss(o, batch.gt.clone()));
        terms
    }

    fn run_heads(
        &self,
        pe: &PromptEncoder,
        decoder: &MaskDecoder,
        embeddings: Tensor<4>,
        high_res: Option<[Tensor<4>; 2]>,
        boxes: Tensor<2>,
        output: MaskOutput,
    ) -> HeadsOutput {
        match self.heads {
            Heads::LiteMedSam => {
                let (sparse, dense) = pe.forward_boxes(boxes);
                let out = decoder.forward(embeddings, pe.dense_pe(), sparse, dense, output, None);
                HeadsOutput {
                    logits: out.masks,
                    iou: out.iou_pred,
                    object_score: None,
                }
            }
            Heads::Sam2 => {
                let (sparse, dense) = pe.forward_box_points(boxes);
                let out = decoder.forward(
                    embeddings,
                    pe.dense_pe(),
                    sparse,
                    dense,
                    output,
                    high_res.as_ref().map(|[a, b]| [a, b]),
                );
                let s = self.image_size;
                let low = mask_absent_objects(out.masks, out.object_score_logits.clone());
                HeadsOutput {
                    logits: upsample_bilinear(low, [s, s]),
                    iou: out.iou_pred,
                    object_score: Some(out.object_score_logits),
                }
            }
        }
    }

    /// The batch's loss and gradient, accumulated over micro-batches: each pass's
    /// loss is weighted by its share of the batch, so the sum is the batch's.
    pub async fn gradients(&self, batch: &TrainBatch) -> Result<BatchGradients, TrainError> {
        self.check(batch)?;
        let n = batch.len();
        let micro = self.config.micro_batch.max(1);
        let mut acc = BatchGradients::default();
        for start in (0..n).step_by(micro) {
            let len = micro.min(n - start);
            let share = len as f64 / n as f64;
            self.accumulate(&batch.narrow(start, len), share, &mut acc)
                .await?;
        }
        Ok(acc)
    }

    /// One forward and backward pass over `part` (a micro-batch), its loss weighted by
    /// `share` (its part of the batch) and added with its gradients to `acc`. A batch
    /// may be passed over in several calls (the browser's worker returns between them).
    pub async fn accumulate(
        &self,
        part: &TrainBatch,
        share: f64,
        acc: &mut BatchGradients,
    ) -> Result<(), TrainError> {
        self.check(part)?;
        let terms = self.loss(part);
        let total = terms.total();
        let mut parts = vec![
            terms.dice.detach(),
            terms.bce.detach(),
            terms.iou_mse.detach(),
            total.clone().detach(),
        ];
        parts.extend(terms.object_score.map(Tensor::detach));
        let values = Tensor::cat(parts, 0);
        let mut tape = (total * share).backward();
        collect_grads(&self.decoder, &mut tape, &mut acc.grads);
        collect_grads(&self.prompt_encoder, &mut tape, &mut acc.grads);
        let v = read_f32(values).await?;
        let read = LossTerms {
            dice: f64::from(v[0]),
            bce: f64::from(v[1]),
            iou_mse: f64::from(v[2]),
            total: f64::from(v[3]),
            object_score: v.get(4).map(|&o| f64::from(o)),
        };
        acc.loss.add_scaled(&read, share);
        Ok(())
    }

    /// One optimiser step on `batch`; returns its loss before the step. A loss that
    /// is not finite stops before any parameter changes.
    pub async fn step(&mut self, batch: &TrainBatch) -> Result<LossTerms, TrainError> {
        let g = self.gradients(batch).await?;
        self.apply_checked(&g)?;
        Ok(g.loss)
    }

    /// [`Self::apply`] unless the loss is not finite: then nothing changes and the
    /// error names the step.
    pub fn apply_checked(&mut self, g: &BatchGradients) -> Result<(), TrainError> {
        if !g.loss.is_finite() {
            return Err(TrainError::NonFinite {
                step: self.steps + 1,
                terms: g.loss,
            });
        }
        self.apply(g);
        Ok(())
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// What the heads as they stand make of a batch's features and boxes in inference
    /// mode (no graph; SAM 2's single mask chosen as inference chooses it):
    /// validation.
    pub fn predict(
        &self,
        embeddings: Tensor<4>,
        high_res: Option<[Tensor<4>; 2]>,
        boxes: Tensor<2>,
    ) -> HeadsOutput {
        self.run_heads(
            &self.prompt_encoder(),
            &self.mask_decoder(),
            embeddings,
            high_res,
            boxes,
            MaskOutput::Single,
        )
    }

    /// Steps the trained heads with gradients from [`Self::gradients`].
    pub fn apply(&mut self, g: &BatchGradients) {
        self.decoder = self.optimizer.step(self.decoder.clone(), &g.grads);
        if self.config.train_prompt_encoder {
            self.prompt_encoder = self.optimizer.step(self.prompt_encoder.clone(), &g.grads);
        }
        self.steps += 1;
    }

    /// The mask decoder as it stands, for inference.
    pub fn mask_decoder(&self) -> MaskDecoder {
        self.decoder.valid()
    }

    /// The prompt encoder as it stands, for inference.
    pub fn prompt_encoder(&self) -> PromptEncoder {
        self.prompt_encoder.valid()
    }

    /// `base` with the heads as they stand (its encoder shared).
    pub fn tuned(&self, base: &LiteMedSam) -> LiteMedSam {
        LiteMedSam {
            image_encoder: base.image_encoder.clone(),
            sam_prompt_encoder: self.prompt_encoder(),
            sam_mask_decoder: self.mask_decoder(),
        }
    }

    /// The gradients under the official keys and layouts (`mask_decoder.…`,
    /// `prompt_encoder.…` for LiteMedSAM; `sam_mask_decoder.…`, `sam_prompt_encoder.…`
    /// for SAM 2): only the parameters that got one, as torch's `.grad`.
    pub async fn official_gradients(
        &self,
        g: &BatchGradients,
    ) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
        let params = heads_params(&self.decoder, &self.prompt_encoder, self.heads);
        params::to_official(&params, &g.grads).await
    }

    /// Both heads' current parameters under the official keys and layouts.
    pub async fn official_state(&self) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
        heads_state(&self.decoder, &self.prompt_encoder, self.heads).await
    }
}

/// Both heads' parameters with their official keys.
fn heads_params(
    decoder: &MaskDecoder,
    prompt_encoder: &PromptEncoder,
    heads: Heads,
) -> Vec<params::OfficialParam> {
    let rules = heads.rules();
    let mut p = params::official_params(
        decoder,
        "sam_mask_decoder",
        MaskDecoder::state_dict_key,
        rules,
    );
    p.extend(params::official_params(
        prompt_encoder,
        "sam_prompt_encoder",
        PromptEncoder::state_dict_key,
        rules,
    ));
    p
}

/// Both heads' parameters under the official keys and layouts.
pub async fn heads_state(
    decoder: &MaskDecoder,
    prompt_encoder: &PromptEncoder,
    heads: Heads,
) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
    let mut values = params::values(decoder);
    values.extend(params::values(prompt_encoder));
    params::to_official(&heads_params(decoder, prompt_encoder, heads), &values).await
}

/// Moves each of `module`'s gradients out of `tape`, flattened, adding it to `acc`.
fn collect_grads<M: Module>(
    module: &M,
    tape: &mut burn::tensor::Gradients,
    acc: &mut HashMap<ParamId, Tensor<1>>,
) {
    struct Collect<'a> {
        tape: &'a mut burn::tensor::Gradients,
        acc: &'a mut HashMap<ParamId, Tensor<1>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(g) = param.val().grad_remove(self.tape) else {
                return;
            };
            let n = g.shape().num_elements();
            let g = g.reshape([n]);
            let sum = match self.acc.remove(&param.id) {
                Some(prev) => prev + g,
                None => g,
            };
            self.acc.insert(param.id, sum);
        }
    }
    module.visit(&mut Collect { tape, acc });
}
