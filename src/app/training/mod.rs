//! Fine-tuning LiteMedSAM's heads on a user's labelled slices (issue 10), on the very
//! modules inference runs: the frozen TinyViT encoder's embeddings (computed once,
//! outside the loop) go through the prompt encoder and the mask decoder with burn's
//! autodiff; the official LiteMedSAM loss ([`loss`]) and PyTorch's AdamW ([`adamw`])
//! update the mask decoder and, optionally, the prompt encoder. A hand-written loop
//! (burn-train spawns threads, which wasm does not have).
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
use crate::readback::{ReadbackError, read_f32};
use crate::weights::HostTensor;

pub use adamw::{AdamW, AdamWConfig};
pub use checkpoint::{TUNED_METADATA_KEY, tuned_checkpoint};
pub use data::{CaseSummary, Dataset, Labels, SampleView, jittered_box};
pub use loss::{LossTensors, lite_medsam_loss};
pub use run::{
    EpochRecord, Phase, Progress, RunConfig, RunReport, StopReason, TrainingRun, trainable,
};

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

/// A batch of samples at the model's input size.
#[derive(Clone, Debug)]
pub struct TrainBatch {
    /// Image embeddings from the frozen encoder, `[B, C, h, w]`.
    pub embeddings: Tensor<4>,
    /// Box prompts in model-input pixels, `[B, 4]` (`x0, y0, x1, y1`).
    pub boxes: Tensor<2>,
    /// Ground-truth masks at the low-res logits' size (4h × 4w), 0/1, `[B, 1, 4h, 4w]`.
    pub gt: Tensor<4>,
}

impl TrainBatch {
    pub fn len(&self) -> usize {
        self.embeddings.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), TrainError> {
        let [b, _, h, w] = self.embeddings.dims();
        if b == 0 {
            return Err(TrainError::EmptyBatch);
        }
        let boxes = self.boxes.dims();
        let gt = self.gt.dims();
        if boxes != [b, 4] || gt != [b, 1, 4 * h, 4 * w] {
            return Err(TrainError::Shape(format!(
                "embeddings {:?}, boxes {boxes:?}, ground truth {gt:?}",
                self.embeddings.dims()
            )));
        }
        Ok(())
    }

    /// Samples `start..start + len`.
    fn narrow(&self, start: usize, len: usize) -> Self {
        Self {
            embeddings: self.embeddings.clone().narrow(0, start, len),
            boxes: self.boxes.clone().narrow(0, start, len),
            gt: self.gt.clone().narrow(0, start, len),
        }
    }
}

/// The loss terms of a batch as numbers (each a mean over the batch).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LossTerms {
    pub dice: f64,
    pub bce: f64,
    pub iou_mse: f64,
    pub total: f64,
}

