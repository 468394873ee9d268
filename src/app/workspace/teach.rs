//! Teaching the loaded model the user's structure from the open document (issue 10,
//! the page's Teach panel): a label file opened over the document and/or the masks the
//! user made and accepted become training samples, a [`TrainingRun`] (the same one
//! `medseg finetune` drives) runs one step per call so the browser's worker stays
//! responsive and can cancel between steps, and the tuned model can be switched with
//! the base and written as a complete checkpoint.
//!
//! Choices the issue leaves open, written down here:
//! - Every run starts from the base model (the file loaded last), never from an
//!   earlier tuned one, so a run can be judged against the base's validation Dice.
//! - The document is one case, so validation cannot be split by case as the CLI does:
//!   with at least [`MIN_FRAMES_FOR_VALIDATION`] labelled frames, every fifth labelled
//!   frame (the middle one of each group of five) is held out. Neighbouring slices are
//!   correlated, so this Dice flatters the model; it guards the best-epoch choice and
//!   early stopping against a run that makes things worse.
//! - Labels and masks together: a frame the label file labels keeps its labels; the
//!   user's masks fill the frames the label file leaves empty.
//! - When a run ends with a tuned model (its best epoch beat the base, or there was no
//!   validation), the workspace segments with it; [`Workspace::use_model`] switches back.
//!   When no epoch beat the base model on the held-out frames, there is no new tuned
//!   model (the CLI writes the base's heads then, as its best epoch 0).
//! - The embeddings of a run live in memory until it ends; a run whose embeddings
//!   would pass [`EMBEDDING_BUDGET`] is refused before any work, naming the sizes,
//!   rather than failing halfway (a browser tab's engine has 4 GB at most).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Workspace;
use crate::app::document::{DocKind, Document};
use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::app::model::LoadedModel;
use crate::app::training::{
    Dataset, FineTuneConfig, Labels, Progress, RunConfig, RunReport, StopReason, TrainingRun,
    tuned_checkpoint,
};
use crate::io::image::decode_rgb;
use crate::io::volume::Volume;

/// Fewer labelled frames than this: no validation (every frame trains).
pub const MIN_FRAMES_FOR_VALIDATION: usize = 5;

/// The most memory a run's embeddings may take (bytes): half of a wasm32 engine, the
/// rest holding the model, the document, the masks and the passes' activations
/// (`medseg finetune` measured 1.15 GB peak for 340 MB of embeddings).
pub const EMBEDDING_BUDGET: usize = 2 << 30;

/// Where a run's samples come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TeachSource {
    /// The label file when one is open, else the masks.
    #[default]
    Auto,
    /// The label file opened over the document.
    Labels,
    /// The masks in the workspace (value = object id).
    Masks,
    /// The label file, and the masks on frames it leaves empty.
    Both,
}

/// A run's settings from the page (`medseg.finetune`); what is not given is the
/// recipe's default ([`RunConfig`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TeachOptions {
    pub epochs: usize,
    pub lr: f64,
    pub batch: usize,
    pub augment: bool,
    pub source: TeachSource,
    /// Hold out every fifth labelled frame to choose the best epoch (see the module).
    pub validation: bool,
    pub patience: usize,
    pub seed: u64,
}

impl Default for TeachOptions {
    fn default() -> Self {
        let run = RunConfig::default();
        Self {
            epochs: run.epochs,
            lr: run.tune.optimizer.lr,
            batch: run.batch,
            augment: run.augment,
            source: TeachSource::Auto,
            validation: true,
            patience: run.patience,
            seed: run.seed,
        }
    }
}

/// Which model segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelChoice {
    Base,
    Tuned,
}

/// A label file opened over the document.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelsInfo {
    pub name: String,
    /// Frames with label pixels, and the first and last of them.
    pub frames: usize,
    pub first_frame: usize,
    pub last_frame: usize,
    /// Distinct non-zero label values.
    pub values: usize,
}

