//! The browser binding: one `#[wasm_bindgen]` class, [`Session`], that a Web Worker
//! (`web/worker.js`) owns. It is a thin shell over the library: it holds the loaded
//! model, the opened image / clip / volume and the masks made so far, and forwards every
//! call to `model`, `predictor`, `session` and `io`.
//!
//! - Backend: WebGPU through burn's wgpu runtime (`Device::wgpu_options().init_async()`)
//!   or burn's CPU backend (`flex`) compiled to wasm. Chosen once per session by
//!   [`Session::create`]; the worker asks `navigator.gpu` for an adapter first.
//! - Every call that runs the model returns a `Promise` (results are read back with
//!   `into_data_async`, the only read WebGPU allows). State sits behind
//!   `Rc<RefCell<..>>`; an async call holds the borrow across its awaits, so calls must be
//!   serialised (the worker runs one message at a time); an overlapping call is refused
//!   with a "busy" error instead of a panic.
//! - Images (one frame): SAM 2 uses `Sam2ImagePredictor` (as `SAM2ImagePredictor`),
//!   LiteMedSAM its 2-D recipe. Clips and volumes: SAM 2 uses the memory
//!   [`VideoSession`]; LiteMedSAM the box-from-previous-mask walk ([`LitePropagation`])
//!   on grey frames. Propagation is driven one frame per [`Session::step`] call.
//! - Masks are kept run-length encoded per object and frame; they survive a failed load
//!   or open (a new file replaces them, a new model keeps them).
//! - Volume masks are `height × width` per slice, row `j`, column `i`, the NIfTI voxel
//!   grid; exported with the volume's own NIfTI geometry.

// Async calls keep the state borrowed across their awaits on purpose: every other entry
// takes it with `try_borrow(_mut)` and fails with a "busy" error instead of a panic, and
// the worker never overlaps calls (web/worker.js).
#![allow(clippy::await_holding_refcell_ref)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::Device;
use crate::io::image::{RgbImage, decode_rgb, encode_mask_png};
use crate::io::volume::{DataType, NiftiGeometry, SourceFormat, Volume, write_nifti_mask};
use crate::io::window::{CtWindow, Windowing};
use crate::model::lite_medsam::{LiteEmbedding, LiteMedSam};
use crate::model::sam::prompt_encoder::PointLabel;
use crate::model::sam2::Sam2Model;
use crate::model::{Architecture, detect_architecture, load_lite_medsam, load_sam2};
use crate::predictor::{ImagePrompt, Sam2EncodedImage, Sam2ImagePredictor};
use crate::readback::read_f32;
use crate::session::frames::{FrameError, FrameSource, VolumeFrames};
use crate::session::lite_propagation::{LitePropagation, walk_range};
use crate::session::mask_store::RleMask;
use crate::session::video::{
    Direction, FrameMasks, ObjectId, Propagation, VideoSession, propagation_order,
};
use crate::weights::TensorStore;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    /// burn registers its wgpu runtime once per thread; later sessions reuse it.
    static WGPU_DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

fn err(msg: impl std::fmt::Display) -> JsValue {
    JsError::new(&msg.to_string()).into()
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    // Reflect::set on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

// ---------------------------------------------------------------------------------------
// What is open

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocKind {
    Image,
    Clip,
    Volume,
}

impl DocKind {
    fn name(self) -> &'static str {
        match self {
            DocKind::Image => "image",
            DocKind::Clip => "video",
            DocKind::Volume => "volume",
        }
    }
}

/// An opened volume: its voxels, how they are windowed, and the windowed slices.
struct VolumeDoc {
    /// Shared: a new window makes a new `Doc` over the same voxels (up to 1 GB as f32).
    volume: Rc<Volume>,
    window_name: String,
}

/// An opened image, clip or volume. Frames are `height × width`; an image or clip holds
/// RGB frames, a volume grey (windowed) slices.
struct Doc {
    kind: DocKind,
    name: String,
    width: usize,
    height: usize,
    /// Image / clip frames.
    rgb: Rc<Vec<RgbImage>>,
    /// Grey frames, slice-major: the windowed volume, or the clip converted to grey
    /// (LiteMedSAM's input; computed when first needed for a clip).
    grey: RefCell<Option<Arc<[u8]>>>,
    volume: Option<VolumeDoc>,
}

impl Doc {
    fn len(&self) -> usize {
        match self.kind {
            DocKind::Volume => self.volume.as_ref().map_or(0, |v| v.volume.depth()),
            _ => self.rgb.len(),
        }
    }

    fn dims(&self) -> [usize; 3] {
        [self.len(), self.height, self.width]
    }

    /// Grey frames (slice-major), LiteMedSAM's input; the luma of RGB frames (as the CLI).
    fn grey(&self) -> Arc<[u8]> {
        if let Some(g) = self.grey.borrow().as_ref() {
            return g.clone();
        }
        let mut out = Vec::with_capacity(self.len() * self.width * self.height);
        for f in self.rgb.iter() {
            out.extend(f.grey());
        }
        let g: Arc<[u8]> = out.into();
        *self.grey.borrow_mut() = Some(g.clone());
        g
    }

    fn frames(&self) -> DocFrames {
        match self.kind {
            DocKind::Volume => DocFrames::Volume(
                VolumeFrames::new(self.grey(), self.dims()).expect("the doc's own dims"),
            ),
            _ => DocFrames::Rgb(self.rgb.clone()),
        }
    }

    /// An error naming the valid range when `frame` is not a frame of this document.
    fn check_frame(&self, frame: usize) -> Result<(), JsValue> {
        if frame < self.len() {
            return Ok(());
        }
        Err(err(format!(
            "frame {frame} is outside the {} frames (0..{})",
            self.len(),
            self.len() - 1
        )))
    }

    fn frame_rgb(&self, index: usize) -> Result<RgbImage, FrameError> {
        self.frames().frame(index)
    }

