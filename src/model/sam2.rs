//! `SAM2Base` (`sam2/modeling/sam2_base.py`): the SAM 2.1 model assembled from
//! its components, with the per-frame heads the image predictor and the video
//! session use. Frame-to-frame state lives in `session/`, not here.

use burn::module::{Module, Param};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, TensorData};

use crate::model::backbone::image_encoder::ImageEncoder;
use crate::model::config::Sam2Config;
use crate::model::layers::{Activation, Bias, Conv2d, Conv2dSpec, Linear, Mlp, MlpOutput};
use crate::model::memory_attention::MemoryAttention;
use crate::model::memory_encoder::{MaskInput, MemoryEncoder};
use crate::model::sam::mask_decoder::{
    MaskDecoder, MaskDecoderOutput, MaskDecoderSpec, MaskOutput,
};
use crate::model::sam::prompt_encoder::{
    PointLabel, PointPrompt, PromptEncoder, PromptEncoderSpec,
};
use crate::weights::{WeightError, WeightPath};

/// Logit written into masks of frames where the object is judged absent.
pub const NO_OBJ_SCORE: f32 = -1024.0;

/// `forward_image` output: FPN levels (stride 4 and 8 already projected by
/// `conv_s0`/`conv_s1`) and their position encodings, highest resolution first.
#[derive(Clone, Debug)]
pub struct BackboneOutput {
    pub backbone_fpn: Vec<Tensor<4>>,
    pub vision_pos_enc: Vec<Tensor<4>>,
}

impl BackboneOutput {
    /// The stride-16 features (`vision_features`).
    pub fn vision_features(&self) -> Tensor<4> {
        self.backbone_fpn[self.backbone_fpn.len() - 1].clone()
    }
}

/// Image features as the SAM heads consume them.
#[derive(Clone, Debug)]
pub struct ImageFeatures {
    /// Stride-16 features `[B, C, h, w]`.
    pub embed: Tensor<4>,
    /// Stride-4 and stride-8 projected features.
    pub high_res: [Tensor<4>; 2],
}

/// `_forward_sam_heads` outputs.
#[derive(Clone, Debug)]
pub struct SamHeadsOutput {
    pub low_res_multimasks: Tensor<4>,
    pub high_res_multimasks: Tensor<4>,
    pub ious: Tensor<2>,
    pub low_res_masks: Tensor<4>,
    pub high_res_masks: Tensor<4>,
    pub obj_ptr: Tensor<2>,
    pub object_score_logits: Tensor<2>,
}

/// Where a mask given to the memory encoder came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskSource {
    /// Predicted from point/box prompts: binarised before encoding
    /// (`binarize_mask_from_pts_for_mem_enc`).
    PointPrompts,
    /// Tracked or mask-prompted: sigmoid of the logits.
    Tracking,
}

#[derive(Module, Debug)]
pub struct Sam2Model {
    pub image_encoder: ImageEncoder,
    pub sam_prompt_encoder: PromptEncoder,
    pub sam_mask_decoder: MaskDecoder,
    pub memory_attention: MemoryAttention,
    pub memory_encoder: MemoryEncoder,
    /// `[num_maskmem, 1, 1, mem_dim]`.
    pub maskmem_tpos_enc: Param<Tensor<4>>,
    pub no_mem_embed: Param<Tensor<3>>,
    pub no_mem_pos_enc: Param<Tensor<3>>,
    pub no_obj_ptr: Param<Tensor<2>>,
    pub no_obj_embed_spatial: Param<Tensor<2>>,
    pub obj_ptr_proj: Mlp,
    pub obj_ptr_tpos_proj: Linear,
    pub mask_downsample: Conv2d,
    #[module(skip)]
    pub config: Sam2Config,
}