/// What the page shows of teaching.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeachState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelsInfo>,
    /// A run is in progress.
    pub running: bool,
    /// A tuned model exists.
    pub tuned: bool,
    pub using: ModelChoice,
    /// The record of the run in progress, else of the last run that ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<RunReport>,
    /// The record of the run that made the tuned model (the checkpoint's metadata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned_report: Option<RunReport>,
}

/// The teaching part of a workspace.
#[derive(Default)]
pub(super) struct Teaching {
    /// The base model and the file it was loaded from (the tuned checkpoint is written
    /// over it); no file when the model was set natively ([`Workspace::set_model`]).
    base: Option<LoadedModel>,
    base_file: Option<Arc<Vec<u8>>>,
    labels: Option<(Labels, LabelsInfo)>,
    /// The run in progress (dropped when it fails).
    run: Option<TrainingRun>,
    /// The tuned model and the finished run that made it (its heads and its record go
    /// into the exported checkpoint).
    tuned: Option<(LoadedModel, TrainingRun)>,
    /// The record of the last run that ended, whatever its end.
    last_report: Option<RunReport>,
    using_tuned: bool,
}

impl Teaching {
    /// A new base model: what was tuned from the old one goes (labels stay: they belong
    /// to the document).
    pub(super) fn new_base(&mut self, base: LoadedModel, file: Option<Arc<Vec<u8>>>) {
        *self = Teaching {
            base: Some(base),
            base_file: file,
            labels: self.labels.take(),
            ..Teaching::default()
        };
    }

    /// Another document: labels over the old one go.
    pub(super) fn document_changed(&mut self) {
        self.labels = None;
    }
}

impl Workspace {
    /// Opens a label file over the open document: a NIfTI or MedSAM `.npz` (`gts` or
    /// `segs`) label volume for a volume or clip (one slice per frame), a grey PNG mask
    /// for an image, or a zip of PNG masks, one per frame in name order (as the page's
    /// PNG export writes). Its size must be the document's and it must label something.
    /// On failure the labels open before stay.
    pub fn open_labels(&mut self, bytes: &[u8], name: &str) -> AppResult<LabelsInfo> {
        let doc = self.doc()?;
        let labels = read_labels(bytes, &doc).map_err(|e| e.context(name))?;
        let info = labels_info(&labels, name, &doc)?;
        self.teach.labels = Some((labels, info.clone()));
        Ok(info)
    }

    /// Forgets the label file opened over the document.
    pub fn close_labels(&mut self) {
        self.teach.labels = None;
    }

    /// Sets up a fine-tuning run of the base model on the open document (see the
    /// module); [`Self::finetune_step`] then does its work one step at a time.
    pub fn start_finetune(&mut self, opts: &TeachOptions) -> AppResult<Progress> {
        if self.finetuning() {
            return Err(AppError::new(
                ErrorKind::Busy,
                "a fine-tuning run is in progress: cancel it first",
            ));
        }
        let doc = self.doc()?;
        let base = self
            .teach
            .base
            .clone()
            .ok_or_else(crate::app::model::no_model)?;
        let labels = self.training_labels(opts.source, &doc)?;
        let (train_labels, val_labels) = split_frames(&labels, opts.validation)?;
        let mut train = Dataset::for_model(&base);
        train.add_document(&doc, &train_labels)?;
        let val = match val_labels {
            Some(v) => {
                let mut val = Dataset::for_model(&base);
                val.add_document(&doc, &v)?;
                Some(val)
            }
            None => None,
        };
        let mut tune = FineTuneConfig::default();
        tune.optimizer.lr = opts.lr;
        let config = RunConfig {
            epochs: opts.epochs,
            batch: opts.batch,
            tune,
            augment: opts.augment,
            patience: opts.patience,
            seed: opts.seed,
            ..RunConfig::default()
        };
        // Setting up does no work yet; the run's plan says how many embeddings it keeps.
        let run = TrainingRun::new(&base, train, val, config)?;
        let progress = run.progress();
        check_memory(progress.work.embeddings[1], embedding_bytes(&base))?;
        self.teach.run = Some(run);
        Ok(progress)
    }

    /// Whether a run is in progress.
    pub fn finetuning(&self) -> bool {
        self.teach.run.as_ref().is_some_and(|r| !r.is_done())
    }

