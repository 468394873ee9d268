//! `PromptEncoder` (`sam2/modeling/sam/prompt_encoder.py`, identical in SAM 1):
//! points and box corners through a random-Fourier position encoding plus
//! learned type embeddings; masks through a small conv stack.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::cpu_kernels::gelu;
use crate::model::layers::{Conv2d, Conv2dSpec, LayerNorm2d};
use crate::weights::{WeightError, WeightPath};

/// Point label, as the official code numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointLabel {
    /// Padding point (`-1`).
    NotAPoint,
    /// Background click (`0`).
    Negative,
    /// Foreground click (`1`).
    Positive,
    /// Box top-left corner (`2`).
    BoxTopLeft,
    /// Box bottom-right corner (`3`).
    BoxBottomRight,
}

impl PointLabel {
    pub fn from_official(v: i64) -> Option<Self> {
        Some(match v {
            -1 => Self::NotAPoint,
            0 => Self::Negative,
            1 => Self::Positive,
            2 => Self::BoxTopLeft,
            3 => Self::BoxBottomRight,
            _ => return None,
        })
    }
}

/// Points of one prompt, in model-input pixel coordinates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointPrompt {
    pub coords: Vec<[f32; 2]>,
    pub labels: Vec<PointLabel>,
}

/// Sizes the prompt encoder is built for.
#[derive(Clone, Copy, Debug)]
pub struct PromptEncoderSpec {
    pub embed_dim: usize,
    /// Side of the (square) image embedding.
    pub embedding_size: usize,
    /// Side of the (square) model input.
    pub input_size: usize,
    pub mask_in_chans: usize,
}

#[derive(Module, Debug)]
pub struct PromptEncoder {
    /// `pe_layer.positional_encoding_gaussian_matrix`, `[2, embed_dim/2]`: a buffer
    /// in the official code, so it never requires a gradient (fine-tuning leaves it).
    gaussian: Param<Tensor<2>>,
    /// `not_a_point_embed.weight`, `[1, embed_dim]`.
    not_a_point_embed: Param<Tensor<2>>,
    /// `point_embeddings[i].weight`, `[1, embed_dim]` each. Separate parameters (not
    /// one table) so that a prompt's graph holds only the embeddings it uses, as in
    /// torch: in fine-tuning an unused one gets no gradient and no optimiser step.
    point_embeddings: Vec<Param<Tensor<2>>>,
    /// `no_mask_embed.weight`, `[1, embed_dim]`.
    no_mask_embed: Param<Tensor<2>>,
    mask_conv1: Conv2d,
    mask_norm1: LayerNorm2d,
    mask_conv2: Conv2d,
    mask_norm2: LayerNorm2d,
    mask_conv3: Conv2d,
    embed_dim: usize,
    embedding_size: usize,
    input_size: usize,
    /// [`Self::dense_pe`] of host tensors, with the Gaussian matrix it was made from.
    #[module(skip)]
    dense_pe_cache: DensePeCache,
}

/// The last host [`PromptEncoder::dense_pe`] and the Gaussian matrix's values it
/// was computed from: the same for every prediction (1024 sin/cos rows, a matmul
/// and a strided copy each time, ~5 % of a medsam2-t512 prompt + decoder).
#[derive(Debug, Default)]
struct DensePeCache(std::sync::Mutex<Option<(Vec<f32>, Tensor<4>)>>);

impl Clone for DensePeCache {
    fn clone(&self) -> Self {
        let held = self.0.lock().map(|g| g.clone()).unwrap_or_default();
        Self(std::sync::Mutex::new(held))
    }
}

impl PromptEncoder {
    pub fn load(weights: &WeightPath, s: PromptEncoderSpec) -> Result<Self, WeightError> {
        let d = s.embed_dim;
        let point_embeddings = (0..4)
            .map(|i| {
                Ok(Param::from_tensor(
                    weights
                        .pp("point_embeddings")
                        .pp(i)
                        .tensor("weight", [1, d])?,
                ))
            })
            .collect::<Result<Vec<_>, WeightError>>()?;
        let ds = weights.pp("mask_downscaling");
        let c4 = s.mask_in_chans / 4;
        Ok(Self {
            gaussian: Param::from_tensor(
                weights
                    .pp("pe_layer")
                    .tensor("positional_encoding_gaussian_matrix", [2, d / 2])?,
            )
            .set_require_grad(false),
            not_a_point_embed: Param::from_tensor(
                weights.tensor("not_a_point_embed.weight", [1, d])?,
            ),
            point_embeddings,
            no_mask_embed: Param::from_tensor(weights.tensor("no_mask_embed.weight", [1, d])?),
            mask_conv1: Conv2d::load(&ds.pp(0), Conv2dSpec::new(1, c4, 2).stride(2))?,
            mask_norm1: LayerNorm2d::load(&ds.pp(1), c4, 1e-6)?,
            mask_conv2: Conv2d::load(&ds.pp(3), Conv2dSpec::new(c4, s.mask_in_chans, 2).stride(2))?,
            mask_norm2: LayerNorm2d::load(&ds.pp(4), s.mask_in_chans, 1e-6)?,
            mask_conv3: Conv2d::load(&ds.pp(6), Conv2dSpec::new(s.mask_in_chans, d, 1))?,
            embed_dim: d,
            embedding_size: s.embedding_size,
            input_size: s.input_size,
            dense_pe_cache: DensePeCache::default(),
        })
    }

