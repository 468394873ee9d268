//! The loaded model: SAM 2 (MedSAM2) or LiteMedSAM, read from the bytes of a weights
//! file. The architecture comes from the file (metadata or key names) unless a SAM 2
//! preset is named.

use std::sync::Arc;

use serde::Serialize;

use crate::Device;
use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::model::config::Sam2Preset;
use crate::model::lite_medsam::LiteMedSam;
use crate::model::sam2::Sam2Model;
use crate::model::{Architecture, detect_architecture, load_lite_medsam, load_sam2};
use crate::weights::TensorStore;

/// Which family a model belongs to; its `name` is what the API and the CLI print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ModelKind {
    #[serde(rename = "sam2")]
    Sam2,
    #[serde(rename = "lite-medsam")]
    LiteMedSam,
}

impl ModelKind {
    /// `sam2` (`medsam2`, `sam2.1`) or `lite-medsam` (`litemedsam`, `lite_medsam`).
    pub fn parse(s: &str) -> AppResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sam2" | "medsam2" | "sam2.1" => Ok(ModelKind::Sam2),
            "lite-medsam" | "litemedsam" | "lite_medsam" => Ok(ModelKind::LiteMedSam),
            other => Err(AppError::bad_input(format!(
                "unknown model kind `{other}`: expected \"sam2\" or \"lite-medsam\""
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Sam2 => "sam2",
            ModelKind::LiteMedSam => "lite-medsam",
        }
    }
}

/// A model ready to segment. Shared (`Arc`) with the sessions and walks that use it.
#[derive(Clone)]
pub enum LoadedModel {
    Sam2(Arc<Sam2Model>),
    LiteMedSam(Arc<LiteMedSam>),
}

/// What a caller is told about a loaded model.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    pub architecture: ModelKind,
    /// The side of the model's square input, in pixels.
    pub image_size: usize,
    pub tensors: usize,
    /// Whether it takes point prompts (LiteMedSAM takes a box only).
    pub takes_points: bool,
}

impl LoadedModel {
    /// Loads the weights in `store` strictly. `preset` names the SAM 2 architecture for
    /// files that do not; `expect` refuses a file holding another kind of model.
    pub fn load(
        store: TensorStore,
        preset: Option<Sam2Preset>,
        expect: Option<ModelKind>,
        device: &Device,
    ) -> AppResult<(Self, ModelInfo)> {
        let tensors = store.len();
        let arch = detect_architecture(&store, preset)
            .map_err(|e| AppError::bad_input(format!("not a model MedSeg knows: {e}")))?;
        let kind = match arch {
            Architecture::Sam2(_) => ModelKind::Sam2,
            Architecture::LiteMedSam => ModelKind::LiteMedSam,
        };
        if let Some(want) = expect
            && want != kind
        {
            return Err(AppError::bad_input(format!(
                "wrong model: this file holds a {} model, {} was asked for",
                kind.name(),
                want.name()
            )));
        }
        let model = match &arch {
            Architecture::Sam2(cfg) => {
                LoadedModel::Sam2(Arc::new(load_sam2(store, cfg, device).map_err(|e| {
                    AppError::bad_input(format!("cannot load the SAM 2 weights: {e}"))
                })?))
            }
            Architecture::LiteMedSam => {
                LoadedModel::LiteMedSam(Arc::new(load_lite_medsam(store, device).map_err(|e| {
                    AppError::bad_input(format!("cannot load the LiteMedSAM weights: {e}"))
                })?))
            }
        };
        let info = ModelInfo {
            architecture: kind,
            image_size: model.image_size(),
            tensors,
            takes_points: kind == ModelKind::Sam2,
        };
        Ok((model, info))
    }

    /// Reads a `.safetensors` or PyTorch `.pt`/`.pth` file's bytes, then [`Self::load`].
    pub fn from_bytes(
        bytes: &[u8],
        preset: Option<Sam2Preset>,
        expect: Option<ModelKind>,
        device: &Device,
    ) -> AppResult<(Self, ModelInfo)> {
        let store = TensorStore::from_bytes(bytes).map_err(|e| {
            let kind = match e {
                crate::weights::WeightError::OutOfMemory { .. } => ErrorKind::TooLarge,
                _ => ErrorKind::BadInput,
            };
            AppError::new(kind, format!("cannot read the weights: {e}"))
        })?;
        Self::load(store, preset, expect, device)
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            LoadedModel::Sam2(_) => ModelKind::Sam2,
            LoadedModel::LiteMedSam(_) => ModelKind::LiteMedSam,
        }
    }

    pub fn image_size(&self) -> usize {
        match self {
            LoadedModel::Sam2(m) => m.image_size(),
            LoadedModel::LiteMedSam(m) => m.image_size(),
        }
    }
}

/// `ErrorKind::NoModel` with the message the faces share.
pub fn no_model() -> AppError {
    AppError::new(
        ErrorKind::NoModel,
        "no model is loaded: load MedSAM2 or LiteMedSAM weights first",
    )
}
