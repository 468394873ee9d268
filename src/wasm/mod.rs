//! The browser binding: one `#[wasm_bindgen]` class, [`Session`], that the Web Worker
//! (`web/worker.js`) owns. It only converts between JavaScript and the application core
//! ([`crate::app::Workspace`]); every rule lives there.
//!
//! - Backend: WebGPU through burn's wgpu runtime (`Device::wgpu_options().init_async()`)
//!   or burn's CPU backend (`flex`) compiled to wasm, chosen once by [`Session::create`].
//! - Calls that run the model return a `Promise` (WebGPU allows only asynchronous
//!   reads). The workspace sits behind `Rc<RefCell<..>>` and an async call holds it
//!   across its awaits, so calls must not overlap (the worker runs one at a time); an
//!   overlapping call is refused with a `busy` error instead of a panic.
//! - Errors are `MedSegError`s with a `kind` (`bad-input`, `busy`, `too-large`, ...).

// Async calls keep the workspace borrowed across their awaits on purpose: every other
// entry takes it with `try_borrow(_mut)` and fails with a "busy" error, and the worker
// never overlaps calls (web/worker.js).
#![allow(clippy::await_holding_refcell_ref)]

mod clip;
mod dicom;
mod input;
mod types;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::Device;
use crate::app::bench::bench_model;
use crate::app::dicom::DicomImport;
use crate::app::document::{ClipBuilder, Document, VolumeOpening};
use crate::app::prompts::object_id;
use crate::app::workspace::{ModelChoice, TeachOptions};
use crate::app::{AppError, AppResult, Directions, ModelKind, Workspace};
use crate::io::image::decode_rgb;
use crate::io::window::WindowPreset;
pub use input::InputBytes;
use types::{DisplayWindowArg, PromptArg, busy, from_js, js_error, to_js};

/// `initThreadPool(n)` in JavaScript: starts `n` Web Workers as rayon's pool, which
/// burn's CPU backend and the host kernels run on (the threaded module only; the
/// worker calls it before the first session).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
    // burn's CPU backend hands its large single matrix products to gemm's own rayon split,
    // which ran slower on two Web Worker threads than on one (1024³: 250 vs 163 ms); gemm
    // then runs them on the calling thread. Ours are split by rows over the pool instead
    // (`model::cpu_kernels::linear`), and batched products are split by flex over batches.
    #[cfg(feature = "threads")]
    gemm::set_threading_threshold(usize::MAX);
}

#[cfg(feature = "wgpu")]
thread_local! {
    /// burn registers its wgpu runtime once per thread; later sessions reuse it.
    static WGPU_DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// A core result as a JavaScript one.
fn js<T>(r: AppResult<T>) -> Result<T, JsValue> {
    r.map_err(|e| js_error(&e))
}

/// A JavaScript number as a frame index.
fn frame_index(v: f64) -> Result<usize, JsValue> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
        return Ok(v as usize);
    }
    js(Err(AppError::bad_input(format!(
        "frame must be a non-negative integer, got {v}"
    ))))
}

fn window_arg(name: Option<String>) -> Result<Option<WindowPreset>, JsValue> {
    js(WindowPreset::parse(name.as_deref().unwrap_or(""))
        .map_err(|e| AppError::bad_input(e.to_string())))
}

/// A segmentation session: one compute device, the user's workspace, a clip being
/// pushed frame by frame, DICOM files being gathered.
#[wasm_bindgen]
pub struct Session {
    ws: Rc<RefCell<Workspace>>,
    clip: RefCell<Option<ClipBuilder>>,
    /// DICOM files pushed one at a time; kept after [`Session::finish_dicom`] lists the
    /// series, so that opening the one chosen does not read the files again.
    dicom: RefCell<Option<DicomImport>>,
    backend: &'static str,
    notice: Option<String>,
}