    fn info(&self) -> Object {
        let o = Object::new();
        set(&o, "kind", self.kind.name());
        set(&o, "name", self.name.as_str());
        set(&o, "frames", self.len() as u32);
        set(&o, "width", self.width as u32);
        set(&o, "height", self.height as u32);
        if let Some(v) = &self.volume {
            let sp = v.volume.spacing;
            set(
                &o,
                "spacing",
                Array::of3(&sp[0].into(), &sp[1].into(), &sp[2].into()),
            );
            set(&o, "window", v.window_name.as_str());
            set(
                &o,
                "format",
                match v.volume.format {
                    SourceFormat::Nifti => "nii",
                    SourceFormat::NiftiGz => "nii.gz",
                    SourceFormat::Npz => "npz",
                },
            );
        }
        o
    }
}

/// The doc's frames as a [`FrameSource`] for the SAM 2 session (shares the doc's buffers).
enum DocFrames {
    Volume(VolumeFrames),
    Rgb(Rc<Vec<RgbImage>>),
}

impl FrameSource for DocFrames {
    fn len(&self) -> usize {
        match self {
            DocFrames::Volume(v) => v.len(),
            DocFrames::Rgb(f) => f.len(),
        }
    }
    fn frame_size(&self) -> (usize, usize) {
        match self {
            DocFrames::Volume(v) => v.frame_size(),
            DocFrames::Rgb(f) => f.first().map_or((0, 0), |f| (f.height, f.width)),
        }
    }
    fn frame(&mut self, index: usize) -> Result<RgbImage, FrameError> {
        match self {
            DocFrames::Volume(v) => v.frame(index),
            DocFrames::Rgb(f) => f.get(index).cloned().ok_or(FrameError::OutOfRange {
                index,
                len: f.len(),
            }),
        }
    }
}

/// Window for a freshly opened volume: 8-bit data as stored (MedSAM's already
/// windowed volumes), Hounsfield-like data (negative values) the CT soft-tissue
/// preset, anything else MR percentiles.
fn auto_windowing(v: &Volume) -> (Windowing, &'static str) {
    if matches!(v.dtype, DataType::U8 | DataType::Bool) {
        return (Windowing::None, "none");
    }
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &x in &v.data {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if lo < -200.0 {
        (CtWindow::SoftTissue.into(), "soft")
    } else if lo >= 0.0 && hi <= 255.0 {
        (Windowing::None, "none")
    } else {
        (Windowing::MrPercentile, "mr")
    }
}

fn parse_window(name: &str) -> Result<(Windowing, String), JsValue> {
    let lower = name.trim().to_ascii_lowercase();
    Ok(match lower.as_str() {
        "none" | "raw" => (Windowing::None, "none".into()),
        "mr" | "mri" => (Windowing::MrPercentile, "mr".into()),
        _ => {
            let w = CtWindow::parse(&lower).map_err(|e| {
                err(format!(
                    "{e}; or `none` (8-bit data as stored) or `mr` (percentiles)"
                ))
            })?;
            let short = match w {
                CtWindow::SoftTissue => "soft",
                CtWindow::Lung => "lung",
                CtWindow::Bone => "bone",
                CtWindow::Brain => "brain",
            };
            (w.into(), short.into())
        }
    })
}

// ---------------------------------------------------------------------------------------
// The model and the run state

#[derive(Clone)]
enum Model {
    Sam2(Arc<Sam2Model>),
    Lite(Rc<LiteMedSam>),
}

impl Model {
    fn name(&self) -> &'static str {
        match self {
            Model::Sam2(_) => "sam2",
            Model::Lite(_) => "lite-medsam",
        }
    }
}

type LiteWalk = LitePropagation<Rc<LiteMedSam>, Arc<[u8]>>;

/// A propagation in progress.
enum Run {
    Sam2 {
        directions: VecDeque<Direction>,
        range: Option<(usize, usize)>,
        current: Option<Propagation>,
    },
    Lite {
        walks: VecDeque<(ObjectId, LiteWalk)>,
    },
}

/// The last prompt given to an object on a frame (LiteMedSAM's key slice and box).
#[derive(Clone, Debug)]
struct PromptRecord {
    frame: usize,
    box_xyxy: Option<[f32; 4]>,
}

/// The image embedding of one frame, kept so that further prompts on it (objects,
/// corrections), and a prompt after [`Session::prepare_frame`], only run the decoder.
enum FrameEmbedding {
    /// SAM 2 on a single image (the predictor's `set_image`).
    Sam2Image(Box<Sam2EncodedImage>),
    /// LiteMedSAM on one frame (slice) of the document.
    Lite {
        frame: usize,
        embedding: Box<LiteEmbedding>,
    },
}

#[derive(Default)]
struct State {
    model: Option<Model>,
    doc: Option<Rc<Doc>>,
    /// Clip frames being pushed, before `finish_clip`.
    pending_clip: Option<(String, Vec<RgbImage>)>,
    masks: BTreeMap<ObjectId, BTreeMap<usize, RleMask>>,
    /// Full-resolution logits of the last prompt per (object, frame).
    logits: BTreeMap<(ObjectId, usize), Vec<f32>>,
    prompts: BTreeMap<ObjectId, Vec<PromptRecord>>,
    sam2: Option<VideoSession<'static, DocFrames>>,
    embedding: Option<FrameEmbedding>,
    run: Option<Run>,
    keep_all_logits: bool,
}

impl State {
    /// Forgets prompts and masks (a new file), keeping the model.
    fn clear_results(&mut self) {
        self.masks.clear();
        self.logits.clear();
        self.drop_model_state();
    }

    /// Forgets what depends on the model and its input (prompts, memory, embeddings, a
    /// run), keeping the masks: after a new model or a new window.
    fn drop_model_state(&mut self) {
        self.prompts.clear();
        self.sam2 = None;
        self.embedding = None;
        self.run = None;
    }

