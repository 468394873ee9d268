//! The shapes that cross between JavaScript and the core, converted with
//! `serde-wasm-bindgen`: what the worker passes in, and what it gets back.

use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::app::document::DisplayWindow;
use crate::app::prompts::point_label;
use crate::app::{AppError, AppResult, ErrorKind};
use crate::io::dicom::series::SeriesInfo;
use crate::io::window::{WindowLevel, WindowPreset};
use crate::predictor::ImagePrompt;

/// A prompt from JavaScript: `{box: [x0, y0, x1, y1] | null, points: [[x, y, label], ...]}`
/// in frame pixels; label 1 = object, 0 = background.
#[derive(Deserialize)]
pub struct PromptArg {
    #[serde(rename = "box", default)]
    box_xyxy: Option<Vec<f32>>,
    #[serde(default)]
    points: Vec<Vec<f64>>,
}

impl PromptArg {
    pub fn into_prompt(self) -> AppResult<ImagePrompt> {
        let box_xyxy = match self.box_xyxy.as_deref() {
            None => None,
            Some(&[x0, y0, x1, y1]) => Some([x0, y0, x1, y1]),
            Some(other) => {
                return Err(AppError::bad_input(format!(
                    "a box is 4 numbers [x0, y0, x1, y1], got {other:?}"
                )));
            }
        };
        let points = self
            .points
            .iter()
            .map(|p| match p.as_slice() {
                &[x, y, label] => Ok(([x as f32, y as f32], point_label(label)?)),
                other => Err(AppError::bad_input(format!(
                    "a point is [x, y, label] (label 1 = object, 0 = background), got {other:?}"
                ))),
            })
            .collect::<AppResult<_>>()?;
        Ok(ImagePrompt { box_xyxy, points })
    }
}

/// A display window from JavaScript: a preset name (`"soft"`, `"mr"`, ...; `"auto"` or
/// `""`: as the model sees it) or `{level, width}` in the volume's units.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum DisplayWindowArg {
    Preset(String),
    LevelWidth { level: f64, width: f64 },
}

impl DisplayWindowArg {
    /// `None`: the model's own input window.
    pub fn into_window(self) -> AppResult<Option<DisplayWindow>> {
        Ok(match self {
            DisplayWindowArg::Preset(name) => WindowPreset::parse(&name)
                .map_err(|e| AppError::bad_input(e.to_string()))?
                .map(DisplayWindow::Preset),
            DisplayWindowArg::LevelWidth { level, width } => {
                Some(DisplayWindow::LevelWidth(WindowLevel { level, width }))
            }
        })
    }
}

/// Several DICOM series and none chosen: the user picks one by its `uid`.
#[derive(Serialize)]
pub struct ChooseSeries {
    pub choose: Vec<SeriesInfo>,
}

/// A 4-D NIfTI of several 3-D volumes and no time point chosen: the user picks one.
#[derive(Serialize)]
pub struct ChooseTimePoint {
    pub choose_time_point: crate::app::TimePointChoice,
    /// What to tell the user ([`crate::app::TimePointChoice::message`]).
    pub message: String,
}

/// Any serialisable result as a JavaScript value (plain objects and arrays).
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(&AppError::engine(e)))
}

/// A JavaScript value as `T`, or a bad-input error naming `what`.
pub fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value)
        .map_err(|e| js_error(&AppError::bad_input(format!("{what}: {e}"))))
}

/// An `Error` named `MedSegError` with the core's `kind` ("bad-input", "busy", ...), so
/// that callers tell cases apart without reading the message.
pub fn js_error(e: &AppError) -> JsValue {
    let err = js_sys::Error::new(&e.message);
    err.set_name("MedSegError");
    let kind = match serde_wasm_bindgen::to_value(&e.kind) {
        Ok(k) => k,
        Err(_) => JsValue::from_str("engine"),
    };
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&err, &JsValue::from_str("kind"), &kind);
    err.into()
}

/// The error for an overlapping call (a `RefCell` already borrowed).
pub fn busy<E>(_: E) -> JsValue {
    js_error(&AppError::new(
        ErrorKind::Busy,
        "the session is busy with another call (calls must not overlap)",
    ))
}
