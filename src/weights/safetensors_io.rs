//! safetensors reading (f32 / f16 / bf16 and integer tensors, widened to f32)
//! and writing (f32 or f16), with string metadata.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::{HostTensor, TensorStore, WeightError, collect_f32};

fn format_err(reason: impl ToString) -> WeightError {
    WeightError::Format {
        format: "safetensors",
        reason: reason.to_string(),
    }
}

/// Decodes little-endian tensor bytes of `dtype` into f32.
pub fn decode_to_f32(key: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, WeightError> {
    fn chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        b.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
    }
    let n = |size: usize| bytes.len() / size;
    match dtype {
        Dtype::F32 => collect_f32(key, n(4), chunks::<4>(bytes).map(f32::from_le_bytes)),
        Dtype::F16 => collect_f32(
            key,
            n(2),
            chunks::<2>(bytes).map(|c| half::f16::from_le_bytes(c).to_f32()),
        ),
        Dtype::BF16 => collect_f32(
            key,
            n(2),
            chunks::<2>(bytes).map(|c| half::bf16::from_le_bytes(c).to_f32()),
        ),
        Dtype::F64 => collect_f32(
            key,
            n(8),
            chunks::<8>(bytes).map(|c| f64::from_le_bytes(c) as f32),
        ),
        Dtype::I64 => collect_f32(
            key,
            n(8),
            chunks::<8>(bytes).map(|c| i64::from_le_bytes(c) as f32),
        ),
        Dtype::I32 => collect_f32(
            key,
            n(4),
            chunks::<4>(bytes).map(|c| i32::from_le_bytes(c) as f32),
        ),
        Dtype::U8 => collect_f32(key, n(1), bytes.iter().map(|&b| b as f32)),
        Dtype::BOOL => collect_f32(key, n(1), bytes.iter().map(|&b| (b != 0) as u8 as f32)),
        other => Err(WeightError::UnsupportedDtype {
            key: key.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// Reads every tensor of a safetensors buffer.
pub fn read(bytes: &[u8]) -> Result<TensorStore, WeightError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| match e {
        // The crate counts a tensor's size in bits, in `usize`: in the browser (32 bits)
        // a real tensor of 512 MB already overflows, and its message says nothing of it.
        SafeTensorError::ValidationOverflow => format_err(format!(
            "a tensor's size (shape × element size, counted in bits) overflows {} bits{}",
            usize::BITS,
            if cfg!(target_arch = "wasm32") {
                ": in the browser a tensor may hold at most 512 MB"
            } else {
                ""
            }
        )),
        e => format_err(e),
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format_err)?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = decode_to_f32(name, view.dtype(), view.data())?;
        tensors.insert(
            name.to_string(),
            HostTensor::new(view.shape().to_vec(), data),
        );
    }
    Ok(TensorStore::new(tensors, metadata))
}

/// Storage precision for [`write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredPrecision {
    F32,
    F16,
}

struct OwnedView {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &OwnedView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Serialises tensors (sorted by key) with metadata.
pub fn write(
    tensors: &BTreeMap<String, HostTensor>,
    metadata: &BTreeMap<String, String>,
    precision: StoredPrecision,
) -> Result<Vec<u8>, WeightError> {
    let views: Vec<(String, OwnedView)> = tensors
        .iter()
        .map(|(k, t)| {
            let (dtype, bytes) = match precision {
                StoredPrecision::F32 => (
                    Dtype::F32,
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                StoredPrecision::F16 => (
                    Dtype::F16,
                    t.data
                        .iter()
                        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
            };
            (
                k.clone(),
                OwnedView {
                    dtype,
                    shape: t.shape.clone(),
                    bytes,
                },
            )
        })
        .collect();
    let meta: std::collections::HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    safetensors::serialize(views.iter().map(|(k, v)| (k.as_str(), v)), Some(meta))
        .map_err(format_err)
}