#[wasm_bindgen]
impl Session {
    /// Makes a session on `"webgpu"` (fails without it), `"cpu"` (burn's CPU backend in
    /// wasm) or `"auto"` (WebGPU, else the CPU with a notice).
    pub fn create(backend: String) -> js_sys::Promise {
        future_to_promise(async move {
            let (device, name, notice) = match backend.trim().to_ascii_lowercase().as_str() {
                "cpu" => (Device::flex(), "cpu", None),
                "webgpu" | "gpu" => (js(wgpu_device().await)?, "webgpu", None),
                "auto" | "" => match wgpu_device().await {
                    Ok(d) => (d, "webgpu", None),
                    Err(e) => (
                        Device::flex(),
                        "cpu",
                        Some(format!("{e}; running on the CPU, which is slower")),
                    ),
                },
                other => {
                    return Err(js_error(&AppError::bad_input(format!(
                        "backend `{other}`: expected \"webgpu\", \"cpu\" or \"auto\""
                    ))));
                }
            };
            Ok(Session {
                ws: Rc::new(RefCell::new(Workspace::new(device))),
                clip: RefCell::new(None),
                dicom: RefCell::new(None),
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

    /// Threads the CPU backend computes on: the pool of the threaded module, else 1.
    pub fn threads(&self) -> usize {
        rayon::current_num_threads()
    }

    /// Why the session is not on the backend asked for, if it is not.
    pub fn notice(&self) -> Option<String> {
        self.notice.clone()
    }

    /// Loads a `.safetensors` or PyTorch `.pt`/`.pth` model; `expect` (`"sam2"`,
    /// `"lite-medsam"`) refuses another kind; `progress(stage, fraction)` as it goes.
    /// Resolves to `{architecture, imageSize, tensors, takesPoints}`; on failure the
    /// previous model stays.
    pub fn load_model(
        &self,
        bytes: InputBytes,
        expect: Option<String>,
        progress: Option<Function>,
    ) -> Result<JsValue, JsValue> {
        let report = |stage: &str, f: f64| {
            if let Some(p) = &progress {
                let _ = p.call2(
                    &JsValue::NULL,
                    &JsValue::from_str(stage),
                    &JsValue::from_f64(f),
                );
            }
        };
        let expect = match expect.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(k) => Some(js(ModelKind::parse(k))?),
            None => None,
        };
        report("load", 0.0);
        let info = js(self
            .ws
            .try_borrow_mut()
            .map_err(busy)?
            .load_model(bytes.into_vec(), expect))?;
        report("done", 1.0);
        to_js(&info)
    }

    /// The loaded model's architecture (`"sam2"`, `"lite-medsam"`), or undefined.
    pub fn architecture(&self) -> Result<Option<String>, JsValue> {
        Ok(self
            .ws
            .try_borrow()
            .map_err(busy)?
            .model()
            .map(|m| m.kind().name().to_string()))
    }

    /// Opens a PNG / JPEG / WebP image. On failure the open document and masks stay.
    pub fn open_image(&self, bytes: &InputBytes, name: String) -> Result<JsValue, JsValue> {
        let doc = decode_rgb(bytes.bytes())
            .map_err(|e| AppError::from(e).context(&name))
            .and_then(|img| Document::image(name, img));
        self.open(js(doc)?)
    }

    /// Opens a NIfTI-1 or MedSAM `.npz` volume under `window` (a preset name, or empty /
    /// `auto` for the automatic choice) → its info; a single-slice NIfTI time series
    /// opens as a clip ([`Document::open_volume_file`]). A 4-D NIfTI of several slices
    /// opens the volume of `time_point` (0-based); without one → `{choose_time_point:
    /// {time_points, dims}, message}` and the open document stays.
    pub fn open_volume(
        &self,
        bytes: &InputBytes,
        name: String,
        window: Option<String>,
        time_point: Option<u32>,
    ) -> Result<JsValue, JsValue> {
        let window = window_arg(window)?;
        let time_point = time_point.map(|t| t as usize);
        match js(Document::open_volume_file(
            name.as_str(),
            bytes.bytes(),
            window,
            time_point,
        ))? {
            VolumeOpening::Opened(doc) => self.open(doc),
            VolumeOpening::ChooseTimePoint(choice) => to_js(&types::ChooseTimePoint {
                message: choice.message(&name, "the timePoint option"),
                choose_time_point: choice,
            }),
        }
    }

    /// Segments every prompted frame again with the input as it is now (after
    /// `set_window`); one undoable action. Resolves to the prompts' results.
    pub fn resegment_prompts(&self) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let outs = js(ws.try_borrow_mut().map_err(busy)?.resegment_prompts().await)?;
            to_js(&outs)
        })
    }

    /// Re-windows the open volume's model input; prompts and masks stay.
    pub fn set_window(&self, window: String) -> Result<JsValue, JsValue> {
        let window = window_arg(Some(window))?;
        to_js(&js(self
            .ws
            .try_borrow_mut()
            .map_err(busy)?
            .set_window(window))?)
    }

    /// `{kind, name, frames, width, height, [spacing, window, format]}`, or undefined.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        match self.ws.try_borrow().map_err(busy)?.document() {
            Some(d) => to_js(&d.info()),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Number of frames (slices) of the open document; 0 when none.
    pub fn frame_count(&self) -> Result<u32, JsValue> {
        Ok(self
            .ws
            .try_borrow()
            .map_err(busy)?
            .document()
            .map_or(0, |d| d.len() as u32))
    }

    /// Frame `index` as RGBA for display (x = i, y = j): as the model sees it, or a volume
    /// slice through `window` (a preset name or `{level, width}`; display only).
    pub fn frame_rgba(&self, index: u32, window: JsValue) -> Result<Vec<u8>, JsValue> {
        let doc = js(self.ws.try_borrow().map_err(busy)?.doc())?;
        let display = if window.is_undefined() || window.is_null() {
            None
        } else {
            js(from_js::<DisplayWindowArg>(window, "display window")?.into_window())?
        };
        Ok(match display {
            Some(w) => js(doc.display_slice(index as usize, w))?
                .into_iter()
                .flat_map(|g| [g, g, g, 255])
                .collect(),
            None => js(doc.frame_rgb(index as usize))?
                .data
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
        })
    }

    /// The stored values of volume slice `index` (NIfTI scaling applied), row-major.
    pub fn frame_values(&self, index: u32) -> Result<Vec<f32>, JsValue> {
        let doc = js(self.ws.try_borrow().map_err(busy)?.doc())?;
        Ok(js(doc.slice_values(index as usize))?.to_vec())
    }

    /// Embeds `frame` ahead of a prompt on it. Resolves to `{frame, computed, ms}`.
    pub fn prepare_frame(&self, frame: f64) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let t0 = js_sys::Date::now();
            let frame = frame_index(frame)?;
            let computed = js(ws
                .try_borrow_mut()
                .map_err(busy)?
                .prepare_frame(frame)
                .await)?;
            let ms = js_sys::Date::now() - t0;
            to_js(&serde_json::json!({ "frame": frame, "computed": computed, "ms": ms }))
        })
    }

    /// Adds `prompt` (`{box, points}`) for object `obj` (1..=255) on `frame`: a box starts
    /// the frame's prompt afresh, points are added, the model gets the whole prompt.
    /// Resolves to `{frame, obj, area, iou, objectScore, prompt}`.
    pub fn add_prompt(&self, frame: f64, obj: f64, prompt: JsValue) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let frame = frame_index(frame)?;
            let obj = js(object_id(obj))?;
            let edit = js(from_js::<PromptArg>(prompt, "prompt")?.into_prompt())?;
            let out = js(ws
                .try_borrow_mut()
                .map_err(busy)?
                .add_prompt(obj, frame, &edit)
                .await)?;
            to_js(&out)
        })
    }

    /// Takes back the last action (a prompt, a whole propagation, a reset), whatever its
    /// object, putting back the prompts and masks it changed. Returns `{action,
    /// prompts, masks, objects, canUndo, canRedo, nextUndo, nextRedo}`, or null.
    pub fn undo(&self) -> Result<JsValue, JsValue> {
        let restored = js(self.ws.try_borrow_mut().map_err(busy)?.undo())?;
        restored.map_or(Ok(JsValue::NULL), |r| to_js(&r))
    }

    /// Does the last undone action again; as [`Session::undo`].
    pub fn redo(&self) -> Result<JsValue, JsValue> {
        let restored = js(self.ws.try_borrow_mut().map_err(busy)?.redo())?;
        restored.map_or(Ok(JsValue::NULL), |r| to_js(&r))
    }

    /// `{canUndo, canRedo, nextUndo, nextRedo}`: whether there is something to undo or
    /// redo, and what (`{kind: "prompt" | "propagation" | "reset", ...}`).
    pub fn history(&self) -> Result<JsValue, JsValue> {
        to_js(&self.ws.try_borrow().map_err(busy)?.history())
    }

    /// Plans a propagation (`"forward"`, `"backward"`, `"both"`) over `first..=last`.
    /// Resolves to `{total}` steps, then done one per [`Session::step`].
    pub fn start_propagation(
        &self,
        direction: String,
        first: Option<u32>,
        last: Option<u32>,
    ) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let dirs = js(Directions::parse(&direction))?;
            let mut ws = ws.try_borrow_mut().map_err(busy)?;
            let n = ws.document().map_or(0, |d| d.len()) as u32;
            let range = (
                first.unwrap_or(0) as usize,
                last.unwrap_or(n.saturating_sub(1)) as usize,
            );
            let total = js(ws.start_propagation(dirs, Some(range)).await)?;
            to_js(&serde_json::json!({ "total": total }))
        })
    }

    /// The next step of the propagation: `{frames, objects}`, or null when it is done.
    pub fn step(&self) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            match js(ws.try_borrow_mut().map_err(busy)?.step().await)? {
                Some(s) => to_js(&s),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Abandons the propagation in progress (masks made so far stay).
    pub fn cancel(&self) -> Result<(), JsValue> {
        self.ws.try_borrow_mut().map_err(busy)?.cancel();
        Ok(())
    }

    /// Opens a label file over the open document (NIfTI / npz label volume, PNG mask,
    /// zip of PNG masks): `{name, frames, firstFrame, lastFrame, values}`.
    pub fn open_labels(&self, bytes: &InputBytes, name: String) -> Result<JsValue, JsValue> {
        to_js(&js(self
            .ws
            .try_borrow_mut()
            .map_err(busy)?
            .open_labels(bytes.bytes(), &name))?)
    }

    /// Forgets the label file.
    pub fn close_labels(&self) -> Result<(), JsValue> {
        self.ws.try_borrow_mut().map_err(busy)?.close_labels();
        Ok(())
    }

    /// Sets up a fine-tuning run (`{epochs, lr, batch, augment, source, validation,
    /// patience, seed}`, each optional); resolves to its progress, then one
    /// [`Session::finetune_step`] at a time.
    pub fn start_finetune(&self, opts: JsValue) -> Result<JsValue, JsValue> {
        let opts: TeachOptions = if opts.is_undefined() || opts.is_null() {
            TeachOptions::default()
        } else {
            from_js(opts, "fine-tuning options")?
        };
        to_js(&js(self
            .ws
            .try_borrow_mut()
            .map_err(busy)?
            .start_finetune(&opts))?)
    }

    /// The next step of the run: its progress (`stopped` set on the last).
    pub fn finetune_step(&self) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let p = js(ws.try_borrow_mut().map_err(busy)?.finetune_step().await)?;
            to_js(&p)
        })
    }

    /// Stops the run, keeping its best epoch: its progress.
    pub fn cancel_finetune(&self) -> Result<JsValue, JsValue> {
        to_js(&js(self
            .ws
            .try_borrow_mut()
            .map_err(busy)?
            .cancel_finetune())?)
    }

    /// Segments with `"base"` or `"tuned"`: the teaching state.
    pub fn use_model(&self, choice: String) -> Result<JsValue, JsValue> {
        let choice: ModelChoice =
            from_js(JsValue::from_str(&choice), "model (\"base\" or \"tuned\")")?;
        to_js(&js(self
            .ws
            .try_borrow_mut()
            .map_err(busy)?
            .use_model(choice))?)
    }

    /// The tuned model as a safetensors checkpoint.
    pub fn export_tuned(&self) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let bytes = js(ws.try_borrow().map_err(busy)?.export_tuned().await)?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Labels, run, tuned model and which model segments.
    pub fn teach_state(&self) -> Result<JsValue, JsValue> {
        to_js(&self.ws.try_borrow().map_err(busy)?.teach_state())
    }

    /// The mask of `obj` on `frame` (`width × height` bytes, 1 = object), or undefined.
    pub fn get_mask(&self, frame: u32, obj: u32) -> Result<Option<Vec<u8>>, JsValue> {
        let ws = self.ws.try_borrow().map_err(busy)?;
        Ok(ws.masks().get(obj, frame as usize).map(|m| m.decode()))
    }

    /// Full-resolution logits of `obj` on `frame` (SAM 2 prompts; propagated frames with
    /// `keep_logits`), or undefined.
    pub fn get_logits(&self, frame: u32, obj: u32) -> Result<Option<Vec<f32>>, JsValue> {
        let ws = self.ws.try_borrow().map_err(busy)?;
        Ok(ws.masks().logits(obj, frame as usize).map(<[f32]>::to_vec))
    }

    /// Object ids that have a mask or a prompt.
    pub fn objects(&self) -> Result<Vec<u32>, JsValue> {
        Ok(self.ws.try_borrow().map_err(busy)?.objects())
    }

    /// Frames on which `obj` has a mask, ascending.
    pub fn mask_frames(&self, obj: u32) -> Result<Vec<u32>, JsValue> {
        let ws = self.ws.try_borrow().map_err(busy)?;
        Ok(ws
            .masks()
            .frames_of(obj)
            .into_iter()
            .map(|f| f as u32)
            .collect())
    }

    /// Forgets every prompt and mask (`obj` undefined) or those of one object.
    pub fn reset(&self, obj: Option<u32>) -> Result<(), JsValue> {
        self.ws.try_borrow_mut().map_err(busy)?.reset(obj);
        Ok(())
    }

    /// The masks as a gzipped NIfTI label map (value = object id; `obj`: that one, 1).
    pub fn export_nifti(&self, obj: Option<u32>) -> Result<Vec<u8>, JsValue> {
        js(self.ws.try_borrow().map_err(busy)?.export_nifti(obj))
    }

    /// The mask of `frame` as a PNG, 255 = object.
    pub fn export_png(&self, frame: u32, obj: Option<u32>) -> Result<Vec<u8>, JsValue> {
        js(self
            .ws
            .try_borrow()
            .map_err(busy)?
            .export_png(frame as usize, obj))
    }

    /// Every frame's mask as PNG (`mask_00000.png`, ...) in a zip.
    pub fn export_png_zip(&self, obj: Option<u32>) -> Result<Vec<u8>, JsValue> {
        js(self.ws.try_borrow().map_err(busy)?.export_png_zip(obj))
    }

    /// Keeps the logits of propagated frames too, for [`Session::get_logits`].
    pub fn keep_logits(&self, on: bool) -> Result<(), JsValue> {
        self.ws.try_borrow_mut().map_err(busy)?.keep_all_logits(on);
        Ok(())
    }

    /// Times the loaded model: `{firstEncoderMs, encoderMs, decoderMs, runs, imageSize}`.
    pub fn bench(&self, iters: u32) -> js_sys::Promise {
        let ws = self.ws.clone();
        future_to_promise(async move {
            let model = js(ws
                .try_borrow()
                .map_err(busy)?
                .model()
                .cloned()
                .ok_or_else(crate::app::model::no_model))?;
            to_js(&js(bench_model(&model, iters as usize, &now).await)?)
        })
    }
}

