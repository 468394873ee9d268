//! Model components, one file per component as in the official `sam2/modeling`.

pub mod backbone;
pub mod config;
pub mod cpu_kernels;
pub mod layers;
pub mod lite_medsam;
pub mod memory_attention;
pub mod memory_encoder;
pub mod position_encoding;
pub mod sam;
pub mod sam2;
pub mod tiny_vit;

use std::collections::BTreeMap;

use crate::model::config::{ConfigError, Sam2Config, Sam2Preset};
use crate::model::lite_medsam::LiteMedSam;
use crate::model::sam2::Sam2Model;
use crate::weights::{TensorStore, WeightError, WeightLoader, remap};
use burn::tensor::Device;

/// Metadata key naming the architecture in files written by `medseg convert`.
pub const META_ARCHITECTURE: &str = "medseg_architecture";
/// Metadata key holding the full typed SAM 2 config (JSON) in converted files.
pub const META_SAM2_CONFIG: &str = "medseg_sam2_config";
/// Metadata key of the official fixture exporter (`export_fixtures.py`).
pub const META_OFFICIAL_SAM2_CONFIG: &str = "sam2_config";

/// Which model a weights file holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    Sam2(Box<Sam2Config>),
    LiteMedSam,
}

impl Architecture {
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Sam2(_) => "sam2",
            Architecture::LiteMedSam => "lite-medsam",
        }
    }

    /// Metadata recording this architecture, for converted files.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(META_ARCHITECTURE.to_string(), self.name().to_string());
        if let Architecture::Sam2(cfg) = self {
            m.insert(
                META_SAM2_CONFIG.to_string(),
                serde_json::to_string(cfg).unwrap_or_default(),
            );
        }
        m
    }
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot tell which model this file holds: {0}")]
    UnknownArchitecture(String),
    #[error("this file holds a {found} model, not {expected} ({evidence})")]
    WrongArchitecture {
        expected: &'static str,
        found: &'static str,
        evidence: String,
    },
}

/// Works out the architecture from metadata, else from the key names.
/// `preset` overrides the config of a SAM 2 file without metadata (a raw
/// `.pt`); without it such a file is taken to be MedSAM2 (`medsam2-t512`).
pub fn detect_architecture(
    store: &TensorStore,
    preset: Option<Sam2Preset>,
) -> Result<Architecture, LoadError> {
    if let Some(arch) = store.metadata.get(META_ARCHITECTURE) {
        return match arch.as_str() {
            "lite-medsam" => Ok(Architecture::LiteMedSam),
            "sam2" => {
                let json = store.metadata.get(META_SAM2_CONFIG).ok_or_else(|| {
                    WeightError::Metadata(format!("`{META_SAM2_CONFIG}` missing"))
                })?;
                let cfg: Sam2Config =
                    serde_json::from_str(json).map_err(|e| WeightError::Metadata(e.to_string()))?;
                cfg.validate()?;
                Ok(Architecture::Sam2(Box::new(cfg)))
            }
            other => Err(LoadError::UnknownArchitecture(format!(
                "metadata names `{other}`"
            ))),
        };
    }
    if let Some(json) = store.metadata.get(META_OFFICIAL_SAM2_CONFIG) {
        return Ok(Architecture::Sam2(Box::new(official_fixture_config(json)?)));
    }
    if store
        .get("image_encoder.trunk.patch_embed.proj.weight")
        .is_some()
    {
        let preset = preset.unwrap_or(Sam2Preset::MedSam2T512);
        return Ok(Architecture::Sam2(Box::new(preset.config())));
    }
    if store
        .get("image_encoder.patch_embed.seq.0.c.weight")
        .is_some()
        && store.get("mask_decoder.iou_token.weight").is_some()
    {
        return Ok(Architecture::LiteMedSam);
    }
    Err(LoadError::UnknownArchitecture(
        "neither SAM 2 / MedSAM2 nor LiteMedSAM key names (e.g. `image_encoder.trunk.patch_embed.proj.weight`)".into(),
    ))
}

/// The config recorded by the official exporter: the stock SAM 2.1-T YAML plus
/// its Hydra overrides (a JSON list stored as a string).
fn official_fixture_config(json: &str) -> Result<Sam2Config, LoadError> {
    let meta: serde_json::Value =
        serde_json::from_str(json).map_err(|e| WeightError::Metadata(e.to_string()))?;
    let overrides: Vec<String> = match meta.get("hydra_overrides") {
        Some(serde_json::Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| WeightError::Metadata(e.to_string()))?
        }
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|e| WeightError::Metadata(e.to_string()))?
        }
        None => Vec::new(),
    };
    Ok(Sam2Preset::Sam21T.config().with_overrides(&overrides)?)
}

/// Loads a SAM 2 model strictly: every tensor consumed, shapes checked.
pub fn load_sam2(
    store: TensorStore,
    cfg: &Sam2Config,
    device: &Device,
) -> Result<Sam2Model, LoadError> {
    let store = remap::remap_store(store, remap::SAM2_RULES);
    let loader = WeightLoader::new(store, device);
    let model = Sam2Model::load(&loader.root(), cfg)?;
    loader.finish()?;
    Ok(model)
}

/// The (key, shape) list a SAM 2 configuration expects, in load order.
pub fn sam2_expected_keys(
    cfg: &Sam2Config,
    device: &Device,
) -> Result<Vec<(String, Vec<usize>)>, LoadError> {
    let loader = WeightLoader::recorder(device);
    Sam2Model::load(&loader.root(), cfg)?;
    Ok(loader.into_requested())
}

/// Loads LiteMedSAM strictly: training-only buffers (`*.num_batches_tracked`)
/// dropped, SAM 1 head names remapped ([`remap::LITE_MEDSAM_RULES`]), every
/// remaining tensor consumed with its shape checked.
/// A file recognisably holding another model (SAM 2 / MedSAM2) is refused
/// up front with [`LoadError::WrongArchitecture`].
pub fn load_lite_medsam(store: TensorStore, device: &Device) -> Result<LiteMedSam, LoadError> {
    if let Ok(arch @ Architecture::Sam2(_)) = detect_architecture(&store, None) {
        let evidence = match store.metadata.get(META_ARCHITECTURE) {
            Some(name) => format!("metadata `{META_ARCHITECTURE}` = `{name}`"),
            None if store.metadata.contains_key(META_OFFICIAL_SAM2_CONFIG) => {
                format!("metadata `{META_OFFICIAL_SAM2_CONFIG}`")
            }
            None => "key `image_encoder.trunk.patch_embed.proj.weight`".to_string(),
        };
        return Err(LoadError::WrongArchitecture {
            expected: Architecture::LiteMedSam.name(),
            found: arch.name(),
            evidence,
        });
    }
    let store = remap::remap_store(store, remap::LITE_MEDSAM_RULES);
    let loader = WeightLoader::new(store, device);
    let model = LiteMedSam::load(&loader.root())?;
    loader.finish()?;
    Ok(model)
}
