//! The workspace a user works in: the loaded model, the open document, the prompts, the
//! masks, a propagation in progress and the undo history. Both faces drive it: the CLI
//! blocks on its async calls natively, the browser (`src/wasm/`) awaits them on WebGPU or
//! the CPU. So for the same input and prompts the two give the same masks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use crate::Device;
use crate::app::confidence::{self, LowConfidence};
use crate::app::document::{DocInfo, DocKind, Document};
use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::app::history::{Action, History, HistoryState, PromptChange, Restored};
use crate::app::masks::{MaskStore, SegRequest};
use crate::app::model::{LoadedModel, ModelInfo, ModelKind, no_model};
use crate::app::prompts::{PromptEntry, PromptStore, fit_prompt};
use crate::app::propagation::{
    Directions, DocSession, Run, StepOutcome, VolumeObject, first_prompted, frame_range,
    planned_passes,
};
use crate::io::window::WindowPreset;
use crate::model::lite_medsam::{LiteEmbedding, LiteMedSam};
use crate::model::sam2::Sam2Model;
use crate::predictor::{ImagePrompt, Sam2EncodedImage, Sam2ImagePredictor};
use crate::session::lite_propagation::{LitePropagation, walk_range};
use crate::session::mask_store::RleMask;
use crate::session::video::{ObjectId, VideoSession};
use crate::session::volume3d::largest_connected_component;

mod teach;

pub use teach::{
    EMBEDDING_BUDGET, LabelsInfo, MIN_FRAMES_FOR_VALIDATION, ModelChoice, TeachOptions,
    TeachSource, TeachState,
};

/// The image embedding of one frame, kept so that further prompts on it (objects,
/// corrections), and a prompt after [`Workspace::prepare_frame`], only run the decoder.
enum FrameEmbedding {
    /// SAM 2 on a single image (the predictor's `set_image`).
    Sam2Image(Box<Sam2EncodedImage>),
    /// LiteMedSAM on one frame (slice) of the document.
    LiteMedSam {
        frame: usize,
        embedding: Box<LiteEmbedding>,
    },
}

/// The result of a prompt on one frame.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptOutcome {
    pub obj: ObjectId,
    pub frame: usize,
    /// The frame's whole prompt now, as `{box, points: [[x, y, label], ...]}`.
    #[serde(serialize_with = "crate::app::prompts::serialize_prompt")]
    pub prompt: Option<ImagePrompt>,
    /// Object pixels of the frame's mask now.
    pub area: usize,
    /// The model's predicted IoU (`NaN` where the model gives none: a SAM 2 clip frame).
    pub iou: f32,
    /// SAM 2's object score logit (`NaN` for LiteMedSAM and clips).
    pub object_score: f32,
    /// Why the mask deserves little trust, when it does ([`confidence::judge`]).
    pub low_confidence: Option<LowConfidence>,
}

/// One frame segmented from a prompt.
struct Segmented {
    mask: RleMask,
    logits: Option<Vec<f32>>,
    iou: f32,
    object_score: f32,
}

/// Everything a user has open; see the module docs.
pub struct Workspace {
    device: Device,
    model: Option<LoadedModel>,
    doc: Option<Rc<Document>>,
    prompts: PromptStore,
    masks: MaskStore,
    /// The SAM 2 memory session over a clip or volume holding the prompts, made on first
    /// use and rebuilt from the prompt log after a model, window, undo or redo change.
    session: Option<DocSession>,
    embedding: Option<FrameEmbedding>,
    /// A propagation in progress; it is the history's open action until it ends.
    run: Option<Run>,
    history: History,
    /// Fine-tuning the model on the open document (`teach`).
    teach: teach::Teaching,
}

