//! Hiera trunk (`sam2/modeling/backbones/hieradet.py`): patch embedding,
//! windowed and global multi-scale attention blocks with query pooling at
//! stage changes, and the windowed absolute position embedding.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use crate::model::config::HieraConfig;
use crate::model::cpu_kernels::{add, attention, max_pool_nhwc};
use crate::model::layers::{
    Activation, Bias, Conv2d, Conv2dSpec, LayerNorm, Linear, Mlp, MlpOutput,
};
use crate::preprocess::resize_bicubic;
use crate::weights::{WeightError, WeightPath};

/// Hiera's LayerNorm epsilon (`partial(nn.LayerNorm, eps=1e-6)`).
const NORM_EPS: f64 = 1e-6;

/// Splits `[B, H, W, C]` into `[B·nW, ws, ws, C]` windows, zero-padding H and W
/// up to multiples of `ws`. Returns the padded size too.
pub fn window_partition(x: Tensor<4>, ws: usize) -> (Tensor<4>, [usize; 2]) {
    let [b, h, w, c] = x.dims();
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let x = if pad_h > 0 || pad_w > 0 {
        x.pad([(0, 0), (0, pad_h), (0, pad_w), (0, 0)], 0.0)
    } else {
        x
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let x = x
        .reshape([b, hp / ws, ws, wp / ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b * (hp / ws) * (wp / ws), ws, ws, c]);
    (x, [hp, wp])
}

/// Inverse of [`window_partition`], cropping the padding away.
pub fn window_unpartition(
    x: Tensor<4>,
    ws: usize,
    padded: [usize; 2],
    hw: [usize; 2],
) -> Tensor<4> {
    let [hp, wp] = padded;
    let [h, w] = hw;
    let [nw, _, _, c] = x.dims();
    let b = nw / ((hp / ws) * (wp / ws));
    let x = x
        .reshape([b, hp / ws, wp / ws, ws, ws, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b, hp, wp, c]);
    if hp > h || wp > w {
        x.slice([0..b, 0..h, 0..w, 0..c])
    } else {
        x
    }
}

/// `MultiScaleAttention`: joint qkv projection, optional query pooling.
#[derive(Module, Debug)]
pub struct MultiScaleAttention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    dim_out: usize,
    /// Query-pooling stride at a stage change (`None` inside a stage).
    q_stride: Option<usize>,
}

