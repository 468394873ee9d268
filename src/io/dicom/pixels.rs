//! A DICOM file's frames decoded to values.
//!
//! TODO(helper): implementation pending.

use super::{DicomError, DicomFile};

/// The decoded frames of one file, frame-major, each `rows × columns`.
#[derive(Clone, Debug, PartialEq)]
pub enum Samples {
    /// One value a pixel: the stored value (MONOCHROME1 inverted), after the rescale.
    Grey(Vec<f32>),
    /// Three bytes a pixel, RGB (YBR, palette colour and 16-bit colour brought to 8-bit RGB).
    Rgb(Vec<u8>),
}

/// Decoded frames.
#[derive(Clone, Debug, PartialEq)]
pub struct Frames {
    pub rows: usize,
    pub columns: usize,
    pub frames: usize,
    pub samples: Samples,
}

/// Decodes every frame of `file`.
pub fn decode(file: &DicomFile) -> Result<Frames, DicomError> {
    let _ = file;
    Err(DicomError::Unsupported("not yet".into()))
}
