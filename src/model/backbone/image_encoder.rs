//! `ImageEncoder` and `FpnNeck` (`sam2/modeling/backbones/image_encoder.py`).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::model::backbone::hiera::Hiera;
use crate::model::config::{FpnNeckConfig, ImageEncoderConfig};
use crate::model::layers::{Conv2d, Conv2dSpec};
use crate::model::position_encoding::PositionEmbeddingSine;
use crate::weights::{WeightError, WeightPath};

/// Nearest-neighbour ×2 upsampling of NCHW (`F.interpolate(scale_factor=2, mode="nearest")`).
pub fn upsample_nearest_2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

/// Feature maps and their position encodings, highest resolution first.
#[derive(Clone, Debug)]
pub struct NeckOutput {
    pub features: Vec<Tensor<4>>,
    pub pos: Vec<Tensor<4>>,
}

/// FPN neck: 1×1 lateral convs to `d_model`, nearest top-down fusion on the
/// configured levels, a sine position encoding per level.
#[derive(Module, Debug)]
pub struct FpnNeck {
    /// Lateral convs, deepest level first (the official `convs` order).
    convs: Vec<Conv2d>,
    top_down_levels: Vec<usize>,
    #[module(skip)]
    position_encoding: PositionEmbeddingSine,
}

impl FpnNeck {
    pub fn load(weights: &WeightPath, cfg: &FpnNeckConfig) -> Result<Self, WeightError> {
        let convs = cfg
            .backbone_channel_list
            .iter()
            .enumerate()
            .map(|(i, &dim)| {
                Conv2d::load(
                    &weights.pp("convs").pp(i).pp("conv"),
                    Conv2dSpec::new(dim, cfg.d_model, 1),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            convs,
            top_down_levels: cfg.fpn_top_down_levels.clone(),
            position_encoding: PositionEmbeddingSine::new(cfg.position_encoding.num_pos_feats),
        })
    }

    /// `xs`: trunk outputs, highest resolution first.
    pub fn forward(&self, xs: &[Tensor<4>]) -> NeckOutput {
        let n = self.convs.len() - 1;
        let mut features: Vec<Option<Tensor<4>>> = vec![None; n + 1];
        let mut pos: Vec<Option<Tensor<4>>> = vec![None; n + 1];
        let mut prev: Option<Tensor<4>> = None;
        for i in (0..=n).rev() {
            let lateral = self.convs[n - i].forward(xs[i].clone());
            let out = match prev.take() {
                Some(p) if self.top_down_levels.contains(&i) => lateral + upsample_nearest_2x(p),
                _ => lateral,
            };
            let [_, _, h, w] = out.dims();
            pos[i] = Some(self.position_encoding.forward(h, w, &out.device()));
            features[i] = Some(out.clone());
            prev = Some(out);
        }
        NeckOutput {
            features: features.into_iter().flatten().collect(),
            pos: pos.into_iter().flatten().collect(),
        }
    }
}

/// Trunk + neck, dropping the `scalp` lowest-resolution levels.
#[derive(Module, Debug)]
pub struct ImageEncoder {
    pub trunk: Hiera,
    pub neck: FpnNeck,
    scalp: usize,
}

impl ImageEncoder {
    pub fn load(
        weights: &WeightPath,
        cfg: &ImageEncoderConfig,
        image_size: usize,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            trunk: Hiera::load(&weights.pp("trunk"), &cfg.trunk, image_size)?,
            neck: FpnNeck::load(&weights.pp("neck"), &cfg.neck)?,
            scalp: cfg.scalp,
        })
    }

    /// `backbone_fpn` and `vision_pos_enc`, highest resolution first; the
    /// last level is `vision_features`.
    pub fn forward(&self, image: Tensor<4>) -> NeckOutput {
        let mut out = self.neck.forward(&self.trunk.forward(image));
        let keep = out.features.len() - self.scalp;
        out.features.truncate(keep);
        out.pos.truncate(keep);
        out
    }
}
