//! Single-image prediction as `SAM2ImagePredictor` does it: preprocess, encode
//! once, decode any number of prompts, upsample the logits to the image.

use burn::tensor::{Device, Tensor, TensorData};

use crate::io::image::RgbImage;
use crate::model::sam::mask_decoder::MaskOutput;
use crate::model::sam::prompt_encoder::{PointLabel, PointPrompt};
use crate::model::sam2::{ImageFeatures, Sam2Model};
use crate::preprocess::{PreprocessError, Sam2ImageTransform};
use crate::readback::read_f32;

/// A prompt in original-image pixel coordinates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImagePrompt {
    pub box_xyxy: Option<[f32; 4]>,
    /// Clicks with their labels (`Positive` / `Negative`).
    pub points: Vec<([f32; 2], PointLabel)>,
}

impl ImagePrompt {
    /// A box alone, `[x0, y0, x1, y1]`.
    pub fn boxed(box_xyxy: [f32; 4]) -> Self {
        Self {
            box_xyxy: Some(box_xyxy),
            points: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.box_xyxy.is_none() && self.points.is_empty()
    }
}

/// One predicted mask at the original image size.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub width: usize,
    pub height: usize,
    /// Full-resolution mask logits, row-major (object where > 0).
    pub logits: Vec<f32>,
    /// Low-resolution logits clamped to ±32, as the predictor returns them.
    pub low_res: Vec<f32>,
    pub low_res_side: usize,
    pub iou: f32,
    pub object_score: f32,
}

impl Prediction {
    pub fn mask(&self) -> Vec<u8> {
        self.logits.iter().map(|&l| u8::from(l > 0.0)).collect()
    }
}

/// Why a prediction could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error("no prompt: give a box or at least one point")]
    NoPrompt,
    #[error(transparent)]
    Readback(#[from] crate::readback::ReadbackError),
}

/// An image encoded by SAM 2, ready for prompts.
#[derive(Clone, Debug)]
pub struct Sam2EncodedImage {
    pub features: ImageFeatures,
    pub orig_hw: (usize, usize),
}

/// `SAM2ImagePredictor` over a loaded [`Sam2Model`].
pub struct Sam2ImagePredictor<'a> {
    pub model: &'a Sam2Model,
    transform: Sam2ImageTransform,
}

impl<'a> Sam2ImagePredictor<'a> {
    pub fn new(model: &'a Sam2Model) -> Self {
        Self {
            model,
            transform: Sam2ImageTransform::new(model.image_size()),
        }
    }

    fn device(&self) -> Device {
        self.model.no_mem_embed.val().device()
    }

    /// `set_image`: preprocess and run the image encoder.
    pub fn set_image(&self, image: &RgbImage) -> Result<Sam2EncodedImage, PredictError> {
        let s = self.model.image_size();
        let input = self
            .transform
            .prepare(&image.data, image.height, image.width)?;
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, s, s]), &self.device());
        let backbone = self.model.forward_image(x);
        Ok(Sam2EncodedImage {
            features: self.model.image_features(&backbone),
            orig_hw: (image.height, image.width),
        })
    }

    /// The prompt in model-input coordinates, the box first as two labelled
    /// corners (`_prep_prompts` + `_predict`).
    pub fn model_prompt(&self, prompt: &ImagePrompt, orig_hw: (usize, usize)) -> PointPrompt {
        let mut p = PointPrompt::default();
        if let Some(b) = prompt.box_xyxy {
            let [x0, y0, x1, y1] = self.transform.box_to_model(b, orig_hw);
            p.coords.extend([[x0, y0], [x1, y1]]);
            p.labels
                .extend([PointLabel::BoxTopLeft, PointLabel::BoxBottomRight]);
        }
        for (xy, label) in &prompt.points {
            p.coords.push(self.transform.point_to_model(*xy, orig_hw));
            p.labels.push(*label);
        }
        p
    }

    /// `predict(..., multimask_output=False, return_logits=True)`.
    pub async fn predict(
        &self,
        image: &Sam2EncodedImage,
        prompt: &ImagePrompt,
    ) -> Result<Prediction, PredictError> {
        if prompt.is_empty() {
            return Err(PredictError::NoPrompt);
        }
        let points = self.model_prompt(prompt, image.orig_hw);
        let pe = &self.model.sam_prompt_encoder;
        let (sparse, dense) = pe.forward(Some(&points), None, None);
        let [hr0, hr1] = &image.features.high_res;
        let out = self.model.sam_mask_decoder.forward(
            image.features.embed.clone(),
            pe.dense_pe(),
            sparse,
            dense,
            MaskOutput::Single,
            Some([hr0, hr1]),
        );
        let [_, _, lh, lw] = out.masks.dims();
        let low = read_f32(out.masks).await?;
        let (h, w) = image.orig_hw;
        let logits = self.transform.postprocess_logits(&low, lh, lw, h, w)?;
        Ok(Prediction {
            width: w,
            height: h,
            logits,
            low_res: low.iter().map(|v| v.clamp(-32.0, 32.0)).collect(),
            low_res_side: lh,
            iou: read_f32(out.iou_pred)
                .await?
                .first()
                .copied()
                .unwrap_or(f32::NAN),
            object_score: read_f32(out.object_score_logits)
                .await?
                .first()
                .copied()
                .unwrap_or(f32::NAN),
        })
    }
}
