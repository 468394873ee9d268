//! PyTorch checkpoint reader (in progress).
use super::{TensorStore, WeightError};

pub fn read_checkpoint(_bytes: &[u8]) -> Result<TensorStore, WeightError> {
    Err(WeightError::Format { format: "PyTorch checkpoint", reason: "reader not written yet".into() })
}
