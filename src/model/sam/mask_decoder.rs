//! `MaskDecoder` (`sam2/modeling/sam/mask_decoder.py`). The same module serves
//! SAM 1 / LiteMedSAM (no object-score token, no high-res skip features, raw
//! IoU head) and SAM 2.1 (all three), chosen by [`MaskDecoderSpec`].

use burn::module::{Module, Param};
use burn::tensor::{Int, Tensor};

use crate::model::cpu_kernels::gelu;
use crate::model::layers::{
    Activation, Conv2d, Conv2dSpec, ConvTranspose2d, LayerNorm2d, Mlp, MlpOutput,
};
use crate::model::sam::transformer::{TwoWayTransformer, TwoWayTransformerSpec};
use crate::weights::{WeightError, WeightPath};

/// How the single-mask output is chosen when one mask is asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SingleMaskChoice {
    /// Always the first (single-mask) token: SAM 1.
    FirstToken,
    /// SAM 2's dynamic choice: the single-mask token when its stability score
    /// (IoU of the logits thresholded at ±delta) is at least `thresh`, else
    /// the multimask output with the highest predicted IoU.
    DynamicViaStability { delta: f32, thresh: f32 },
}

/// Which variant of the decoder a checkpoint holds.
#[derive(Clone, Copy, Debug)]
pub struct MaskDecoderSpec {
    pub transformer_dim: usize,
    pub num_multimask_outputs: usize,
    pub iou_head_depth: usize,
    pub iou_head_hidden_dim: usize,
    pub iou_head_output: MlpOutput,
    /// SAM 2: stride-4 and stride-8 backbone features skip into the upscaler.
    pub high_res_features: bool,
    /// SAM 2: object-score token with a 3-layer MLP head.
    pub object_score_head: bool,
    /// SAM 2: the object pointer comes from the multimask tokens in multimask mode.
    pub multimask_token_for_obj_ptr: bool,
    pub single_mask_choice: SingleMaskChoice,
    pub transformer: TwoWayTransformerSpec,
}

impl MaskDecoderSpec {
    /// The SAM 1 decoder (LiteMedSAM).
    pub fn sam1(transformer_dim: usize) -> Self {
        Self {
            transformer_dim,
            num_multimask_outputs: 3,
            iou_head_depth: 3,
            iou_head_hidden_dim: 256,
            iou_head_output: MlpOutput::Linear,
            high_res_features: false,
            object_score_head: false,
            multimask_token_for_obj_ptr: false,
            single_mask_choice: SingleMaskChoice::FirstToken,
            transformer: TwoWayTransformerSpec {
                depth: 2,
                embedding_dim: transformer_dim,
                num_heads: 8,
                mlp_dim: 2048,
                attention_downsample_rate: 2,
            },
        }
    }

    /// The SAM 2.1 decoder as `build_sam2` configures it.
    pub fn sam2(transformer_dim: usize) -> Self {
        Self {
            iou_head_output: MlpOutput::Sigmoid,
            high_res_features: true,
            object_score_head: true,
            multimask_token_for_obj_ptr: true,
            single_mask_choice: SingleMaskChoice::DynamicViaStability {
                delta: 0.05,
                thresh: 0.98,
            },
            ..Self::sam1(transformer_dim)
        }
    }
}

/// Whether the decoder returns 3 candidate masks or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskOutput {
    /// One mask, chosen as the spec says ([`SingleMaskChoice`]): inference.
    Single,
    Multi,
    /// One mask from the first (single-mask) token whatever the spec: torch's
    /// `multimask_output=False` in training mode, where `self.training` skips SAM 2's
    /// dynamic choice. Fine-tuning trains this output.
    FirstToken,
}