impl Sam2Model {
    pub fn load(weights: &WeightPath, cfg: &Sam2Config) -> Result<Self, WeightError> {
        let hidden = cfg.hidden_dim();
        let mem = cfg.mem_dim();
        let emb = cfg.embedding_size();
        Ok(Self {
            image_encoder: ImageEncoder::load(
                &weights.pp("image_encoder"),
                &cfg.image_encoder,
                cfg.image_size,
            )?,
            sam_prompt_encoder: PromptEncoder::load(
                &weights.pp("sam_prompt_encoder"),
                PromptEncoderSpec {
                    embed_dim: hidden,
                    embedding_size: emb,
                    input_size: cfg.image_size,
                    mask_in_chans: 16,
                },
            )?,
            sam_mask_decoder: MaskDecoder::load(
                &weights.pp("sam_mask_decoder"),
                MaskDecoderSpec::sam2(hidden),
            )?,
            memory_attention: MemoryAttention::load(
                &weights.pp("memory_attention"),
                &cfg.memory_attention,
            )?,
            memory_encoder: MemoryEncoder::load(
                &weights.pp("memory_encoder"),
                &cfg.memory_encoder,
            )?,
            maskmem_tpos_enc: Param::from_tensor(
                weights.tensor("maskmem_tpos_enc", [cfg.num_maskmem, 1, 1, mem])?,
            ),
            no_mem_embed: Param::from_tensor(weights.tensor("no_mem_embed", [1, 1, hidden])?),
            no_mem_pos_enc: Param::from_tensor(weights.tensor("no_mem_pos_enc", [1, 1, hidden])?),
            no_obj_ptr: Param::from_tensor(weights.tensor("no_obj_ptr", [1, hidden])?),
            no_obj_embed_spatial: Param::from_tensor(
                weights.tensor("no_obj_embed_spatial", [1, mem])?,
            ),
            obj_ptr_proj: Mlp::load(
                &weights.pp("obj_ptr_proj"),
                [hidden, hidden, hidden],
                3,
                Activation::Relu,
                MlpOutput::Linear,
            )?,
            obj_ptr_tpos_proj: Linear::load(
                &weights.pp("obj_ptr_tpos_proj"),
                hidden,
                mem,
                Bias::With,
            )?,
            mask_downsample: Conv2d::load(
                &weights.pp("mask_downsample"),
                Conv2dSpec::new(1, 1, 4).stride(4),
            )?,
            config: cfg.clone(),
        })
    }

    pub fn image_size(&self) -> usize {
        self.config.image_size
    }

    /// `forward_image`: encoder plus the `conv_s0`/`conv_s1` projections.
    pub fn forward_image(&self, image: Tensor<4>) -> BackboneOutput {
        let out = self.image_encoder.forward(image);
        let mut fpn = out.features;
        if let (Some(s0), Some(s1)) = (
            &self.sam_mask_decoder.conv_s0,
            &self.sam_mask_decoder.conv_s1,
        ) {
            fpn[0] = s0.forward(fpn[0].clone());
            fpn[1] = s1.forward(fpn[1].clone());
        }
        BackboneOutput {
            backbone_fpn: fpn,
            vision_pos_enc: out.pos,
        }
    }

    /// Features for single-image prediction: with no memory, SAM 2.1 adds
    /// `no_mem_embed` to the stride-16 features (`directly_add_no_mem_embed`).
    pub fn image_features(&self, backbone: &BackboneOutput) -> ImageFeatures {
        let c = self.config.hidden_dim();
        let embed = backbone.vision_features() + self.no_mem_embed.val().reshape([1, c, 1, 1]);
        ImageFeatures {
            embed,
            high_res: [
                backbone.backbone_fpn[0].clone(),
                backbone.backbone_fpn[1].clone(),
            ],
        }
    }

    /// The prompt encoder as `_forward_sam_heads` calls it: without points a
    /// single padding point is used; boxes arrive as two labelled corners.
    pub fn encode_prompt(
        &self,
        points: Option<&PointPrompt>,
        mask_inputs: Option<Tensor<4>>,
    ) -> (Tensor<3>, Tensor<4>) {
        let padding = PointPrompt {
            coords: vec![[0.0, 0.0]],
            labels: vec![PointLabel::NotAPoint],
        };
        self.sam_prompt_encoder
            .forward(Some(points.unwrap_or(&padding)), None, mask_inputs)
    }