impl MultiScaleAttention {
    fn load(
        weights: &WeightPath,
        dim: usize,
        dim_out: usize,
        num_heads: usize,
        q_stride: Option<usize>,
    ) -> Result<Self, WeightError> {
        Ok(Self {
            qkv: Linear::load(&weights.pp("qkv"), dim, 3 * dim_out, Bias::With)?,
            proj: Linear::load(&weights.pp("proj"), dim_out, dim_out, Bias::With)?,
            num_heads,
            dim_out,
            q_stride,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, _] = x.dims();
        let (heads, c) = (self.num_heads, self.dim_out);
        let hd = c / heads;
        let qkv = self.qkv.forward(x);
        // Channels are (3, heads, hd): q, k and v of every head as strided views
        // `[B, heads, HW, hd]` of the projection, which the attention matmuls
        // read in place (no copies).
        let heads_view = qkv
            .clone()
            .reshape([b, h * w, 3 * heads, hd])
            .swap_dims(1, 2);
        let take = |i: usize| heads_view.clone().narrow(1, i * heads, heads);
        let (k, v) = (take(1), take(2));
        let (q, qh, qw) = match self.q_stride {
            None => (take(0), h, w),
            Some(s) => {
                // Pool q in NHWC with all heads as channels, as the official code does.
                let pooled = max_pool_nhwc(qkv.narrow(3, 0, c), s);
                let [_, ph, pw, _] = pooled.dims();
                let q = pooled.reshape([b, ph * pw, heads, hd]).swap_dims(1, 2);
                (q, ph, pw)
            }
        };
        let out = attention(q, k, v, None).swap_dims(1, 2);
        self.proj.forward(out.reshape([b, qh, qw, c]))
    }
}

/// `MultiScaleBlock`.
#[derive(Module, Debug)]
pub struct MultiScaleBlock {
    norm1: LayerNorm,
    attn: MultiScaleAttention,
    norm2: LayerNorm,
    mlp: Mlp,
    /// Shortcut projection when the width changes at a stage start.
    proj: Option<Linear>,
    window_size: usize,
    q_stride: Option<usize>,
}

/// What one block looks like, derived from the trunk config.
#[derive(Clone, Copy, Debug)]
struct BlockSpec {
    dim: usize,
    dim_out: usize,
    num_heads: usize,
    q_stride: Option<usize>,
    window_size: usize,
}

impl MultiScaleBlock {
    fn load(weights: &WeightPath, s: BlockSpec) -> Result<Self, WeightError> {
        Ok(Self {
            norm1: LayerNorm::load(&weights.pp("norm1"), s.dim, NORM_EPS)?,
            attn: MultiScaleAttention::load(
                &weights.pp("attn"),
                s.dim,
                s.dim_out,
                s.num_heads,
                s.q_stride,
            )?,
            norm2: LayerNorm::load(&weights.pp("norm2"), s.dim_out, NORM_EPS)?,
            mlp: Mlp::load(
                &weights.pp("mlp"),
                [s.dim_out, 4 * s.dim_out, s.dim_out],
                2,
                Activation::Gelu,
                MlpOutput::Linear,
            )?,
            proj: if s.dim != s.dim_out {
                Some(Linear::load(
                    &weights.pp("proj"),
                    s.dim,
                    s.dim_out,
                    Bias::With,
                )?)
            } else {
                None
            },
            window_size: s.window_size,
            q_stride: s.q_stride,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut shortcut = x.clone();
        let x = self.norm1.forward(x);
        if let Some(proj) = &self.proj {
            shortcut = proj.forward(x.clone());
            if let Some(s) = self.q_stride {
                shortcut = max_pool_nhwc(shortcut, s);
            }
        }
        let [_, h, w, _] = x.dims();
        let mut ws = self.window_size;
        let (x, mut padded) = if ws > 0 {
            window_partition(x, ws)
        } else {
            (x, [h, w])
        };
        let mut x = self.attn.forward(x);
        let [_, mut oh, mut ow, _] = shortcut.dims();
        if self.q_stride.is_none() {
            (oh, ow) = (h, w);
        }
        if let Some(s) = self.q_stride {
            // Window size and padding shrink with the pooled queries.
            ws = self.window_size / s;
            if ws > 0 {
                padded = [oh + (ws - oh % ws) % ws, ow + (ws - ow % ws) % ws];
            }
        }
        if self.window_size > 0 {
            x = window_unpartition(x, ws, padded, [oh, ow]);
        }
        let x = add(shortcut, x);
        let y = self.mlp.forward(self.norm2.forward(x.clone()));
        add(x, y)
    }
}

/// The Hiera trunk.
#[derive(Module, Debug)]
pub struct Hiera {
    patch_embed: Conv2d,
    /// Precomputed position embedding for the configured input size, `[1, H, W, C]`.
    pos_embed: Tensor<4>,
    pub blocks: Vec<MultiScaleBlock>,
    /// Indices of the last block of every stage.
    stage_ends: Vec<usize>,
}

impl Hiera {
    /// Loads the trunk for `image_size` inputs (the position embedding is
    /// interpolated to that size once, here).
    pub fn load(
        weights: &WeightPath,
        cfg: &HieraConfig,
        image_size: usize,
    ) -> Result<Self, WeightError> {
        let c0 = cfg.embed_dim;
        let patch_embed = Conv2d::load(
            &weights.pp("patch_embed").pp("proj"),
            Conv2dSpec::new(3, c0, 7).stride(4).padding(3),
        )?;
        let grid = image_size / 4;
        let pos_embed = Self::position_embedding(weights, cfg, grid)?;

        let mut stage_ends = Vec::new();
        let mut acc = 0;
        for s in &cfg.stages {
            acc += s;
            stage_ends.push(acc - 1);
        }
        let q_pool_blocks: Vec<usize> = stage_ends[..stage_ends.len() - 1]
            .iter()
            .map(|e| e + 1)
            .take(cfg.q_pool)
            .collect();
        let depth: usize = cfg.stages.iter().sum();
        let mut blocks = Vec::with_capacity(depth);
        let (mut dim, mut heads, mut cur_stage) = (c0, cfg.num_heads, 1usize);
        for i in 0..depth {
            let mut dim_out = dim;
            // The window size lags a block: a stage's first block still uses
            // the previous stage's window.
            let mut window_size = cfg.window_spec[cur_stage - 1];
            if cfg.global_att_blocks.contains(&i) {
                window_size = 0;
            }
            if i > 0 && stage_ends.contains(&(i - 1)) {
                dim_out = (dim as f64 * cfg.dim_mul) as usize;
                heads = (heads as f64 * cfg.head_mul) as usize;
                cur_stage += 1;
            }
            let spec = BlockSpec {
                dim,
                dim_out,
                num_heads: heads,
                q_stride: q_pool_blocks.contains(&i).then_some(cfg.q_stride),
                window_size,
            };
            blocks.push(MultiScaleBlock::load(&weights.pp("blocks").pp(i), spec)?);
            dim = dim_out;
        }
        Ok(Self {
            patch_embed,
            pos_embed,
            blocks,
            stage_ends,
        })
    }

    /// `_get_pos_embed`: bicubic-resized background plus the tiled window embedding, NHWC.
    fn position_embedding(
        weights: &WeightPath,
        cfg: &HieraConfig,
        grid: usize,
    ) -> Result<Tensor<4>, WeightError> {
        let c = cfg.embed_dim;
        let bkg = &cfg.window_pos_embed_bkg_spatial_size;
        let (bh, bw) = (bkg[0], bkg[1]);
        let ws = cfg.window_spec[0];
        let background = weights.host("pos_embed", &[1, c, bh, bw])?;
        let window = weights.host("pos_embed_window", &[1, c, ws, ws])?;
        let resized = resize_bicubic(&background.data, c, bh, bw, grid, grid);
        let mut nhwc = vec![0f32; grid * grid * c];
        for ch in 0..c {
            for y in 0..grid {
                for x in 0..grid {
                    let win = window.data[(ch * ws + y % ws) * ws + x % ws];
                    nhwc[(y * grid + x) * c + ch] = resized[(ch * grid + y) * grid + x] + win;
                }
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(nhwc, [1, grid, grid, c]),
            weights.device(),
        ))
    }

    /// Patch embedding, NHWC (`patch_embed`).
    pub fn patch_embed(&self, x: Tensor<4>) -> Tensor<4> {
        self.patch_embed.forward(x).permute([0, 2, 3, 1])
    }

    pub fn pos_embed(&self) -> Tensor<4> {
        self.pos_embed.clone()
    }

    /// The trunk's output of every stage, NCHW, highest resolution first.
    pub fn forward(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        self.forward_observed(x, |_, _| {})
    }

    /// [`Self::forward`], calling `observe(block_index, output)` after each block.
    pub fn forward_observed(
        &self,
        x: Tensor<4>,
        mut observe: impl FnMut(usize, &Tensor<4>),
    ) -> Vec<Tensor<4>> {
        let mut x = add(self.patch_embed(x), self.pos_embed.clone());
        let mut outputs = Vec::with_capacity(self.stage_ends.len());
        for (i, blk) in self.blocks.iter().enumerate() {
            x = blk.forward(x);
            observe(i, &x);
            if self.stage_ends.contains(&i) {
                outputs.push(x.clone().permute([0, 3, 1, 2]));
            }
        }
        outputs
    }
}
