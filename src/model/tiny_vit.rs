//! TinyViT image encoder of LiteMedSAM (`tiny_vit_sam.py` as vendored by the
//! LiteMedSAM code, MobileSAM's variant of Microsoft's TinyViT).
//!
//! LiteMedSAM's configuration (`build_lite_medsam`): a 256×256 input, a patch
//! embedding of two 1×1 stride-1 `Conv2d_BN` (no downsampling), an MBConv
//! stage at 256×256, three attention stages at 128×128, 64×64 and 64×64
//! (`PatchMerging` keeps the resolution when its output width is 320), and a
//! neck to 256 channels, giving a `[B, 256, 64, 64]` image embedding.
//!
//! Every `Conv2d_BN` is loaded as one convolution with its eval-mode
//! BatchNorm folded in (`Conv2d_BN.fuse`); the attention-bias tables
//! (`attention_biases[:, attention_bias_idxs]`) are gathered once at load time.
//!
//! Feature maps are kept channels-last (`[B, H, W, C]`, which is also the
//! official `[B, L, C]` token layout) from the patch embedding to the neck:
//! 1×1 convolutions are linear layers over channels and the depthwise
//! convolutions run on NHWC ([`depthwise_conv_nhwc`]), so the official
//! token↔NCHW transposes around every convolution (full copies of the
//! largest maps) disappear. Only the neck's 3×3 convolution runs NCHW.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};

use crate::model::backbone::hiera::{window_partition, window_unpartition};
use crate::model::cpu_kernels::{attention, depthwise_conv_nhwc, gelu};
use crate::model::layers::{Bias, Conv2d, Conv2dSpec, LayerNorm, LayerNorm2d, Linear};
use crate::weights::{HostTensor, WeightError, WeightPath};

/// `torch.nn.BatchNorm2d` default epsilon (`Conv2d_BN` does not change it).
const BN_EPS: f32 = 1e-5;
/// `torch.nn.LayerNorm` default epsilon (TinyViT's `Attention.norm`, `Mlp.norm`).
const LN_EPS: f64 = 1e-5;
/// `LayerNorm2d` default epsilon (the neck).
const LN2D_EPS: f64 = 1e-6;

/// The TinyViT hyper-parameters (`TinyViT.__init__` arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct TinyVitConfig {
    pub img_size: usize,
    pub in_chans: usize,
    pub embed_dims: [usize; 4],
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_sizes: [usize; 4],
    pub mlp_ratio: f64,
    pub mbconv_expand_ratio: f64,
    pub local_conv_size: usize,
    /// Channels of the neck output (the image embedding).
    pub out_chans: usize,
}

impl TinyVitConfig {
    /// `build_lite_medsam()`'s image encoder.
    pub fn lite_medsam() -> Self {
        Self {
            img_size: 256,
            in_chans: 3,
            embed_dims: [64, 128, 160, 320],
            depths: [2, 2, 6, 2],
            num_heads: [2, 4, 5, 10],
            window_sizes: [7, 7, 14, 7],
            mlp_ratio: 4.0,
            mbconv_expand_ratio: 4.0,
            local_conv_size: 3,
            out_chans: 256,
        }
    }

    /// `input_resolution` of layer `i`: `img_size // 2**(i-1 if i == 3 else i)`
    /// (the patch embedding keeps the input resolution in this variant).
    pub fn layer_resolution(&self, i: usize) -> usize {
        let shift = if i == 3 { i - 1 } else { i };
        self.img_size >> shift
    }

    /// `PatchMerging`'s depthwise stride: 1 for output widths 320, 448 and
    /// 576 (the last stage keeps 64×64), else 2.
    pub fn merging_stride(out_dim: usize) -> usize {
        if matches!(out_dim, 320 | 448 | 576) {
            1
        } else {
            2
        }
    }

    /// Side of the image embedding the neck produces.
    pub fn embedding_size(&self) -> usize {
        self.layer_resolution(3)
    }
}