/// Decoder outputs, batch-first as in the official code.
#[derive(Clone, Debug)]
pub struct MaskDecoderOutput {
    /// Low-res mask logits `[B, M, 4h, 4w]`.
    pub masks: Tensor<4>,
    /// Predicted IoU `[B, M]`.
    pub iou_pred: Tensor<2>,
    /// Output tokens for the object pointer `[B, M', C]`.
    pub sam_tokens_out: Tensor<3>,
    /// Object score logits `[B, 1]` (a constant 10 without the head).
    pub object_score_logits: Tensor<2>,
}

#[derive(Module, Debug)]
pub struct MaskDecoder {
    pub transformer: TwoWayTransformer,
    /// `obj_score_token.weight` (SAM 2), `[1, C]`.
    obj_score_token: Option<Param<Tensor<2>>>,
    /// `iou_token.weight`, `[1, C]`.
    iou_token: Param<Tensor<2>>,
    /// `mask_tokens.weight`, `[num_multimask_outputs + 1, C]`.
    mask_tokens: Param<Tensor<2>>,
    upscale_conv1: ConvTranspose2d,
    upscale_norm: LayerNorm2d,
    upscale_conv2: ConvTranspose2d,
    pub conv_s0: Option<Conv2d>,
    pub conv_s1: Option<Conv2d>,
    hypernetworks: Vec<Mlp>,
    iou_prediction_head: Mlp,
    pred_obj_score_head: Option<Mlp>,
    #[module(skip)]
    spec: MaskDecoderSpec,
}

