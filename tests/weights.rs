//! Strict weight loading: the medsam2-t512 configuration expects exactly the
//! keys and shapes of an official MedSAM2 checkpoint, and a file with a
//! missing key, an extra key or a wrong shape is rejected by name.

mod common;

use std::collections::BTreeMap;

use common::{read_store, sam2_small_dir, shared};
use medseg::model::config::Sam2Preset;
use medseg::model::{Architecture, LoadError, detect_architecture, load_sam2, sam2_expected_keys};
use medseg::weights::{HostTensor, TensorStore, WeightError};

fn official_medsam2_keys() -> BTreeMap<String, Vec<usize>> {
    let path = shared().join("fixtures/medsam2-t512/state_dict_keys.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("state_dict_keys.json")).expect("json");
    json["tensors"]
        .as_object()
        .expect("tensors object")
        .iter()
        .map(|(k, v)| {
            let shape = v["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            (k.clone(), shape)
        })
        .collect()
}

#[test]
fn medsam2_config_expects_exactly_the_official_keys() {
    let cfg = Sam2Preset::MedSam2T512.config();
    let requested = sam2_expected_keys(&cfg, &medseg::cpu_device()).expect("recording");
    let ours: BTreeMap<String, Vec<usize>> = requested.iter().cloned().collect();
    assert_eq!(ours.len(), requested.len(), "a key was requested twice");
    let official = official_medsam2_keys();
    assert_eq!(official.len(), 471);
    let missing: Vec<_> = official.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<_> = ours.keys().filter(|k| !official.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not requested: {missing:?}\nnot in checkpoint: {extra:?}"
    );
    for (k, shape) in &official {
        assert_eq!(&ours[k], shape, "shape of {k}");
    }
    println!(
        "medsam2-t512 expects {} tensors, identical to the official checkpoint",
        ours.len()
    );
}

fn fixture_store() -> (TensorStore, Box<medseg::model::config::Sam2Config>) {
    let store = read_store(&sam2_small_dir().join("weights.safetensors"));
    let Architecture::Sam2(cfg) = detect_architecture(&store, None).expect("architecture") else {
        panic!("SAM 2 weights expected")
    };
    (store, cfg)
}

fn with_change(edit: impl FnOnce(&mut BTreeMap<String, HostTensor>)) -> TensorStore {
    let (store, _) = fixture_store();
    let metadata = store.metadata.clone();
    let mut tensors = store.into_tensors();
    edit(&mut tensors);
    TensorStore::new(tensors, metadata)
}

fn load_err(store: TensorStore) -> WeightError {
    let (_, cfg) = fixture_store();
    match load_sam2(store, &cfg, &medseg::cpu_device()) {
        Err(LoadError::Weights(e)) => e,
        Err(other) => panic!("expected a weights error, got {other}"),
        Ok(_) => panic!("a damaged checkpoint loaded"),
    }
}

#[test]
fn missing_key_is_named() {
    let key = "sam_mask_decoder.iou_token.weight";
    let err = load_err(with_change(|t| {
        t.remove(key);
    }));
    assert!(
        matches!(&err, WeightError::Missing { key: k, .. } if k == key),
        "{err}"
    );
    assert!(err.to_string().contains(key), "{err}");
}

#[test]
fn extra_key_is_named() {
    let err = load_err(with_change(|t| {
        t.insert(
            "memory_encoder.surprise.weight".into(),
            HostTensor::new(vec![2], vec![0.0, 1.0]),
        );
    }));
    assert_eq!(
        err,
        WeightError::Unused {
            keys: vec!["memory_encoder.surprise.weight".into()]
        }
    );
    assert!(
        err.to_string().contains("memory_encoder.surprise.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let key = "no_obj_ptr";
    let err = load_err(with_change(|t| {
        t.insert(key.into(), HostTensor::new(vec![1, 7], vec![0.0; 7]));
    }));
    match &err {
        WeightError::ShapeMismatch {
            key: k,
            expected,
            found,
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, &vec![1, 32]);
            assert_eq!(found, &vec![1, 7]);
        }
        other => panic!("expected a shape mismatch, got {other}"),
    }
    assert!(
        err.to_string().contains("[1, 7]") && err.to_string().contains("[1, 32]"),
        "{err}"
    );
}

#[test]
fn truncated_and_empty_files_are_rejected() {
    let bytes = std::fs::read(sam2_small_dir().join("weights.safetensors")).expect("weights");
    let err = TensorStore::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(err.to_string().contains("safetensors"), "{err}");
    let err = TensorStore::from_bytes(&[]).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}
