//! A fine-tuning run driven one step at a time, so that the browser's worker can run
//! it between messages and cancel between steps: each [`TrainingRun::step`] embeds one
//! slice variant, passes over one micro-batch (the optimiser steps after a batch's
//! last), or validates one micro-batch, and returns where the run stands. LiteMedSAM
//! and SAM 2.1 / MedSAM2 models run the same loop; their heads differ as the module
//! doc of [`super`] says.
//!
//! The recipe (`train_one_gpu.py` of LiteMedSAM): epochs of shuffled batches, each
//! sample flipped left–right and up–down with probability ½ each (on by default) and
//! its box the ground truth's bounding box pushed outwards by 0..=jitter px per side.
//! The frozen encoder's features of each (slice, flip) are made once, first (SAM 2:
//! with the `conv_s0`/`conv_s1` high-res features, frozen with them). After
//! every epoch the validation cases' mean Dice (box = the ground truth's bounding
//! box); the best epoch's heads are kept (the base model counts as epoch 0), and the
//! run stops early after `patience` epochs without a better one. Every random draw
//! comes from one seeded [`Rng`] in a fixed order, so a seed and a data set give one
//! loss curve.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::app::error::{AppError, AppResult};
use crate::app::model::LoadedModel;
use crate::model::Architecture;
use crate::model::lite_medsam::LiteMedSam;
use crate::model::sam::mask_decoder::MaskDecoder;
use crate::model::sam::prompt_encoder::PromptEncoder;
use crate::model::sam2::Sam2Model;
use crate::readback::read_f32;

use super::data::{DataTransform, Dataset, Flip, jittered_box};
use super::rng::Rng;
use super::{BatchGradients, FineTuneConfig, FineTuner, LossTerms, TrainBatch, TrainError};

/// A run's settings (the CLI's flags; defaults as the recipe).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RunConfig {
    pub epochs: usize,
    /// Samples per optimiser step.
    pub batch: usize,
    /// The optimiser, the micro-batch and whether the prompt encoder trains.
    #[serde(skip)]
    pub tune: FineTuneConfig,
    /// Pixels (model space, 0..=jitter per side) the box is pushed outwards.
    pub box_jitter: usize,
    /// Random horizontal and vertical flips.
    pub augment: bool,
    /// Epochs without a better validation Dice before stopping (0: never stop early).
    pub patience: usize,
    pub seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch: 16,
            tune: FineTuneConfig::default(),
            box_jitter: 5,
            augment: true,
            patience: 5,
            seed: 0,
        }
    }
}

/// What the run is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Computing the frozen encoder's embeddings.
    Embedding,
    Training,
    Validating,
    Done,
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum StopReason {
    /// Every epoch ran.
    Completed,
    /// `patience` epochs without a better validation Dice.
    EarlyStopped,
    Cancelled,
    /// A step failed (a loss that is not a number): the message.
    Failed(String),
}

/// One finished epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    /// The mean over the epoch's samples of the training loss (before each step).
    pub loss: LossTerms,
    /// Mean Dice over the validation samples after the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_dice: Option<f64>,
}

/// Units of work done and planned, for the faces' progress bars and time estimates
/// (the core keeps no clock: wasm has none it may use).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Work {
    pub embeddings: [usize; 2],
    /// Forward + backward passes over micro-batches (for every epoch planned).
    pub train_passes: [usize; 2],
    /// Validation passes over micro-batches (base model and every epoch planned).
    pub val_passes: [usize; 2],
}

/// Where a run stands after a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub phase: Phase,
    /// The epoch in progress or last finished (0 before the first).
    pub epoch: usize,
    pub epochs: usize,
    /// Batches finished in this epoch, and per epoch.
    pub batch: usize,
    pub batches: usize,
    /// The loss of the last finished batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossTerms>,
    /// Set by the step that finished an epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_epoch: Option<EpochRecord>,
    /// The base model's validation Dice, once measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_val_dice: Option<f64>,
    /// The epoch whose heads are kept (0: the base model's).
    pub best_epoch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_val_dice: Option<f64>,
    pub work: Work,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopReason>,
}