impl MaskDecoder {
    pub fn load(weights: &WeightPath, s: MaskDecoderSpec) -> Result<Self, WeightError> {
        let d = s.transformer_dim;
        let n_mask = s.num_multimask_outputs + 1;
        let obj_score_token = if s.object_score_head {
            Some(Param::from_tensor(
                weights.tensor("obj_score_token.weight", [1, d])?,
            ))
        } else {
            None
        };
        let up = weights.pp("output_upscaling");
        let (conv_s0, conv_s1) = if s.high_res_features {
            (
                Some(Conv2d::load(
                    &weights.pp("conv_s0"),
                    Conv2dSpec::new(d, d / 8, 1),
                )?),
                Some(Conv2d::load(
                    &weights.pp("conv_s1"),
                    Conv2dSpec::new(d, d / 4, 1),
                )?),
            )
        } else {
            (None, None)
        };
        let hypernetworks = (0..n_mask)
            .map(|i| {
                Mlp::load(
                    &weights.pp("output_hypernetworks_mlps").pp(i),
                    [d, d, d / 8],
                    3,
                    Activation::Relu,
                    MlpOutput::Linear,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            transformer: TwoWayTransformer::load(&weights.pp("transformer"), s.transformer)?,
            obj_score_token,
            iou_token: Param::from_tensor(weights.tensor("iou_token.weight", [1, d])?),
            mask_tokens: Param::from_tensor(weights.tensor("mask_tokens.weight", [n_mask, d])?),
            upscale_conv1: ConvTranspose2d::load(&up.pp(0), d, d / 4, 2, 2)?,
            upscale_norm: LayerNorm2d::load(&up.pp(1), d / 4, 1e-6)?,
            upscale_conv2: ConvTranspose2d::load(&up.pp(3), d / 4, d / 8, 2, 2)?,
            conv_s0,
            conv_s1,
            hypernetworks,
            iou_prediction_head: Mlp::load(
                &weights.pp("iou_prediction_head"),
                [d, s.iou_head_hidden_dim, n_mask],
                s.iou_head_depth,
                Activation::Relu,
                s.iou_head_output,
            )?,
            pred_obj_score_head: if s.object_score_head {
                Some(Mlp::load(
                    &weights.pp("pred_obj_score_head"),
                    [d, d, 1],
                    3,
                    Activation::Relu,
                    MlpOutput::Linear,
                )?)
            } else {
                None
            },
            spec: s,
        })
    }

    pub fn spec(&self) -> &MaskDecoderSpec {
        &self.spec
    }

    /// The checkpoint key (below `mask_decoder.`) of a parameter given by its
    /// module-tree path (fields joined by `.`, as burn's module visitor names
    /// them), for the fields not named as the official module is.
    pub fn state_dict_key(path: &str) -> String {
        const RENAMED: [(&str, &str); 4] = [
            ("upscale_conv1.", "output_upscaling.0."),
            ("upscale_norm.", "output_upscaling.1."),
            ("upscale_conv2.", "output_upscaling.3."),
            ("hypernetworks.", "output_hypernetworks_mlps."),
        ];
        match path {
            // `nn.Embedding`s in torch: the tensor is their `.weight`.
            "obj_score_token" | "iou_token" | "mask_tokens" => format!("{path}.weight"),
            _ => RENAMED
                .iter()
                .find_map(|(ours, theirs)| {
                    path.strip_prefix(ours)
                        .map(|rest| format!("{theirs}{rest}"))
                })
                .unwrap_or_else(|| path.to_string()),
        }
    }

    /// `forward` with `repeat_image=False`: `image` has the prompts' batch size.
    /// `high_res`: the (conv_s0, conv_s1)-projected stride-4 and stride-8 features.
    pub fn forward(
        &self,
        image: Tensor<4>,
        image_pe: Tensor<4>,
        sparse: Tensor<3>,
        dense: Tensor<4>,
        output: MaskOutput,
        high_res: Option<[&Tensor<4>; 2]>,
    ) -> MaskDecoderOutput {
        let (masks, iou_pred, mask_tokens_out, object_score_logits) =
            self.predict_masks(image, image_pe, sparse, dense, high_res);
        let [b, m, h, w] = masks.dims();
        let (masks, iou_pred) = match (output, self.spec.single_mask_choice) {
            (MaskOutput::Multi, _) => (masks.narrow(1, 1, m - 1), iou_pred.narrow(1, 1, m - 1)),
            (MaskOutput::Single, SingleMaskChoice::FirstToken) | (MaskOutput::FirstToken, _) => {
                (masks.narrow(1, 0, 1), iou_pred.narrow(1, 0, 1))
            }
            (MaskOutput::Single, SingleMaskChoice::DynamicViaStability { delta, thresh }) => {
                dynamic_multimask_via_stability(masks, iou_pred, delta, thresh)
            }
        };
        let _ = (b, h, w);
        let sam_tokens_out = if output == MaskOutput::Multi && self.spec.multimask_token_for_obj_ptr
        {
            let t = mask_tokens_out.dims()[1];
            mask_tokens_out.narrow(1, 1, t - 1)
        } else {
            mask_tokens_out.narrow(1, 0, 1)
        };
        MaskDecoderOutput {
            masks,
            iou_pred,
            sam_tokens_out,
            object_score_logits,
        }
    }

    fn predict_masks(
        &self,
        image: Tensor<4>,
        image_pe: Tensor<4>,
        sparse: Tensor<3>,
        dense: Tensor<4>,
        high_res: Option<[&Tensor<4>; 2]>,
    ) -> (Tensor<4>, Tensor<2>, Tensor<3>, Tensor<2>) {
        let [b, c, h, w] = image.dims();
        let s = usize::from(self.spec.object_score_head);
        let n_mask = self.hypernetworks.len();
        // `[obj_score_token?, iou_token, mask_tokens...]`, `[T, C]`.
        let out_tokens = Tensor::cat(
            self.obj_score_token
                .iter()
                .chain([&self.iou_token, &self.mask_tokens])
                .map(|p| p.val())
                .collect(),
            0,
        );
        let t = out_tokens.dims()[0];
        let tokens = Tensor::cat(
            vec![out_tokens.unsqueeze::<3>().expand([b, t, c]), sparse],
            1,
        );
        let src = image + dense;
        let pos = if b == 1 {
            image_pe
        } else {
            image_pe.repeat_dim(0, b)
        };
        let (hs, src) = self.transformer.forward(src, pos, tokens);
        let iou_token_out = hs.clone().narrow(1, s, 1).reshape([b, c]);
        let mask_tokens_out = hs.clone().narrow(1, s + 1, n_mask);

        // NCHW as a view of the token-major keys (no copy: the upscaling reads it in place).
        let src = src.reshape([b, h, w, c]).permute([0, 3, 1, 2]);
        let upscaled = match (high_res, &self.conv_s0) {
            (Some([feat_s0, feat_s1]), Some(_)) => {
                let x = gelu(
                    self.upscale_norm
                        .forward(self.upscale_conv1.forward(src) + feat_s1.clone()),
                );
                gelu(self.upscale_conv2.forward(x) + feat_s0.clone())
            }
            _ => {
                let x = gelu(self.upscale_norm.forward(self.upscale_conv1.forward(src)));
                gelu(self.upscale_conv2.forward(x))
            }
        };
        let hyper_in: Vec<Tensor<3>> = self
            .hypernetworks
            .iter()
            .enumerate()
            .map(|(i, mlp)| mlp.forward(mask_tokens_out.clone().narrow(1, i, 1)))
            .collect();
        let hyper_in = Tensor::cat(hyper_in, 1); // [b, n_mask, c/8]
        let [_, cu, hu, wu] = upscaled.dims();
        let masks = hyper_in
            .matmul(upscaled.reshape([b, cu, hu * wu]))
            .reshape([b, n_mask, hu, wu]);
        let iou_pred = self.iou_prediction_head.forward(iou_token_out);
        let object_score_logits = match &self.pred_obj_score_head {
            Some(head) => head.forward(hs.narrow(1, 0, 1).reshape([b, c])),
            None => Tensor::ones([b, 1], &iou_pred.device()) * 10.0,
        };
        (masks, iou_pred, mask_tokens_out, object_score_logits)
    }
}

/// Stability score of mask logits `[B, 1, h, w]` → `[B, 1]`.
fn stability_scores(logits: Tensor<4>, delta: f32) -> Tensor<2> {
    let [b, m, h, w] = logits.dims();
    let flat = logits.reshape([b, m, h * w]);
    let area_i = flat
        .clone()
        .greater_elem(delta)
        .float()
        .sum_dim(2)
        .reshape([b, m]);
    let area_u = flat.greater_elem(-delta).float().sum_dim(2).reshape([b, m]);
    let empty = area_u.clone().lower_equal_elem(0.0);
    let ratio = area_i / area_u.clamp_min(1.0);
    ratio.mask_fill(empty, 1.0)
}

/// `_dynamic_multimask_via_stability`.
fn dynamic_multimask_via_stability(
    all_masks: Tensor<4>,
    all_iou: Tensor<2>,
    delta: f32,
    thresh: f32,
) -> (Tensor<4>, Tensor<2>) {
    let [b, m, h, w] = all_masks.dims();
    let multi_masks = all_masks.clone().narrow(1, 1, m - 1);
    let multi_iou = all_iou.clone().narrow(1, 1, m - 1);
    let best: Tensor<2, Int> = multi_iou.clone().argmax(1); // [b, 1]
    let best_iou = multi_iou.gather(1, best.clone());
    let best_masks = multi_masks.gather(1, best.reshape([b, 1, 1, 1]).expand([b, 1, h, w]));
    let single_masks = all_masks.narrow(1, 0, 1);
    let single_iou = all_iou.narrow(1, 0, 1);
    let unstable = stability_scores(single_masks.clone(), delta).lower_elem(thresh); // [b, 1]
    let masks = single_masks.mask_where(
        unstable.clone().reshape([b, 1, 1, 1]).expand([b, 1, h, w]),
        best_masks,
    );
    let iou = single_iou.mask_where(unstable, best_iou);
    (masks, iou)
}
