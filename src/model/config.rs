//! Typed SAM 2.1 configuration, mirroring the official Hydra YAML
//! (`configs/sam2.1/sam2.1_hiera_t.yaml`) field for field, so that the
//! official override syntax (`++model.image_encoder.trunk.embed_dim=8`) applies
//! to it unchanged. Only the fields that vary between the SAM 2.1 family
//! members MedSeg supports are modelled; the remaining SAM 2.1 flags
//! (high-res features, object pointers, signed temporal encodings, ...) are
//! fixed in the code and an override naming them is rejected.

use burn::config::Config;
use serde_json::Value;

#[derive(Config, Debug, PartialEq)]
pub struct HieraConfig {
    #[config(default = 96)]
    pub embed_dim: usize,
    #[config(default = 1)]
    pub num_heads: usize,
    #[config(default = "vec![1, 2, 7, 2]")]
    pub stages: Vec<usize>,
    #[config(default = "vec![5, 7, 9]")]
    pub global_att_blocks: Vec<usize>,
    #[config(default = "vec![7, 7]")]
    pub window_pos_embed_bkg_spatial_size: Vec<usize>,
    #[config(default = "vec![8, 4, 14, 7]")]
    pub window_spec: Vec<usize>,
    /// Number of stage changes with query pooling.
    #[config(default = 3)]
    pub q_pool: usize,
    #[config(default = 2)]
    pub q_stride: usize,
    #[config(default = 2.0)]
    pub dim_mul: f64,
    #[config(default = 2.0)]
    pub head_mul: f64,
}

#[derive(Config, Debug, PartialEq)]
pub struct SinePositionConfig {
    #[config(default = 256)]
    pub num_pos_feats: usize,
}

#[derive(Config, Debug, PartialEq)]
pub struct FpnNeckConfig {
    #[config(default = 256)]
    pub d_model: usize,
    #[config(default = "vec![768, 384, 192, 96]")]
    pub backbone_channel_list: Vec<usize>,
    #[config(default = "vec![2, 3]")]
    pub fpn_top_down_levels: Vec<usize>,
    #[config(default = "SinePositionConfig::new()")]
    pub position_encoding: SinePositionConfig,
}

#[derive(Config, Debug, PartialEq)]
pub struct ImageEncoderConfig {
    #[config(default = 1)]
    pub scalp: usize,
    #[config(default = "HieraConfig::new()")]
    pub trunk: HieraConfig,
    #[config(default = "FpnNeckConfig::new()")]
    pub neck: FpnNeckConfig,
}

#[derive(Config, Debug, PartialEq)]
pub struct RopeAttentionConfig {
    #[config(default = 256)]
    pub embedding_dim: usize,
    #[config(default = 1)]
    pub num_heads: usize,
    #[config(default = 1)]
    pub downsample_rate: usize,
    #[config(default = "vec![64, 64]")]
    pub feat_sizes: Vec<usize>,
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// Key/value input width; `None` = `embedding_dim` (self-attention).
    pub kv_in_dim: Option<usize>,
}

#[derive(Config, Debug, PartialEq)]
pub struct MemoryAttentionLayerConfig {
    #[config(default = 256)]
    pub d_model: usize,
    #[config(default = 2048)]
    pub dim_feedforward: usize,
    #[config(default = "RopeAttentionConfig::new()")]
    pub self_attention: RopeAttentionConfig,
    #[config(default = "RopeAttentionConfig::new().with_kv_in_dim(Some(64))")]
    pub cross_attention: RopeAttentionConfig,
}

#[derive(Config, Debug, PartialEq)]
pub struct MemoryAttentionConfig {
    #[config(default = 256)]
    pub d_model: usize,
    #[config(default = 4)]
    pub num_layers: usize,
    #[config(default = "MemoryAttentionLayerConfig::new()")]
    pub layer: MemoryAttentionLayerConfig,
}

#[derive(Config, Debug, PartialEq)]
pub struct MaskDownSamplerConfig {
    #[config(default = 256)]
    pub embed_dim: usize,
    #[config(default = 3)]
    pub kernel_size: usize,
    #[config(default = 2)]
    pub stride: usize,
    #[config(default = 1)]
    pub padding: usize,
    #[config(default = 16)]
    pub total_stride: usize,
}

