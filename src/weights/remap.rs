//! The key-remap table: how checkpoint key names map onto MedSeg's module tree.
//!
//! MedSeg's modules are built under the official SAM 2.1 names (the keys of
//! `sam2/modeling/sam2_base.py`'s state_dict), so MedSAM2 and SAM 2.1
//! checkpoints load with no renaming. Other families are renamed onto that
//! tree here, and only here, so the shared prompt encoder and mask decoder are
//! loaded by one piece of code whatever file they come from.
//!
//! | family     | keys starting with                      | rename                        | why                                        |
//! |------------|-----------------------------------------|-------------------------------|--------------------------------------------|
//! | LiteMedSAM | `prompt_encoder.`                       | → `sam_prompt_encoder.`       | SAM 1 naming of the shared module          |
//! | LiteMedSAM | `mask_decoder.`                         | → `sam_mask_decoder.`         | SAM 1 naming of the shared module          |
//! | LiteMedSAM | `sam_mask_decoder.transformer.layers.`  | `.mlp.lin1.` → `.mlp.layers.0.` | SAM 1 `MLPBlock(lin1, lin2)` = SAM 2 `MLP` |
//! | LiteMedSAM | `sam_mask_decoder.transformer.layers.`  | `.mlp.lin2.` → `.mlp.layers.1.` | (same shapes, same ReLU)                   |
//! | any        | `*.num_batches_tracked`                 | dropped                       | BatchNorm training counter, unused in eval |
//!
//! Rules apply in order, each to the key as the previous rules left it. After
//! renaming, loading is strict: `WeightLoader::finish` rejects any key no
//! layer consumed, and a layer asking for a key that is absent fails.

use super::TensorStore;

/// For keys starting with `scope`, the first `from` becomes `to`.
#[derive(Clone, Copy, Debug)]
pub struct Rename {
    pub scope: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// SAM 2.1 / MedSAM2 checkpoints already use the module-tree names.
pub const SAM2_RULES: &[Rename] = &[];

/// LiteMedSAM (`MedSAM_Lite` in the official code) onto the shared SAM heads.
pub const LITE_MEDSAM_RULES: &[Rename] = &[
    Rename {
        scope: "prompt_encoder.",
        from: "prompt_encoder.",
        to: "sam_prompt_encoder.",
    },
    Rename {
        scope: "mask_decoder.",
        from: "mask_decoder.",
        to: "sam_mask_decoder.",
    },
    Rename {
        scope: "sam_mask_decoder.transformer.layers.",
        from: ".mlp.lin1.",
        to: ".mlp.layers.0.",
    },
    Rename {
        scope: "sam_mask_decoder.transformer.layers.",
        from: ".mlp.lin2.",
        to: ".mlp.layers.1.",
    },
];

/// Training-only buffers that carry no inference state; dropped before the
/// strict load so they do not count as unused.
pub const TRAINING_ONLY_SUFFIXES: &[&str] = &[".num_batches_tracked"];

pub fn is_training_only(key: &str) -> bool {
    TRAINING_ONLY_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// Applies `rules` in order to one key.
pub fn apply(rules: &[Rename], key: &str) -> String {
    let mut key = key.to_string();
    for r in rules {
        if key.starts_with(r.scope) {
            key = key.replacen(r.from, r.to, 1);
        }
    }
    key
}

/// Drops training-only tensors and renames the rest with `rules`.
pub fn remap_store(store: TensorStore, rules: &[Rename]) -> TensorStore {
    let metadata = store.metadata.clone();
    let tensors = store
        .into_tensors()
        .into_iter()
        .filter(|(k, _)| !is_training_only(k))
        .map(|(k, v)| (apply(rules, &k), v))
        .collect();
    TensorStore::new(tensors, metadata)
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
            apply(
                LITE_MEDSAM_RULES,
                "mask_decoder.transformer.layers.1.mlp.lin2.bias"
            ),
            "sam_mask_decoder.transformer.layers.1.mlp.layers.1.bias"
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
