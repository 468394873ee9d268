//! The SAM 2 video / volume session (`SAM2VideoPredictor` in eval mode):
//! per-object prompts and frame records, memory selection, and a one-frame
//! [`VideoSession::step`] that a UI can drive and cancel.
//!
//! Objects are tracked independently (batch 1 per object, as the official
//! predictor does). Choices where the official predictor has options:
//! corrections become conditioning frames (`add_all_frames_to_correct_as_cond
//! = True`), no hole filling (`fill_hole_area = 0`, as without `sam2._C`),
//! overlapping objects allowed (`non_overlap_masks = False`). Memory features are kept in bfloat16 on the host, exactly
//! as the official predictor stores them, which also halves their size.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use crate::model::position_encoding::sine_pe_1d;
use crate::model::sam::mask_decoder::MaskOutput;
use crate::model::sam::prompt_encoder::{PointLabel, PointPrompt};
use crate::model::sam2::{
    BackboneOutput, MaskSource, NO_OBJ_SCORE, Sam2Model, SamHeadsOutput, upsample_bilinear,
};
use crate::readback::read_f32;
use crate::session::frames::{FrameError, FrameSource, video_model_input};
use crate::session::mask_store::RleMask;

pub type ObjectId = u32;

/// Direction of propagation through the clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the clip has no frames")]
    EmptyClip,
    #[error("frame {frame} is outside the clip (0..{len})")]
    FrameOutOfRange { frame: usize, len: usize },
    #[error("no prompt has been given yet: draw a box or click on a frame first")]
    NoPrompts,
    #[error("object {0} does not exist")]
    UnknownObject(ObjectId),
    #[error("a prompt needs a box or at least one point")]
    EmptyPrompt,
    #[error("the mask has {found} pixels; the frame is {width}×{height}")]
    MaskSize {
        found: usize,
        height: usize,
        width: usize,
    },
    #[error(transparent)]
    Readback(#[from] crate::readback::ReadbackError),
}

/// What one traced module call saw and returned (for parity tests and debugging).
#[derive(Debug)]
pub enum TraceEvent<'a> {
    PromptEncoder {
        frame: usize,
        prompt: &'a PointPrompt,
        sparse: &'a Tensor<3>,
        dense: &'a Tensor<4>,
    },
    MaskDecoder {
        frame: usize,
        image_embeddings: &'a Tensor<4>,
        sparse: &'a Tensor<3>,
        dense: &'a Tensor<4>,
        output: MaskOutput,
        masks: &'a Tensor<4>,
        iou: &'a Tensor<2>,
        tokens: &'a Tensor<3>,
        object_score: &'a Tensor<2>,
    },
    MemoryEncoder {
        frame: usize,
        pix_feat: &'a Tensor<4>,
        masks: &'a Tensor<4>,
        features: &'a Tensor<4>,
        pos: &'a Tensor<4>,
    },
    MemoryAttention {
        frame: usize,
        curr: &'a Tensor<3>,
        curr_pos: &'a Tensor<3>,
        memory: &'a Tensor<3>,
        memory_pos: &'a Tensor<3>,
        num_obj_ptr_tokens: usize,
        out: &'a Tensor<3>,
    },
}

/// Memory features stored compactly as bfloat16 on the host.
#[derive(Clone, Debug)]
struct Bf16Features {
    shape: [usize; 4],
    bits: Vec<u16>,
}

impl Bf16Features {
    async fn from_tensor(t: &Tensor<4>) -> Result<Self, SessionError> {
        let data = read_f32(t.clone()).await?;
        Ok(Self {
            shape: t.dims(),
            bits: data
                .iter()
                .map(|v| half::bf16::from_f32(*v).to_bits())
                .collect(),
        })
    }

    fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let data: Vec<f32> = self
            .bits
            .iter()
            .map(|b| half::bf16::from_bits(*b).to_f32())
            .collect();
        Tensor::from_data(TensorData::new(data, self.shape.to_vec()), device)
    }
}