    /// One step of the run in progress. When it ends with a tuned model, the workspace
    /// segments with that model from then on. A failed step ends the run and the base
    /// model stays in use.
    pub async fn finetune_step(&mut self) -> AppResult<Progress> {
        let run = self
            .teach
            .run
            .as_mut()
            .filter(|r| !r.is_done())
            .ok_or_else(|| AppError::bad_input("no fine-tuning run is in progress"))?;
        let step = run.step().await;
        if step.as_ref().map_or(true, |p| p.stopped.is_some()) {
            self.finish_run();
        }
        step
    }

    /// Stops the run in progress; the best epoch so far is kept as the tuned model.
    pub fn cancel_finetune(&mut self) -> AppResult<Progress> {
        let run = self
            .teach
            .run
            .as_mut()
            .ok_or_else(|| AppError::bad_input("no fine-tuning run is in progress"))?;
        run.cancel();
        let progress = run.progress();
        self.finish_run();
        Ok(progress)
    }

    /// After a run: its best heads become the tuned model in use, unless the run failed,
    /// no epoch finished, or no epoch beat the base model on the held-out frames (then
    /// an earlier tuned model, if any, stays as it was).
    fn finish_run(&mut self) {
        let Some(run) = self.teach.run.take() else {
            return;
        };
        let report = run.report();
        let failed = matches!(report.stopped, Some(StopReason::Failed(_)));
        let base_best = report.base_val_dice.is_some() && report.best_epoch == 0;
        let empty = report.history.is_empty();
        self.teach.last_report = Some(report);
        if failed || empty || base_best {
            return;
        }
        let tuned = run.tuned_model();
        self.teach.tuned = Some((tuned.clone(), run));
        self.teach.using_tuned = true;
        self.install_model(tuned);
    }

    /// Segments with the base model or the tuned one. Prompts and masks stay.
    pub fn use_model(&mut self, choice: ModelChoice) -> AppResult<TeachState> {
        if self.finetuning() {
            return Err(AppError::new(
                ErrorKind::Busy,
                "a fine-tuning run is in progress: wait for it or cancel it first",
            ));
        }
        let model = match choice {
            ModelChoice::Base => self
                .teach
                .base
                .clone()
                .ok_or_else(crate::app::model::no_model)?,
            ModelChoice::Tuned => {
                let (model, _) = self.teach.tuned.as_ref().ok_or_else(|| {
                    AppError::bad_input("there is no tuned model yet: fine-tune first")
                })?;
                model.clone()
            }
        };
        self.teach.using_tuned = choice == ModelChoice::Tuned;
        self.install_model(model);
        Ok(self.teach_state())
    }

    /// The tuned model as a complete checkpoint (safetensors) over the base file,
    /// which `medseg` and the page load like the base.
    pub async fn export_tuned(&self) -> AppResult<Vec<u8>> {
        let Some((_, run)) = &self.teach.tuned else {
            return Err(AppError::bad_input(
                "there is no tuned model to export: fine-tune first",
            ));
        };
        let base = self.teach.base_file.as_ref().ok_or_else(|| {
            AppError::bad_input("the base model's file is not kept: load it from a file")
        })?;
        tuned_checkpoint(base, run).await
    }

    pub fn teach_state(&self) -> TeachState {
        TeachState {
            labels: self.teach.labels.as_ref().map(|(_, i)| i.clone()),
            running: self.finetuning(),
            tuned: self.teach.tuned.is_some(),
            using: if self.teach.using_tuned {
                ModelChoice::Tuned
            } else {
                ModelChoice::Base
            },
            report: self
                .teach
                .run
                .as_ref()
                .map(TrainingRun::report)
                .or_else(|| self.teach.last_report.clone()),
            tuned_report: self.teach.tuned.as_ref().map(|(_, run)| run.report()),
        }
    }

