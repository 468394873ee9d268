//! A DICOM file's frames decoded to values.
//!
//! dicom-rs decodes the compressed frames (JPEG, JPEG 2000), pure_jpegls the one-component
//! JPEG-LS frames (lossless and near-lossless); everything else is done here, checked
//! against the header first: the native layouts (bits allocated 1/8/16/32, either
//! byte order, planar configuration, YBR_FULL_422's subsampled buffer), RLE Lossless (any
//! bits allocated), which fragments make a frame, and the sample → value steps.
//! The conventions follow pydicom 3's `pixel_array` (the oracle of `tests/dicom_decode.rs`):
//!
//! - Grey: the stored value (masked to Bits Stored, sign-extended when Pixel Representation
//!   is 1), MONOCHROME1 inverted as `(2^bits_stored − 1) − v` (`−1 − v` when signed), then
//!   the Modality LUT when there is one, else `v × slope + intercept` with the frame's
//!   rescale. JPEG-LS samples are read at the codestream's precision (at most Bits
//!   Stored), sign-extended from it when Pixel Representation is 1.
//! - Colour (RGB bytes): 8-bit samples as they are; wider samples `v >> (bits_stored − 8)`;
//!   YBR_FULL / YBR_FULL_422 to RGB with pydicom's `convert_color_space` formula; JPEG and
//!   JPEG 2000 frames come out of their codec as RGB (YBR_ICT/RCT included); PALETTE COLOR
//!   through the red/green/blue tables (plain or segmented), each entry
//!   `>> (descriptor bits − 8)`.
//!
//! A transfer syntax without a pure-Rust codec (colour JPEG-LS, 12-bit JPEG, MPEG, HEVC,
//! HTJ2K …) is a named error, never a guess.

mod codestream;
mod encapsulated;
mod lut;
mod native;
mod rle;
mod syntax;
mod values;

use super::meta::ImageMeta;
use super::{DicomError, DicomFile};
use crate::io::volume::MAX_VOXELS;
use lut::{Lut, modality_lut, palette};
use native::Stored;
use syntax::Encoding;
use values::{Bits, Colour};

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
    let plan = Plan::new(file)?;
    plan.decode(0..plan.img.frames)
}

/// Decodes frame `index` (0-based) of `file` alone.
pub fn decode_frame(file: &DicomFile, index: usize) -> Result<Frames, DicomError> {
    let plan = Plan::new(file)?;
    if index >= plan.img.frames {
        return Err(DicomError::Decode {
            frame: index,
            why: format!("the file has {} frames", plan.img.frames),
        });
    }
    plan.decode(index..index + 1)
}

/// What a file's header says about decoding it, checked once.
struct Plan<'a> {
    file: &'a DicomFile,
    img: &'a ImageMeta,
    encoding: Encoding,
    colour: Colour,
    bits: Bits,
    modality_lut: Option<Lut>,
    pixels: usize,
    spp: usize,
}

impl<'a> Plan<'a> {
    fn new(file: &'a DicomFile) -> Result<Self, DicomError> {
        let img = file
            .meta
            .image
            .as_ref()
            .ok_or_else(|| DicomError::NoPixelData(super::meta::what_it_is(&file.meta)))?;
        let encoding = Encoding::of(&file.meta.transfer_syntax)?;

        let voxels = img.rows as u128 * img.columns as u128 * img.frames as u128;
        if voxels > MAX_VOXELS as u128 {
            return Err(DicomError::TooLarge(format!(
                "{} frames of {}×{} pixels ({voxels} voxels) exceed the limit of {MAX_VOXELS}",
                img.frames, img.rows, img.columns
            )));
        }
        let spp = usize::from(img.samples_per_pixel);
        if spp != 1 && spp != 3 {
            return Err(unsupported(format!("{spp} samples per pixel")));
        }
        let ba = u32::from(img.bits_allocated);
        if ![1, 8, 16, 32].contains(&ba) {
            return Err(unsupported(format!("Bits Allocated {ba}")));
        }
        let stored = u32::from(img.bits_stored);
        let high_bit = u32::from(img.high_bit);
        if stored == 0 || stored > ba {
            return Err(bad(
                "Bits Stored",
                format!("{stored} with Bits Allocated {ba}"),
            ));
        }
        if high_bit >= ba || high_bit + 1 < stored {
            return Err(bad(
                "High Bit",
                format!("{high_bit} with Bits Stored {stored}, Bits Allocated {ba}"),
            ));
        }
        if encoding.encapsulated() && ba == 1 {
            return Err(unsupported(
                "compressed pixel data with 1 bit allocated".to_string(),
            ));
        }
        let codec = match encoding {
            Encoding::Jpeg => Some("JPEG"),
            Encoding::J2k => Some("JPEG 2000"),
            Encoding::JpegLs => Some("JPEG-LS"),
            Encoding::Native { .. } | Encoding::Rle => None,
        };
        if let Some(codec) = codec
            && ba == 32
        {
            return Err(unsupported(format!("{codec} with 32 bits allocated")));
        }
        if encoding == Encoding::JpegLs && spp != 1 {
            // pure_jpegls reads one component (no interleaved scans).
            return Err(unsupported(format!(
                "JPEG-LS with {spp} samples per pixel (the pure-Rust decoder reads one)"
            )));
        }
        let bits = Bits {
            stored,
            shift: high_bit + 1 - stored,
            signed: img.signed,
        };

        let pi = img.photometric.as_str();
        let colour = match (spp, pi) {
            (1, "MONOCHROME1") => Colour::Grey { inverted: true },
            (1, "MONOCHROME2") => Colour::Grey { inverted: false },
            (1, "PALETTE COLOR") => Colour::Palette(Box::new(palette(file, encoding)?)),
            // The codecs give RGB whatever the colour space inside the codestream.
            (3, _) if matches!(encoding, Encoding::Jpeg | Encoding::J2k) => Colour::Rgb,
            (3, "RGB") => Colour::Rgb,
            (3, "YBR_FULL") => Colour::YbrFull,
            (3, "YBR_FULL_422") if !encoding.encapsulated() => Colour::YbrFull422,
            _ => {
                return Err(unsupported(format!(
                    "photometric interpretation {pi:?} with {spp} samples per pixel{}",
                    if encoding.encapsulated() {
                        " in RLE"
                    } else {
                        ""
                    }
                )));
            }
        };
        if matches!(colour, Colour::YbrFull | Colour::YbrFull422) && ba != 8 {
            return Err(unsupported(format!("{pi} with {ba} bits allocated")));
        }
        if !matches!(colour, Colour::Grey { .. }) && img.signed && spp == 3 {
            return Err(unsupported(format!("signed {pi} samples")));
        }
        let modality_lut = match colour {
            Colour::Grey { .. } => modality_lut(file, encoding)?,
            _ => None,
        };
        Ok(Self {
            file,
            img,
            encoding,
            colour,
            bits,
            modality_lut,
            pixels: img.rows * img.columns,
            spp,
        })
    }