    /// The mask decoder as `_forward_sam_heads` calls it.
    pub fn decode(
        &self,
        features: &Tensor<4>,
        high_res: &[Tensor<4>; 2],
        sparse: Tensor<3>,
        dense: Tensor<4>,
        output: MaskOutput,
    ) -> MaskDecoderOutput {
        self.sam_mask_decoder.forward(
            features.clone(),
            self.sam_prompt_encoder.dense_pe(),
            sparse,
            dense,
            output,
            Some([&high_res[0], &high_res[1]]),
        )
    }

    /// `_forward_sam_heads`. `mask_inputs` must already be at the prompt
    /// encoder's mask size.
    pub fn forward_sam_heads(
        &self,
        features: &Tensor<4>,
        high_res: &[Tensor<4>; 2],
        points: Option<&PointPrompt>,
        mask_inputs: Option<Tensor<4>>,
        output: MaskOutput,
    ) -> SamHeadsOutput {
        let (sparse, dense) = self.encode_prompt(points, mask_inputs);
        let dec = self.decode(features, high_res, sparse, dense, output);
        self.heads_from_decoder(dec, output)
    }

    /// The second half of `_forward_sam_heads`: no-object masking, upsampling,
    /// best-mask selection and the object pointer.
    pub fn heads_from_decoder(&self, dec: MaskDecoderOutput, output: MaskOutput) -> SamHeadsOutput {
        let [b, _, h, _] = dec.masks.dims();
        let appearing = dec.object_score_logits.clone().greater_elem(0.0); // [b, 1]
        let low_res_multimasks = mask_absent_objects(dec.masks, dec.object_score_logits.clone());
        let s = self.config.image_size;
        let high_res_multimasks = upsample_bilinear(low_res_multimasks.clone(), [s, s]);
        let c = dec.sam_tokens_out.dims()[2];
        let mut sam_token = dec.sam_tokens_out.clone().narrow(1, 0, 1).reshape([b, c]);
        let (low_res_masks, high_res_masks) = if output == MaskOutput::Multi {
            let best: Tensor<2, Int> = dec.iou_pred.clone().argmax(1); // [b, 1]
            let pick4 = |t: Tensor<4>, side: usize| {
                t.gather(
                    1,
                    best.clone()
                        .reshape([b, 1, 1, 1])
                        .expand([b, 1, side, side]),
                )
            };
            if dec.sam_tokens_out.dims()[1] > 1 {
                sam_token = dec
                    .sam_tokens_out
                    .clone()
                    .gather(1, best.clone().reshape([b, 1, 1]).expand([b, 1, c]))
                    .reshape([b, c]);
            }
            (
                pick4(low_res_multimasks.clone(), h),
                pick4(high_res_multimasks.clone(), s),
            )
        } else {
            (low_res_multimasks.clone(), high_res_multimasks.clone())
        };
        // fixed_no_obj_ptr: absent objects get the learned no-object pointer.
        let obj_ptr = self.obj_ptr_proj.forward(sam_token);
        let lambda = appearing.float(); // [b, 1]
        let obj_ptr = obj_ptr * lambda.clone() + (lambda.neg() + 1.0) * self.no_obj_ptr.val();
        SamHeadsOutput {
            low_res_multimasks,
            high_res_multimasks,
            ious: dec.iou_pred,
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits: dec.object_score_logits,
        }
    }