    /// The label map a run learns from (see [`TeachSource`]).
    fn training_labels(&self, source: TeachSource, doc: &Document) -> AppResult<Labels> {
        let file = self.teach.labels.as_ref().map(|(l, _)| l);
        let masks = || -> AppResult<Labels> {
            let map = self.masks.label_map(doc, None);
            if !map.iter().any(|&v| v != 0) {
                return Err(AppError::bad_input(
                    "there are no masks to learn from: segment and correct the structure on \
                     some frames, or open a label file",
                ));
            }
            Labels::new(doc.dims(), map.into_iter().map(u16::from).collect())
        };
        let need_file = || {
            file.cloned().ok_or_else(|| {
                AppError::bad_input("no label file is open over this document: open one first")
            })
        };
        match source {
            TeachSource::Labels => need_file(),
            TeachSource::Masks => masks(),
            TeachSource::Auto => match file {
                Some(l) => Ok(l.clone()),
                None => masks(),
            },
            TeachSource::Both => {
                let file = need_file()?;
                match masks() {
                    Ok(m) => Ok(fill_empty_frames(&file, &m)),
                    // No masks: the label file alone.
                    Err(_) => Ok(file),
                }
            }
        }
    }
}

/// A label file's bytes as a label map over `doc` (see [`Workspace::open_labels`]).
fn read_labels(bytes: &[u8], doc: &Document) -> AppResult<Labels> {
    if bytes.is_empty() {
        return Err(AppError::bad_input("the label file is empty"));
    }
    let labels = if bytes.starts_with(b"\x89PNG") {
        Labels::from_masks(&[decode_rgb(bytes)?])?
    } else if let Some(masks) = png_zip_masks(bytes)? {
        Labels::from_masks(&masks)?
    } else {
        let volume = Volume::from_bytes_with_npz_keys(bytes, &["gts", "segs"]).map_err(|e| {
            AppError::bad_input(format!(
                "{e}: a label file is a NIfTI or .npz label volume, a PNG mask or a zip of \
                 PNG masks"
            ))
        })?;
        Labels::from_volume_over(&volume, doc)?
    };
    let [d, h, w] = doc.dims();
    let [ld, lh, lw] = labels.dims();
    if [ld, lh, lw] != [d, h, w] {
        let kind = match doc.kind() {
            DocKind::Volume => "volume",
            DocKind::Clip => "clip",
            DocKind::Image => "image",
        };
        return Err(AppError::bad_input(format!(
            "the labels are {lw}×{lh} with {ld} {word}{s1}, the open {kind} {w}×{h} with {d} \
             {word}{s2}: a label file must match the document it labels",
            word = doc.frame_word(),
            s1 = if ld == 1 { "" } else { "s" },
            s2 = if d == 1 { "" } else { "s" },
        )));
    }
    Ok(labels)
}

/// The PNG masks of a zip whose entries are all PNG images, in name order; `None` for
/// anything else (a MedSAM `.npz` is a zip too).
fn png_zip_masks(bytes: &[u8]) -> AppResult<Option<Vec<crate::io::image::RgbImage>>> {
    use std::io::Read;
    if !bytes.starts_with(b"PK") {
        return Ok(None);
    }
    let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return Ok(None);
    };
    let mut names: Vec<String> = zip.file_names().map(str::to_string).collect();
    if names.is_empty()
        || !names
            .iter()
            .all(|n| n.to_ascii_lowercase().ends_with(".png"))
    {
        return Ok(None);
    }
    names.sort();
    let mut masks = Vec::with_capacity(names.len());
    for n in &names {
        let mut entry = zip
            .by_name(n)
            .map_err(|e| AppError::bad_input(format!("{n}: {e}")))?;
        // The entry's size comes from the archive: read what is there, not what it claims.
        let mut png = Vec::new();
        entry
            .read_to_end(&mut png)
            .map_err(|e| AppError::bad_input(format!("{n}: {e}")))?;
        masks.push(decode_rgb(&png).map_err(|e| AppError::from(e).context(n))?);
    }
    Ok(Some(masks))
}

