//! DICOM: Part 10 files read from bytes (no file system: this runs in the browser),
//! their frames decoded to values ([`pixels`]), files grouped into series and a series
//! made into a volume, clip or image ([`series`]), and masks written back as a DICOM
//! Segmentation ([`seg`]).
//!
//! dicom-rs (`dicom-object`, `dicom-pixeldata`) parses the files and decodes the
//! encapsulated transfer syntaxes with pure-Rust codecs; what it leaves to its caller
//! (bits allocated 1 and 32, planar configuration, palette colour, MONOCHROME1, the
//! modality rescale) is done in [`pixels`], so that every value is checked against the
//! header before anything is allocated.

mod lengths;
pub mod meta;
pub mod pixels;
pub mod seg;
pub mod series;
pub mod source;

#[cfg(target_arch = "wasm32")]
mod wasm_libc;

use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use thiserror::Error;

pub use meta::Meta;
pub use source::{DicomSource, FrameRef};

/// Errors from reading DICOM. Each names what is wrong in words a user can act on.
#[derive(Debug, Error)]
pub enum DicomError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "not a DICOM file (no \"DICM\" at byte 128: a DICOM Part 10 file starts with a \
         128-byte preamble and \"DICM\")"
    )]
    NotPart10,
    #[error("truncated or corrupt DICOM file: {0}")]
    Parse(String),
    #[error("the DICOM file has no {0}")]
    Missing(&'static str),
    #[error("the DICOM file has no pixel data (it is a {0}, not an image)")]
    NoPixelData(String),
    #[error("bad DICOM attribute {name}: {why}")]
    BadAttribute { name: &'static str, why: String },
    #[error("unsupported transfer syntax {uid} ({name}): MedSeg cannot decode it")]
    UnsupportedTransferSyntax { uid: String, name: String },
    #[error("unsupported image: {0}")]
    Unsupported(String),
    #[error("could not decode frame {frame}: {why}")]
    Decode { frame: usize, why: String },
    #[error("the series cannot be opened as one: {0}")]
    Inconsistent(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("no masks to export: every mask is empty")]
    NoMasks,
    #[error("segment {segment} has {got} masks, the document has {expected} frames")]
    MaskFrames {
        segment: usize,
        got: usize,
        expected: usize,
    },
    #[error(
        "segment {segment}, frame {frame}: the mask has {got} pixels, the image {rows}×{columns}"
    )]
    MaskSize {
        segment: usize,
        frame: usize,
        got: usize,
        rows: usize,
        columns: usize,
    },
    #[error("could not write the DICOM file: {0}")]
    Write(String),
}

/// One DICOM file, parsed: what MedSeg reads from its header ([`Meta`]) and the data
/// set, whose frames [`pixels::decode`] decodes.
pub struct DicomFile {
    pub meta: Meta,
    pub(crate) object: DefaultDicomObject,
}

impl std::fmt::Debug for DicomFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomFile")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Whether `bytes` start like a DICOM Part 10 file ("DICM" after the 128-byte preamble).
pub fn is_part10(bytes: &[u8]) -> bool {
    bytes.len() >= 132 && &bytes[128..132] == b"DICM"
}

impl DicomFile {
    /// Parses a Part 10 file (preamble, file meta information, data set).
    pub fn read(bytes: &[u8]) -> Result<Self, DicomError> {
        if bytes.is_empty() {
            return Err(DicomError::Empty);
        }
        if !is_part10(bytes) {
            return Err(DicomError::NotPart10);
        }
        lengths::check_declared_lengths(bytes)?;
        let object = OpenFileOptions::new()
            .read_preamble(ReadPreamble::Never)
            .from_reader(&bytes[128..])
            .map_err(|e| DicomError::Parse(error_chain(&e)))?;
        let meta = Meta::read(&object)?;
        Ok(Self { meta, object })
    }
}

/// An error and its sources as one line ("a: b: c"): dicom-rs's top-level messages
/// ("Could not read data set token") only say where, their sources say what.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}