/// The trimmed output of one frame for one object (`compact_current_out`).
#[derive(Clone, Debug)]
pub struct FrameRecord {
    maskmem_features: Option<Bf16Features>,
    /// Low-res mask logits `[1, 1, 4h, 4w]`.
    pub pred_masks: Tensor<4>,
    /// `[1, C]`.
    pub obj_ptr: Tensor<2>,
    /// `[1, 1]`.
    pub object_score_logits: Tensor<2>,
}

impl FrameRecord {
    pub fn maskmem_features(&self, device: &Device) -> Option<Tensor<4>> {
        self.maskmem_features.as_ref().map(|f| f.to_tensor(device))
    }
}

/// The frames a propagation from `start` visits in `direction` within `lo..=hi`, in
/// order (what [`VideoSession::start_propagation`] plans; callers count steps with it).
pub fn propagation_order(
    start: usize,
    direction: Direction,
    (lo, hi): (usize, usize),
) -> VecDeque<usize> {
    match direction {
        Direction::Forward => (start.max(lo)..=hi).collect(),
        Direction::Backward if start == 0 => VecDeque::new(),
        Direction::Backward => (lo..=start.min(hi)).rev().collect(),
    }
}

/// Per-object state: prompts, conditioning and non-conditioning records, output masks.
#[derive(Debug, Default)]
struct ObjectTrack {
    point_inputs: BTreeMap<usize, PointPrompt>,
    /// Conditioning frames in the order they were added (the official dict order).
    cond: Vec<(usize, FrameRecord)>,
    non_cond: BTreeMap<usize, FrameRecord>,
    /// Prompted frames not yet consolidated (`temp_output_dict_per_obj`). Every prompt
    /// makes a conditioning frame here (see `add_prompt`), so the official non-cond half
    /// of that dict is never filled.
    temp_cond: BTreeMap<usize, FrameRecord>,
    /// Frames tracked so far, with the direction they were tracked in.
    tracked: BTreeMap<usize, Direction>,
}

impl ObjectTrack {
    fn cond_get(&self, frame: usize) -> Option<&FrameRecord> {
        self.cond.iter().find(|(f, _)| *f == frame).map(|(_, r)| r)
    }

    fn cond_insert(&mut self, frame: usize, rec: FrameRecord) {
        match self.cond.iter_mut().find(|(f, _)| *f == frame) {
            Some(slot) => slot.1 = rec,
            None => self.cond.push((frame, rec)),
        }
    }

    /// Any stored output for `frame` (temp first, as the official lookup).
    fn output_at(&self, frame: usize) -> Option<&FrameRecord> {
        self.temp_cond
            .get(&frame)
            .or_else(|| self.cond_get(frame))
            .or_else(|| self.non_cond.get(&frame))
    }
}

/// Features of one frame as the SAM heads use them.
#[derive(Clone, Debug)]
struct FrameFeatures {
    backbone: BackboneOutput,
}

impl FrameFeatures {
    /// Sequence-first stride-16 features and position encoding `[HW, 1, C]`.
    fn flat_top(&self) -> (Tensor<3>, Tensor<3>) {
        let flat = |x: &Tensor<4>| {
            let [b, c, h, w] = x.dims();
            x.clone().reshape([b, c, h * w]).permute([2, 0, 1])
        };
        let n = self.backbone.backbone_fpn.len();
        (
            flat(&self.backbone.backbone_fpn[n - 1]),
            flat(&self.backbone.vision_pos_enc[n - 1]),
        )
    }

    fn high_res(&self) -> [Tensor<4>; 2] {
        [
            self.backbone.backbone_fpn[0].clone(),
            self.backbone.backbone_fpn[1].clone(),
        ]
    }
}

/// Masks of one frame after a step: per object, at the frame's size.
#[derive(Clone, Debug)]
pub struct FrameMasks {
    pub frame: usize,
    pub objects: Vec<(ObjectId, RleMask)>,
    /// Full-resolution logits per object (`video_res_masks`), row-major.
    pub logits: Vec<(ObjectId, Vec<f32>)>,
}

/// Where a propagation run stands.
#[derive(Clone, Debug)]
pub struct Propagation {
    order: VecDeque<usize>,
    direction: Direction,
    pub total: usize,
}