/// What a run did: what the checkpoint's metadata records (no file names, nothing of
/// the scans).
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub config: RunConfig,
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
    pub micro_batch: usize,
    pub trains: &'static str,
    pub epochs_run: usize,
    pub best_epoch: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_val_dice: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_val_dice: Option<f64>,
    pub history: Vec<EpochRecord>,
    pub stopped: Option<StopReason>,
    pub train: DataCounts,
    pub val: DataCounts,
}

/// Sizes of a data set.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DataCounts {
    pub cases: usize,
    pub slices: usize,
    pub samples: usize,
}

impl DataCounts {
    fn of(d: &Dataset) -> Self {
        Self {
            cases: d.cases(),
            slices: d.slices(),
            samples: d.samples(),
        }
    }
}

/// A slice variant's features from the frozen image step.
#[derive(Clone)]
struct Embedded {
    embedding: Tensor<4>,
    /// SAM 2's `conv_s0`/`conv_s1` features.
    high_res: Option<[Tensor<4>; 2]>,
}

/// A sample as the run uses it: its slice's embeddings and its ground truth.
struct RunSample {
    slice: usize,
    gt: Vec<u8>,
}

/// One embedding to make: a slice of the training (or validation) set and a flip.
#[derive(Clone, Copy)]
struct EmbedJob {
    val: bool,
    slice: usize,
    flip: Flip,
    /// The last job of this slice: its input can go.
    last: bool,
}

/// A sample of the current batch with its draws.
#[derive(Clone, Copy)]
struct Draw {
    sample: usize,
    flip: Flip,
    jitter: [usize; 4],
}

enum Stage {
    Embed,
    /// Validation after `epoch` (0: the base model), from sample `next`.
    Validate {
        epoch: usize,
        next: usize,
    },
    Train,
    Done(StopReason),
}

/// A fine-tuning run of a model's heads.
pub struct TrainingRun {
    base: LoadedModel,
    config: RunConfig,
    tuner: FineTuner,
    rng: Rng,
    train_data: Dataset,
    val_data: Option<Dataset>,
    train: Vec<RunSample>,
    val: Vec<RunSample>,
    /// Per training slice, the features of each flip made.
    train_emb: Vec<[Option<Embedded>; 4]>,
    val_emb: Vec<Option<Embedded>>,
    jobs: Vec<EmbedJob>,
    stage: Stage,
    epoch: usize,
    /// The epoch's sample order, and the position of the current batch in it.
    order: Vec<usize>,
    batch_start: usize,
    /// The current batch's draws and how far its passes got.
    draws: Vec<Draw>,
    pass_start: usize,
    acc: BatchGradients,
    batch_in_epoch: usize,
    epoch_loss: LossTerms,
    last_loss: Option<LossTerms>,
    dice_sum: f64,
    history: Vec<EpochRecord>,
    base_val_dice: Option<f64>,
    best: Best,
    work: Work,
    finished_epoch: Option<EpochRecord>,
}

/// The heads kept so far.
struct Best {
    epoch: usize,
    val_dice: Option<f64>,
    decoder: MaskDecoder,
    prompt_encoder: PromptEncoder,
}