/// `Conv2d_BN`: a bias-free convolution followed by eval-mode `BatchNorm2d`,
/// loaded as one convolution with the BatchNorm folded in (`Conv2d_BN.fuse`):
/// `w' = w · γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`. Consumes `c.weight`,
/// `bn.{weight,bias,running_mean,running_var}`.
pub fn load_conv2d_bn(weights: &WeightPath, spec: Conv2dSpec) -> Result<Conv2d, WeightError> {
    let out = spec.out_channels;
    let per_out = spec.in_channels / spec.groups * spec.kernel * spec.kernel;
    let weight = weights.pp("c").host(
        "weight",
        &[
            out,
            spec.in_channels / spec.groups,
            spec.kernel,
            spec.kernel,
        ],
    )?;
    let bn = weights.pp("bn");
    let gamma = bn.host("weight", &[out])?;
    let beta = bn.host("bias", &[out])?;
    let mean = bn.host("running_mean", &[out])?;
    let var = bn.host("running_var", &[out])?;
    let mut w = weight.data;
    let mut b = vec![0f32; out];
    for o in 0..out {
        let scale = gamma.data[o] / (var.data[o] + BN_EPS).sqrt();
        w[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|v| *v *= scale);
        b[o] = beta.data[o] - mean.data[o] * scale;
    }
    let device = weights.device();
    Ok(Conv2d::from_tensors(
        HostTensor::new(weight.shape, w).to_tensor(device),
        HostTensor::new(vec![out], b).to_tensor(device),
        spec.bias(Bias::With),
    ))
}

/// A 1×1 `Conv2d_BN` as a linear layer over the channels of an NHWC map.
fn load_conv2d_bn_1x1(
    weights: &WeightPath,
    in_chans: usize,
    out_chans: usize,
) -> Result<Linear, WeightError> {
    let conv = load_conv2d_bn(weights, Conv2dSpec::new(in_chans, out_chans, 1))?;
    Ok(Linear {
        weight: Param::from_tensor(conv.weight.val().reshape([out_chans, in_chans]).transpose()),
        bias: conv.bias,
    })
}

/// A depthwise `Conv2d_BN` (`groups = C`) applied to an NHWC map.
fn depthwise(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    depthwise_conv_nhwc(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        conv.stride,
        conv.padding,
    )
}

/// `PatchEmbed`: `Conv2d_BN(in, n/2, 1) → GELU → Conv2d_BN(n/2, n, 1)`.
#[derive(Module, Debug)]
pub struct PatchEmbed {
    conv1: Linear,
    conv2: Linear,
}

impl PatchEmbed {
    fn load(weights: &WeightPath, in_chans: usize, embed_dim: usize) -> Result<Self, WeightError> {
        let seq = weights.pp("seq");
        Ok(Self {
            conv1: load_conv2d_bn_1x1(&seq.pp(0), in_chans, embed_dim / 2)?,
            conv2: load_conv2d_bn_1x1(&seq.pp(2), embed_dim / 2, embed_dim)?,
        })
    }

    /// NHWC in and out.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.conv2.forward(gelu(self.conv1.forward(x)))
    }
}

/// `MBConv`: 1×1 expand, GELU, 3×3 depthwise, GELU, 1×1 project, residual
/// add, GELU (NHWC).
#[derive(Module, Debug)]
pub struct MbConv {
    conv1: Linear,
    conv2: Conv2d,
    conv3: Linear,
}