impl Propagation {
    pub fn remaining(&self) -> usize {
        self.order.len()
    }
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// An observer of traced module calls.
pub type Tracer<'m> = Box<dyn FnMut(TraceEvent<'_>) + 'm>;

/// Frames whose features stay cached (re-encoded on demand beyond this).
const FEATURE_CACHE_FRAMES: usize = 2;

/// The video / volume session.
pub struct VideoSession<'m, F: FrameSource> {
    model: Arc<Sam2Model>,
    frames: F,
    device: Device,
    objects: BTreeMap<ObjectId, ObjectTrack>,
    feature_cache: VecDeque<(usize, FrameFeatures)>,
    /// `maskmem_pos_enc` is the same for every frame: computed once.
    maskmem_pos: Option<Tensor<4>>,
    tracer: Option<Tracer<'m>>,
}

impl<'m, F: FrameSource> VideoSession<'m, F> {
    pub fn new(model: Arc<Sam2Model>, frames: F) -> Result<Self, SessionError> {
        if frames.is_empty() {
            return Err(SessionError::EmptyClip);
        }
        Ok(Self {
            device: model.no_mem_embed.val().device(),
            model,
            frames,
            objects: BTreeMap::new(),
            feature_cache: VecDeque::new(),
            maskmem_pos: None,
            tracer: None,
        })
    }

