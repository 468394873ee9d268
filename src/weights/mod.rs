//! Weight loading: host-side tensor stores read from checkpoint files, and a
//! path-scoped view (`WeightPath`) that layers take their tensors from.
//!
//! Loading is strict. Every layer asks for its tensors by official name and
//! shape; a missing key or a wrong shape fails with the key, the expected and
//! the found shape, and `TensorStore::finish` fails on any tensor that no layer
//! consumed. Names that differ between a checkpoint family and our module tree
//! are translated by the one table in [`remap`].

pub mod pytorch;
pub mod remap;
pub mod safetensors_io;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use burn::tensor::{Device, Tensor, TensorData};

/// A tensor held on the host in f32, as read from a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Why a set of weights could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WeightError {
    #[error("weights file is missing tensor `{key}` (expected shape {expected:?})")]
    Missing { key: String, expected: Vec<usize> },
    #[error("tensor `{key}` has shape {found:?} but this model expects {expected:?}")]
    ShapeMismatch {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("weights file has {} tensor(s) this model does not use: {}", keys.len(), preview(keys))]
    Unused { keys: Vec<String> },
    #[error("tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDtype { key: String, dtype: String },
    #[error("not a valid {format} file: {reason}")]
    Format {
        format: &'static str,
        reason: String,
    },
    #[error("weights metadata: {0}")]
    Metadata(String),
    #[error(
        "not enough memory: {what} needs {bytes} bytes{}",
        if cfg!(target_arch = "wasm32") { " in the browser (the page holds the model, the file and the images in 4 GB)" } else { "" }
    )]
    OutOfMemory { what: String, bytes: u64 },
}

/// An empty buffer with room for `len` values of tensor `key`, reserved whole: a model
/// that does not fit is [`WeightError::OutOfMemory`], not an abort (natively, or a dead
/// worker in the page).
pub(crate) fn f32_buffer(key: &str, len: usize) -> Result<Vec<f32>, WeightError> {
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| WeightError::OutOfMemory {
            what: format!("tensor `{key}`"),
            bytes: len as u64 * 4,
        })?;
    Ok(out)
}

/// `values` (`len` of them) in a buffer from [`f32_buffer`].
pub(crate) fn collect_f32(
    key: &str,
    len: usize,
    values: impl Iterator<Item = f32>,
) -> Result<Vec<f32>, WeightError> {
    let mut out = f32_buffer(key, len)?;
    out.extend(values.take(len));
    Ok(out)
}

fn preview(keys: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    s
}

/// Named tensors from one checkpoint plus its string metadata.
#[derive(Debug, Default)]
pub struct TensorStore {
    tensors: BTreeMap<String, HostTensor>,
    pub metadata: BTreeMap<String, String>,
}

impl TensorStore {
    pub fn new(tensors: BTreeMap<String, HostTensor>, metadata: BTreeMap<String, String>) -> Self {
        Self { tensors, metadata }
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&HostTensor> {
        self.tensors.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &HostTensor)> {
        self.tensors.iter()
    }

    pub fn into_tensors(self) -> BTreeMap<String, HostTensor> {
        self.tensors
    }

    /// Parses a checkpoint from bytes: safetensors or a PyTorch zip checkpoint,
    /// told apart by their first bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeightError> {
        if bytes.is_empty() {
            return Err(WeightError::Format {
                format: "weights",
                reason: "the file is empty".into(),
            });
        }
        if bytes.starts_with(b"PK\x03\x04") {
            pytorch::read_checkpoint(bytes)
        } else {
            safetensors_io::read(bytes)
        }
    }
}

/// Where a loader's requests go: a real checkpoint, or a recorder that lists
/// the (key, shape) pairs a configuration needs and hands out zeros.
enum Source {
    Store {
        store: TensorStore,
        used: BTreeSet<String>,
    },
    Recorder {
        requested: Vec<(String, Vec<usize>)>,
    },
}

/// Shared loader state behind every [`WeightPath`].
pub struct WeightLoader {
    source: RefCell<Source>,
    device: Device,
}

impl WeightLoader {
    pub fn new(store: TensorStore, device: &Device) -> Self {
        Self {
            source: RefCell::new(Source::Store {
                store,
                used: BTreeSet::new(),
            }),
            device: device.clone(),
        }
    }

    /// A loader that records every requested key and shape and returns zeros.
    pub fn recorder(device: &Device) -> Self {
        Self {
            source: RefCell::new(Source::Recorder {
                requested: Vec::new(),
            }),
            device: device.clone(),
        }
    }

    pub fn root(&self) -> WeightPath<'_> {
        WeightPath {
            loader: self,
            prefix: String::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Takes a host tensor by full key, checking its shape.
    fn take_host(&self, key: &str, expected: &[usize]) -> Result<HostTensor, WeightError> {
        match &mut *self.source.borrow_mut() {
            Source::Store { store, used } => {
                let t = store.tensors.get(key).ok_or_else(|| WeightError::Missing {
                    key: key.to_string(),
                    expected: expected.to_vec(),
                })?;
                if t.shape != expected {
                    return Err(WeightError::ShapeMismatch {
                        key: key.to_string(),
                        expected: expected.to_vec(),
                        found: t.shape.clone(),
                    });
                }
                used.insert(key.to_string());
                Ok(t.clone())
            }
            Source::Recorder { requested } => {
                requested.push((key.to_string(), expected.to_vec()));
                Ok(HostTensor::new(
                    expected.to_vec(),
                    vec![0.0; expected.iter().product()],
                ))
            }
        }
    }

    /// Ends loading: fails if any tensor of the checkpoint was never consumed.
    pub fn finish(self) -> Result<(), WeightError> {
        match self.source.into_inner() {
            Source::Store { store, used } => {
                let unused: Vec<String> = store
                    .tensors
                    .into_keys()
                    .filter(|k| !used.contains(k))
                    .collect();
                if unused.is_empty() {
                    Ok(())
                } else {
                    Err(WeightError::Unused { keys: unused })
                }
            }
            Source::Recorder { .. } => Ok(()),
        }
    }

    /// The (key, shape) list a recorder collected, in request order.
    pub fn into_requested(self) -> Vec<(String, Vec<usize>)> {
        match self.source.into_inner() {
            Source::Store { .. } => Vec::new(),
            Source::Recorder { requested } => requested,
        }
    }
}

/// A prefix-scoped view of a [`WeightLoader`], like a module path in PyTorch.
#[derive(Clone)]
pub struct WeightPath<'a> {
    loader: &'a WeightLoader,
    prefix: String,
}

impl<'a> WeightPath<'a> {
    /// The sub-path `prefix.name`.
    pub fn pp(&self, name: impl std::fmt::Display) -> WeightPath<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        };
        WeightPath {
            loader: self.loader,
            prefix,
        }
    }

    pub fn device(&self) -> &Device {
        &self.loader.device
    }

    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// The tensor `prefix.name`, which must have exactly `shape`.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, WeightError> {
        Ok(self.host(name, &shape)?.to_tensor(&self.loader.device))
    }

    /// The tensor `prefix.name` on the host, for weights that are transformed
    /// once at load time (e.g. interpolated position embeddings).
    pub fn host(&self, name: &str, shape: &[usize]) -> Result<HostTensor, WeightError> {
        self.loader.take_host(&self.key(name), shape)
    }
}