    /// The SAM 2 video session over the open document, made on first use.
    fn sam2_session(
        &mut self,
        model: &Arc<Sam2Model>,
        doc: &Doc,
    ) -> Result<&mut VideoSession<'static, DocFrames>, JsValue> {
        if self.sam2.is_none() {
            self.sam2 = Some(VideoSession::new(model.clone(), doc.frames()).map_err(err)?);
        }
        Ok(self.sam2.as_mut().expect("set above"))
    }

    /// SAM 2's encoding of the open single image, made on first use.
    fn sam2_image(
        &mut self,
        predictor: &Sam2ImagePredictor<'_>,
        doc: &Doc,
    ) -> Result<&Sam2EncodedImage, JsValue> {
        if !matches!(self.embedding, Some(FrameEmbedding::Sam2Image(_))) {
            let img = doc.frame_rgb(0).map_err(err)?;
            self.embedding = Some(FrameEmbedding::Sam2Image(Box::new(
                predictor.set_image(&img).map_err(err)?,
            )));
        }
        match &self.embedding {
            Some(FrameEmbedding::Sam2Image(enc)) => Ok(enc),
            _ => unreachable!("set above"),
        }
    }

    /// LiteMedSAM's embedding of `frame` (the RGB image, or a grey clip frame / volume
    /// slice as the recipe takes it), made on first use. Returns it and whether it was
    /// made now.
    fn lite_embedding(
        &mut self,
        model: &LiteMedSam,
        doc: &Doc,
        frame: usize,
    ) -> Result<(LiteEmbedding, bool), JsValue> {
        if let Some(FrameEmbedding::Lite {
            frame: f,
            embedding,
        }) = &self.embedding
            && *f == frame
        {
            return Ok((LiteEmbedding::clone(embedding), false));
        }
        let (w, h) = (doc.width, doc.height);
        let t = model.transform();
        let input = if doc.kind == DocKind::Image {
            let img = doc.frame_rgb(0).map_err(err)?;
            t.prepare_rgb(&img.data, h, w).map_err(err)?
        } else {
            let grey = doc.grey();
            let plane = w * h;
            t.prepare_gray(&grey[frame * plane..(frame + 1) * plane], h, w)
                .map_err(err)?
        };
        let embedding = model.embed(&input, (h, w));
        self.embedding = Some(FrameEmbedding::Lite {
            frame,
            embedding: Box::new(embedding.clone()),
        });
        Ok((embedding, true))
    }

    fn doc(&self) -> Result<Rc<Doc>, JsValue> {
        self.doc
            .clone()
            .ok_or_else(|| err("no image, clip or volume is open: call openFile first"))
    }

    fn model(&self) -> Result<&Model, JsValue> {
        self.model
            .as_ref()
            .ok_or_else(|| err("no model is loaded: call loadModel first"))
    }

    fn store_masks(&mut self, out: &FrameMasks) {
        for (id, m) in &out.objects {
            self.masks
                .entry(*id)
                .or_default()
                .insert(out.frame, m.clone());
        }
        if self.keep_all_logits {
            for (id, l) in &out.logits {
                self.logits.insert((*id, out.frame), l.clone());
            }
        }
    }
}

/// For a failed `try_borrow` / `try_borrow_mut` of the session state.
fn busy<E>(_: E) -> JsValue {
    err("the session is busy with another call (calls must not overlap)")
}

fn js_usize(v: f64, what: &str) -> Result<usize, JsValue> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
        Ok(v as usize)
    } else {
        Err(err(format!(
            "{what} must be a non-negative integer, got {v}"
        )))
    }
}

fn check_box(b: &[f32]) -> Result<Option<[f32; 4]>, JsValue> {
    match b.len() {
        0 => Ok(None),
        4 if b.iter().all(|v| v.is_finite()) => {
            let [x0, y0, x1, y1] = [b[0], b[1], b[2], b[3]];
            if x1 <= x0 || y1 <= y0 {
                return Err(err(format!(
                    "box [{x0}, {y0}, {x1}, {y1}] is empty: expected [x0, y0, x1, y1] with x0 < x1 and y0 < y1"
                )));
            }
            Ok(Some([x0, y0, x1, y1]))
        }
        _ => Err(err(format!(
            "a box is 4 finite numbers [x0, y0, x1, y1], got {b:?}"
        ))),
    }
}

/// Points as a flat `[x, y, label, ...]` list, label 1 = foreground, 0 = background.
fn parse_points(p: &[f32]) -> Result<Vec<([f32; 2], PointLabel)>, JsValue> {
    if !p.len().is_multiple_of(3) {
        return Err(err(
            "points are [x, y, label] triples (label 1 = object, 0 = background)",
        ));
    }
    p.chunks_exact(3)
        .map(|c| {
            let label = match c[2] as i32 {
                1 => PointLabel::Positive,
                0 => PointLabel::Negative,
                l => {
                    return Err(err(format!(
                        "point label {l}: expected 1 (object) or 0 (background)"
                    )));
                }
            };
            if !c[0].is_finite() || !c[1].is_finite() {
                return Err(err("point coordinates must be finite numbers"));
            }
            Ok(([c[0], c[1]], label))
        })
        .collect()
}

