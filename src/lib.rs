//! MedSeg: MedSAM2 (SAM 2.1) and LiteMedSAM on burn, for the browser (wasm +
//! WebGPU) and the command line.

pub mod app;
pub mod io;
pub mod metrics;
pub mod model;
pub mod predictor;
pub mod preprocess;
pub mod readback;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
pub mod session;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod weights;

/// The compute device: burn's CPU backend (`flex`) natively; WebGPU in the browser.
pub use burn::tensor::Device;

/// The native CPU device used by the CLI and the tests.
pub fn cpu_device() -> Device {
    Device::flex()
}