    /// `_use_mask_as_output`: a binary mask prompt (`image_size`², row-major,
    /// 0/1) taken as the output directly (`use_mask_input_as_output_without_sam`),
    /// with logits ±10, and the object pointer from the SAM heads run on the
    /// mask downsampled by `mask_downsample`. `pix_feat`: raw stride-16 features.
    pub fn heads_from_mask(
        &self,
        pix_feat: &Tensor<4>,
        high_res: &[Tensor<4>; 2],
        mask: &[f32],
    ) -> SamHeadsOutput {
        let s = self.config.image_size;
        let device = pix_feat.device();
        let (out_scale, out_bias) = (20.0f32, -10.0f32);
        let high: Vec<f32> = mask.iter().map(|m| m * out_scale + out_bias).collect();
        // Antialiased downsampling has no burn op; the mask is small, so on the host.
        let low = crate::preprocess::resize_bilinear(
            &high,
            1,
            s,
            s,
            s / 4,
            s / 4,
            crate::preprocess::Antialias::On,
        );
        let high_res_masks = Tensor::<4>::from_data(TensorData::new(high, [1, 1, s, s]), &device);
        let low_res_masks =
            Tensor::<4>::from_data(TensorData::new(low, [1, 1, s / 4, s / 4]), &device);
        let mask_t = Tensor::<4>::from_data(TensorData::new(mask.to_vec(), [1, 1, s, s]), &device);
        let ptr_heads = self.forward_sam_heads(
            pix_feat,
            high_res,
            None,
            Some(self.mask_downsample.forward(mask_t)),
            MaskOutput::Single,
        );
        let appearing = if mask.iter().any(|&m| m > 0.0) {
            1.0
        } else {
            0.0
        };
        let obj_ptr = ptr_heads.obj_ptr * appearing + self.no_obj_ptr.val() * (1.0 - appearing);
        let object_score_logits =
            Tensor::<2>::ones([1, 1], &device) * (out_scale * appearing + out_bias);
        SamHeadsOutput {
            low_res_multimasks: low_res_masks.clone(),
            high_res_multimasks: high_res_masks.clone(),
            ious: Tensor::ones([1, 1], &device),
            low_res_masks,
            high_res_masks,
            obj_ptr,
            object_score_logits,
        }
    }

    /// The memory encoder's mask input: binarised (point prompts) or
    /// sigmoid'ed logits, then scaled and shifted (`sigmoid_scale/bias_for_mem_enc`).
    pub fn mask_for_memory(&self, pred_masks_high_res: Tensor<4>, source: MaskSource) -> Tensor<4> {
        let m = match source {
            MaskSource::PointPrompts => pred_masks_high_res.greater_elem(0.0).float(),
            MaskSource::Tracking => burn::tensor::activation::sigmoid(pred_masks_high_res),
        };
        m * self.config.sigmoid_scale_for_mem_enc + self.config.sigmoid_bias_for_mem_enc
    }

    /// Adds `no_obj_embed_spatial` to memory features where the object is judged absent.
    pub fn add_no_object_embedding(
        &self,
        features: Tensor<4>,
        object_score_logits: Tensor<2>,
    ) -> Tensor<4> {
        let [b, c, h, w] = features.dims();
        let absent = object_score_logits
            .lower_equal_elem(0.0)
            .float()
            .reshape([b, 1, 1, 1]);
        let no_obj = self.no_obj_embed_spatial.val().reshape([1, c, 1, 1]);
        features + (absent * no_obj).expand([b, c, h, w])
    }

    /// `_encode_new_memory` for the stride-16 features `pix_feat` `[B, C, h, w]`.
    /// Returns (maskmem_features, maskmem_pos_enc).
    pub fn encode_new_memory(
        &self,
        pix_feat: Tensor<4>,
        pred_masks_high_res: Tensor<4>,
        object_score_logits: Tensor<2>,
        source: MaskSource,
    ) -> (Tensor<4>, Tensor<4>) {
        let mask = self.mask_for_memory(pred_masks_high_res, source);
        let out = self
            .memory_encoder
            .forward(pix_feat, mask, MaskInput::Prepared);
        (
            self.add_no_object_embedding(out.features, object_score_logits),
            out.pos,
        )
    }
}

/// The masks `[B, M, h, w]` of the samples whose object is judged absent (object score
/// logit ≤ 0, `[B, 1]`) set to [`NO_OBJ_SCORE`] everywhere, as `_forward_sam_heads` does
/// after the decoder (with `pred_obj_scores`). The others keep their values and, in
/// training, their gradient.
pub fn mask_absent_objects(masks: Tensor<4>, object_score_logits: Tensor<2>) -> Tensor<4> {
    let [b, m, h, w] = masks.dims();
    // `torch.where(score > 0, masks, NO_OBJ_SCORE)`: a NaN score counts as absent.
    let absent = object_score_logits
        .greater_elem(0.0)
        .bool_not()
        .reshape([b, 1, 1, 1])
        .expand([b, m, h, w]);
    masks.mask_fill(absent, NO_OBJ_SCORE)
}

/// `F.interpolate(x, size, mode="bilinear", align_corners=False)`.
pub fn upsample_bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
}