impl TrainingRun {
    /// Sets up a run on `model` (LiteMedSAM or SAM 2 / MedSAM2) with `train` and,
    /// optionally, validation cases, prepared for it ([`Dataset::for_model`]). No work
    /// is done until the first [`Self::step`].
    pub fn new(
        model: &LoadedModel,
        train: Dataset,
        val: Option<Dataset>,
        config: RunConfig,
    ) -> AppResult<Self> {
        check_config(&config)?;
        let base = model.clone();
        let want = DataTransform::for_model(model);
        let val = val.filter(|v| !v.is_empty());
        for d in std::iter::once(&train).chain(val.as_ref()) {
            if d.transform() != want {
                let size = want.image_size();
                return Err(AppError::bad_input(format!(
                    "the data was prepared for {} at {n}×{n}, the model is {} at \
                     {size}×{size}: prepare it with Dataset::for_model",
                    d.transform().name(),
                    want.name(),
                    n = d.image_size(),
                )));
            }
        }
        if train.is_empty() {
            return Err(AppError::bad_input(
                "there is no training data: no case has a labelled slice",
            ));
        }
        let collect = |d: &Dataset| -> Vec<RunSample> {
            d.all_samples()
                .into_iter()
                .map(|(slice, s)| RunSample {
                    slice,
                    gt: s.gt.clone(),
                })
                .collect()
        };
        let train_samples = collect(&train);
        let val_samples = val.as_ref().map(collect).unwrap_or_default();
        let flips: Vec<Flip> = if config.augment {
            Flip::all().to_vec()
        } else {
            vec![Flip::NONE]
        };
        let mut jobs = Vec::new();
        let n_train_slices = train.all_slices().count();
        for slice in 0..n_train_slices {
            for (i, &flip) in flips.iter().enumerate() {
                jobs.push(EmbedJob {
                    val: false,
                    slice,
                    flip,
                    last: i + 1 == flips.len(),
                });
            }
        }
        let n_val_slices = val.as_ref().map_or(0, |v| v.all_slices().count());
        for slice in 0..n_val_slices {
            jobs.push(EmbedJob {
                val: true,
                slice,
                flip: Flip::NONE,
                last: true,
            });
        }
        let micro = config.tune.micro_batch;
        let n = train_samples.len();
        let passes_per_epoch: usize = (0..n)
            .step_by(config.batch)
            .map(|start| config.batch.min(n - start).div_ceil(micro))
            .sum();
        let val_passes = val_samples.len().div_ceil(micro);
        let work = Work {
            embeddings: [0, jobs.len()],
            train_passes: [0, passes_per_epoch * config.epochs],
            val_passes: [0, val_passes * (config.epochs + 1)],
        };
        let (tuner, decoder, prompt_encoder) = match &base {
            LoadedModel::LiteMedSam(m) => (
                FineTuner::new(m, config.tune),
                m.sam_mask_decoder.clone(),
                m.sam_prompt_encoder.clone(),
            ),
            LoadedModel::Sam2(m) => (
                FineTuner::sam2(m, config.tune),
                m.sam_mask_decoder.clone(),
                m.sam_prompt_encoder.clone(),
            ),
        };
        let best = Best {
            epoch: 0,
            val_dice: None,
            decoder,
            prompt_encoder,
        };
        Ok(Self {
            tuner,
            base,
            config,
            rng: Rng::new(config.seed),
            train_emb: vec![[None, None, None, None]; n_train_slices],
            val_emb: vec![None; n_val_slices],
            train: train_samples,
            val: val_samples,
            train_data: train,
            val_data: val,
            jobs,
            stage: Stage::Embed,
            epoch: 0,
            order: Vec::new(),
            batch_start: 0,
            draws: Vec::new(),
            pass_start: 0,
            acc: BatchGradients::default(),
            batch_in_epoch: 0,
            epoch_loss: LossTerms::default(),
            last_loss: None,
            dice_sum: 0.0,
            history: Vec::new(),
            base_val_dice: None,
            best,
            work,
            finished_epoch: None,
        })
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        self.train.len().div_ceil(self.config.batch)
    }

    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done(_))
    }

    /// Stops the run; the best heads so far stay (see [`Self::tuned_model`]).
    pub fn cancel(&mut self) {
        if !self.is_done() {
            self.stage = Stage::Done(StopReason::Cancelled);
            self.release();
        }
    }

    /// Frees what only a running run needs (the embeddings, the inputs, the gradients):
    /// a finished run is kept for its best heads and its report, and its embeddings
    /// (LiteMedSAM, and MedSAM2 with its high-res features: 4 MB per slice and flip)
    /// would fill the browser's 4 GB engine.
    fn release(&mut self) {
        self.train_emb = Vec::new();
        self.val_emb = Vec::new();
        self.train_data.drop_inputs();
        if let Some(v) = &mut self.val_data {
            v.drop_inputs();
        }
        self.acc = BatchGradients::default();
        self.draws.clear();
    }

    /// Where the run stands.
    pub fn progress(&self) -> Progress {
        let phase = match &self.stage {
            Stage::Embed => Phase::Embedding,
            Stage::Validate { .. } => Phase::Validating,
            Stage::Train => Phase::Training,
            Stage::Done(_) => Phase::Done,
        };
        Progress {
            phase,
            epoch: self.epoch,
            epochs: self.config.epochs,
            batch: self.batch_in_epoch,
            batches: self.batches(),
            loss: self.last_loss,
            finished_epoch: self.finished_epoch,
            base_val_dice: self.base_val_dice,
            best_epoch: self.best.epoch,
            best_val_dice: self.best.val_dice,
            work: self.work,
            stopped: match &self.stage {
                Stage::Done(r) => Some(r.clone()),
                _ => None,
            },
        }
    }

    /// One unit of work: an embedding, a micro-batch pass (and, after a batch's last,
    /// the optimiser step), or a validation pass. A failed step ends the run (the best
    /// heads so far stay) and says why.
    pub async fn step(&mut self) -> AppResult<Progress> {
        self.finished_epoch = None;
        let result = match self.stage {
            Stage::Embed => {
                self.embed_next();
                Ok(())
            }
            Stage::Validate { epoch, next } => self.validate_next(epoch, next).await,
            Stage::Train => self.train_next().await,
            Stage::Done(_) => Ok(()),
        };
        if let Err(e) = result {
            self.stage = Stage::Done(StopReason::Failed(e.message.clone()));
            self.release();
            return Err(e);
        }
        if self.is_done() {
            self.release();
        }
        Ok(self.progress())
    }

    fn embed_next(&mut self) {
        let done = self.work.embeddings[0];
        let Some(&job) = self.jobs.get(done) else {
            self.after_embedding();
            return;
        };
        let s = self.base.image_size();
        let device = self.device();
        let data = if job.val {
            self.val_data.as_mut()
        } else {
            Some(&mut self.train_data)
        };
        let slice = data.and_then(|d| {
            d.cases
                .iter_mut()
                .flat_map(|c| &mut c.slices)
                .nth(job.slice)
        });
        if let Some(input) = slice.as_ref().and_then(|sl| sl.input.clone()) {
            let x = job.flip.apply(&input, s);
            let t = Tensor::from_data(TensorData::new(x, [1, 3, s, s]), &device);
            let emb = match &self.base {
                LoadedModel::LiteMedSam(m) => Embedded {
                    embedding: m.encode(t),
                    high_res: None,
                },
                // As `SAM2ImagePredictor.set_image` and a conditioning frame without
                // memory: `forward_image`, then `no_mem_embed` on the stride-16 features.
                LoadedModel::Sam2(m) => {
                    let f = m.image_features(&m.forward_image(t));
                    Embedded {
                        embedding: f.embed,
                        high_res: Some(f.high_res),
                    }
                }
            };
            if job.val {
                self.val_emb[job.slice] = Some(emb);
            } else {
                self.train_emb[job.slice][job.flip.index()] = Some(emb);
            }
        }
        if job.last
            && let Some(sl) = slice
        {
            sl.input = None;
        }
        self.work.embeddings[0] += 1;
        if self.work.embeddings[0] == self.jobs.len() {
            self.after_embedding();
        }
    }

    fn after_embedding(&mut self) {
        self.train_data.drop_inputs();
        if let Some(v) = &mut self.val_data {
            v.drop_inputs();
        }
        self.stage = if self.val.is_empty() {
            self.start_epoch()
        } else {
            Stage::Validate { epoch: 0, next: 0 }
        };
    }

    /// The box of a ground truth (its bounding box pushed out by `jitter`, clipped;
    /// samples are never empty, see `Dataset::add_document`).
    fn box_of(&self, gt: &[u8], jitter: [usize; 4]) -> [f32; 4] {
        let s = self.base.image_size();
        jittered_box(gt, s, jitter).unwrap_or([0.0, 0.0, (s - 1) as f32, (s - 1) as f32])
    }

    async fn validate_next(&mut self, epoch: usize, next: usize) -> AppResult<()> {
        let s = self.base.image_size();
        let micro = self.config.tune.micro_batch;
        let end = (next + micro).min(self.val.len());
        let part = &self.val[next..end];
        let mut embs = Vec::with_capacity(part.len());
        let mut boxes = Vec::with_capacity(4 * part.len());
        for smp in part {
            let e = self.val_emb[smp.slice]
                .clone()
                .ok_or_else(|| AppError::engine("a validation embedding is missing"))?;
            embs.push(e);
            boxes.extend(self.box_of(&smp.gt, [0; 4]));
        }
        let n = part.len();
        let device = self.device();
        let boxes = Tensor::from_data(TensorData::new(boxes, [n, 4]), &device);
        let (embeddings, high_res) = concat(embs);
        let out = self.tuner.predict(embeddings, high_res, boxes);
        let logits = read_f32(out.logits).await?;
        let resized: Vec<(usize, usize)> = {
            let slices: Vec<_> = self
                .val_data
                .iter()
                .flat_map(|d| d.all_slices())
                .map(|sl| sl.resized_hw)
                .collect();
            part.iter().map(|smp| slices[smp.slice]).collect()
        };
        for (i, smp) in part.iter().enumerate() {
            let l = &logits[i * s * s..(i + 1) * s * s];
            self.dice_sum += dice_in_extent(l, &smp.gt, s, resized[i]);
        }
        self.work.val_passes[0] += 1;
        if end < self.val.len() {
            self.stage = Stage::Validate { epoch, next: end };
            return Ok(());
        }
        let dice = self.dice_sum / self.val.len() as f64;
        self.dice_sum = 0.0;
        if epoch == 0 {
            self.base_val_dice = Some(dice);
            self.best.val_dice = Some(dice);
            self.stage = self.start_epoch();
        } else {
            self.end_epoch(Some(dice));
        }
        Ok(())
    }

    /// Shuffles the next epoch's samples, or ends the run after the last epoch.
    fn start_epoch(&mut self) -> Stage {
        if self.epoch >= self.config.epochs {
            return Stage::Done(StopReason::Completed);
        }
        self.epoch += 1;
        self.order = (0..self.train.len()).collect();
        self.rng.shuffle(&mut self.order);
        self.batch_start = 0;
        self.batch_in_epoch = 0;
        self.draws.clear();
        self.epoch_loss = LossTerms::default();
        Stage::Train
    }

    /// The draws of the batch starting at `batch_start`, in the order of its samples:
    /// horizontal flip, vertical flip (when augmenting), then the four jitters.
    fn draw_batch(&mut self) {
        let end = (self.batch_start + self.config.batch).min(self.order.len());
        let j = self.config.box_jitter as u64;
        self.draws = self.order[self.batch_start..end]
            .iter()
            .map(|&sample| {
                let flip = if self.config.augment {
                    Flip {
                        horizontal: self.rng.coin(),
                        vertical: self.rng.coin(),
                    }
                } else {
                    Flip::NONE
                };
                let jitter = [0; 4].map(|_| {
                    if j == 0 {
                        0
                    } else {
                        self.rng.below(j + 1) as usize
                    }
                });
                Draw {
                    sample,
                    flip,
                    jitter,
                }
            })
            .collect();
        self.pass_start = 0;
        self.acc = BatchGradients::default();
    }

    async fn train_next(&mut self) -> AppResult<()> {
        if self.draws.is_empty() {
            self.draw_batch();
        }
        let s = self.base.image_size();
        let n = self.draws.len();
        let end = (self.pass_start + self.config.tune.micro_batch).min(n);
        let part = &self.draws[self.pass_start..end];
        let mut embs = Vec::with_capacity(part.len());
        let mut boxes = Vec::with_capacity(4 * part.len());
        let mut gts = Vec::with_capacity(part.len() * s * s);
        for d in part {
            let smp = &self.train[d.sample];
            let e = self.train_emb[smp.slice][d.flip.index()]
                .clone()
                .ok_or_else(|| AppError::engine("a training embedding is missing"))?;
            embs.push(e);
            let gt = d.flip.apply(&smp.gt, s);
            boxes.extend(self.box_of(&gt, d.jitter));
            gts.extend(gt.iter().map(|&v| f32::from(v)));
        }
        let len = part.len();
        let device = self.device();
        let (embeddings, high_res) = concat(embs);
        let batch = TrainBatch {
            embeddings,
            high_res,
            boxes: Tensor::from_data(TensorData::new(boxes, [len, 4]), &device),
            gt: Tensor::from_data(TensorData::new(gts, [len, 1, s, s]), &device),
        };
        let share = len as f64 / n as f64;
        self.tuner
            .accumulate(&batch, share, &mut self.acc)
            .await
            .map_err(train_error)?;
        self.work.train_passes[0] += 1;
        self.pass_start = end;
        if end < n {
            return Ok(());
        }
        // The batch's last pass: the optimiser steps.
        let acc = std::mem::take(&mut self.acc);
        self.tuner.apply_checked(&acc).map_err(train_error)?;
        self.epoch_loss.add_scaled(&acc.loss, n as f64);
        self.last_loss = Some(acc.loss);
        self.batch_in_epoch += 1;
        self.batch_start += n;
        self.draws.clear();
        if self.batch_start < self.order.len() {
            return Ok(());
        }
        if self.val.is_empty() {
            self.end_epoch(None);
        } else {
            self.stage = Stage::Validate {
                epoch: self.epoch,
                next: 0,
            };
        }
        Ok(())
    }

    fn end_epoch(&mut self, val_dice: Option<f64>) {
        let mut loss = LossTerms::default();
        loss.add_scaled(&self.epoch_loss, 1.0 / self.train.len() as f64);
        let record = EpochRecord {
            epoch: self.epoch,
            loss,
            val_dice,
        };
        self.history.push(record);
        self.finished_epoch = Some(record);
        let better = match (val_dice, self.best.val_dice) {
            (Some(d), Some(b)) => d > b,
            // Without validation the latest epoch is kept.
            (None, _) => true,
            (Some(_), None) => true,
        };
        if better {
            self.best = Best {
                epoch: self.epoch,
                val_dice,
                decoder: self.tuner.mask_decoder(),
                prompt_encoder: self.tuner.prompt_encoder(),
            };
        }
        let patience = self.config.patience;
        self.stage =
            if val_dice.is_some() && patience > 0 && self.epoch - self.best.epoch >= patience {
                Stage::Done(StopReason::EarlyStopped)
            } else {
                self.start_epoch()
            };
    }

    /// The base model with the best heads so far (the base's own before any epoch
    /// improved on it); everything else is the base's, shared.
    pub fn tuned_model(&self) -> LoadedModel {
        let (decoder, prompt_encoder) =
            (self.best.decoder.clone(), self.best.prompt_encoder.clone());
        match &self.base {
            LoadedModel::LiteMedSam(m) => LoadedModel::LiteMedSam(Arc::new(LiteMedSam {
                image_encoder: m.image_encoder.clone(),
                sam_prompt_encoder: prompt_encoder,
                sam_mask_decoder: decoder,
            })),
            LoadedModel::Sam2(m) => LoadedModel::Sam2(Arc::new(Sam2Model {
                sam_prompt_encoder: prompt_encoder,
                sam_mask_decoder: decoder,
                ..Sam2Model::clone(m)
            })),
        }
    }

    /// The architecture of the model trained (its config for SAM 2).
    pub fn architecture(&self) -> Architecture {
        match &self.base {
            LoadedModel::LiteMedSam(_) => Architecture::LiteMedSam,
            LoadedModel::Sam2(m) => Architecture::Sam2(Box::new(m.config.clone())),
        }
    }

    /// The best heads so far under the official keys.
    pub async fn best_heads(
        &self,
    ) -> AppResult<std::collections::BTreeMap<String, crate::weights::HostTensor>> {
        Ok(super::heads_state(
            &self.best.decoder,
            &self.best.prompt_encoder,
            self.tuner.heads(),
        )
        .await?)
    }

    fn device(&self) -> Device {
        match &self.base {
            LoadedModel::LiteMedSam(m) => m.device(),
            LoadedModel::Sam2(m) => m.no_mem_embed.val().device(),
        }
    }

    /// What the run did so far.
    pub fn report(&self) -> RunReport {
        let o = self.config.tune.optimizer;
        RunReport {
            config: self.config,
            lr: o.lr,
            betas: [o.beta1, o.beta2],
            eps: o.eps,
            weight_decay: o.weight_decay,
            micro_batch: self.config.tune.micro_batch,
            trains: if self.config.tune.train_prompt_encoder {
                "mask_decoder+prompt_encoder"
            } else {
                "mask_decoder"
            },
            epochs_run: self.history.len(),
            best_epoch: self.best.epoch,
            best_val_dice: self.best.val_dice,
            base_val_dice: self.base_val_dice,
            history: self.history.clone(),
            stopped: match &self.stage {
                Stage::Done(r) => Some(r.clone()),
                _ => None,
            },
            train: DataCounts::of(&self.train_data),
            val: self
                .val_data
                .as_ref()
                .map(DataCounts::of)
                .unwrap_or_default(),
        }
    }
}