#[derive(Config, Debug, PartialEq)]
pub struct CxBlockConfig {
    #[config(default = 256)]
    pub dim: usize,
    #[config(default = 7)]
    pub kernel_size: usize,
    #[config(default = 3)]
    pub padding: usize,
}

#[derive(Config, Debug, PartialEq)]
pub struct FuserConfig {
    #[config(default = "CxBlockConfig::new()")]
    pub layer: CxBlockConfig,
    #[config(default = 2)]
    pub num_layers: usize,
}

#[derive(Config, Debug, PartialEq)]
pub struct MemoryEncoderConfig {
    #[config(default = 64)]
    pub out_dim: usize,
    #[config(default = 256)]
    pub in_dim: usize,
    #[config(default = "SinePositionConfig::new().with_num_pos_feats(64)")]
    pub position_encoding: SinePositionConfig,
    #[config(default = "MaskDownSamplerConfig::new()")]
    pub mask_downsampler: MaskDownSamplerConfig,
    #[config(default = "FuserConfig::new()")]
    pub fuser: FuserConfig,
}

/// `model:` of the Hydra config: SAM 2.1 with the Hiera trunk.
#[derive(Config, Debug, PartialEq)]
pub struct Sam2Config {
    #[config(default = 1024)]
    pub image_size: usize,
    #[config(default = 7)]
    pub num_maskmem: usize,
    #[config(default = 20.0)]
    pub sigmoid_scale_for_mem_enc: f64,
    #[config(default = -10.0)]
    pub sigmoid_bias_for_mem_enc: f64,
    #[config(default = 16)]
    pub max_obj_ptrs_in_encoder: usize,
    #[config(default = "ImageEncoderConfig::new()")]
    pub image_encoder: ImageEncoderConfig,
    #[config(default = "MemoryAttentionConfig::new()")]
    pub memory_attention: MemoryAttentionConfig,
    #[config(default = "MemoryEncoderConfig::new()")]
    pub memory_encoder: MemoryEncoderConfig,
}

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("unknown model preset `{0}` (known: {known})", known = Sam2Preset::NAMES.join(", "))]
    UnknownPreset(String),
    #[error("override `{0}` is not of the form ++model.path.to.field=value")]
    Malformed(String),
    #[error("override `{path}` names no field MedSeg models")]
    UnknownField { path: String },
    #[error("override `{path}`: {reason}")]
    BadValue { path: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The presets MedSeg knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sam2Preset {
    /// MedSAM2: `sam2.1_hiera_t512.yaml` (stock SAM 2.1-T at 512, RoPE feat_sizes [32,32]).
    MedSam2T512,
    /// Stock SAM 2.1 Hiera-Tiny at 1024.
    Sam21T,
}

impl Sam2Preset {
    pub const NAMES: [&'static str; 2] = ["medsam2-t512", "sam2.1-t"];

    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name {
            "medsam2-t512" => Ok(Self::MedSam2T512),
            "sam2.1-t" => Ok(Self::Sam21T),
            other => Err(ConfigError::UnknownPreset(other.to_string())),
        }
    }

    pub fn config(self) -> Sam2Config {
        match self {
            Self::Sam21T => Sam2Config::new(),
            Self::MedSam2T512 => {
                let rope = |c: RopeAttentionConfig| c.with_feat_sizes(vec![32, 32]);
                let mut cfg = Sam2Config::new().with_image_size(512);
                let layer = &mut cfg.memory_attention.layer;
                layer.self_attention = rope(layer.self_attention.clone());
                layer.cross_attention = rope(layer.cross_attention.clone());
                cfg
            }
        }
    }
}

impl Sam2Config {
    /// Applies Hydra-style overrides (`++model.a.b=value`, also `model.a.b=value`).
    /// Values are YAML-like scalars or lists: `8`, `[1,1,3,2]`, `true`, `1e-6`.
    pub fn with_overrides<S: AsRef<str>>(self, overrides: &[S]) -> Result<Self, ConfigError> {
        let mut root =
            serde_json::to_value(&self).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for o in overrides {
            let o = o.as_ref();
            let body = o.trim_start_matches('+');
            let (path, value) = body
                .split_once('=')
                .ok_or_else(|| ConfigError::Malformed(o.to_string()))?;
            let path = path
                .strip_prefix("model.")
                .ok_or_else(|| ConfigError::Malformed(o.to_string()))?;
            let value: Value =
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
            set_path(&mut root, path, value)?;
        }
        let cfg: Sam2Config =
            serde_json::from_value(root).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the invariants the official constructors assert.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.image_encoder.trunk;
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if t.stages.len() != t.window_spec.len() {
            return bad("trunk.stages and trunk.window_spec differ in length".into());
        }
        if t.q_pool >= t.stages.len() {
            return bad("trunk.q_pool must be below the number of stages".into());
        }
        let channels = self.trunk_channels();
        if channels != self.image_encoder.neck.backbone_channel_list {
            return bad(format!(
                "trunk channels {channels:?} differ from neck.backbone_channel_list {:?}",
                self.image_encoder.neck.backbone_channel_list
            ));
        }
        if !self.image_size.is_multiple_of(32) || self.image_size == 0 {
            return bad(format!(
                "image_size {} is not a multiple of 32",
                self.image_size
            ));
        }
        if !self.hidden_dim().is_multiple_of(self.mem_dim()) {
            return bad("memory dim must divide the hidden dim".into());
        }
        Ok(())
    }

    /// Channels of each trunk stage, deepest first (`Hiera.channel_list`).
    pub fn trunk_channels(&self) -> Vec<usize> {
        let t = &self.image_encoder.trunk;
        let mut dims = Vec::new();
        let mut d = t.embed_dim as f64;
        for i in 0..t.stages.len() {
            if i > 0 {
                d *= t.dim_mul;
            }
            dims.push(d as usize);
        }
        dims.reverse();
        dims
    }

    /// Transformer width of the SAM heads (`memory_attention.d_model`).
    pub fn hidden_dim(&self) -> usize {
        self.memory_attention.d_model
    }

    /// Channels of a memory frame (`memory_encoder.out_dim`).
    pub fn mem_dim(&self) -> usize {
        self.memory_encoder.out_dim
    }

    /// Side of the stride-16 feature map the SAM heads work on.
    pub fn embedding_size(&self) -> usize {
        self.image_size / 16
    }
}

fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), ConfigError> {
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let obj = node
            .as_object_mut()
            .ok_or_else(|| ConfigError::UnknownField { path: path.into() })?;
        let child = obj
            .get_mut(*part)
            .ok_or_else(|| ConfigError::UnknownField { path: path.into() })?;
        if i + 1 == parts.len() {
            if child.is_object() {
                return Err(ConfigError::BadValue {
                    path: path.into(),
                    reason: "names a group, not a field".into(),
                });
            }
            *child = value;
            return Ok(());
        }
        node = child;
    }
    Err(ConfigError::UnknownField { path: path.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medsam2_preset_is_stock_tiny_at_512() {
        let cfg = Sam2Preset::MedSam2T512.config();
        assert_eq!(cfg.image_size, 512);
        assert_eq!(
            cfg.memory_attention.layer.self_attention.feat_sizes,
            vec![32, 32]
        );
        assert_eq!(
            cfg.memory_attention.layer.cross_attention.kv_in_dim,
            Some(64)
        );
        assert_eq!(cfg.image_encoder.trunk, HieraConfig::new());
        cfg.validate().unwrap();
    }

    #[test]
    fn overrides_apply_like_hydra() {
        let cfg = Sam2Preset::Sam21T
            .config()
            .with_overrides(&[
                "++model.image_size=128",
                "++model.image_encoder.trunk.embed_dim=8",
                "++model.image_encoder.trunk.stages=[1,1,3,2]",
                "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
            ])
            .unwrap();
        assert_eq!(cfg.image_size, 128);
        assert_eq!(cfg.image_encoder.trunk.stages, vec![1, 1, 3, 2]);
    }

    #[test]
    fn unknown_override_is_rejected_by_name() {
        let err = Sam2Preset::Sam21T
            .config()
            .with_overrides(&["++model.image_encoder.trunk.no_such_field=3"])
            .unwrap_err();
        assert!(matches!(err, ConfigError::UnknownField { .. }), "{err}");
        assert!(err.to_string().contains("no_such_field"));
    }
}