fn parse_direction(d: &str) -> Result<Vec<Direction>, JsValue> {
    match d.trim().to_ascii_lowercase().as_str() {
        "forward" | "fwd" | "+" => Ok(vec![Direction::Forward]),
        "backward" | "back" | "bwd" | "-" | "reverse" => Ok(vec![Direction::Backward]),
        "both" | "" => Ok(vec![Direction::Forward, Direction::Backward]),
        other => Err(err(format!(
            "direction `{other}`: expected \"forward\", \"backward\" or \"both\""
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// The class

/// A segmentation session: one compute device, at most one model, one open file.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<RefCell<State>>,
    device: Device,
    backend: &'static str,
    notice: Option<String>,
}

#[wasm_bindgen]
impl Session {
    /// Makes a session on `backend`: `"webgpu"` (fails when WebGPU cannot be started),
    /// `"cpu"` (burn's CPU backend in wasm), or `"auto"` (WebGPU, else the CPU with a
    /// notice). Resolves to the session.
    pub fn create(backend: String) -> js_sys::Promise {
        future_to_promise(async move {
            let want = backend.trim().to_ascii_lowercase();
            let (device, name, notice) = match want.as_str() {
                "cpu" => (Device::flex(), "cpu", None),
                "webgpu" | "gpu" => (wgpu_device().await.map_err(err)?, "webgpu", None),
                "auto" | "" => match wgpu_device().await {
                    Ok(d) => (d, "webgpu", None),
                    Err(e) => (
                        Device::flex(),
                        "cpu",
                        Some(format!(
                            "WebGPU is not available ({e}); running on the CPU, which is slower"
                        )),
                    ),
                },
                other => {
                    return Err(err(format!(
                        "backend `{other}`: expected \"webgpu\", \"cpu\" or \"auto\""
                    )));
                }
            };
            Ok(Session {
                inner: Rc::new(RefCell::new(State::default())),
                device,
                backend: name,
                notice,
            }
            .into())
        })
    }

    /// `"webgpu"` or `"cpu"`.
    pub fn backend(&self) -> String {
        self.backend.to_string()
    }

    /// Why the session is not on the backend asked for, if it is not.
    pub fn notice(&self) -> Option<String> {
        self.notice.clone()
    }

    /// Loads a model from the bytes of a `.safetensors` or PyTorch `.pt`/`.pth` file; the
    /// architecture comes from its metadata or key names. `expect` (`"sam2"`,
    /// `"lite-medsam"` or empty) refuses any other model. `progress(stage, fraction)` is
    /// called as it goes. On failure the previous model stays loaded. Resolves to
    /// `{architecture, imageSize, tensors}`.
    pub fn load_model(
        &self,
        bytes: Vec<u8>,
        expect: Option<String>,
        progress: Option<Function>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let device = self.device.clone();
        future_to_promise(async move {
            let report = |stage: &str, f: f64| {
                if let Some(p) = &progress {
                    let _ = p.call2(
                        &JsValue::NULL,
                        &JsValue::from_str(stage),
                        &JsValue::from_f64(f),
                    );
                }
            };
            report("parse", 0.0);
            let store = TensorStore::from_bytes(&bytes)
                .map_err(|e| err(format!("cannot read the weights: {e}")))?;
            drop(bytes);
            let n_tensors = store.len();
            let arch = detect_architecture(&store, None)
                .map_err(|e| err(format!("not a model MedSeg knows: {e}")))?;
            if let Some(want) = expect.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                let want = match want.to_ascii_lowercase().as_str() {
                    "sam2" | "medsam2" | "sam2.1" => "sam2",
                    "lite-medsam" | "litemedsam" | "lite_medsam" => "lite-medsam",
                    other => {
                        return Err(err(format!(
                            "unknown model kind `{other}`: expected \"sam2\" or \"lite-medsam\""
                        )));
                    }
                };
                if arch.name() != want {
                    return Err(err(format!(
                        "wrong model: this file holds a {} model, {want} was asked for",
                        arch.name()
                    )));
                }
            }
            report("load", 0.5);
            let (model, size) = match &arch {
                Architecture::Sam2(cfg) => {
                    let m = load_sam2(store, cfg, &device)
                        .map_err(|e| err(format!("cannot load the SAM 2 weights: {e}")))?;
                    let s = m.image_size();
                    (Model::Sam2(Arc::new(m)), s)
                }
                Architecture::LiteMedSam => {
                    let m = load_lite_medsam(store, &device)
                        .map_err(|e| err(format!("cannot load the LiteMedSAM weights: {e}")))?;
                    let s = m.image_size();
                    (Model::Lite(Rc::new(m)), s)
                }
            };
            let mut st = inner.try_borrow_mut().map_err(busy)?;
            let name = model.name();
            st.model = Some(model);
            st.drop_model_state();
            drop(st);
            report("done", 1.0);
            let o = Object::new();
            set(&o, "architecture", name);
            set(&o, "imageSize", size as u32);
            set(&o, "tensors", n_tensors as u32);
            Ok(o.into())
        })
    }

    /// The loaded model's architecture (`"sam2"`, `"lite-medsam"`), or undefined.
    pub fn architecture(&self) -> Result<Option<String>, JsValue> {
        Ok(self.state()?.model.as_ref().map(|m| m.name().to_string()))
    }

    /// Opens a PNG / JPEG / WebP image (decoded here) as a one-frame document. On failure
    /// the open document and its masks stay.
    pub fn open_image(&self, bytes: &[u8], name: String) -> Result<JsValue, JsValue> {
        let img = decode_rgb(bytes).map_err(|e| err(format!("{name}: {e}")))?;
        let doc = Doc {
            kind: DocKind::Image,
            name,
            width: img.width,
            height: img.height,
            rgb: Rc::new(vec![img]),
            grey: RefCell::new(None),
            volume: None,
        };
        self.replace_doc(doc)
    }

    /// Opens a NIfTI-1 (`.nii`, `.nii.gz`) or MedSAM `.npz` volume. `window`: a CT preset
    /// (`soft`, `lung`, `bone`, `brain`), `mr`, `none`, or empty for automatic. Slice `k`
    /// is `height × width` = `ny × nx` (row j, column i).
    pub fn open_volume(
        &self,
        bytes: &[u8],
        name: String,
        window: Option<String>,
    ) -> Result<JsValue, JsValue> {
        let volume = Volume::from_bytes(bytes).map_err(|e| err(format!("{name}: {e}")))?;
        let (windowing, window_name) = match window
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty() && *w != "auto")
        {
            Some(w) => parse_window(w)?,
            None => {
                let (w, n) = auto_windowing(&volume);
                (w, n.to_string())
            }
        };
        let slices: Arc<[u8]> = windowing.apply(&volume.data).into();
        let doc = Doc {
            kind: DocKind::Volume,
            name,
            width: volume.width(),
            height: volume.height(),
            rgb: Rc::new(Vec::new()),
            grey: RefCell::new(Some(slices)),
            volume: Some(VolumeDoc {
                volume: Rc::new(volume),
                window_name,
            }),
        };
        self.replace_doc(doc)
    }

    /// Re-windows the open volume (`soft`, `lung`, `bone`, `brain`, `mr`, `none`, `auto`).
    /// Masks stay; the SAM 2 memory is rebuilt from the next prompt.
    pub fn set_window(&self, window: String) -> Result<JsValue, JsValue> {
        let mut st = self.inner.try_borrow_mut().map_err(busy)?;
        let doc = st.doc()?;
        let vol = doc
            .volume
            .as_ref()
            .ok_or_else(|| err("windowing applies to volumes; the open file is not one"))?;
        let (windowing, window_name) = if window.trim().eq_ignore_ascii_case("auto") {
            let (w, n) = auto_windowing(&vol.volume);
            (w, n.to_string())
        } else {
            parse_window(&window)?
        };
        let slices: Arc<[u8]> = windowing.apply(&vol.volume.data).into();
        let new = Doc {
            kind: doc.kind,
            name: doc.name.clone(),
            width: doc.width,
            height: doc.height,
            rgb: doc.rgb.clone(),
            grey: RefCell::new(Some(slices)),
            volume: Some(VolumeDoc {
                volume: Rc::clone(&vol.volume),
                window_name,
            }),
        };
        let info = new.info();
        st.doc = Some(Rc::new(new));
        // The model input changed.
        st.drop_model_state();
        Ok(info.into())
    }

    /// Starts a clip: frames follow with [`Session::push_frame_rgba`] /
    /// [`Session::push_frame_grey`], then [`Session::finish_clip`].
    pub fn begin_clip(&self, name: String) -> Result<(), JsValue> {
        self.inner.try_borrow_mut().map_err(busy)?.pending_clip = Some((name, Vec::new()));
        Ok(())
    }

    /// Adds an RGBA frame (`width × height × 4` bytes, as `ImageData`) to the clip begun.
    pub fn push_frame_rgba(&self, data: &[u8], width: u32, height: u32) -> Result<u32, JsValue> {
        let (w, h) = (width as usize, height as usize);
        if data.len() != w * h * 4 || w == 0 || h == 0 {
            return Err(err(format!(
                "an RGBA frame of {w}×{h} has {} bytes, got {}",
                w * h * 4,
                data.len()
            )));
        }
        let rgb = data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        self.push_frame(RgbImage {
            width: w,
            height: h,
            data: rgb,
        })
    }

    /// Adds a grey frame (`width × height` bytes) to the clip begun.
    pub fn push_frame_grey(&self, data: &[u8], width: u32, height: u32) -> Result<u32, JsValue> {
        let (w, h) = (width as usize, height as usize);
        if data.len() != w * h || w == 0 || h == 0 {
            return Err(err(format!(
                "a grey frame of {w}×{h} has {} bytes, got {}",
                w * h,
                data.len()
            )));
        }
        let rgb = data.iter().flat_map(|&v| [v, v, v]).collect();
        self.push_frame(RgbImage {
            width: w,
            height: h,
            data: rgb,
        })
    }

    /// Makes the pushed frames the open document (masks of the previous one go).
    pub fn finish_clip(&self) -> Result<JsValue, JsValue> {
        let (name, frames) = self
            .inner
            .try_borrow_mut()
            .map_err(busy)?
            .pending_clip
            .take()
            .ok_or_else(|| err("no clip was begun"))?;
        let (width, height) = frames
            .first()
            .map(|f| (f.width, f.height))
            .ok_or_else(|| err(format!("{name}: the clip has no frames")))?;
        let doc = Doc {
            kind: DocKind::Clip,
            name,
            width,
            height,
            rgb: Rc::new(frames),
            grey: RefCell::new(None),
            volume: None,
        };
        self.replace_doc(doc)
    }

    /// `{kind, name, frames, width, height, [spacing, window, format]}` of the open
    /// document, or undefined.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        Ok(self
            .state()?
            .doc
            .as_ref()
            .map_or(JsValue::UNDEFINED, |d| d.info().into()))
    }

    /// Number of frames (slices) of the open document; 0 when none.
    pub fn frame_count(&self) -> Result<u32, JsValue> {
        Ok(self.state()?.doc.as_ref().map_or(0, |d| d.len() as u32))
    }

    /// Frame `index` as RGBA bytes (`width × height × 4`) for display; a volume slice is
    /// shown windowed, x = column i, y = row j.
    pub fn frame_rgba(&self, index: u32) -> Result<Vec<u8>, JsValue> {
        let doc = self.state()?.doc()?;
        let f = doc.frame_rgb(index as usize).map_err(err)?;
        Ok(f.data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect())
    }

    /// Computes the image embedding of `frame` ahead of a prompt on it, so that the prompt
    /// only runs the prompt encoder and mask decoder (the page calls it for the frame on
    /// screen while the user draws). Resolves to `{frame, computed, ms}`; `computed` is
    /// false when the embedding was there already.
    pub fn prepare_frame(&self, frame: f64) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t0 = js_sys::Date::now();
            let frame = js_usize(frame, "frame")?;
            let mut guard = inner.try_borrow_mut().map_err(busy)?;
            let st = &mut *guard;
            let doc = st.doc()?;
            doc.check_frame(frame)?;
            let computed = match st.model()?.clone() {
                Model::Sam2(model) if doc.kind == DocKind::Image => {
                    let had = matches!(st.embedding, Some(FrameEmbedding::Sam2Image(_)));
                    st.sam2_image(&Sam2ImagePredictor::new(&model), &doc)?;
                    !had
                }
                Model::Sam2(model) => st
                    .sam2_session(&model, &doc)?
                    .prepare_frame(frame)
                    .map_err(err)?,
                Model::Lite(model) => st.lite_embedding(&model, &doc, frame)?.1,
            };
            let o = Object::new();
            set(&o, "frame", frame as u32);
            set(&o, "computed", computed);
            set(&o, "ms", js_sys::Date::now() - t0);
            Ok(o.into())
        })
    }

    /// Adds a prompt for object `obj` (a positive integer) on `frame` and segments that
    /// frame: `box_xyxy` is `[x0, y0, x1, y1]` in frame pixels or empty, `points` a flat
    /// `[x, y, label, ...]` list (label 1 = object, 0 = background). LiteMedSAM takes a box
    /// only. Resolves to `{frame, obj, area, iou}`; the mask is then [`Session::get_mask`].
    pub fn add_prompt(
        &self,
        frame: f64,
        obj: f64,
        box_xyxy: Vec<f32>,
        points: Vec<f32>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let frame = js_usize(frame, "frame")?;
            let obj = js_usize(obj, "object id")?;
            if obj == 0 || obj > 255 {
                return Err(err(format!(
                    "object id {obj}: expected 1..=255 (it is the label value in exported masks)"
                )));
            }
            let obj = obj as ObjectId;
            let bx = check_box(&box_xyxy)?;
            let points = parse_points(&points)?;
            if bx.is_none() && points.is_empty() {
                return Err(err("a prompt needs a box or at least one point"));
            }
            let mut guard = inner.try_borrow_mut().map_err(busy)?;
            let st = &mut *guard;
            let doc = st.doc()?;
            doc.check_frame(frame)?;
            if let Some([x0, y0, x1, y1]) = bx {
                let (w, h) = (doc.width as f32, doc.height as f32);
                if x1 <= 0.0 || y1 <= 0.0 || x0 >= w || y0 >= h {
                    return Err(err(format!(
                        "box [{x0}, {y0}, {x1}, {y1}] lies outside the {w}×{h} frame"
                    )));
                }
            }
            st.run = None;
            let (w, h) = (doc.width, doc.height);
            let model = st.model()?.clone();
            let (mask, logits, iou): (RleMask, Option<Vec<f32>>, f32) = match &model {
                Model::Sam2(model) if doc.kind == DocKind::Image => {
                    let predictor = Sam2ImagePredictor::new(model);
                    let enc = st.sam2_image(&predictor, &doc)?;
                    let pred = predictor
                        .predict(
                            enc,
                            &ImagePrompt {
                                box_xyxy: bx,
                                points,
                            },
                        )
                        .await
                        .map_err(err)?;
                    (
                        RleMask::encode(&pred.mask(), w, h),
                        Some(pred.logits),
                        pred.iou,
                    )
                }
                Model::Sam2(model) => {
                    let out = st
                        .sam2_session(model, &doc)?
                        .add_prompt(frame, obj, bx, &points)
                        .await
                        .map_err(err)?;
                    let logits = out
                        .logits
                        .iter()
                        .find(|(id, _)| *id == obj)
                        .map(|(_, l)| l.clone());
                    let mask = out
                        .objects
                        .into_iter()
                        .find(|(id, _)| *id == obj)
                        .map_or_else(|| RleMask::empty(w, h), |(_, m)| m);
                    (mask, logits, f32::NAN)
                }
                Model::Lite(model) => {
                    let bx = bx
                        .ok_or_else(|| err("LiteMedSAM needs a box prompt (it takes no points)"))?;
                    if !points.is_empty() {
                        return Err(err("LiteMedSAM takes a box only, not points"));
                    }
                    let (embedding, _) = st.lite_embedding(model, &doc, frame)?;
                    let box_256 = model.transform().box_to_model(bx, (h, w));
                    let pred = model
                        .predict_embedded(&embedding, box_256)
                        .await
                        .map_err(err)?;
                    (RleMask::encode(&pred.mask, w, h), None, pred.iou)
                }
            };
            let area = mask.area();
            st.masks.entry(obj).or_default().insert(frame, mask);
            match logits {
                Some(l) => st.logits.insert((obj, frame), l),
                None => st.logits.remove(&(obj, frame)),
            };
            let prompts = st.prompts.entry(obj).or_default();
            prompts.retain(|p| p.frame != frame);
            prompts.push(PromptRecord {
                frame,
                box_xyxy: bx,
            });
            let o = Object::new();
            set(&o, "frame", frame as u32);
            set(&o, "obj", obj);
            set(&o, "area", area as u32);
            set(&o, "iou", iou);
            Ok(o.into())
        })
    }

    /// Plans a propagation from the prompted frames: `direction` `"forward"`,
    /// `"backward"` or `"both"`, limited to frames `first..=last` when given. Frames are
    /// then segmented one per [`Session::step`]. Resolves to `{total}`, the number of
    /// steps planned (SAM 2 counts frames per direction; LiteMedSAM slices per object).
    pub fn start_propagation(
        &self,
        direction: String,
        first: Option<u32>,
        last: Option<u32>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let dirs = parse_direction(&direction)?;
            let mut guard = inner.try_borrow_mut().map_err(busy)?;
            let st = &mut *guard;
            let doc = st.doc()?;
            let n = doc.len();
            let (lo, hi) = (
                first.map_or(0, |v| v as usize),
                last.map_or(n - 1, |v| v as usize),
            );
            if lo > hi || hi >= n {
                return Err(err(format!(
                    "range [{lo}, {hi}] is not within the {n} frames (0..{})",
                    n - 1
                )));
            }
            if st.prompts.is_empty() {
                return Err(err("no prompt yet: add a box on a frame first"));
            }
            st.run = None;
            let mut total = 0usize;
            let model = st.model()?.clone();
            let run = match (&model, doc.kind) {
                (_, DocKind::Image) => Run::Lite {
                    walks: VecDeque::new(),
                },
                (Model::Sam2(_), _) => {
                    if st.sam2.is_none() {
                        return Err(err(
                            "no prompt for this model yet: add a box on a frame first",
                        ));
                    }
                    let start = st
                        .prompts
                        .values()
                        .flatten()
                        .map(|p| p.frame)
                        .min()
                        .unwrap_or(0);
                    for d in &dirs {
                        total += propagation_order(start, *d, (lo, hi)).len();
                    }
                    Run::Sam2 {
                        directions: dirs.into_iter().collect(),
                        range: Some((lo, hi)),
                        current: None,
                    }
                }
                (Model::Lite(model), _) => {
                    let grey = doc.grey();
                    let mut walks = VecDeque::new();
                    for (&obj, prompts) in &st.prompts {
                        // The latest box prompt is the key slice of the recipe.
                        let Some(p) = prompts.iter().rev().find(|p| p.box_xyxy.is_some()) else {
                            continue;
                        };
                        let key = p.frame;
                        if key < lo || key > hi {
                            continue;
                        }
                        let walk = LitePropagation::new(
                            model.clone(),
                            grey.clone(),
                            doc.dims(),
                            key,
                            p.box_xyxy.expect("filtered above"),
                            walk_range(key, (lo, hi), &dirs),
                        )
                        .map_err(err)?;
                        total += walk.len();
                        walks.push_back((obj, walk));
                    }
                    Run::Lite { walks }
                }
            };
            st.run = Some(run);
            let o = Object::new();
            set(&o, "total", total as u32);
            Ok(o.into())
        })
    }

    /// Segments the next frame of the propagation. Resolves to `{frame, objects}` (the
    /// object ids whose mask on that frame was updated), or null when the run is done.
    pub fn step(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mut guard = inner.try_borrow_mut().map_err(busy)?;
            let st = &mut *guard;
            let Some(mut run) = st.run.take() else {
                return Ok(JsValue::NULL);
            };
            let result = step_run(st, &mut run).await;
            match result {
                Ok(Some((frame, objects))) => {
                    st.run = Some(run);
                    let o = Object::new();
                    set(&o, "frame", frame as u32);
                    let ids = Array::new();
                    for id in objects {
                        ids.push(&JsValue::from(id));
                    }
                    set(&o, "objects", ids);
                    Ok(o.into())
                }
                Ok(None) => Ok(JsValue::NULL),
                Err(e) => Err(e),
            }
        })
    }

    /// Abandons the propagation in progress (masks made so far stay).
    pub fn cancel(&self) -> Result<(), JsValue> {
        self.inner.try_borrow_mut().map_err(busy)?.run = None;
        Ok(())
    }

    /// The mask of `obj` on `frame`: `width × height` bytes, 1 = object, row-major
    /// (a volume slice: row j, column i); undefined when that frame has none.
    pub fn get_mask(&self, frame: u32, obj: u32) -> Result<Option<Vec<u8>>, JsValue> {
        let st = self.state()?;
        Ok(st
            .masks
            .get(&obj)
            .and_then(|m| m.get(&(frame as usize)))
            .map(RleMask::decode))
    }

    /// Full-resolution mask logits of the last prompt of `obj` on `frame` (SAM 2),
    /// row-major; undefined when there are none.
    pub fn get_logits(&self, frame: u32, obj: u32) -> Result<Option<Vec<f32>>, JsValue> {
        Ok(self.state()?.logits.get(&(obj, frame as usize)).cloned())
    }

    /// Object ids that have a mask or a prompt.
    pub fn objects(&self) -> Result<Vec<u32>, JsValue> {
        let st = self.state()?;
        let ids: BTreeSet<u32> = st.masks.keys().chain(st.prompts.keys()).copied().collect();
        Ok(ids.into_iter().collect())
    }

    /// Frames on which `obj` has a mask, ascending.
    pub fn mask_frames(&self, obj: u32) -> Result<Vec<u32>, JsValue> {
        Ok(self
            .state()?
            .masks
            .get(&obj)
            .map(|m| m.keys().map(|&f| f as u32).collect())
            .unwrap_or_default())
    }

    /// Forgets every prompt and mask (`obj` undefined) or those of one object.
    pub fn reset(&self, obj: Option<u32>) -> Result<(), JsValue> {
        let mut st = self.inner.try_borrow_mut().map_err(busy)?;
        st.run = None;
        match obj {
            None => {
                st.masks.clear();
                st.logits.clear();
                st.prompts.clear();
                if let Some(s) = st.sam2.as_mut() {
                    s.reset();
                }
            }
            Some(id) => {
                st.masks.remove(&id);
                st.logits.retain(|(o, _), _| *o != id);
                st.prompts.remove(&id);
                if let Some(s) = st.sam2.as_mut() {
                    let _ = s.remove_object(id);
                }
            }
        }
        Ok(())
    }

    /// The masks as a gzipped NIfTI-1 (`.nii.gz`, uint8, voxel value = object id; `obj`
    /// given: that object only, value 1). A volume's mask has its geometry (dims,
    /// pixdim, qform, sform) bit for bit; a clip or image is written as `width × height ×
    /// frames` with 1 mm voxels.
    pub fn export_nifti(&self, obj: Option<u32>) -> Result<Vec<u8>, JsValue> {
        let st = self.state()?;
        let doc = st.doc()?;
        let [d, h, w] = doc.dims();
        let plane = w * h;
        let mut labels = vec![0u8; d * plane];
        for (&id, frames) in &st.masks {
            if obj.is_some_and(|o| o != id) {
                continue;
            }
            let value = if obj.is_some() { 1 } else { id.min(255) as u8 };
            for (&f, m) in frames {
                for (dst, v) in labels[f * plane..(f + 1) * plane]
                    .iter_mut()
                    .zip(m.decode())
                {
                    if v != 0 {
                        *dst = value;
                    }
                }
            }
        }
        let geometry = match &doc.volume {
            Some(v) => v.volume.geometry.clone(),
            None => NiftiGeometry::from_spacing([w, h, d], [1.0, 1.0, 1.0]),
        };
        write_nifti_mask(&geometry, &labels).map_err(err)
    }

    /// The mask of `frame` as a greyscale PNG, 255 = object (`obj` undefined: every
    /// object).
    pub fn export_png(&self, frame: u32, obj: Option<u32>) -> Result<Vec<u8>, JsValue> {
        let st = self.state()?;
        let doc = st.doc()?;
        let (w, h) = (doc.width, doc.height);
        let mut mask = vec![0u8; w * h];
        for (&id, frames) in &st.masks {
            if obj.is_some_and(|o| o != id) {
                continue;
            }
            if let Some(m) = frames.get(&(frame as usize)) {
                for (dst, v) in mask.iter_mut().zip(m.decode()) {
                    *dst |= v;
                }
            }
        }
        encode_mask_png(&mask, w, h).map_err(err)
    }

    /// Every frame's mask (`obj` undefined: every object) as a PNG in a zip archive,
    /// `mask_00000.png`, ... (255 = object; frames without a mask are blank).
    pub fn export_png_zip(&self, obj: Option<u32>) -> Result<Vec<u8>, JsValue> {
        use std::io::Write;
        let n = self.state()?.doc()?.len();
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for f in 0..n {
            let png = self.export_png(f as u32, obj)?;
            zip.start_file(format!("mask_{f:05}.png"), options)
                .map_err(err)?;
            zip.write_all(&png).map_err(err)?;
        }
        Ok(zip.finish().map_err(err)?.into_inner())
    }

    /// Keeps the full-resolution logits of every propagated frame too (not only of
    /// prompted ones) for [`Session::get_logits`]: for parity checks; costs 4 bytes a
    /// pixel a frame.
    pub fn keep_logits(&self, on: bool) -> Result<(), JsValue> {
        self.inner.try_borrow_mut().map_err(busy)?.keep_all_logits = on;
        Ok(())
    }

    /// Adds an encoded image (PNG / JPEG / WebP, decoded here) as the next frame of the
    /// clip begun: a folder of frames opened as a clip.
    pub fn push_frame_image(&self, bytes: &[u8], name: String) -> Result<u32, JsValue> {
        let img = decode_rgb(bytes).map_err(|e| err(format!("{name}: {e}")))?;
        self.push_frame(img)
    }

    /// Times the loaded model on this device: `iters` runs of the image encoder and of
    /// the prompt + mask decoder on a synthetic frame of the model's input size, each
    /// ending in a read back. Resolves to `{encoderMs, decoderMs, firstEncoderMs}` (medians
    /// over the runs after the first, which includes shader compilation).
    pub fn bench(&self, iters: u32) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let iters = iters.max(1) as usize;
            let model = inner.try_borrow().map_err(busy)?.model()?.clone();
            let mut enc = Vec::new();
            let mut dec = Vec::new();
            match &model {
                Model::Sam2(m) => {
                    let s = m.image_size();
                    let img = synthetic_image(s);
                    let p = Sam2ImagePredictor::new(m);
                    let prompt = ImagePrompt {
                        box_xyxy: Some([
                            s as f32 * 0.3,
                            s as f32 * 0.3,
                            s as f32 * 0.7,
                            s as f32 * 0.7,
                        ]),
                        points: Vec::new(),
                    };
                    for _ in 0..=iters {
                        let t = now();
                        let e = p.set_image(&img).map_err(err)?;
                        read_f32(e.features.embed.clone().slice([0..1, 0..1, 0..1, 0..1]))
                            .await
                            .map_err(err)?;
                        enc.push(now() - t);
                        let t = now();
                        p.predict(&e, &prompt).await.map_err(err)?;
                        dec.push(now() - t);
                    }
                }
                Model::Lite(m) => {
                    let s = m.image_size();
                    let img = synthetic_image(s);
                    let grey: Vec<u8> = img.data.iter().step_by(3).copied().collect();
                    let t0 = m.transform();
                    let input = t0.prepare_gray(&grey, s, s).map_err(err)?;
                    let bx = [
                        s as f32 * 0.3,
                        s as f32 * 0.3,
                        s as f32 * 0.7,
                        s as f32 * 0.7,
                    ];
                    for _ in 0..=iters {
                        let t = now();
                        let e = m.encode(m.input_tensor(&input));
                        read_f32(e.clone().slice([0..1, 0..1, 0..1, 0..1]))
                            .await
                            .map_err(err)?;
                        enc.push(now() - t);
                        let t = now();
                        let (low, _) = m.decode(e, bx);
                        read_f32(low).await.map_err(err)?;
                        dec.push(now() - t);
                    }
                }
            }
            let o = Object::new();
            set(&o, "firstEncoderMs", enc[0]);
            set(&o, "encoderMs", median(&enc[1..]));
            set(&o, "decoderMs", median(&dec[1..]));
            set(&o, "iters", iters as u32);
            Ok(o.into())
        })
    }
}

