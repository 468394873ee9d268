//! LiteMedSAM (`MedSAM_Lite` / `MedSAMLite` in the official code): MedSAM
//! distilled onto a TinyViT image encoder at 256×256, with SAM 1's prompt
//! encoder and mask decoder — the crate's shared [`PromptEncoder`] and
//! [`MaskDecoder`], loaded under their module-tree names (`sam_prompt_encoder.`,
//! `sam_mask_decoder.`; see `weights::remap`).
//!
//! The 2D pipeline is the official inference recipe (`CVPR24_LiteMedSAM_infer.py`
//! as run by `export_litemedsam_fixtures.py`, `infer_slice`): preprocess with
//! [`LiteMedSamTransform`], encode, prompt with one box in 256-space, decode a
//! single mask, crop the 256×256 low-res logits to the resized extent,
//! bilinear up to the slice size, `sigmoid > 0.5`. The 3D propagation lives in
//! `session::lite_propagation`.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::sam::mask_decoder::{MaskDecoder, MaskDecoderSpec, MaskOutput};
use crate::model::sam::prompt_encoder::{PromptEncoder, PromptEncoderSpec};
use crate::model::tiny_vit::{TinyVit, TinyVitConfig};
use crate::preprocess::{LiteMedSamInput, LiteMedSamTransform, PreprocessError};
use crate::readback::{ReadbackError, read_f32};
use crate::weights::{WeightError, WeightPath};

/// Width of the image embedding and of the prompt tokens.
pub const LITE_MEDSAM_EMBED_DIM: usize = 256;

/// The LiteMedSAM model: TinyViT encoder plus the SAM 1 heads.
#[derive(Module, Debug)]
pub struct LiteMedSam {
    pub image_encoder: TinyVit,
    pub sam_prompt_encoder: PromptEncoder,
    pub sam_mask_decoder: MaskDecoder,
}

/// Why a slice could not be segmented.
#[derive(Debug, thiserror::Error)]
pub enum LiteMedSamError {
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Readback(#[from] ReadbackError),
}

/// A slice's image embedding and the geometry its decoding needs. It stays on the
/// device, so that several boxes on one slice (objects, corrections), or a box drawn
/// after the embedding was made ahead of it, cost one decoder pass each.
#[derive(Clone, Debug)]
pub struct LiteEmbedding {
    embedding: Tensor<4>,
    /// The slice's extent inside the padded model input (rows, columns).
    resized_hw: (usize, usize),
    /// The slice's size (rows, columns).
    orig_hw: (usize, usize),
}

/// One slice segmented by the 2D recipe.
#[derive(Clone, Debug)]
pub struct LiteSlicePrediction {
    /// The mask at the slice size, `h × w`, 1 = object.
    pub mask: Vec<u8>,
    /// Logits at the slice size (object where > 0, i.e. sigmoid > 0.5).
    pub logits: Vec<f32>,
    /// The decoder's 256×256 low-res logits, row-major.
    pub low_res_logits: Vec<f32>,
    /// Predicted IoU of the mask.
    pub iou: f32,
    /// The box prompt used, in 256-space.
    pub box_256: [f32; 4],
}

impl LiteMedSam {
    /// `build_lite_medsam()`: loads the three components strictly from `weights`
    /// (after the LiteMedSAM key remap).
    pub fn load(weights: &WeightPath) -> Result<Self, WeightError> {
        let cfg = TinyVitConfig::lite_medsam();
        let embedding_size = cfg.embedding_size();
        Ok(Self {
            image_encoder: TinyVit::load(&weights.pp("image_encoder"), &cfg)?,
            sam_prompt_encoder: PromptEncoder::load(
                &weights.pp("sam_prompt_encoder"),
                PromptEncoderSpec {
                    embed_dim: LITE_MEDSAM_EMBED_DIM,
                    embedding_size,
                    input_size: cfg.img_size,
                    mask_in_chans: 16,
                },
            )?,
            sam_mask_decoder: MaskDecoder::load(
                &weights.pp("sam_mask_decoder"),
                MaskDecoderSpec::sam1(LITE_MEDSAM_EMBED_DIM),
            )?,
        })
    }

    pub fn device(&self) -> Device {
        self.sam_prompt_encoder.device()
    }

    /// The model-input side (256).
    pub fn image_size(&self) -> usize {
        self.image_encoder.img_size()
    }

    /// The recipe's pre- and post-processing at this model's input size.
    pub fn transform(&self) -> LiteMedSamTransform {
        LiteMedSamTransform::new(self.image_size())
    }