    pub fn device(&self) -> Device {
        self.gaussian.val().device()
    }

    /// The checkpoint key (below `prompt_encoder.`) of a parameter given by its
    /// module-tree path (fields joined by `.`, as burn's module visitor names them).
    pub fn state_dict_key(path: &str) -> String {
        const RENAMED: [(&str, &str); 5] = [
            ("mask_conv1.", "mask_downscaling.0."),
            ("mask_norm1.", "mask_downscaling.1."),
            ("mask_conv2.", "mask_downscaling.3."),
            ("mask_norm2.", "mask_downscaling.4."),
            ("mask_conv3.", "mask_downscaling.6."),
        ];
        if path == "gaussian" {
            return "pe_layer.positional_encoding_gaussian_matrix".into();
        }
        // `nn.Embedding`s in torch: the tensor is their `.weight`.
        if path == "not_a_point_embed"
            || path == "no_mask_embed"
            || path
                .strip_prefix("point_embeddings.")
                .is_some_and(|i| i.parse::<usize>().is_ok())
        {
            return format!("{path}.weight");
        }
        RENAMED
            .iter()
            .find_map(|(ours, theirs)| {
                path.strip_prefix(ours)
                    .map(|rest| format!("{theirs}{rest}"))
            })
            .unwrap_or_else(|| path.to_string())
    }

    /// `_pe_encoding` of `[N, 2]` coordinates already normalised to [0, 1].
    fn pe_encoding(&self, coords01: Tensor<2>) -> Tensor<2> {
        let c = (coords01 * 2.0 - 1.0).matmul(self.gaussian.val()) * (2.0 * std::f64::consts::PI);
        Tensor::cat(vec![c.clone().sin(), c.cos()], 1)
    }

    /// `get_dense_pe`: the encoding of every embedding cell centre, `[1, C, h, w]`.
    /// Host tensors (no autodiff) reuse the last result while the Gaussian matrix
    /// (a buffer that fine-tuning leaves) holds the same values.
    pub fn dense_pe(&self) -> Tensor<4> {
        let gaussian = self.gaussian.val();
        if !crate::model::cpu_kernels::on_host(&gaussian) {
            return self.compute_dense_pe();
        }
        let key = gaussian
            .into_data()
            .try_into_vec::<f32>()
            .expect("an f32 tensor reads back as f32");
        let mut cache = self
            .dense_pe_cache
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((held, pe)) = cache.as_ref()
            && *held == key
        {
            return pe.clone();
        }
        let pe = self.compute_dense_pe();
        *cache = Some((key, pe.clone()));
        pe
    }

    fn compute_dense_pe(&self) -> Tensor<4> {
        let n = self.embedding_size;
        let mut coords = Vec::with_capacity(n * n * 2);
        for y in 0..n {
            for x in 0..n {
                coords.push((x as f32 + 0.5) / n as f32);
                coords.push((y as f32 + 0.5) / n as f32);
            }
        }
        let coords = Tensor::from_data(TensorData::new(coords, [n * n, 2]), &self.device());
        self.pe_encoding(coords)
            .reshape([n, n, self.embed_dim])
            .permute([2, 0, 1])
            .unsqueeze()
    }

    /// The learned embedding added to a point of this label, `[1, embed_dim]`.
    fn label_embedding(&self, label: PointLabel) -> Tensor<2> {
        match label {
            PointLabel::NotAPoint => self.not_a_point_embed.val(),
            PointLabel::Negative => self.point_embeddings[0].val(),
            PointLabel::Positive => self.point_embeddings[1].val(),
            PointLabel::BoxTopLeft => self.point_embeddings[2].val(),
            PointLabel::BoxBottomRight => self.point_embeddings[3].val(),
        }
    }

    /// Embeds labelled points `[N, embed_dim]` (`_embed_points` without padding).
    fn embed_labelled(&self, coords: &[[f32; 2]], labels: &[PointLabel]) -> Tensor<2> {
        let n = coords.len();
        let device = self.device();
        let size = self.input_size as f32;
        // +0.5: shift to the pixel centre, then normalise by the input size.
        let flat: Vec<f32> = coords
            .iter()
            .flat_map(|[x, y]| [(x + 0.5) / size, (y + 0.5) / size])
            .collect();
        let pe = self.pe_encoding(Tensor::from_data(TensorData::new(flat, [n, 2]), &device));
        let keep: Vec<f32> = labels
            .iter()
            .map(|l| (*l != PointLabel::NotAPoint) as u8 as f32)
            .collect();
        let keep = Tensor::<2>::from_data(TensorData::new(keep, [n, 1]), &device);
        let learned = labels.iter().map(|&l| self.label_embedding(l)).collect();
        pe * keep + Tensor::cat(learned, 0)
    }

