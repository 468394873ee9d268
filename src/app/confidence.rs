//! When a mask made from a prompt deserves a "low confidence" flag: the model's own
//! opinion of it, so that a box over empty space does not pass as a confident mask.
//!
//! SAM 2 and LiteMedSAM predict the IoU of their mask with the true one; SAM 2 also
//! scores whether an object is there at all (its logit is below 0 when not: the video
//! predictor then outputs no mask). The IoU threshold was measured with LiteMedSAM on the
//! real CT lesion volume (`../shared/data/ct-lesion`, slice 7): the lesion's box predicted
//! 0.92, a box over the body 0.79, one over bone 0.77, two boxes over the air outside
//! the body 0.53 and 0.63 (masks of 991 and 2177 pixels of nothing), a 4-pixel box 0.18.

use serde::Serialize;

/// Predicted IoU below which a mask is flagged.
pub const LOW_PREDICTED_IOU: f32 = 0.7;

/// Why a mask is flagged, if it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LowConfidence {
    /// What a user reads: "the model predicts an IoU of 0.53 for this mask".
    pub reason: String,
}

/// The flag for a mask of `area` pixels, predicted IoU `iou` and SAM 2 object score logit
/// `object_score` (each `NaN` where the model gives none).
pub fn judge(iou: f32, object_score: f32, area: usize) -> Option<LowConfidence> {
    let reason = if area == 0 {
        "the mask is empty: the model found no structure in the prompt".to_string()
    } else if object_score < 0.0 {
        format!("the model scores no object here (object score {object_score:.2} < 0)")
    } else if iou < LOW_PREDICTED_IOU {
        format!("the model predicts an IoU of {iou:.2} for this mask (below {LOW_PREDICTED_IOU})")
    } else {
        return None;
    };
    Some(LowConfidence { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_empty_absent_and_doubtful_masks_only() {
        assert_eq!(judge(0.92, f32::NAN, 2048), None);
        assert_eq!(
            judge(f32::NAN, f32::NAN, 10),
            None,
            "no prediction: no flag"
        );
        assert_eq!(judge(0.7, 0.5, 10), None);
        assert!(judge(0.95, f32::NAN, 0).unwrap().reason.contains("empty"));
        assert!(judge(0.95, -1.5, 10).unwrap().reason.contains("-1.50"));
        assert!(judge(0.53, f32::NAN, 991).unwrap().reason.contains("0.53"));
    }
}