    /// `image_encoder(x)`: `[1, 3, 256, 256]` → `[1, 256, 64, 64]`.
    pub fn encode(&self, image: Tensor<4>) -> Tensor<4> {
        self.image_encoder.forward(image)
    }

    /// Prompt encoder (one box, SAM 1 `boxes=`, no points or mask) and mask
    /// decoder (`multimask_output=False`) on an image embedding. Returns the
    /// low-res logits `[1, 1, 256, 256]` (the decoder upscales the 64×64
    /// embedding 4×; no further resize) and the predicted IoU `[1, 1]`.
    pub fn decode(&self, embedding: Tensor<4>, box_256: [f32; 4]) -> (Tensor<4>, Tensor<2>) {
        let (sparse, dense) = self.sam_prompt_encoder.forward(None, Some(box_256), None);
        let out = self.sam_mask_decoder.forward(
            embedding,
            self.sam_prompt_encoder.dense_pe(),
            sparse,
            dense,
            MaskOutput::Single,
            None,
        );
        (out.masks, out.iou_pred)
    }

    /// The preprocessed input as a `[1, 3, S, S]` tensor on the model's device.
    pub fn input_tensor(&self, input: &LiteMedSamInput) -> Tensor<4> {
        let s = self.image_size();
        Tensor::from_data(
            TensorData::new(input.data.clone(), [1, 3, s, s]),
            &self.device(),
        )
    }

    /// `infer_slice`: segments one grey `h × w` slice prompted with a box
    /// already in 256-space (`box_to_256` of the recipe, or a box derived
    /// from a neighbouring mask). Async because results are read back from
    /// the device (WebGPU only allows asynchronous reads).
    pub async fn segment_gray_256(
        &self,
        gray: &[u8],
        h: usize,
        w: usize,
        box_256: [f32; 4],
    ) -> Result<LiteSlicePrediction, LiteMedSamError> {
        let input = self.transform().prepare_gray(gray, h, w)?;
        self.predict_prepared(&input, (h, w), box_256).await
    }

    /// The 2D recipe on a grey `h × w` slice with a box in slice pixels
    /// (`x0, y0, x1, y1`): the box goes to 256-space as `box_to_256` does.
    pub async fn segment_gray(
        &self,
        gray: &[u8],
        h: usize,
        w: usize,
        box_xyxy: [f32; 4],
    ) -> Result<LiteSlicePrediction, LiteMedSamError> {
        let box_256 = self.transform().box_to_model(box_xyxy, (h, w));
        self.segment_gray_256(gray, h, w, box_256).await
    }

    /// The 2D recipe on an RGB `h × w` image (HWC) with a box in image pixels.
    pub async fn segment_rgb(
        &self,
        rgb: &[u8],
        h: usize,
        w: usize,
        box_xyxy: [f32; 4],
    ) -> Result<LiteSlicePrediction, LiteMedSamError> {
        let input = self.transform().prepare_rgb(rgb, h, w)?;
        let box_256 = self.transform().box_to_model(box_xyxy, (h, w));
        self.predict_prepared(&input, (h, w), box_256).await
    }

    /// Encode, decode and post-process an already preprocessed slice.
    pub async fn predict_prepared(
        &self,
        input: &LiteMedSamInput,
        orig_hw: (usize, usize),
        box_256: [f32; 4],
    ) -> Result<LiteSlicePrediction, LiteMedSamError> {
        self.predict_embedded(&self.embed(input, orig_hw), box_256)
            .await
    }

    /// The image embedding of a preprocessed slice of size `orig_hw` (rows, columns).
    pub fn embed(&self, input: &LiteMedSamInput, orig_hw: (usize, usize)) -> LiteEmbedding {
        LiteEmbedding {
            embedding: self.encode(self.input_tensor(input)),
            resized_hw: (input.resized_h, input.resized_w),
            orig_hw,
        }
    }

    /// Decode and post-process a box (in 256-space) on an embedded slice.
    pub async fn predict_embedded(
        &self,
        embedded: &LiteEmbedding,
        box_256: [f32; 4],
    ) -> Result<LiteSlicePrediction, LiteMedSamError> {
        let (low, iou) = self.decode(embedded.embedding.clone(), box_256);
        let low_res_logits = read_f32(low).await?;
        let iou = read_f32(iou).await?.first().copied().unwrap_or(f32::NAN);
        let logits = self.transform().postprocess_logits(
            &low_res_logits,
            embedded.resized_hw,
            embedded.orig_hw,
        )?;
        Ok(LiteSlicePrediction {
            mask: LiteMedSamTransform::logits_to_mask(&logits),
            logits,
            low_res_logits,
            iou,
            box_256,
        })
    }
}