fn labels_info(labels: &Labels, name: &str, doc: &Document) -> AppResult<LabelsInfo> {
    let frames = labelled_frames(labels);
    let (Some(&first_frame), Some(&last_frame)) = (frames.first(), frames.last()) else {
        return Err(AppError::bad_input(format!(
            "{name}: the labels have no foreground: every value is 0, so there is nothing \
             to learn on this {}",
            match doc.kind() {
                DocKind::Volume => "volume",
                DocKind::Clip => "clip",
                DocKind::Image => "image",
            }
        )));
    };
    let mut values: Vec<u16> = labels
        .values()
        .iter()
        .copied()
        .filter(|&v| v != 0)
        .collect();
    values.sort_unstable();
    values.dedup();
    Ok(LabelsInfo {
        name: name.to_string(),
        frames: frames.len(),
        first_frame,
        last_frame,
        values: values.len(),
    })
}

/// The frames with label pixels, in order.
fn labelled_frames(labels: &Labels) -> Vec<usize> {
    let [d, h, w] = labels.dims();
    let plane = h * w;
    (0..d)
        .filter(|&k| {
            labels.values()[k * plane..(k + 1) * plane]
                .iter()
                .any(|&v| v != 0)
        })
        .collect()
}

/// `labels` with the frames it leaves empty taken from `masks` (same dims).
fn fill_empty_frames(labels: &Labels, masks: &Labels) -> Labels {
    let [d, h, w] = labels.dims();
    let plane = h * w;
    let mut values = labels.values().to_vec();
    for k in 0..d {
        let frame = &mut values[k * plane..(k + 1) * plane];
        if frame.iter().all(|&v| v == 0) {
            frame.copy_from_slice(&masks.values()[k * plane..(k + 1) * plane]);
        }
    }
    Labels::new(labels.dims(), values).unwrap_or_else(|_| labels.clone())
}

/// The training labels and, when asked and there are enough labelled frames, the
/// validation labels: every fifth labelled frame (the middle of each five) held out.
fn split_frames(labels: &Labels, validation: bool) -> AppResult<(Labels, Option<Labels>)> {
    let frames = labelled_frames(labels);
    if !validation || frames.len() < MIN_FRAMES_FOR_VALIDATION {
        return Ok((labels.clone(), None));
    }
    let [d, h, w] = labels.dims();
    let plane = h * w;
    let mut train = labels.values().to_vec();
    let mut val = vec![0u16; d * plane];
    for (i, &k) in frames.iter().enumerate() {
        if i % 5 == 2 {
            let r = k * plane..(k + 1) * plane;
            val[r.clone()].copy_from_slice(&labels.values()[r.clone()]);
            train[r].fill(0);
        }
    }
    Ok((
        Labels::new([d, h, w], train)?,
        Some(Labels::new([d, h, w], val)?),
    ))
}

/// Bytes of one embedding the run keeps per (slice, flip).
fn embedding_bytes(model: &LoadedModel) -> usize {
    let s = model.image_size();
    match model {
        // TinyViT: 256 channels at a quarter of the input side.
        LoadedModel::LiteMedSam(_) => 256 * (s / 4) * (s / 4) * 4,
        // Hiera + FPN: 256 channels at 1/16, and the high-res features (32 at 1/4,
        // 64 at 1/8) the mask decoder takes.
        LoadedModel::Sam2(_) => {
            (256 * (s / 16).pow(2) + 32 * (s / 4).pow(2) + 64 * (s / 8).pow(2)) * 4
        }
    }
}

/// Refuses a run whose embeddings would not fit [`EMBEDDING_BUDGET`].
fn check_memory(embeddings: usize, each: usize) -> AppResult<()> {
    let need = embeddings.saturating_mul(each);
    if need <= EMBEDDING_BUDGET {
        return Ok(());
    }
    let mb = |b: usize| b.div_ceil(1 << 20);
    Err(AppError::new(
        ErrorKind::TooLarge,
        format!(
            "this run would keep {embeddings} image embeddings ({} MB each, {} MB in all) and \
             the engine holds at most {} MB of them: label fewer frames, or turn augmentation \
             off (it embeds each frame four times)",
            (each as f64 / (1 << 20) as f64).round(),
            mb(need),
            mb(EMBEDDING_BUDGET)
        ),
    ))
}