impl Workspace {
    pub fn new(device: Device) -> Self {
        Self {
            device,
            model: None,
            doc: None,
            prompts: PromptStore::default(),
            masks: MaskStore::default(),
            session: None,
            embedding: None,
            run: None,
            history: History::default(),
            teach: teach::Teaching::default(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Loads a model from a weights file's bytes ([`LoadedModel::from_bytes`]), the
    /// base of later fine-tuning (the file is kept: a tuned checkpoint is written over
    /// it). On failure the previous model stays.
    pub fn load_model(
        &mut self,
        bytes: Vec<u8>,
        expect: Option<ModelKind>,
    ) -> AppResult<ModelInfo> {
        let (model, info) = LoadedModel::from_bytes(&bytes, None, expect, &self.device)?;
        self.teach.new_base(model.clone(), Some(Arc::new(bytes)));
        self.install_model(model);
        Ok(info)
    }

    /// Makes `model` the one that segments (and the base of fine-tuning). Prompts and
    /// masks stay; what the old model computed from them (memory, embeddings, a run)
    /// goes.
    pub fn set_model(&mut self, model: LoadedModel) {
        self.teach.new_base(model.clone(), None);
        self.install_model(model);
    }

    /// Segments with `model` from now on (see [`Self::set_model`]).
    fn install_model(&mut self, model: LoadedModel) {
        self.model = Some(model);
        self.drop_model_state();
    }

    pub fn model(&self) -> Option<&LoadedModel> {
        self.model.as_ref()
    }

    /// Opens `doc` in place of the open one; prompts, masks and history of the old one go.
    pub fn open(&mut self, doc: Document) -> DocInfo {
        let info = doc.info();
        self.doc = Some(Rc::new(doc));
        self.drop_model_state();
        self.teach.document_changed();
        self.history.clear(&mut self.masks);
        self.prompts.clear();
        self.masks.clear();
        info
    }

    /// Re-windows the open volume's model input (`None`: the automatic window). Prompts
    /// and masks stay; the model sees the new input from the next prompt or propagation
    /// on. (What a page shows may be another window: [`Document::display_slice`].)
    pub fn set_window(&mut self, window: Option<WindowPreset>) -> AppResult<DocInfo> {
        let doc = self.doc()?.rewindowed(window)?;
        let info = doc.info();
        self.doc = Some(Rc::new(doc));
        self.drop_model_state();
        Ok(info)
    }

    /// Segments every (object, frame) prompt again, in the log's order, with the input as
    /// it is now (after [`Workspace::set_window`]): one history action. Propagated masks
    /// stay until the next propagation. Returns each prompt's outcome.
    pub async fn resegment_prompts(&mut self) -> AppResult<Vec<PromptOutcome>> {
        let doc = self.doc()?;
        let model = self.loaded_model()?;
        self.end_run();
        let entries: Vec<PromptEntry> = self.prompts.current().into_iter().cloned().collect();
        let mut outs = Vec::with_capacity(entries.len());
        for e in &entries {
            outs.push(
                self.segment(&model, &doc, e.obj, e.frame, &e.prompt)
                    .await?,
            );
        }
        self.history.begin(Action::Resegment, &mut self.masks);
        let outcomes = entries
            .into_iter()
            .zip(outs)
            .map(|(e, out)| self.store_prompted(e.obj, e.frame, Some(e.prompt), out))
            .collect();
        self.history.commit(&mut self.masks, PromptChange::None);
        Ok(outcomes)
    }

    fn drop_model_state(&mut self) {
        self.session = None;
        self.embedding = None;
        self.end_run();
    }

    /// Ends the run in progress, if any: what it made so far is one history entry.
    fn end_run(&mut self) {
        self.run = None;
        self.history.commit(&mut self.masks, PromptChange::None);
    }

    /// The open document (shared, so a caller may hold it across an await).
    pub fn doc(&self) -> AppResult<Rc<Document>> {
        self.doc.clone().ok_or_else(|| {
            AppError::new(
                ErrorKind::NoDocument,
                "no image, clip or volume is open: open a file first",
            )
        })
    }

    pub fn document(&self) -> Option<&Document> {
        self.doc.as_deref()
    }

    fn loaded_model(&self) -> AppResult<LoadedModel> {
        self.model.clone().ok_or_else(no_model)
    }

    pub fn prompts(&self) -> &PromptStore {
        &self.prompts
    }

    pub fn masks(&self) -> &MaskStore {
        &self.masks
    }

    /// Keep the full-resolution logits of propagated frames too (parity checks).
    pub fn keep_all_logits(&mut self, on: bool) {
        self.masks.keep_all_logits = on;
    }

    /// Objects with a mask or a prompt.
    pub fn objects(&self) -> Vec<ObjectId> {
        let ids: BTreeSet<ObjectId> = self.masks.objects().chain(self.prompts.objects()).collect();
        ids.into_iter().collect()
    }

    /// Forgets every prompt and mask (`obj` `None`) or those of one object; one action
    /// of the history (undo brings them back).
    pub fn reset(&mut self, obj: Option<ObjectId>) {
        self.end_run();
        self.history.begin(Action::Reset { obj }, &mut self.masks);
        let entries = self.prompts.remove_object(obj);
        match obj {
            None => {
                self.masks.clear();
                if let Some(s) = self.session.as_mut() {
                    s.reset();
                }
            }
            Some(id) => {
                self.masks.remove_object(id);
                // An object the session never saw is not an error here.
                if let Some(s) = self.session.as_mut() {
                    let _ = s.remove_object(id);
                }
            }
        }
        self.history
            .commit(&mut self.masks, PromptChange::Removed { obj, entries });
    }

    /// Computes the image embedding of `frame` ahead of a prompt on it, so that the
    /// prompt only runs the decoder. Returns whether it was computed now.
    pub async fn prepare_frame(&mut self, frame: usize) -> AppResult<bool> {
        let doc = self.doc()?;
        doc.check_frame(frame)?;
        Ok(match self.loaded_model()? {
            LoadedModel::Sam2(model) if doc.kind() == DocKind::Image => {
                let had = matches!(self.embedding, Some(FrameEmbedding::Sam2Image(_)));
                self.sam2_image(&model, &doc)?;
                !had
            }
            LoadedModel::Sam2(model) => {
                self.session(&model, &doc).await?;
                let session = self.session.as_mut().ok_or_else(no_session)?;
                session.prepare_frame(frame)?
            }
            LoadedModel::LiteMedSam(model) => self.lite_embedding(&model, &doc, frame)?.1,
        })
    }

    /// Adds `edit` to the prompt of `obj` on `frame` (a box starts the frame's prompt
    /// afresh, points are added) and segments the frame with the whole prompt; one action
    /// of the history. Ends a run in progress. On failure nothing else changes.
    pub async fn add_prompt(
        &mut self,
        obj: ObjectId,
        frame: usize,
        edit: &ImagePrompt,
    ) -> AppResult<PromptOutcome> {
        let doc = self.doc()?;
        doc.check_frame(frame)?;
        let edit = &fit_prompt(edit, doc.width(), doc.height())?;
        let model = self.loaded_model()?;
        let prompt = self.prompts.preview(obj, frame, edit);
        self.end_run();
        let out = self.segment(&model, &doc, obj, frame, &prompt).await?;
        let action = Action::Prompt {
            obj,
            frame,
            with_box: edit.box_xyxy.is_some(),
            points: edit.points.len(),
        };
        self.history.begin(action, &mut self.masks);
        self.prompts.push(obj, frame, prompt.clone());
        let outcome = self.store_prompted(obj, frame, Some(prompt.clone()), out);
        let entry = PromptEntry { obj, frame, prompt };
        self.history
            .commit(&mut self.masks, PromptChange::Pushed(entry));
        Ok(outcome)
    }

    /// Takes back the last action (a prompt, a whole propagation, a reset), whatever its
    /// object: the prompts and masks it changed are as before it, put back as they were
    /// (the model does not run). Ends a run in progress, which is then the action taken
    /// back. `None` when there is nothing to undo.
    pub fn undo(&mut self) -> AppResult<Option<Restored>> {
        self.end_run();
        let restored = self.history.undo(&mut self.prompts, &mut self.masks)?;
        self.after_history(restored)
    }

    /// Does the last undone action again, as [`Workspace::undo`] took it back. `None` when
    /// there is nothing to redo.
    pub fn redo(&mut self) -> AppResult<Option<Restored>> {
        self.end_run();
        let restored = self.history.redo(&mut self.prompts, &mut self.masks)?;
        self.after_history(restored)
    }

    fn after_history(&mut self, restored: Option<Restored>) -> AppResult<Option<Restored>> {
        if restored.is_some() {
            // The SAM 2 memory holds the prompts (and propagated frames) of before: it is
            // rebuilt from the prompts now when next needed. Prompt outputs depend on the
            // prompts alone, so the masks put back agree with it.
            self.session = None;
        }
        Ok(restored)
    }

    /// Whether there is something to undo or redo, and what.
    pub fn history(&self) -> HistoryState {
        self.history.state(&self.masks)
    }

    fn store_prompted(
        &mut self,
        obj: ObjectId,
        frame: usize,
        prompt: Option<ImagePrompt>,
        out: Segmented,
    ) -> PromptOutcome {
        let area = out.mask.area();
        self.masks.set(obj, frame, out.mask);
        self.masks.set_prompt_logits(obj, frame, out.logits);
        PromptOutcome {
            obj,
            frame,
            prompt,
            area,
            iou: out.iou,
            object_score: out.object_score,
            low_confidence: confidence::judge(out.iou, out.object_score, area),
        }
    }

    /// Segments `frame` with the whole `prompt` of `obj`.
    async fn segment(
        &mut self,
        model: &LoadedModel,
        doc: &Document,
        obj: ObjectId,
        frame: usize,
        prompt: &ImagePrompt,
    ) -> AppResult<Segmented> {
        let (w, h) = (doc.width(), doc.height());
        match model {
            LoadedModel::Sam2(model) if doc.kind() == DocKind::Image => {
                let predictor = Sam2ImagePredictor::new(model);
                let encoded = self.sam2_image(model, doc)?;
                let pred = predictor.predict(encoded, prompt).await?;
                Ok(Segmented {
                    mask: RleMask::encode(&pred.mask(), w, h),
                    iou: pred.iou,
                    object_score: pred.object_score,
                    logits: Some(pred.logits),
                })
            }
            LoadedModel::Sam2(model) => {
                self.session(model, doc).await?;
                let session = self.session.as_mut().ok_or_else(no_session)?;
                let out = session
                    .set_frame_prompt(frame, obj, prompt.box_xyxy, &prompt.points)
                    .await?;
                Ok(session_output(out, obj, w, h))
            }
            LoadedModel::LiteMedSam(model) => {
                let Some(b) = prompt.box_xyxy else {
                    return Err(AppError::bad_input(
                        "LiteMedSAM needs a box prompt (it takes no points)",
                    ));
                };
                if !prompt.points.is_empty() {
                    return Err(AppError::bad_input(
                        "LiteMedSAM takes a box only, not points",
                    ));
                }
                let (embedding, _) = self.lite_embedding(model, doc, frame)?;
                let box_256 = model.transform().box_to_model(b, (h, w));
                let pred = model.predict_embedded(&embedding, box_256).await?;
                Ok(Segmented {
                    mask: RleMask::encode(&pred.mask, w, h),
                    logits: Some(pred.logits),
                    iou: pred.iou,
                    object_score: f32::NAN,
                })
            }
        }
    }

    /// SAM 2's encoding of the open single image, made on first use.
    fn sam2_image(&mut self, model: &Sam2Model, doc: &Document) -> AppResult<&Sam2EncodedImage> {
        if !matches!(self.embedding, Some(FrameEmbedding::Sam2Image(_))) {
            let encoded = Sam2ImagePredictor::new(model).set_image(&doc.frame_rgb(0)?)?;
            self.embedding = Some(FrameEmbedding::Sam2Image(Box::new(encoded)));
        }
        match &self.embedding {
            Some(FrameEmbedding::Sam2Image(enc)) => Ok(enc),
            _ => Err(AppError::engine("the image encoding was not kept")),
        }
    }

    /// LiteMedSAM's embedding of `frame` (an image as RGB, a clip frame or volume slice
    /// grey, as the recipe takes them), made on first use; and whether it was made now.
    fn lite_embedding(
        &mut self,
        model: &LiteMedSam,
        doc: &Document,
        frame: usize,
    ) -> AppResult<(LiteEmbedding, bool)> {
        if let Some(FrameEmbedding::LiteMedSam {
            frame: f,
            embedding,
        }) = &self.embedding
            && *f == frame
        {
            return Ok((LiteEmbedding::clone(embedding), false));
        }
        let (w, h) = (doc.width(), doc.height());
        let t = model.transform();
        let input = if doc.kind() == DocKind::Image {
            t.prepare_rgb(&doc.frame_rgb(0)?.data, h, w)
        } else {
            t.prepare_gray(&doc.grey_frame(frame)?, h, w)
        }
        .map_err(|e| AppError::bad_input(e.to_string()))?;
        let embedding = model.embed(&input, (h, w));
        self.embedding = Some(FrameEmbedding::LiteMedSam {
            frame,
            embedding: Box::new(embedding.clone()),
        });
        Ok((embedding, true))
    }

    /// The SAM 2 session over the open clip or volume, made when there is none and given
    /// the prompt of every (object, frame) again, in the order of their latest change.
    async fn session(&mut self, model: &Arc<Sam2Model>, doc: &Document) -> AppResult<()> {
        if self.session.is_some() {
            return Ok(());
        }
        let mut session = VideoSession::new(model.clone(), doc.frames())?;
        for e in self.prompts.current() {
            session
                .set_frame_prompt(e.frame, e.obj, e.prompt.box_xyxy, &e.prompt.points)
                .await?;
        }
        self.session = Some(session);
        Ok(())
    }

    /// Plans a propagation from the prompted frames over `range` (inclusive; `None`: all
    /// frames) and returns the number of steps it takes; [`Workspace::step`] then does
    /// them one at a time. Replaces a run in progress.
    pub async fn start_propagation(
        &mut self,
        directions: Directions,
        range: Option<(usize, usize)>,
    ) -> AppResult<usize> {
        let doc = self.doc()?;
        let model = self.loaded_model()?;
        let range = frame_range(range, doc.len())?;
        let all = (0, doc.len() - 1);
        if self.prompts.is_empty() {
            return Err(AppError::new(
                ErrorKind::NoPrompt,
                "no prompt yet: draw a box on a frame first",
            ));
        }
        self.end_run();
        let (run, total) = match (&model, doc.kind()) {
            (_, DocKind::Image) => (
                Run::LiteMedSam {
                    walks: VecDeque::new(),
                },
                0,
            ),
            (LoadedModel::Sam2(m), DocKind::Clip) => {
                self.session(m, &doc).await?;
                // From the earliest prompted frame, even outside the range: the range
                // only limits the frames visited (as `propagate_in_video` does).
                let start = first_prompted(&self.prompts, None, all);
                let passes: VecDeque<_> = start
                    .map(|s| planned_passes(s, directions, range))
                    .unwrap_or_default()
                    .into();
                let total = passes.iter().map(|p| p.1).sum();
                let run = Run::Sam2Clip {
                    passes,
                    start: start.unwrap_or(range.0),
                    range,
                    current: None,
                };
                (run, total)
            }
            (LoadedModel::Sam2(_), DocKind::Volume) => {
                let mut objects = VecDeque::new();
                for obj in self.prompts.objects() {
                    let Some(start) = first_prompted(&self.prompts, Some(obj), all) else {
                        continue;
                    };
                    objects.push_back(VolumeObject {
                        obj,
                        start,
                        passes: planned_passes(start, directions, range).into(),
                        current: None,
                        union: BTreeMap::new(),
                    });
                }
                let total = objects
                    .iter()
                    .flat_map(|o| o.passes.iter().map(|p| p.1))
                    .sum();
                (Run::Sam2Volume { objects, range }, total)
            }
            (LoadedModel::LiteMedSam(m), _) => {
                let grey = doc.grey()?;
                let mut walks = VecDeque::new();
                for obj in self.prompts.objects() {
                    // The latest box is the key slice of the recipe.
                    let Some((key, key_box)) = self.prompts.latest_box(obj) else {
                        continue;
                    };
                    if !(range.0..=range.1).contains(&key) {
                        continue;
                    }
                    let mut walk = LitePropagation::new(
                        m.clone(),
                        grey.clone(),
                        doc.dims(),
                        key,
                        key_box,
                        walk_range(key, range, directions.list()),
                    )?;
                    // The key slice has its mask (the box made it, or the user's undo/redo
                    // put back the one they see): the walk starts from it, not segmenting
                    // it again.
                    if let Some(mask) = self.masks.get(obj, key) {
                        walk = walk.with_key_mask(&mask.decode())?;
                    }
                    walks.push_back((obj, walk));
                }
                let total = walks.iter().map(|(_, w)| w.len()).sum();
                (Run::LiteMedSam { walks }, total)
            }
        };
        let action = Action::Propagation {
            direction: directions,
            first: range.0,
            last: range.1,
        };
        self.history.begin(action, &mut self.masks);
        self.run = Some(run);
        Ok(total)
    }

    /// Does the next step of the run: `None` when it is done (or there is none). A run
    /// that ends (done or failed) is one history entry.
    pub async fn step(&mut self) -> AppResult<Option<StepOutcome>> {
        let Some(mut run) = self.run.take() else {
            return Ok(None);
        };
        let result = self.step_run(&mut run).await;
        if matches!(result, Ok(Some(_))) {
            self.run = Some(run);
        } else {
            self.end_run();
        }
        result
    }

    /// Abandons the run in progress; the masks made so far stay, as one history entry.
    pub fn cancel(&mut self) {
        self.end_run();
    }

    /// Runs a whole propagation, calling `progress(done, total)` after each step; returns
    /// the number of steps.
    pub async fn propagate(
        &mut self,
        directions: Directions,
        range: Option<(usize, usize)>,
        mut progress: impl FnMut(usize, usize),
    ) -> AppResult<usize> {
        let total = self.start_propagation(directions, range).await?;
        let mut done = 0;
        while self.step().await?.is_some() {
            done += 1;
            progress(done, total);
        }
        Ok(done)
    }

    async fn step_run(&mut self, run: &mut Run) -> AppResult<Option<StepOutcome>> {
        let doc = self.doc()?;
        let (w, h) = (doc.width(), doc.height());
        match run {
            Run::Sam2Clip {
                passes,
                start,
                range,
                current,
            } => loop {
                let session = self.session.as_mut().ok_or_else(no_session)?;
                if current.is_none() {
                    let Some((direction, _)) = passes.pop_front() else {
                        return Ok(None);
                    };
                    *current = Some(
                        session
                            .start_propagation(Some(*start), direction, Some(*range))
                            .await?,
                    );
                }
                let prop = current.as_mut().ok_or_else(no_session)?;
                match session.step(prop).await? {
                    Some(out) => {
                        let objects = out.objects.iter().map(|(id, _)| *id).collect();
                        for (id, m) in out.objects {
                            self.masks.set(id, out.frame, m);
                        }
                        for (id, l) in out.logits {
                            self.masks.set_propagated_logits(id, out.frame, l);
                        }
                        return Ok(Some(StepOutcome {
                            frames: vec![out.frame],
                            objects,
                        }));
                    }
                    None => *current = None,
                }
            },
            Run::Sam2Volume { objects, range } => loop {
                let Some(vo) = objects.front_mut() else {
                    return Ok(None);
                };
                if vo.current.is_none() {
                    let Some((direction, _)) = vo.passes.pop_front() else {
                        objects.pop_front();
                        continue;
                    };
                    let model = match self.loaded_model()? {
                        LoadedModel::Sam2(m) => m,
                        LoadedModel::LiteMedSam(_) => return Err(no_session()),
                    };
                    // A fresh session per pass, given this object's prompts, as MedSAM2
                    // resets its state between the two passes.
                    let mut session = VideoSession::new(model, doc.frames())?;
                    for e in self.prompts.current() {
                        if e.obj == vo.obj {
                            session
                                .set_frame_prompt(
                                    e.frame,
                                    e.obj,
                                    e.prompt.box_xyxy,
                                    &e.prompt.points,
                                )
                                .await?;
                        }
                    }
                    let prop = session
                        .start_propagation(Some(vo.start), direction, Some(*range))
                        .await?;
                    vo.current = Some((session, prop));
                }
                let Some((session, prop)) = vo.current.as_mut() else {
                    continue;
                };
                let Some(out) = session.step(prop).await? else {
                    vo.current = None;
                    continue;
                };
                let frame = out.frame;
                for (_, m) in &out.objects {
                    let union = vo.union.entry(frame).or_insert_with(|| vec![0; w * h]);
                    for (u, v) in union.iter_mut().zip(m.decode()) {
                        *u |= v;
                    }
                }
                if prop.remaining() > 0 || !vo.passes.is_empty() {
                    let union = &vo.union[&frame];
                    self.masks.set(vo.obj, frame, RleMask::encode(union, w, h));
                    return Ok(Some(StepOutcome {
                        frames: vec![frame],
                        objects: vec![vo.obj],
                    }));
                }
                // The object's last step: keep the largest connected component of the
                // union, over the frames the passes visited.
                let obj = vo.obj;
                let frames = self.finish_volume_object(vo, frame, (w, h));
                objects.pop_front();
                return Ok(Some(StepOutcome {
                    frames,
                    objects: vec![obj],
                }));
            },
            Run::LiteMedSam { walks } => loop {
                let Some((obj, walk)) = walks.front_mut() else {
                    return Ok(None);
                };
                let obj = *obj;
                match walk.step().await {
                    Some(step) => {
                        let step = step?;
                        self.masks
                            .set(obj, step.z, RleMask::encode(&step.mask, w, h));
                        return Ok(Some(StepOutcome {
                            frames: vec![step.z],
                            objects: vec![obj],
                        }));
                    }
                    None => {
                        walks.pop_front();
                    }
                }
            },
        }
    }

    /// Stores the largest 26-connected component of an object's union over the frames
    /// its passes visited (a contiguous run of slices); returns those frames, `last`
    /// (the frame just segmented) first.
    fn finish_volume_object(
        &mut self,
        vo: &VolumeObject,
        last: usize,
        (w, h): (usize, usize),
    ) -> Vec<usize> {
        let plane = w * h;
        let (Some(&lo), Some(&hi)) = (vo.union.keys().next(), vo.union.keys().next_back()) else {
            return vec![last];
        };
        let depth = hi - lo + 1;
        let mut dense = vec![0u8; depth * plane];
        for (&f, m) in &vo.union {
            dense[(f - lo) * plane..(f - lo + 1) * plane].copy_from_slice(m);
        }
        let kept = largest_connected_component(&dense, [depth, h, w]);
        let mut frames = vec![last];
        for &f in vo.union.keys() {
            let slice = &kept[(f - lo) * plane..(f - lo + 1) * plane];
            self.masks.set(vo.obj, f, RleMask::encode(slice, w, h));
            if f != last {
                frames.push(f);
            }
        }
        frames
    }

    /// The masks as a gzipped NIfTI label map ([`MaskStore::export_nifti`]).
    pub fn export_nifti(&self, obj: Option<ObjectId>) -> AppResult<Vec<u8>> {
        self.masks.export_nifti(&*self.doc()?, obj)
    }

    /// One frame's mask as a PNG ([`MaskStore::export_png`]).
    pub fn export_png(&self, frame: usize, obj: Option<ObjectId>) -> AppResult<Vec<u8>> {
        self.masks.export_png(&*self.doc()?, frame, obj)
    }

    /// The masks as a DICOM Segmentation of the open DICOM document
    /// ([`MaskStore::export_dicom_seg`]), naming the loaded model as the algorithm.
    pub fn export_dicom_seg(
        &self,
        obj: Option<ObjectId>,
        request: &SegRequest,
    ) -> AppResult<Vec<u8>> {
        let algorithm = self.model().map_or("MedSeg", |m| m.kind().name());
        self.masks
            .export_dicom_seg(&*self.doc()?, obj, request, algorithm)
    }

    /// Every frame's mask as PNG in a zip ([`MaskStore::export_png_zip`]).
    pub fn export_png_zip(&self, obj: Option<ObjectId>) -> AppResult<Vec<u8>> {
        self.masks.export_png_zip(&*self.doc()?, obj)
    }
}

/// The mask and logits of `obj` in a session's output for one frame.
fn session_output(
    out: crate::session::video::FrameMasks,
    obj: ObjectId,
    w: usize,
    h: usize,
) -> Segmented {
    let logits = out
        .logits
        .into_iter()
        .find(|(id, _)| *id == obj)
        .map(|(_, l)| l);
    let mask = out
        .objects
        .into_iter()
        .find(|(id, _)| *id == obj)
        .map_or_else(|| RleMask::empty(w, h), |(_, m)| m);
    Segmented {
        mask,
        logits,
        iou: f32::NAN,
        object_score: f32::NAN,
    }
}

fn no_session() -> AppError {
    AppError::engine("the SAM 2 session is missing (an internal error; open the file again)")
}