impl Session {
    fn open(&self, doc: Document) -> Result<JsValue, JsValue> {
        to_js(&self.ws.try_borrow_mut().map_err(busy)?.open(doc))
    }
}

/// The WebGPU device, started once (burn's runtime is registered per thread).
#[cfg(feature = "wgpu")]
async fn wgpu_device() -> AppResult<Device> {
    if let Some(d) = WGPU_DEVICE.with(|c| c.borrow().clone()) {
        return Ok(d);
    }
    let d = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| AppError::engine(format!("WebGPU is not available ({e})")))?;
    WGPU_DEVICE.with(|c| *c.borrow_mut() = Some(d.clone()));
    Ok(d)
}

/// The threaded CPU module has no WebGPU (the worker loads it only for the CPU).
#[cfg(not(feature = "wgpu"))]
async fn wgpu_device() -> AppResult<Device> {
    Err(AppError::engine(
        "this engine module has no WebGPU (the multi-threaded CPU module)",
    ))
}

/// `performance.now()` of the worker or page (ms), else `Date.now()`.
fn now() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &JsValue::from_str("performance"))
        .ok()
        .and_then(|p| {
            let f = js_sys::Reflect::get(&p, &JsValue::from_str("now")).ok()?;
            f.dyn_into::<Function>().ok()?.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}
