//! Image encoder backbones: the Hiera trunk and the FPN neck.

pub mod hiera;
pub mod image_encoder;