/// The features of several samples as one batch.
fn concat(embs: Vec<Embedded>) -> (Tensor<4>, Option<[Tensor<4>; 2]>) {
    let high_res = embs
        .iter()
        .map(|e| e.high_res.clone())
        .collect::<Option<Vec<_>>>()
        .map(|hr| {
            let (s0, s1): (Vec<_>, Vec<_>) = hr.into_iter().map(|[a, b]| (a, b)).unzip();
            [Tensor::cat(s0, 0), Tensor::cat(s1, 0)]
        });
    let embedding = Tensor::cat(embs.into_iter().map(|e| e.embedding).collect(), 0);
    (embedding, high_res)
}

fn train_error(e: TrainError) -> AppError {
    AppError::engine(e)
}

fn check_config(c: &RunConfig) -> AppResult<()> {
    let o = c.tune.optimizer;
    let bad = |what: &str| Err(AppError::bad_input(what.to_string()));
    if c.epochs == 0 {
        return bad("epochs: at least 1");
    }
    if c.batch == 0 || c.tune.micro_batch == 0 {
        return bad("batch and micro-batch: at least 1 sample");
    }
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return bad("learning rate: a positive number");
    }
    if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
        return bad("weight decay: a number from 0 up");
    }
    Ok(())
}

/// Dice of `logits > 0` with the 0/1 ground truth over the slice's extent
/// (`resized_hw`) of the `s × s` model space.
fn dice_in_extent(logits: &[f32], gt: &[u8], s: usize, (nh, nw): (usize, usize)) -> f64 {
    let (mut inter, mut p, mut g) = (0usize, 0usize, 0usize);
    for y in 0..nh {
        for x in 0..nw {
            let i = y * s + x;
            let (a, b) = (logits[i] > 0.0, gt[i] != 0);
            inter += usize::from(a && b);
            p += usize::from(a);
            g += usize::from(b);
        }
    }
    if p + g == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (p + g) as f64
    }
}
