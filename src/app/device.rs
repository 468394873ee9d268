//! Native compute devices by name, for the command line (`medseg bench --device wgpu
//! --dtype f16`): burn's CPU backend (`flex`), or its wgpu backend on the adapter wgpu
//! prefers (Vulkan on Linux) in a build with the feature `wgpu`. The browser creates
//! its device in `src/wasm/mod.rs` instead.
//!
//! No autotune on either side: the crate enables burn without its `autotune` feature,
//! natively as in the browser, so the kernels timed are the ones the page runs.

use burn::tensor::{DType, Device, FloatDType};

use crate::app::error::{AppError, AppResult};

/// Which backend the models run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// burn's CPU backend (`flex`).
    Cpu,
    /// burn's wgpu backend (+ fusion): Vulkan natively.
    Wgpu,
}

impl Backend {
    /// `cpu` or `wgpu`.
    pub fn parse(s: &str) -> AppResult<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(AppError::bad_input(format!(
                "device `{other}`: expected `cpu` or `wgpu`"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        }
    }
}

/// The float type of the weights and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    /// `f32` or `f16`.
    pub fn parse(s: &str) -> AppResult<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            other => Err(AppError::bad_input(format!(
                "dtype `{other}`: expected `f32` or `f16`"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}

/// A device ready for tensors, and what it is in words (the wgpu adapter).
pub struct NativeDevice {
    pub device: Device,
    pub backend: Backend,
    pub precision: Precision,
    pub description: String,
}

/// Opens `backend`'s device and sets its default float type to `precision` (every
/// tensor the models create then has it: weights at load, activations after).
/// Call once per backend and process: burn fixes a device's float type at its first
/// tensor.
pub fn open_device(backend: Backend, precision: Precision) -> AppResult<NativeDevice> {
    let (mut device, description) = match backend {
        Backend::Cpu => (
            crate::cpu_device(),
            format!("cpu (burn flex, {} threads)", rayon::current_num_threads()),
        ),
        Backend::Wgpu => open_wgpu()?,
    };
    if precision == Precision::F16 {
        if !device.supports_dtype(DType::F16) {
            return Err(AppError::engine(format!(
                "{description} has no f16 arithmetic (burn's supports_dtype(F16) is false)"
            )));
        }
        device
            .configure(FloatDType::F16)
            .map_err(|e| AppError::engine(format!("could not set f16 on {description}: {e:?}")))?;
    }
    Ok(NativeDevice {
        device,
        backend,
        precision,
        description,
    })
}

#[cfg(feature = "wgpu")]
fn open_wgpu() -> AppResult<(Device, String)> {
    let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|e| {
        AppError::engine(format!(
            "no wgpu adapter ({e}); natively wgpu needs a Vulkan driver (e.g. \
             /usr/share/vulkan/icd.d/*.json and libvulkan.so.1)"
        ))
    })?;
    let info = setup.adapter.get_info();
    let description = format!(
        "wgpu: {} ({:?}, {:?}, driver {} {})",
        info.name, info.backend, info.device_type, info.driver, info.driver_info
    );
    Ok((device, description))
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> AppResult<(Device, String)> {
    Err(AppError::bad_input(
        "this medseg was built without the `wgpu` feature: build it with \
         `cargo build --release --features wgpu --bin medseg` to run on wgpu",
    ))
}