    /// `_embed_boxes` of a batch of boxes `[B, 4]` (`x0, y0, x1, y1` in model-input
    /// pixels): `[B, 2, embed_dim]`, the two corners of each box.
    pub fn embed_boxes(&self, boxes: Tensor<2>) -> Tensor<3> {
        let b = boxes.dims()[0];
        let d = self.embed_dim;
        let corners = ((boxes + 0.5) / self.input_size as f32).reshape([b * 2, 2]);
        let pe = self.pe_encoding(corners).reshape([b, 2, d]);
        let learned = Tensor::cat(
            vec![
                self.label_embedding(PointLabel::BoxTopLeft),
                self.label_embedding(PointLabel::BoxBottomRight),
            ],
            0,
        );
        pe + learned.unsqueeze::<3>()
    }

    /// Sparse and dense embeddings of a batch of box prompts `[B, 4]` (SAM 1 `boxes=`,
    /// no points, no mask): `[B, 2, C]` and `[B, C, h, w]`. Fine-tuning's prompts.
    pub fn forward_boxes(&self, boxes: Tensor<2>) -> (Tensor<3>, Tensor<4>) {
        let b = boxes.dims()[0];
        (self.embed_boxes(boxes), self.no_mask_dense(b))
    }

    /// Sparse and dense embeddings of a batch of box prompts `[B, 4]` as SAM 2 gives
    /// them (`SAM2ImagePredictor._predict`, `SAM2Base._forward_sam_heads`): the two
    /// corners as points labelled 2 and 3, then the padding point `_embed_points`
    /// appends since `boxes=None` (its encoding zeroed, `not_a_point_embed` added):
    /// `[B, 3, C]` and `[B, C, h, w]`. What [`Self::forward`] makes of one box's
    /// corner points, for a batch. Fine-tuning's SAM 2 prompts.
    pub fn forward_box_points(&self, boxes: Tensor<2>) -> (Tensor<3>, Tensor<4>) {
        let b = boxes.dims()[0];
        let d = self.embed_dim;
        // Torch adds each label's embedding through a mask (`point_embedding[labels ==
        // i] += ...`), so the click embeddings (labels 0 and 1) are in its graph with a
        // zero gradient even when no point has their label, and AdamW's weight decay
        // reaches them. Added here times zero: the same values, the same zero gradient.
        let clicks = (self.label_embedding(PointLabel::Negative)
            + self.label_embedding(PointLabel::Positive))
            * 0.0;
        let padding = (self.label_embedding(PointLabel::NotAPoint) + clicks)
            .unsqueeze::<3>()
            .expand([b, 1, d]);
        let sparse = Tensor::cat(vec![self.embed_boxes(boxes), padding], 1);
        (sparse, self.no_mask_dense(b))
    }

    /// `no_mask_embed` broadcast over the embedding grid, `[B, C, h, w]`.
    fn no_mask_dense(&self, batch: usize) -> Tensor<4> {
        let (d, n) = (self.embed_dim, self.embedding_size);
        self.no_mask_embed
            .val()
            .reshape([1, d, 1, 1])
            .expand([batch, d, n, n])
    }

    /// Sparse and dense embeddings of one prompt (batch 1).
    ///
    /// `points` are labelled points (SAM 2 passes a box as two corner points);
    /// `box_xyxy` is a SAM 1 style box input. As in the official code a
    /// padding point is appended to the points when no box is given.
    /// `mask`: low-res mask logits `[1, 1, 4h, 4w]`.
    pub fn forward(
        &self,
        points: Option<&PointPrompt>,
        box_xyxy: Option<[f32; 4]>,
        mask: Option<Tensor<4>>,
    ) -> (Tensor<3>, Tensor<4>) {
        let mut parts = Vec::new();
        if let Some(p) = points {
            let mut coords = p.coords.clone();
            let mut labels = p.labels.clone();
            if box_xyxy.is_none() {
                coords.push([0.0, 0.0]);
                labels.push(PointLabel::NotAPoint);
            }
            parts.push(self.embed_labelled(&coords, &labels));
        }
        if let Some(b) = box_xyxy {
            let boxes = Tensor::from_data(TensorData::new(b.to_vec(), [1, 4]), &self.device());
            parts.push(self.embed_boxes(boxes).reshape([2, self.embed_dim]));
        }
        let sparse = if parts.is_empty() {
            Tensor::zeros([1, 0, self.embed_dim], &self.device())
        } else {
            Tensor::cat(parts, 0).unsqueeze()
        };
        let dense = match mask {
            Some(m) => self.embed_mask(m),
            None => self.no_mask_dense(1),
        };
        (sparse, dense)
    }

    /// `mask_downscaling`.
    fn embed_mask(&self, m: Tensor<4>) -> Tensor<4> {
        let x = gelu(self.mask_norm1.forward(self.mask_conv1.forward(m)));
        let x = gelu(self.mask_norm2.forward(self.mask_conv2.forward(x)));
        self.mask_conv3.forward(x)
    }
}