impl MbConv {
    fn load(weights: &WeightPath, dim: usize, expand_ratio: f64) -> Result<Self, WeightError> {
        let hidden = (dim as f64 * expand_ratio) as usize;
        Ok(Self {
            conv1: load_conv2d_bn_1x1(&weights.pp("conv1"), dim, hidden)?,
            conv2: load_conv2d_bn(
                &weights.pp("conv2"),
                Conv2dSpec::new(hidden, hidden, 3).padding(1).groups(hidden),
            )?,
            conv3: load_conv2d_bn_1x1(&weights.pp("conv3"), hidden, dim)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = x.clone();
        let x = gelu(self.conv1.forward(x));
        let x = gelu(depthwise(&self.conv2, x));
        let x = self.conv3.forward(x);
        gelu(x + shortcut)
    }
}

/// `PatchMerging`: 1×1 conv, GELU, 3×3 depthwise conv (stride 2, or 1 for
/// the last stage's widths), GELU, 1×1 conv. NHWC in and out (the official
/// token/image `view`s are free in this layout).
#[derive(Module, Debug)]
pub struct PatchMerging {
    conv1: Linear,
    conv2: Conv2d,
    conv3: Linear,
}

impl PatchMerging {
    fn load(weights: &WeightPath, dim: usize, out_dim: usize) -> Result<Self, WeightError> {
        let stride = TinyVitConfig::merging_stride(out_dim);
        Ok(Self {
            conv1: load_conv2d_bn_1x1(&weights.pp("conv1"), dim, out_dim)?,
            conv2: load_conv2d_bn(
                &weights.pp("conv2"),
                Conv2dSpec::new(out_dim, out_dim, 3)
                    .stride(stride)
                    .padding(1)
                    .groups(out_dim),
            )?,
            conv3: load_conv2d_bn_1x1(&weights.pp("conv3"), out_dim, out_dim)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = gelu(self.conv1.forward(x));
        let x = gelu(depthwise(&self.conv2, x));
        self.conv3.forward(x)
    }
}

/// `ConvLayer`: the MBConv stage (layer 0), followed by its `PatchMerging`.
#[derive(Module, Debug)]
pub struct ConvLayer {
    blocks: Vec<MbConv>,
    downsample: Option<PatchMerging>,
}

/// `Attention` (LeViT-style): LayerNorm, one `qkv` projection laid out per
/// head as `[q | k | v]`, scaled dot product plus a learned bias per head
/// and relative offset `(|Δy|, |Δx|)` inside the window, `proj`.
#[derive(Module, Debug)]
pub struct Attention {
    norm: LayerNorm,
    qkv: Linear,
    proj: Linear,
    /// `attention_biases[:, attention_bias_idxs]`, `[heads, N, N]` for `N = ws²`.
    bias: Param<Tensor<3>>,
    num_heads: usize,
    key_dim: usize,
    /// Value width per head (`attn_ratio * key_dim`).
    d: usize,
}

/// `attention_bias_idxs` of a `res × res` window: the index of every
/// (query, key) pair's offset `(|Δy|, |Δx|)`, offsets numbered in order of
/// first appearance over `itertools.product(range(res), range(res))` pairs.
/// Returns the `N × N` table (row-major) and the number of distinct offsets.
pub fn attention_bias_idxs(res: usize) -> (Vec<usize>, usize) {
    let points: Vec<(usize, usize)> = (0..res)
        .flat_map(|y| (0..res).map(move |x| (y, x)))
        .collect();
    let mut offsets: HashMap<(usize, usize), usize> = HashMap::new();
    let mut idxs = Vec::with_capacity(points.len() * points.len());
    for p1 in &points {
        for p2 in &points {
            let off = (p1.0.abs_diff(p2.0), p1.1.abs_diff(p2.1));
            let next = offsets.len();
            idxs.push(*offsets.entry(off).or_insert(next));
        }
    }
    (idxs, offsets.len())
}

impl Attention {
    fn load(
        weights: &WeightPath,
        dim: usize,
        key_dim: usize,
        num_heads: usize,
        attn_ratio: usize,
        resolution: usize,
    ) -> Result<Self, WeightError> {
        let d = attn_ratio * key_dim;
        let dh = d * num_heads;
        let nh_kd = key_dim * num_heads;
        let (idxs, n_offsets) = attention_bias_idxs(resolution);
        let biases = weights.host("attention_biases", &[num_heads, n_offsets])?;
        let n = resolution * resolution;
        let mut table = Vec::with_capacity(num_heads * n * n);
        for h in 0..num_heads {
            let row = &biases.data[h * n_offsets..(h + 1) * n_offsets];
            table.extend(idxs.iter().map(|&i| row[i]));
        }
        Ok(Self {
            norm: LayerNorm::load(&weights.pp("norm"), dim, LN_EPS)?,
            qkv: Linear::load(&weights.pp("qkv"), dim, dh + 2 * nh_kd, Bias::With)?,
            proj: Linear::load(&weights.pp("proj"), dh, dim, Bias::With)?,
            bias: Param::from_tensor(Tensor::from_data(
                TensorData::new(table, [num_heads, n, n]),
                weights.device(),
            )),
            num_heads,
            key_dim,
            d,
        })
    }

    /// `[B, N, C]` tokens of `B` windows of `N` positions.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, _] = x.dims();
        let (heads, kd, d) = (self.num_heads, self.key_dim, self.d);
        let qkv = self
            .qkv
            .forward(self.norm.forward(x))
            .reshape([b, n, heads, 2 * kd + d]);
        let part = |start: usize, len: usize| qkv.clone().narrow(3, start, len).swap_dims(1, 2);
        let (q, k, v) = (part(0, kd), part(kd, kd), part(2 * kd, d));
        // Default scale 1/sqrt(head_dim of q) = key_dim ** -0.5, as `self.scale`.
        let out = attention(q, k, v, Some(self.bias.val()));
        self.proj
            .forward(out.swap_dims(1, 2).reshape([b, n, heads * d]))
    }
}

/// TinyViT's `Mlp`: LayerNorm, `fc1`, GELU, `fc2`.
#[derive(Module, Debug)]
pub struct TinyVitMlp {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl TinyVitMlp {
    fn load(weights: &WeightPath, dim: usize, hidden: usize) -> Result<Self, WeightError> {
        Ok(Self {
            norm: LayerNorm::load(&weights.pp("norm"), dim, LN_EPS)?,
            fc1: Linear::load(&weights.pp("fc1"), dim, hidden, Bias::With)?,
            fc2: Linear::load(&weights.pp("fc2"), hidden, dim, Bias::With)?,
        })
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.fc2
            .forward(gelu(self.fc1.forward(self.norm.forward(x))))
    }
}

/// `TinyViTBlock`: windowed attention (the feature map zero-padded at the
/// bottom/right to window multiples, the padding cropped after) with a
/// residual, then a 3×3 depthwise `local_conv`, then the MLP with a residual.
#[derive(Module, Debug)]
pub struct TinyVitBlock {
    attn: Attention,
    local_conv: Conv2d,
    mlp: TinyVitMlp,
    window_size: usize,
    resolution: usize,
}

/// What one attention stage looks like.
#[derive(Clone, Copy, Debug)]
struct StageSpec {
    dim: usize,
    resolution: usize,
    num_heads: usize,
    window_size: usize,
    mlp_ratio: f64,
    local_conv_size: usize,
}

impl TinyVitBlock {
    fn load(weights: &WeightPath, s: StageSpec) -> Result<Self, WeightError> {
        let head_dim = s.dim / s.num_heads;
        let k = s.local_conv_size;
        Ok(Self {
            attn: Attention::load(
                &weights.pp("attn"),
                s.dim,
                head_dim,
                s.num_heads,
                1,
                s.window_size,
            )?,
            local_conv: load_conv2d_bn(
                &weights.pp("local_conv"),
                Conv2dSpec::new(s.dim, s.dim, k)
                    .padding(k / 2)
                    .groups(s.dim),
            )?,
            mlp: TinyVitMlp::load(
                &weights.pp("mlp"),
                s.dim,
                (s.dim as f64 * s.mlp_ratio) as usize,
            )?,
            window_size: s.window_size,
            resolution: s.resolution,
        })
    }

    /// The `[B, L, C]` tokens of a `resolution × resolution` map, as the map
    /// `[B, H, W, C]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let ws = self.window_size;
        assert_eq!([h, w], [self.resolution; 2], "input feature has wrong size");
        let res_x = x.clone();
        let x = if h == ws && w == ws {
            self.attn
                .forward(x.reshape([b, h * w, c]))
                .reshape([b, h, w, c])
        } else {
            let (windows, padded) = window_partition(x, ws);
            let nw = windows.dims()[0];
            let out = self
                .attn
                .forward(windows.reshape([nw, ws * ws, c]))
                .reshape([nw, ws, ws, c]);
            // Cropped lazily: the residual add reads the view.
            window_unpartition(out, ws, padded, [h, w])
        };
        let x = res_x + x;
        let x = depthwise(&self.local_conv, x);
        let y = self.mlp.forward(x.clone());
        x + y
    }
}

/// `BasicLayer`: an attention stage, with its `PatchMerging` unless last.
#[derive(Module, Debug)]
pub struct BasicLayer {
    blocks: Vec<TinyVitBlock>,
    downsample: Option<PatchMerging>,
}

impl BasicLayer {
    /// NHWC in and out.
    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for blk in &self.blocks {
            x = blk.forward(x);
        }
        match &self.downsample {
            Some(ds) => ds.forward(x),
            None => x,
        }
    }
}

/// The neck: 1×1 conv, LayerNorm2d, 3×3 conv, LayerNorm2d (convs bias-free).
/// NHWC in, NCHW out; the first half runs channels-last (a linear layer and
/// a LayerNorm over channels, the same function as `LayerNorm2d`).
#[derive(Module, Debug)]
pub struct Neck {
    conv1: Linear,
    norm1: LayerNorm,
    conv2: Conv2d,
    norm2: LayerNorm2d,
}

impl Neck {
    fn load(weights: &WeightPath, in_chans: usize, out_chans: usize) -> Result<Self, WeightError> {
        let conv1 = Conv2d::load(
            &weights.pp(0),
            Conv2dSpec::new(in_chans, out_chans, 1).bias(Bias::Without),
        )?;
        Ok(Self {
            conv1: Linear {
                weight: Param::from_tensor(
                    conv1
                        .weight
                        .val()
                        .reshape([out_chans, in_chans])
                        .transpose(),
                ),
                bias: None,
            },
            norm1: LayerNorm::load(&weights.pp(1), out_chans, LN2D_EPS)?,
            conv2: Conv2d::load(
                &weights.pp(2),
                Conv2dSpec::new(out_chans, out_chans, 3)
                    .padding(1)
                    .bias(Bias::Without),
            )?,
            norm2: LayerNorm2d::load(&weights.pp(3), out_chans, LN2D_EPS)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.norm1.forward(self.conv1.forward(x));
        self.norm2
            .forward(self.conv2.forward(x.permute([0, 3, 1, 2])))
    }
}

/// `TinyViT` (the LiteMedSAM / MobileSAM image encoder): NCHW image in,
/// `[B, out_chans, r, r]` embedding out (`r = 64` for LiteMedSAM).
#[derive(Module, Debug)]
pub struct TinyVit {
    patch_embed: PatchEmbed,
    /// `layers.0`.
    conv_layer: ConvLayer,
    /// `layers.1..`.
    layers: Vec<BasicLayer>,
    neck: Neck,
    img_size: usize,
}

impl TinyVit {
    pub fn load(weights: &WeightPath, cfg: &TinyVitConfig) -> Result<Self, WeightError> {
        let dims = cfg.embed_dims;
        let n = dims.len();
        let out_dim = |i: usize| dims[(i + 1).min(n - 1)];
        let downsample =
            |weights: &WeightPath, i: usize| -> Result<Option<PatchMerging>, WeightError> {
                if i < n - 1 {
                    Ok(Some(PatchMerging::load(
                        &weights.pp("downsample"),
                        dims[i],
                        out_dim(i),
                    )?))
                } else {
                    Ok(None)
                }
            };
        let vl = weights.pp("layers");
        let l0 = vl.pp(0);
        let conv_layer = ConvLayer {
            blocks: (0..cfg.depths[0])
                .map(|j| MbConv::load(&l0.pp("blocks").pp(j), dims[0], cfg.mbconv_expand_ratio))
                .collect::<Result<_, _>>()?,
            downsample: downsample(&l0, 0)?,
        };
        let mut layers = Vec::with_capacity(n - 1);
        for (i, &dim) in dims.iter().enumerate().skip(1) {
            let li = vl.pp(i);
            let spec = StageSpec {
                dim,
                resolution: cfg.layer_resolution(i),
                num_heads: cfg.num_heads[i],
                window_size: cfg.window_sizes[i],
                mlp_ratio: cfg.mlp_ratio,
                local_conv_size: cfg.local_conv_size,
            };
            layers.push(BasicLayer {
                blocks: (0..cfg.depths[i])
                    .map(|j| TinyVitBlock::load(&li.pp("blocks").pp(j), spec))
                    .collect::<Result<_, _>>()?,
                downsample: downsample(&li, i)?,
            });
        }
        Ok(Self {
            patch_embed: PatchEmbed::load(&weights.pp("patch_embed"), cfg.in_chans, dims[0])?,
            conv_layer,
            layers,
            neck: Neck::load(&weights.pp("neck"), dims[n - 1], cfg.out_chans)?,
            img_size: cfg.img_size,
        })
    }

    /// Side of the (square) input this encoder was built for.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// `forward_features`: `[B, in_chans, S, S]` → `[B, out_chans, r, r]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.patch_embed.forward(x.permute([0, 2, 3, 1]));
        for blk in &self.conv_layer.blocks {
            x = blk.forward(x);
        }
        if let Some(ds) = &self.conv_layer.downsample {
            x = ds.forward(x);
        }
        for layer in &self.layers {
            x = layer.forward(x);
        }
        self.neck.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_index_table_numbers_offsets_by_first_appearance() {
        // points (0,0) (0,1) (1,0) (1,1): offsets (0,0)=0 (0,1)=1 (1,0)=2 (1,1)=3
        let (idxs, n) = attention_bias_idxs(2);
        assert_eq!(n, 4);
        assert_eq!(idxs, [0, 1, 2, 3, 1, 0, 3, 2, 2, 3, 0, 1, 3, 2, 1, 0]);
        // Every offset of a w×w window appears from the first point: ws² entries.
        assert_eq!(attention_bias_idxs(7).1, 49);
        assert_eq!(attention_bias_idxs(14).1, 196);
    }

    #[test]
    fn lite_medsam_stage_geometry() {
        let cfg = TinyVitConfig::lite_medsam();
        let res: Vec<usize> = (0..4).map(|i| cfg.layer_resolution(i)).collect();
        assert_eq!(res, [256, 128, 64, 64]);
        let strides: Vec<usize> = cfg.embed_dims[1..]
            .iter()
            .map(|&d| TinyVitConfig::merging_stride(d))
            .collect();
        assert_eq!(strides, [2, 2, 1]);
        assert_eq!(cfg.embedding_size(), 64);
    }
}