impl LossTerms {
    fn is_finite(&self) -> bool {
        [self.dice, self.bce, self.iou_mse, self.total]
            .iter()
            .all(|v| v.is_finite())
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
        "the loss is not a number at step {step} (Dice {:.4}, BCE {:.4}, IoU MSE {:.4}); \
         the model is left as it was before that step",
        terms.dice, terms.bce, terms.iou_mse
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

/// The trainable heads of a LiteMedSAM model and their optimiser.
pub struct FineTuner {
    decoder: MaskDecoder,
    prompt_encoder: PromptEncoder,
    optimizer: AdamW,
    config: FineTuneConfig,
    steps: usize,
}

impl FineTuner {
    /// Starts from `model`'s heads (copied; `model` itself is not changed).
    pub fn new(model: &LiteMedSam, config: FineTuneConfig) -> Self {
        let prompt_encoder = if config.train_prompt_encoder {
            model.sam_prompt_encoder.clone().train()
        } else {
            model.sam_prompt_encoder.valid()
        };
        Self {
            decoder: model.sam_mask_decoder.clone().train(),
            prompt_encoder,
            optimizer: AdamW::new(config.optimizer),
            config,
            steps: 0,
        }
    }

    /// Prompt encoder (boxes) and mask decoder (one mask, as training's
    /// `multimask_output=False`): low-res logits `[B, 1, 4h, 4w]` and predicted IoU
    /// `[B, 1]`, carrying the graph of the trained heads.
    pub fn forward(&self, embeddings: Tensor<4>, boxes: Tensor<2>) -> (Tensor<4>, Tensor<2>) {
        let (sparse, dense) = self.prompt_encoder.forward_boxes(boxes);
        let out = self.decoder.forward(
            embeddings,
            self.prompt_encoder.dense_pe(),
            sparse,
            dense,
            MaskOutput::Single,
            None,
        );
        (out.masks, out.iou_pred)
    }

    /// The batch's loss and gradient, accumulated over micro-batches: each pass's
    /// loss is weighted by its share of the batch, so the sum is the batch's.
    pub async fn gradients(&self, batch: &TrainBatch) -> Result<BatchGradients, TrainError> {
        batch.check()?;
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
        part.check()?;
        let (logits, iou) = self.forward(part.embeddings.clone(), part.boxes.clone());
        let terms = lite_medsam_loss(logits, iou, part.gt.clone());
        let total = terms.total();
        let values = Tensor::cat(
            vec![
                terms.dice.detach(),
                terms.bce.detach(),
                terms.iou_mse.detach(),
                total.clone().detach(),
            ],
            0,
        );
        let mut tape = (total * share).backward();
        collect_grads(&self.decoder, &mut tape, &mut acc.grads);
        collect_grads(&self.prompt_encoder, &mut tape, &mut acc.grads);
        let v = read_f32(values).await?;
        acc.loss.dice += share * f64::from(v[0]);
        acc.loss.bce += share * f64::from(v[1]);
        acc.loss.iou_mse += share * f64::from(v[2]);
        acc.loss.total += share * f64::from(v[3]);
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

    /// Low-res logits and predicted IoU of the heads as they stand, in inference mode
    /// (no graph): validation.
    pub fn predict(&self, embeddings: Tensor<4>, boxes: Tensor<2>) -> (Tensor<4>, Tensor<2>) {
        let pe = self.prompt_encoder();
        let decoder = self.mask_decoder();
        let (sparse, dense) = pe.forward_boxes(boxes);
        let out = decoder.forward(
            embeddings,
            pe.dense_pe(),
            sparse,
            dense,
            MaskOutput::Single,
            None,
        );
        (out.masks, out.iou_pred)
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
    /// `prompt_encoder.…`): only the parameters that got one, as torch's `.grad`.
    pub async fn official_gradients(
        &self,
        g: &BatchGradients,
    ) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
        params::to_official(&heads_params(&self.decoder, &self.prompt_encoder), &g.grads).await
    }

    /// Both heads' current parameters under the official keys and layouts.
    pub async fn official_state(&self) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
        heads_state(&self.decoder, &self.prompt_encoder).await
    }
}

/// Both heads' parameters with their official keys.
fn heads_params(
    decoder: &MaskDecoder,
    prompt_encoder: &PromptEncoder,
) -> Vec<params::OfficialParam> {
    let mut p = params::official_params(decoder, "sam_mask_decoder", MaskDecoder::state_dict_key);
    p.extend(params::official_params(
        prompt_encoder,
        "sam_prompt_encoder",
        PromptEncoder::state_dict_key,
    ));
    p
}

/// Both heads' parameters under the official keys and layouts.
pub async fn heads_state(
    decoder: &MaskDecoder,
    prompt_encoder: &PromptEncoder,
) -> Result<BTreeMap<String, HostTensor>, ReadbackError> {
    let mut values = params::values(decoder);
    values.extend(params::values(prompt_encoder));
    params::to_official(&heads_params(decoder, prompt_encoder), &values).await
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