    /// Observes every prompt-encoder, mask-decoder, memory-encoder and
    /// memory-attention call.
    pub fn set_tracer(&mut self, tracer: impl FnMut(TraceEvent<'_>) + 'm) {
        self.tracer = Some(Box::new(tracer));
    }

    pub fn num_frames(&self) -> usize {
        self.frames.len()
    }

    pub fn frame_size(&self) -> (usize, usize) {
        self.frames.frame_size()
    }

    pub fn object_ids(&self) -> Vec<ObjectId> {
        self.objects.keys().copied().collect()
    }

    /// Record of `object` on `frame` (conditioning or not), for inspection.
    pub fn record(&self, frame: usize, object: ObjectId) -> Option<&FrameRecord> {
        let o = self.objects.get(&object)?;
        o.cond_get(frame).or_else(|| o.non_cond.get(&frame))
    }

    fn trace(&mut self, event: TraceEvent<'_>) {
        if let Some(t) = self.tracer.as_mut() {
            t(event);
        }
    }

    fn check_frame(&self, frame: usize) -> Result<(), SessionError> {
        let len = self.frames.len();
        if frame >= len {
            return Err(SessionError::FrameOutOfRange { frame, len });
        }
        Ok(())
    }

    /// Image features of `frame` from the small LRU cache, encoding on a miss.
    fn features(&mut self, frame: usize) -> Result<FrameFeatures, SessionError> {
        if let Some(pos) = self.feature_cache.iter().position(|(f, _)| *f == frame) {
            let entry = self
                .feature_cache
                .remove(pos)
                .expect("position is in range");
            let feats = entry.1.clone();
            self.feature_cache.push_back(entry);
            return Ok(feats);
        }
        let s = self.model.image_size();
        let rgb = self.frames.frame(frame)?;
        let input = video_model_input(&rgb, s)?;
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, s, s]), &self.device);
        let feats = FrameFeatures {
            backbone: self.model.forward_image(x),
        };
        self.feature_cache.push_back((frame, feats.clone()));
        while self.feature_cache.len() > FEATURE_CACHE_FRAMES {
            self.feature_cache.pop_front();
        }
        Ok(feats)
    }

    /// Encodes `frame` into the feature cache ahead of a prompt on it (a UI calls it for
    /// the frame on screen, so that the prompt only runs the heads). Returns whether it
    /// had to encode (false: the features were cached).
    pub fn prepare_frame(&mut self, frame: usize) -> Result<bool, SessionError> {
        self.check_frame(frame)?;
        let cached = self.feature_cache.iter().any(|(f, _)| *f == frame);
        self.features(frame)?;
        Ok(!cached)
    }

    /// Adds (replacing earlier prompts of that frame) a box and/or points in
    /// frame pixel coordinates for `object` on `frame`, and segments that
    /// frame at once (`add_new_points_or_box`): the frame's earlier output, if
    /// any, is the mask input, as the official predictor refines. Later
    /// propagation uses it.
    pub async fn add_prompt(
        &mut self,
        frame: usize,
        object: ObjectId,
        box_xyxy: Option<[f32; 4]>,
        points: &[([f32; 2], PointLabel)],
    ) -> Result<FrameMasks, SessionError> {
        self.prompt_frame(frame, object, box_xyxy, points, true)
            .await
    }

    /// As [`VideoSession::add_prompt`], but the prompt alone decides the frame's
    /// output (no mask input from an earlier output): the same prompt gives the
    /// same mask whatever was given before it, as on a single image.
    pub async fn set_frame_prompt(
        &mut self,
        frame: usize,
        object: ObjectId,
        box_xyxy: Option<[f32; 4]>,
        points: &[([f32; 2], PointLabel)],
    ) -> Result<FrameMasks, SessionError> {
        self.prompt_frame(frame, object, box_xyxy, points, false)
            .await
    }

    async fn prompt_frame(
        &mut self,
        frame: usize,
        object: ObjectId,
        box_xyxy: Option<[f32; 4]>,
        points: &[([f32; 2], PointLabel)],
        refine_earlier_output: bool,
    ) -> Result<FrameMasks, SessionError> {
        self.check_frame(frame)?;
        if box_xyxy.is_none() && points.is_empty() {
            return Err(SessionError::EmptyPrompt);
        }
        let (h, w) = self.frames.frame_size();
        let s = self.model.image_size() as f32;
        let to_model = |[x, y]: [f32; 2]| [x / w as f32 * s, y / h as f32 * s];
        let mut prompt = PointPrompt::default();
        if let Some([x0, y0, x1, y1]) = box_xyxy {
            prompt
                .coords
                .extend([to_model([x0, y0]), to_model([x1, y1])]);
            prompt
                .labels
                .extend([PointLabel::BoxTopLeft, PointLabel::BoxBottomRight]);
        }
        for (xy, l) in points {
            prompt.coords.push(to_model(*xy));
            prompt.labels.push(*l);
        }
        let track = self.objects.entry(object).or_default();
        track.point_inputs.insert(frame, prompt.clone());
        let is_init_cond_frame = !track.tracked.contains_key(&frame);
        let direction = track
            .tracked
            .get(&frame)
            .copied()
            .unwrap_or(Direction::Forward);
        // add_all_frames_to_correct_as_cond = True: a correction on a tracked
        // frame becomes a conditioning frame, so re-propagating from it keeps
        // it and later frames are conditioned on it (with the official default,
        // re-propagation would overwrite the corrected frame). So every prompt
        // goes to the conditioning outputs.
        let prev_logits = track
            .output_at(frame)
            .filter(|_| refine_earlier_output)
            .map(|r| r.pred_masks.clone().clamp(-32.0, 32.0));
        let record = self
            .run_single_frame(
                frame,
                object,
                is_init_cond_frame,
                Some(&prompt),
                prev_logits,
                direction,
                MemoryEncoding::Deferred,
            )
            .await?;
        self.objects
            .entry(object)
            .or_default()
            .temp_cond
            .insert(frame, record);
        self.frame_output(frame, &[object]).await
    }

    /// Adds a mask prompt (`add_new_mask`): `mask` is the frame's size,
    /// row-major, non-zero = object. It replaces the frame's earlier prompts
    /// for `object` and is taken as that frame's output.
    pub async fn add_mask(
        &mut self,
        frame: usize,
        object: ObjectId,
        mask: &[u8],
    ) -> Result<FrameMasks, SessionError> {
        self.check_frame(frame)?;
        let (h, w) = self.frames.frame_size();
        if mask.len() != h * w {
            return Err(SessionError::MaskSize {
                found: mask.len(),
                height: h,
                width: w,
            });
        }
        let s = self.model.image_size();
        let m: Vec<f32> = mask.iter().map(|&v| f32::from(u8::from(v != 0))).collect();
        let resized = if (h, w) == (s, s) {
            m
        } else {
            crate::preprocess::resize_bilinear(&m, 1, h, w, s, s, crate::preprocess::Antialias::On)
        };
        let binary: Vec<f32> = resized
            .iter()
            .map(|&v| f32::from(u8::from(v >= 0.5)))
            .collect();
        let feats = self.features(frame)?;
        let n = feats.backbone.backbone_fpn.len();
        let heads = self.model.heads_from_mask(
            &feats.backbone.backbone_fpn[n - 1],
            &feats.high_res(),
            &binary,
        );
        let track = self.objects.entry(object).or_default();
        track.point_inputs.remove(&frame);
        track.temp_cond.insert(
            frame,
            FrameRecord {
                maskmem_features: None,
                pred_masks: heads.low_res_masks,
                obj_ptr: heads.obj_ptr,
                object_score_logits: heads.object_score_logits,
            },
        );
        self.frame_output(frame, &[object]).await
    }

    /// Removes an object and everything known about it.
    pub fn remove_object(&mut self, object: ObjectId) -> Result<(), SessionError> {
        self.objects
            .remove(&object)
            .map(|_| ())
            .ok_or(SessionError::UnknownObject(object))
    }

    /// Forgets all prompts and results (`reset_state`); frames stay.
    pub fn reset(&mut self) {
        self.objects.clear();
    }

    /// Consolidates prompted frames (`propagate_in_video_preflight`) and plans
    /// a run from `start` (default: the earliest conditioning frame) in
    /// `direction`, limited to `range` (inclusive) if given.
    pub async fn start_propagation(
        &mut self,
        start: Option<usize>,
        direction: Direction,
        range: Option<(usize, usize)>,
    ) -> Result<Propagation, SessionError> {
        self.preflight().await?;
        let first_cond = self
            .objects
            .values()
            .flat_map(|o| o.cond.iter().map(|(f, _)| *f))
            .min()
            .ok_or(SessionError::NoPrompts)?;
        let start = start.unwrap_or(first_cond);
        self.check_frame(start)?;
        let (lo, hi) = range.unwrap_or((0, self.frames.len() - 1));
        let hi = hi.min(self.frames.len() - 1);
        let order = propagation_order(start, direction, (lo, hi));
        Ok(Propagation {
            total: order.len(),
            order,
            direction,
        })
    }

    async fn preflight(&mut self) -> Result<(), SessionError> {
        if self.objects.is_empty() {
            return Err(SessionError::NoPrompts);
        }
        let ids: Vec<ObjectId> = self.objects.keys().copied().collect();
        for id in ids {
            let pending = std::mem::take(
                &mut self
                    .objects
                    .get_mut(&id)
                    .ok_or(SessionError::UnknownObject(id))?
                    .temp_cond,
            );
            for (frame, mut rec) in pending {
                if rec.maskmem_features.is_none() {
                    let s = self.model.image_size();
                    let high_res = upsample_bilinear(rec.pred_masks.clone(), [s, s]);
                    let feats = self.features(frame)?;
                    let (mem, _) = self
                        .encode_memory(
                            frame,
                            &feats,
                            high_res,
                            rec.object_score_logits.clone(),
                            MaskSource::PointPrompts,
                        )
                        .await?;
                    rec.maskmem_features = Some(mem);
                }
                self.objects
                    .get_mut(&id)
                    .ok_or(SessionError::UnknownObject(id))?
                    .cond_insert(frame, rec);
            }
            let o = self
                .objects
                .get_mut(&id)
                .ok_or(SessionError::UnknownObject(id))?;
            if o.cond.is_empty() {
                return Err(SessionError::NoPrompts);
            }
            let cond_frames: Vec<usize> = o.cond.iter().map(|(f, _)| *f).collect();
            for f in cond_frames {
                o.non_cond.remove(&f);
            }
        }
        Ok(())
    }

    /// Processes the next frame of `run` for every object and returns its
    /// masks; `None` when the run is finished. Dropping the run cancels it.
    pub async fn step(
        &mut self,
        run: &mut Propagation,
    ) -> Result<Option<FrameMasks>, SessionError> {
        let Some(frame) = run.order.pop_front() else {
            return Ok(None);
        };
        let ids: Vec<ObjectId> = self.objects.keys().copied().collect();
        for &id in &ids {
            let is_cond = self
                .objects
                .get(&id)
                .is_some_and(|o| o.cond_get(frame).is_some());
            if !is_cond {
                let rec = self
                    .run_single_frame(
                        frame,
                        id,
                        false,
                        None,
                        None,
                        run.direction,
                        MemoryEncoding::Now,
                    )
                    .await?;
                let o = self
                    .objects
                    .get_mut(&id)
                    .ok_or(SessionError::UnknownObject(id))?;
                o.non_cond.insert(frame, rec);
            }
            let o = self
                .objects
                .get_mut(&id)
                .ok_or(SessionError::UnknownObject(id))?;
            o.tracked.insert(frame, run.direction);
            self.drop_unreachable(id, frame, run.direction);
        }
        self.frame_output(frame, &ids).await.map(Some)
    }

    /// Drops non-conditioning records that memory selection can no longer
    /// reach from the propagation head (more than `max_obj_ptrs_in_encoder`
    /// frames behind it), so a long clip keeps a bounded number of records.
    fn drop_unreachable(&mut self, id: ObjectId, head: usize, direction: Direction) {
        let reach = self
            .model
            .config
            .max_obj_ptrs_in_encoder
            .max(self.model.config.num_maskmem);
        if let Some(o) = self.objects.get_mut(&id) {
            o.non_cond.retain(|&f, _| match direction {
                Direction::Forward => f + reach > head,
                Direction::Backward => f < head + reach,
            });
        }
    }

    /// Upsamples each object's low-res mask to the frame size (`video_res_masks`) and stores it.
    async fn frame_output(
        &mut self,
        frame: usize,
        ids: &[ObjectId],
    ) -> Result<FrameMasks, SessionError> {
        let (h, w) = self.frames.frame_size();
        let mut out = FrameMasks {
            frame,
            objects: Vec::new(),
            logits: Vec::new(),
        };
        for &id in ids {
            let o = self
                .objects
                .get(&id)
                .ok_or(SessionError::UnknownObject(id))?;
            let rec = o.output_at(frame);
            let logits = match rec {
                Some(r) => read_f32(upsample_bilinear(r.pred_masks.clone(), [h, w])).await?,
                None => vec![NO_OBJ_SCORE; h * w],
            };
            let mask: Vec<u8> = logits.iter().map(|&l| u8::from(l > 0.0)).collect();
            out.objects.push((id, RleMask::encode(&mask, w, h)));
            out.logits.push((id, logits));
        }
        Ok(out)
    }

    /// `_run_single_frame_inference` → `track_step` for one object.
    #[allow(clippy::too_many_arguments)]
    async fn run_single_frame(
        &mut self,
        frame: usize,
        object: ObjectId,
        is_init_cond_frame: bool,
        prompt: Option<&PointPrompt>,
        prev_mask_logits: Option<Tensor<4>>,
        direction: Direction,
        memory: MemoryEncoding,
    ) -> Result<FrameRecord, SessionError> {
        let feats = self.features(frame)?;
        let pix_feat =
            self.memory_conditioned_features(frame, object, is_init_cond_frame, &feats, direction)?;
        // _use_multimask: multimask with 0 or 1 prompt points (a box is 2).
        let num_pts = prompt.map_or(0, |p| p.coords.len());
        let output = if num_pts <= 1 {
            MaskOutput::Multi
        } else {
            MaskOutput::Single
        };
        let heads = self.sam_heads(frame, &pix_feat, &feats, prompt, prev_mask_logits, output);
        let maskmem_features = match memory {
            MemoryEncoding::Now => {
                let source = if prompt.is_some() {
                    MaskSource::PointPrompts
                } else {
                    MaskSource::Tracking
                };
                let (mem, _) = self
                    .encode_memory(
                        frame,
                        &feats,
                        heads.high_res_masks.clone(),
                        heads.object_score_logits.clone(),
                        source,
                    )
                    .await?;
                Some(mem)
            }
            MemoryEncoding::Deferred => None,
        };
        Ok(FrameRecord {
            maskmem_features,
            pred_masks: heads.low_res_masks,
            obj_ptr: heads.obj_ptr,
            object_score_logits: heads.object_score_logits,
        })
    }

    fn sam_heads(
        &mut self,
        frame: usize,
        pix_feat: &Tensor<4>,
        feats: &FrameFeatures,
        prompt: Option<&PointPrompt>,
        mask_inputs: Option<Tensor<4>>,
        output: MaskOutput,
    ) -> SamHeadsOutput {
        let padding = PointPrompt {
            coords: vec![[0.0, 0.0]],
            labels: vec![PointLabel::NotAPoint],
        };
        let p = prompt.unwrap_or(&padding);
        let (sparse, dense) = self.model.encode_prompt(Some(p), mask_inputs);
        self.trace(TraceEvent::PromptEncoder {
            frame,
            prompt: p,
            sparse: &sparse,
            dense: &dense,
        });
        let high_res = feats.high_res();
        let dec = self
            .model
            .decode(pix_feat, &high_res, sparse.clone(), dense.clone(), output);
        self.trace(TraceEvent::MaskDecoder {
            frame,
            image_embeddings: pix_feat,
            sparse: &sparse,
            dense: &dense,
            output,
            masks: &dec.masks,
            iou: &dec.iou_pred,
            tokens: &dec.sam_tokens_out,
            object_score: &dec.object_score_logits,
        });
        self.model.heads_from_decoder(dec, output)
    }

    /// `_encode_new_memory`, returning bf16 features (as stored) and the
    /// features' position encoding.
    async fn encode_memory(
        &mut self,
        frame: usize,
        feats: &FrameFeatures,
        high_res_masks: Tensor<4>,
        object_score_logits: Tensor<2>,
        source: MaskSource,
    ) -> Result<(Bf16Features, Tensor<4>), SessionError> {
        let n = feats.backbone.backbone_fpn.len();
        let pix_feat = feats.backbone.backbone_fpn[n - 1].clone();
        let mask = self.model.mask_for_memory(high_res_masks, source);
        let out = self.model.memory_encoder.forward(
            pix_feat.clone(),
            mask.clone(),
            crate::model::memory_encoder::MaskInput::Prepared,
        );
        self.trace(TraceEvent::MemoryEncoder {
            frame,
            pix_feat: &pix_feat,
            masks: &mask,
            features: &out.features,
            pos: &out.pos,
        });
        let features = self
            .model
            .add_no_object_embedding(out.features, object_score_logits);
        if self.maskmem_pos.is_none() {
            self.maskmem_pos = Some(out.pos.clone());
        }
        Ok((Bf16Features::from_tensor(&features).await?, out.pos))
    }

    /// `_prepare_memory_conditioned_features` for one object.
    fn memory_conditioned_features(
        &mut self,
        frame: usize,
        object: ObjectId,
        is_init_cond_frame: bool,
        feats: &FrameFeatures,
        direction: Direction,
    ) -> Result<Tensor<4>, SessionError> {
        let cfg = &self.model.config;
        let c = cfg.hidden_dim();
        let mem_dim = cfg.mem_dim();
        let n_levels = feats.backbone.backbone_fpn.len();
        let top = feats.backbone.backbone_fpn[n_levels - 1].clone();
        let [_, _, h, w] = top.dims();
        if is_init_cond_frame {
            // directly_add_no_mem_embed
            return Ok(top + self.model.no_mem_embed.val().reshape([1, c, 1, 1]));
        }
        let num_maskmem = cfg.num_maskmem;
        let num_frames = self.frames.len();
        let track = self
            .objects
            .get(&object)
            .ok_or(SessionError::UnknownObject(object))?;
        let reverse = direction == Direction::Backward;

        // Spatial memories: every conditioning frame (t_pos 0), then the
        // num_maskmem-1 previous frames in tracking order (t_pos 1..).
        let mut memories: Vec<(usize, &FrameRecord)> =
            track.cond.iter().map(|(_, r)| (0, r)).collect();
        for t_pos in 1..num_maskmem {
            let t_rel = num_maskmem - t_pos;
            let prev = if reverse {
                frame.checked_add(t_rel)
            } else {
                frame.checked_sub(t_rel)
            };
            if let Some(r) = prev.and_then(|p| track.non_cond.get(&p)) {
                memories.push((t_pos, r));
            }
        }
        let maskmem_pos = self.maskmem_pos.clone();
        let mut mem_parts = Vec::new();
        let mut pos_parts = Vec::new();
        let flat = |x: Tensor<4>| {
            let [b, ch, hh, ww] = x.dims();
            x.reshape([b, ch, hh * ww]).permute([2, 0, 1])
        };
        for (t_pos, rec) in &memories {
            let Some(f) = rec.maskmem_features(&self.device) else {
                continue;
            };
            mem_parts.push(flat(f));
            let pos = maskmem_pos.clone().ok_or(SessionError::NoPrompts)?;
            let tpos = self
                .model
                .maskmem_tpos_enc
                .val()
                .narrow(0, num_maskmem - t_pos - 1, 1)
                .reshape([1, 1, mem_dim]);
            pos_parts.push(flat(pos) + tpos);
        }

        // Object pointers: conditioning frames not in the future, then up to
        // max_obj_ptrs-1 previous frames, with signed temporal distances.
        let max_ptrs = num_frames.min(cfg.max_obj_ptrs_in_encoder);
        let mut ptrs: Vec<(f32, Tensor<2>)> = track
            .cond
            .iter()
            .filter(|(t, _)| if reverse { *t >= frame } else { *t <= frame })
            .map(|(t, r)| {
                let diff = frame as i64 - *t as i64;
                let signed = if reverse { -diff } else { diff };
                (signed as f32, r.obj_ptr.clone())
            })
            .collect();
        for t_diff in 1..max_ptrs {
            let t = if reverse {
                Some(frame + t_diff)
            } else {
                frame.checked_sub(t_diff)
            };
            let Some(t) = t.filter(|t| *t < num_frames) else {
                break;
            };
            if let Some(r) = track.non_cond.get(&t) {
                ptrs.push((t_diff as f32, r.obj_ptr.clone()));
            }
        }
        let mut num_obj_ptr_tokens = 0;
        if !ptrs.is_empty() {
            let t_diff_max = (max_ptrs - 1).max(1) as f32;
            let positions: Vec<f32> = ptrs.iter().map(|(p, _)| p / t_diff_max).collect();
            let n = ptrs.len();
            let pe = Tensor::<2>::from_data(
                TensorData::new(sine_pe_1d(&positions, c), [n, c]),
                &self.device,
            );
            let obj_pos = self.model.obj_ptr_tpos_proj.forward(pe); // [n, mem_dim]
            let obj_ptrs = Tensor::cat(ptrs.into_iter().map(|(_, p)| p).collect(), 0); // [n, C]
            let split = c / mem_dim;
            // [n, C] -> [n·split, 1, mem_dim]; positions repeat per split token.
            let obj_ptrs = obj_ptrs.reshape([n * split, 1, mem_dim]);
            let obj_pos = obj_pos
                .reshape([n, 1, 1, mem_dim])
                .expand([n, split, 1, mem_dim])
                .reshape([n * split, 1, mem_dim]);
            num_obj_ptr_tokens = n * split;
            mem_parts.push(obj_ptrs);
            pos_parts.push(obj_pos);
        }
        let memory = Tensor::cat(mem_parts, 0);
        let memory_pos = Tensor::cat(pos_parts, 0);
        let (curr, curr_pos) = feats.flat_top();
        let out = self.model.memory_attention.forward(
            curr.clone(),
            curr_pos.clone(),
            memory.clone(),
            memory_pos.clone(),
            num_obj_ptr_tokens,
        );
        self.trace(TraceEvent::MemoryAttention {
            frame,
            curr: &curr,
            curr_pos: &curr_pos,
            memory: &memory,
            memory_pos: &memory_pos,
            num_obj_ptr_tokens,
            out: &out,
        });
        Ok(out.permute([1, 2, 0]).reshape([1, c, h, w]))
    }
}

/// Whether the memory encoder runs right after a frame is segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemoryEncoding {
    /// During propagation (`run_mem_encoder=True`).
    Now,
    /// For prompts: encoded when propagation starts (`run_mem_encoder=False`).
    Deferred,
}
