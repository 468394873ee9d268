//! `MemoryEncoder` (`sam2/modeling/memory_encoder.py`): downsamples the
//! predicted mask, fuses it with the frame's features through ConvNeXt
//! blocks, and projects to the memory width.

use burn::module::{Module, Param};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

use crate::model::config::MemoryEncoderConfig;
use crate::model::cpu_kernels::gelu;
use crate::model::layers::{Bias, Conv2d, Conv2dSpec, LayerNorm2d, Linear};
use crate::model::position_encoding::PositionEmbeddingSine;
use crate::weights::{WeightError, WeightPath};

/// `MaskDownSampler`: (conv, LayerNorm2d, GELU) × log_stride(total_stride), then a 1×1 conv.
#[derive(Module, Debug)]
pub struct MaskDownSampler {
    stages: Vec<(Conv2d, LayerNorm2d)>,
    out: Conv2d,
}

impl MaskDownSampler {
    fn load(
        weights: &WeightPath,
        cfg: &crate::model::config::MaskDownSamplerConfig,
    ) -> Result<Self, WeightError> {
        let mut n = 0;
        let mut s = 1;
        while s < cfg.total_stride {
            s *= cfg.stride;
            n += 1;
        }
        let enc = weights.pp("encoder");
        let (mut cin, mut stages) = (1, Vec::new());
        for i in 0..n {
            let cout = cin * cfg.stride * cfg.stride;
            let conv = Conv2d::load(
                &enc.pp(3 * i),
                Conv2dSpec::new(cin, cout, cfg.kernel_size)
                    .stride(cfg.stride)
                    .padding(cfg.padding),
            )?;
            stages.push((conv, LayerNorm2d::load(&enc.pp(3 * i + 1), cout, 1e-6)?));
            cin = cout;
        }
        let out = Conv2d::load(&enc.pp(3 * n), Conv2dSpec::new(cin, cfg.embed_dim, 1))?;
        Ok(Self { stages, out })
    }

    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for (conv, norm) in &self.stages {
            x = gelu(norm.forward(conv.forward(x)));
        }
        self.out.forward(x)
    }
}

/// `CXBlock`: depth-wise conv, LayerNorm, pointwise MLP, layer scale, residual.
#[derive(Module, Debug)]
pub struct CxBlock {
    dwconv: Conv2d,
    norm: LayerNorm2d,
    pwconv1: Linear,
    pwconv2: Linear,
    gamma: Param<Tensor<1>>,
}

impl CxBlock {
    fn load(
        weights: &WeightPath,
        cfg: &crate::model::config::CxBlockConfig,
    ) -> Result<Self, WeightError> {
        let d = cfg.dim;
        Ok(Self {
            dwconv: Conv2d::load(
                &weights.pp("dwconv"),
                Conv2dSpec::new(d, d, cfg.kernel_size)
                    .padding(cfg.padding)
                    .groups(d),
            )?,
            norm: LayerNorm2d::load(&weights.pp("norm"), d, 1e-6)?,
            pwconv1: Linear::load(&weights.pp("pwconv1"), d, 4 * d, Bias::With)?,
            pwconv2: Linear::load(&weights.pp("pwconv2"), 4 * d, d, Bias::With)?,
            gamma: Param::from_tensor(weights.tensor("gamma", [d])?),
        })
    }

    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = self
            .norm
            .forward(self.dwconv.forward(input.clone()))
            .permute([0, 2, 3, 1]);
        let x = self.pwconv2.forward(gelu(self.pwconv1.forward(x)));
        let d = self.gamma.dims()[0];
        let x = x * self.gamma.val().reshape([1, 1, 1, d]);
        input + x.permute([0, 3, 1, 2])
    }
}

/// Memory features of one frame and their position encoding, NCHW.
#[derive(Clone, Debug)]
pub struct MemoryEncoderOutput {
    pub features: Tensor<4>,
    pub pos: Tensor<4>,
}

/// What the memory encoder's mask input already is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskInput {
    /// Raw logits: apply a sigmoid first.
    Logits,
    /// Already scaled probabilities (`skip_mask_sigmoid=True`).
    Prepared,
}

#[derive(Module, Debug)]
pub struct MemoryEncoder {
    pub mask_downsampler: MaskDownSampler,
    pix_feat_proj: Conv2d,
    pub fuser: Vec<CxBlock>,
    out_proj: Option<Conv2d>,
    #[module(skip)]
    position_encoding: PositionEmbeddingSine,
}

impl MemoryEncoder {
    pub fn load(weights: &WeightPath, cfg: &MemoryEncoderConfig) -> Result<Self, WeightError> {
        let fuser = (0..cfg.fuser.num_layers)
            .map(|i| CxBlock::load(&weights.pp("fuser").pp("layers").pp(i), &cfg.fuser.layer))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            mask_downsampler: MaskDownSampler::load(
                &weights.pp("mask_downsampler"),
                &cfg.mask_downsampler,
            )?,
            pix_feat_proj: Conv2d::load(
                &weights.pp("pix_feat_proj"),
                Conv2dSpec::new(cfg.in_dim, cfg.in_dim, 1),
            )?,
            fuser,
            out_proj: if cfg.out_dim != cfg.in_dim {
                Some(Conv2d::load(
                    &weights.pp("out_proj"),
                    Conv2dSpec::new(cfg.in_dim, cfg.out_dim, 1),
                )?)
            } else {
                None
            },
            position_encoding: PositionEmbeddingSine::new(cfg.position_encoding.num_pos_feats),
        })
    }

    /// The fused features before the output projection, for inspection.
    pub fn fuse(
        &self,
        pix_feat: Tensor<4>,
        masks: Tensor<4>,
        input: MaskInput,
    ) -> (Tensor<4>, Tensor<4>) {
        let masks = match input {
            MaskInput::Logits => sigmoid(masks),
            MaskInput::Prepared => masks,
        };
        let masks = self.mask_downsampler.forward(masks);
        let mut x = self.pix_feat_proj.forward(pix_feat) + masks.clone();
        for block in &self.fuser {
            x = block.forward(x);
        }
        (masks, x)
    }

    pub fn forward(
        &self,
        pix_feat: Tensor<4>,
        masks: Tensor<4>,
        input: MaskInput,
    ) -> MemoryEncoderOutput {
        let (_, x) = self.fuse(pix_feat, masks, input);
        let features = match &self.out_proj {
            Some(p) => p.forward(x),
            None => x,
        };
        let [_, _, h, w] = features.dims();
        let pos = self.position_encoding.forward(h, w, &features.device());
        MemoryEncoderOutput { features, pos }
    }
}
