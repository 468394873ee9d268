//! The application core: what a user works with, above the networks. The CLI
//! (`src/bin/medseg/`) and the browser binding (`src/wasm/`) are thin faces over it, so
//! that one input and one prompt give one mask whichever face is used.
//!
//! - [`document`]: the open image, clip or volume, and its window.
//! - [`dicom`]: DICOM files, folders and zips into series, and a series into a document.
//! - [`prompts`]: prompts per (object, frame) and their one rule.
//! - [`history`]: undo and redo, one action (prompt, propagation, reset) at a time.
//! - [`propagation`]: plans and runs that follow a structure through frames.
//! - [`masks`]: the masks made so far and their exports.
//! - [`confidence`]: when a mask from a prompt deserves a "low confidence" flag.
//! - [`model`]: the loaded model.
//! - `device`: native compute devices by name (CPU, wgpu; f32 or f16), for the CLI.
//! - [`bench`]: timing the loaded model.
//! - [`workspace`]: all of these together, driven by the faces.
//! - [`training`]: fine-tuning the heads of LiteMedSAM and SAM 2.1 / MedSAM2 on labelled
//!   slices.

pub mod bench;
pub mod confidence;
#[cfg(not(target_arch = "wasm32"))]
pub mod device;
pub mod dicom;
pub mod document;
pub mod error;
pub mod history;
pub mod masks;
pub mod model;
pub mod prompts;
pub mod propagation;
pub mod training;
pub mod workspace;

pub use document::{DocInfo, DocKind, Document, TimePoint, TimePointChoice, VolumeOpening};
pub use error::{AppError, AppResult, ErrorKind};
pub use history::{Action, HistoryState, Restored};
pub use model::{LoadedModel, ModelInfo, ModelKind};
pub use propagation::{Directions, StepOutcome};
pub use workspace::{PromptOutcome, Workspace};