impl Session {
    /// The state for reading; an error (not a panic) while an async call holds it.
    fn state(&self) -> Result<std::cell::Ref<'_, State>, JsValue> {
        self.inner.try_borrow().map_err(busy)
    }

    fn push_frame(&self, frame: RgbImage) -> Result<u32, JsValue> {
        let mut st = self.inner.try_borrow_mut().map_err(busy)?;
        let (name, frames) = st
            .pending_clip
            .as_mut()
            .ok_or_else(|| err("no clip was begun (call beginClip first)"))?;
        if let Some(first) = frames.first()
            && (first.width, first.height) != (frame.width, frame.height)
        {
            return Err(err(format!(
                "{name}: frame {} is {}×{}, the clip is {}×{}",
                frames.len(),
                frame.width,
                frame.height,
                first.width,
                first.height
            )));
        }
        frames.push(frame);
        Ok(frames.len() as u32)
    }

    fn replace_doc(&self, doc: Doc) -> Result<JsValue, JsValue> {
        let mut st = self.inner.try_borrow_mut().map_err(busy)?;
        let info = doc.info();
        st.doc = Some(Rc::new(doc));
        st.clear_results();
        Ok(info.into())
    }
}

/// One step of `run`: the frame done and the objects updated, or `None` when finished.
async fn step_run(
    st: &mut State,
    run: &mut Run,
) -> Result<Option<(usize, Vec<ObjectId>)>, JsValue> {
    match run {
        Run::Sam2 {
            directions,
            range,
            current,
        } => loop {
            let session = st
                .sam2
                .as_mut()
                .ok_or_else(|| err("no prompt yet: add a box on a frame first"))?;
            if current.is_none() {
                let Some(dir) = directions.pop_front() else {
                    return Ok(None);
                };
                *current = Some(
                    session
                        .start_propagation(None, dir, *range)
                        .await
                        .map_err(err)?,
                );
            }
            let prop = current.as_mut().expect("set above");
            match session.step(prop).await.map_err(err)? {
                Some(out) => {
                    st.store_masks(&out);
                    let ids = out.objects.iter().map(|(id, _)| *id).collect();
                    return Ok(Some((out.frame, ids)));
                }
                None => *current = None,
            }
        },
        Run::Lite { walks } => loop {
            let Some((obj, walk)) = walks.front_mut() else {
                return Ok(None);
            };
            let obj = *obj;
            match walk.step().await {
                Some(step) => {
                    let step = step.map_err(err)?;
                    let doc = st.doc()?;
                    st.masks
                        .entry(obj)
                        .or_default()
                        .insert(step.z, RleMask::encode(&step.mask, doc.width, doc.height));
                    return Ok(Some((step.z, vec![obj])));
                }
                None => {
                    walks.pop_front();
                }
            }
        },
    }
}

/// The WebGPU device, started once (burn's runtime is registered per thread).
async fn wgpu_device() -> Result<Device, String> {
    if let Some(d) = WGPU_DEVICE.with(|c| c.borrow().clone()) {
        return Ok(d);
    }
    let d = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| format!("could not start WebGPU: {e}"))?;
    WGPU_DEVICE.with(|c| *c.borrow_mut() = Some(d.clone()));
    Ok(d)
}

/// A smooth test pattern (bright disk on a gradient) of side `s`.
fn synthetic_image(s: usize) -> RgbImage {
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

/// `performance.now()` of the page or worker (ms, sub-millisecond), else `Date.now()`.
fn now() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &JsValue::from_str("performance")).ok();
    perf.and_then(|p| {
        let f = Reflect::get(&p, &JsValue::from_str("now")).ok()?;
        f.dyn_into::<Function>().ok()?.call0(&p).ok()?.as_f64()
    })
    .unwrap_or_else(js_sys::Date::now)
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}