    fn decode(&self, range: std::ops::Range<usize>) -> Result<Frames, DicomError> {
        let n = range.len();
        let samples = match self.colour {
            Colour::Grey { .. } => {
                let mut out = try_alloc::<f32>(self.pixels * n)?;
                for (i, f) in range.clone().enumerate() {
                    let stored = self.stored_frame(f)?;
                    let dst = &mut out[i * self.pixels..(i + 1) * self.pixels];
                    self.grey_into(&stored, f, dst);
                }
                Samples::Grey(out)
            }
            _ => {
                let mut out = try_alloc::<u8>(self.pixels * 3 * n)?;
                for (i, f) in range.clone().enumerate() {
                    let stored = self.stored_frame(f)?;
                    let dst = &mut out[i * self.pixels * 3..(i + 1) * self.pixels * 3];
                    self.rgb_into(&stored, dst);
                }
                Samples::Rgb(out)
            }
        };
        Ok(Frames {
            rows: self.img.rows,
            columns: self.img.columns,
            frames: n,
            samples,
        })
    }

    /// Samples in one stored frame (YBR_FULL_422 keeps two samples a pixel).
    fn frame_samples(&self) -> usize {
        match self.colour {
            Colour::YbrFull422 => self.pixels * 2,
            _ => self.pixels * self.spp,
        }
    }

    /// Frame `f`'s samples, from the file (native) or decoded (encapsulated); the byte
    /// count is checked against the header.
    fn stored_frame(&self, f: usize) -> Result<Stored<'a>, DicomError> {
        let samples = self.frame_samples();
        let stored = match self.encoding {
            Encoding::Native { big_endian } => self.native_frame(f, big_endian)?,
            Encoding::Rle => self.rle_frame(f)?,
            Encoding::Jpeg | Encoding::J2k => self.codec_frame(f)?,
            Encoding::JpegLs => self.jpeg_ls_frame(f)?,
        };
        let need = Stored::needed(stored.width, samples, stored.bit_offset);
        if stored.bytes.len() < need {
            return Err(DicomError::Decode {
                frame: f,
                why: format!(
                    "decoded {} bytes, {} needs {need}",
                    stored.bytes.len(),
                    frame_shape(self.img)
                ),
            });
        }
        Ok(stored)
    }
}

/// A zeroed buffer of `n` values, or [`DicomError::TooLarge`] when memory is short.
fn try_alloc<T: Clone + Default>(n: usize) -> Result<Vec<T>, DicomError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        DicomError::TooLarge(format!(
            "{} MB for the decoded frames",
            (n * std::mem::size_of::<T>()) >> 20
        ))
    })?;
    v.resize(n, T::default());
    Ok(v)
}

fn frame_shape(img: &ImageMeta) -> String {
    format!(
        "{}×{} pixels of {} samples, {} bits allocated",
        img.rows, img.columns, img.samples_per_pixel, img.bits_allocated
    )
}

fn unsupported(what: String) -> DicomError {
    DicomError::Unsupported(what)
}

fn bad(name: &'static str, why: impl ToString) -> DicomError {
    DicomError::BadAttribute {
        name,
        why: why.to_string(),
    }
}
