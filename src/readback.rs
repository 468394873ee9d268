//! Reading tensors back to the host. Always asynchronous: WebGPU in the
//! browser only allows async buffer maps (a synchronous read panics there);
//! native callers block on the future (`pollster`).

use burn::tensor::{DType, Tensor};

/// Why a tensor could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("could not read a result back from the compute device: {0}")]
pub struct ReadbackError(pub String);

/// The tensor's values as f32, row-major (converted from a reduced float type, e.g. a
/// model run in f16).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ReadbackError> {
    let mut data = t
        .into_data_async()
        .await
        .map_err(|e| ReadbackError(format!("{e:?}")))?;
    if data.dtype() != DType::F32 {
        data = data.convert::<f32>();
    }
    data.try_into_vec::<f32>()
        .map_err(|e| ReadbackError(format!("{e:?}")))
}
