//! The key-remap table: how checkpoint key names map onto MedSeg's module tree.
//!
//! MedSeg's modules are built under the official SAM 2.1 names (the keys of
//! `sam2/modeling/sam2_base.py`'s state_dict), so MedSAM2 and SAM 2.1
//! checkpoints load with no renaming. Other families are renamed onto that
//! tree here, and only here, so the shared prompt encoder and mask decoder are
//! loaded by one piece of code whatever file they come from.
//!
//! | family      | checkpoint prefix   | module-tree prefix     | why                                   |
//! |-------------|---------------------|------------------------|---------------------------------------|
//! | LiteMedSAM  | `prompt_encoder.`   | `sam_prompt_encoder.`  | SAM 1 naming of the shared module     |
//! | LiteMedSAM  | `mask_decoder.`     | `sam_mask_decoder.`    | SAM 1 naming of the shared module     |
//! | any         | `*.num_batches_tracked` | (dropped)          | BatchNorm training counter, unused in eval |
//!
//! After renaming, loading is strict: `WeightLoader::finish` rejects any key
//! no layer consumed, and a layer asking for a key that is absent fails.

/// One rename: keys starting with `from` get `to` instead of that prefix.
#[derive(Clone, Copy, Debug)]
pub struct PrefixRule {
    pub from: &'static str,
    pub to: &'static str,
}

/// SAM 2.1 / MedSAM2 checkpoints already use the module-tree names.
pub const SAM2_RULES: &[PrefixRule] = &[];

/// LiteMedSAM (`MedSAM_Lite` in the official code): SAM 1 names for the
/// shared prompt encoder and mask decoder.
pub const LITE_MEDSAM_RULES: &[PrefixRule] = &[
    PrefixRule {
        from: "prompt_encoder.",
        to: "sam_prompt_encoder.",
    },
    PrefixRule {
        from: "mask_decoder.",
        to: "sam_mask_decoder.",
    },
];

/// Training-only buffers that carry no inference state; dropped before the
/// strict load so they do not count as unused.
pub const TRAINING_ONLY_SUFFIXES: &[&str] = &[".num_batches_tracked"];

pub fn is_training_only(key: &str) -> bool {
    TRAINING_ONLY_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// Applies the first matching rule.
pub fn apply(rules: &[PrefixRule], key: &str) -> String {
    for r in rules {
        if let Some(rest) = key.strip_prefix(r.from) {
            return format!("{}{}", r.to, rest);
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite_names_map_onto_the_shared_modules() {
        assert_eq!(
            apply(LITE_MEDSAM_RULES, "mask_decoder.iou_token.weight"),
            "sam_mask_decoder.iou_token.weight"
        );
        assert_eq!(
            apply(LITE_MEDSAM_RULES, "image_encoder.neck.0.weight"),
            "image_encoder.neck.0.weight"
        );
        assert!(is_training_only(
            "image_encoder.layers.0.bn.num_batches_tracked"
        ));
        assert!(!is_training_only("image_encoder.layers.0.bn.running_mean"));
    }
}
