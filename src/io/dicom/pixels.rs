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

use std::borrow::Cow;

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use super::meta::{ImageMeta, first_item};
use super::{DicomError, DicomFile, error_chain};
use crate::io::volume::MAX_VOXELS;

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

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.57";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
const J2K_LOSSLESS: &str = "1.2.840.10008.1.2.4.90";
const J2K: &str = "1.2.840.10008.1.2.4.91";
const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";

/// How the Pixel Data is stored.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Native {
        big_endian: bool,
    },
    Rle,
    /// JPEG (baseline, extended, lossless) through dicom-rs (jpeg-decoder).
    Jpeg,
    /// JPEG 2000 through dicom-rs (openjp2).
    J2k,
    /// JPEG-LS (lossless, near-lossless), one component, through pure_jpegls.
    JpegLs,
}

impl Encoding {
    fn of(uid: &str) -> Result<Self, DicomError> {
        Ok(match uid {
            IMPLICIT_LE | EXPLICIT_LE | DEFLATED_LE => Encoding::Native { big_endian: false },
            EXPLICIT_BE => Encoding::Native { big_endian: true },
            RLE_LOSSLESS => Encoding::Rle,
            JPEG_BASELINE | JPEG_EXTENDED | JPEG_LOSSLESS | JPEG_LOSSLESS_SV1 => Encoding::Jpeg,
            J2K_LOSSLESS | J2K => Encoding::J2k,
            JPEG_LS_LOSSLESS | JPEG_LS_NEAR_LOSSLESS => Encoding::JpegLs,
            _ => {
                return Err(DicomError::UnsupportedTransferSyntax {
                    uid: uid.to_string(),
                    name: transfer_syntax_name(uid).to_string(),
                });
            }
        })
    }

    fn encapsulated(self) -> bool {
        !matches!(self, Encoding::Native { .. })
    }
}

/// The names of the transfer syntaxes MedSeg refuses (for the error message).
fn transfer_syntax_name(uid: &str) -> &'static str {
    match uid {
        "" => "none given",
        "1.2.840.10008.1.2.1.98" => "Encapsulated Uncompressed Explicit VR Little Endian",
        "1.2.840.10008.1.2.4.92" => "JPEG 2000 Part 2 Multi-component (Lossless Only)",
        "1.2.840.10008.1.2.4.93" => "JPEG 2000 Part 2 Multi-component",
        "1.2.840.10008.1.2.4.94" | "1.2.840.10008.1.2.4.95" => "JPIP Referenced",
        "1.2.840.10008.1.2.4.100" | "1.2.840.10008.1.2.4.100.1" => "MPEG2 Main Profile",
        "1.2.840.10008.1.2.4.101" | "1.2.840.10008.1.2.4.101.1" => "MPEG2 High Profile",
        "1.2.840.10008.1.2.4.102"
        | "1.2.840.10008.1.2.4.102.1"
        | "1.2.840.10008.1.2.4.103"
        | "1.2.840.10008.1.2.4.103.1"
        | "1.2.840.10008.1.2.4.104"
        | "1.2.840.10008.1.2.4.104.1"
        | "1.2.840.10008.1.2.4.105"
        | "1.2.840.10008.1.2.4.105.1"
        | "1.2.840.10008.1.2.4.106"
        | "1.2.840.10008.1.2.4.106.1" => "MPEG-4 AVC/H.264",
        "1.2.840.10008.1.2.4.107" | "1.2.840.10008.1.2.4.108" => "HEVC/H.265",
        "1.2.840.10008.1.2.4.110" | "1.2.840.10008.1.2.4.111" | "1.2.840.10008.1.2.4.112" => {
            "JPEG XL"
        }
        "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => {
            "High-Throughput JPEG 2000"
        }
        "1.2.840.10008.1.2.4.204" | "1.2.840.10008.1.2.4.205" => "JPIP HTJ2K Referenced",
        "1.2.840.10008.1.2.6.1" => "RFC 2557 MIME encapsulation",
        "1.2.840.10008.1.2.6.2" => "XML Encoding",
        "1.2.840.10008.1.2.7.1" | "1.2.840.10008.1.2.7.2" | "1.2.840.10008.1.2.7.3" => {
            "SMPTE ST 2110"
        }
        uid if uid.starts_with("1.2.840.10008.1.2.4.") => "JPEG (retired process)",
        _ => "unknown transfer syntax",
    }
}

/// What the decoded samples mean.
#[derive(Debug)]
enum Colour {
    Grey {
        inverted: bool,
    },
    /// Three samples a pixel, RGB.
    Rgb,
    /// Three samples a pixel, YBR_FULL (pydicom's conversion to RGB).
    YbrFull,
    /// Native YBR_FULL_422: Y1 Y2 Cb Cr for each two pixels.
    YbrFull422,
    Palette(Box<Palette>),
}

/// How a stored sample becomes a value: the bits of the sample word that hold it, and
/// whether it is two's complement.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bits {
    stored: u32,
    /// Where the value's lowest bit sits (High Bit + 1 − Bits Stored).
    shift: u32,
    signed: bool,
}

impl Bits {
    #[inline]
    fn value(self, raw: u32) -> i64 {
        let v = u64::from(raw >> self.shift) & ((1u64 << self.stored) - 1);
        if self.signed && v >> (self.stored - 1) & 1 == 1 {
            v as i64 - (1i64 << self.stored)
        } else {
            v as i64
        }
    }

    /// MONOCHROME1 → MONOCHROME2.
    fn inverted(self, v: i64) -> i64 {
        if self.signed {
            -1 - v
        } else {
            ((1i64 << self.stored) - 1) - v
        }
    }

    /// An unsigned sample brought to 8 bits.
    #[inline]
    fn to_u8(self, v: i64) -> u8 {
        let v = v.max(0) as u64;
        if self.stored >= 8 {
            (v >> (self.stored - 8)).min(255) as u8
        } else {
            (v << (8 - self.stored)).min(255) as u8
        }
    }
}

/// A lookup table (Modality LUT, a palette channel): values from `first`, clamped at both
/// ends as pydicom does.
#[derive(Debug, PartialEq)]
struct Lut {
    first: i64,
    entries: Vec<u16>,
}

impl Lut {
    #[inline]
    fn get(&self, v: i64) -> u16 {
        let last = self.entries.len().saturating_sub(1);
        let i = (v - self.first).clamp(0, last as i64) as usize;
        self.entries.get(i).copied().unwrap_or(0)
    }
}

#[derive(Debug, PartialEq)]
struct Palette {
    channels: [Lut; 3],
    /// The table's nominal bits (descriptor), brought to 8 by `>> (bits − 8)`.
    bits: u32,
}

/// One frame's samples as stored: pixel-interleaved unless `planar`; sample words of
/// `width` bits (1, 8, 16, 32) in the given byte order; 1-bit samples start at bit
/// `bit_offset` of `bytes` (frames of packed bits need not start on a byte); `bits` says
/// which bits of a sample word hold its value.
struct Stored<'b> {
    bytes: Cow<'b, [u8]>,
    width: u32,
    big_endian: bool,
    planar: bool,
    bit_offset: usize,
    bits: Bits,
}

impl Stored<'_> {
    /// Sample `k` in storage order; `k` must be below the count checked by the caller.
    #[inline]
    fn raw(&self, k: usize) -> u32 {
        let b = &self.bytes;
        match self.width {
            1 => {
                let bit = self.bit_offset + k;
                u32::from(b[bit / 8] >> (bit % 8) & 1)
            }
            8 => u32::from(b[k]),
            16 => {
                let w = [b[2 * k], b[2 * k + 1]];
                u32::from(if self.big_endian {
                    u16::from_be_bytes(w)
                } else {
                    u16::from_le_bytes(w)
                })
            }
            _ => {
                let w = [b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]];
                if self.big_endian {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                }
            }
        }
    }

    /// Bytes needed for `samples` samples.
    fn needed(width: u32, samples: usize, bit_offset: usize) -> usize {
        if width == 1 {
            (bit_offset + samples).div_ceil(8)
        } else {
            samples * (width as usize / 8)
        }
    }
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
        let ba = u32::from(self.img.bits_allocated);
        let samples = self.frame_samples();
        let stored = match self.encoding {
            Encoding::Native { big_endian } => {
                let value = pixel_value(self.file)?;
                let Value::Primitive(p) = value else {
                    return Err(DicomError::Decode {
                        frame: f,
                        why: "native Pixel Data holds fragments".into(),
                    });
                };
                let (start, bit_offset) = if ba == 1 {
                    let bit = f * samples;
                    (bit / 8, bit % 8)
                } else {
                    (f * Stored::needed(ba, samples, 0), 0)
                };
                let len = Stored::needed(ba, samples, bit_offset);
                let total = stored_len(p);
                if start + len > total {
                    return Err(DicomError::Decode {
                        frame: f,
                        why: format!(
                            "the pixel data is truncated: {total} bytes, {} frames of {} \
                             need {}",
                            self.img.frames,
                            frame_shape(self.img),
                            Stored::needed(ba, samples * self.img.frames, 0)
                        ),
                    });
                }
                Stored {
                    // 8-bit samples in OW of a big-endian file are byte-swapped with
                    // their words (PS3.5 A.3.1): read them from little-endian words.
                    bytes: file_bytes(p, start..start + len, big_endian && ba != 8),
                    width: ba,
                    big_endian,
                    planar: self.spp == 3 && self.img.planar_configuration == 1,
                    bit_offset,
                    bits: self.bits,
                }
            }
            Encoding::Rle => {
                let data = self.frame_fragments(f)?;
                Stored {
                    bytes: Cow::Owned(rle_decode(&data, self.pixels, self.spp, ba, f)?),
                    width: ba,
                    big_endian: false,
                    planar: false,
                    bit_offset: 0,
                    bits: self.bits,
                }
            }
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

    /// The compressed bytes of frame `f`: the fragments that make it (PS3.5 A.4).
    fn frame_fragments(&self, f: usize) -> Result<Cow<'a, [u8]>, DicomError> {
        let value = pixel_value(self.file)?;
        let Value::PixelSequence(seq) = value else {
            return Err(DicomError::Decode {
                frame: f,
                why: "compressed Pixel Data without fragments".into(),
            });
        };
        let fragments = seq.fragments();
        let n = self.img.frames;
        let err = |why: String| DicomError::Decode { frame: f, why };
        if fragments.is_empty() {
            return Err(err("the pixel data has no fragments".into()));
        }
        if n == 1 {
            return Ok(if fragments.len() == 1 {
                Cow::Borrowed(&fragments[0][..])
            } else {
                Cow::Owned(fragments.concat())
            });
        }
        if fragments.len() == n {
            return Ok(Cow::Borrowed(&fragments[f][..]));
        }
        // Several fragments a frame: the Basic Offset Table says where each frame starts
        // (offsets from the first fragment's item tag, 8 bytes of item header each).
        let table = seq.offset_table();
        if table.len() == n {
            let start = table[f] as usize;
            let end = table.get(f + 1).map_or(usize::MAX, |&o| o as usize);
            let mut offset = 0usize;
            let mut out = Vec::new();
            for frag in fragments.iter() {
                if offset >= end {
                    break;
                }
                if offset >= start {
                    out.extend_from_slice(frag);
                }
                offset += frag.len() + 8;
            }
            if out.is_empty() {
                return Err(err(format!(
                    "the offset table points past the fragments ({start})"
                )));
            }
            return Ok(Cow::Owned(out));
        }
        // No table: a JPEG / JPEG-LS / JPEG 2000 frame ends in a fragment ending with EOI
        // (FF D9).
        let mut frame = 0usize;
        let mut out = Vec::new();
        for frag in fragments.iter() {
            if frame == f {
                out.extend_from_slice(frag);
            }
            let end = frag
                .iter()
                .rposition(|&b| b != 0)
                .map_or(&frag[..0], |i| &frag[..=i]);
            if end.ends_with(&[0xFF, 0xD9]) {
                if frame == f {
                    return Ok(Cow::Owned(out));
                }
                frame += 1;
            }
        }
        Err(err(format!(
            "cannot tell which of the {} fragments make frame {} of {n}",
            fragments.len(),
            f + 1
        )))
    }

    /// A JPEG or JPEG 2000 frame decoded by dicom-rs, after checking its codestream
    /// header against the DICOM header (the codecs would panic or mis-read otherwise).
    fn codec_frame(&self, f: usize) -> Result<Stored<'a>, DicomError> {
        let img = self.img;
        let mut data = self.frame_fragments(f)?.into_owned();
        let ba = u32::from(img.bits_allocated);
        let err = |why: String| DicomError::Decode { frame: f, why };
        let (width, bits) = if self.encoding == Encoding::Jpeg {
            let h = jpeg_header(&data).map_err(|e| err(e.to_string()))?;
            if (h.width, h.height) != (img.columns, img.rows) || h.components != self.spp {
                return Err(err(format!(
                    "the JPEG is {}×{} with {} components, the header says {}",
                    h.height,
                    h.width,
                    h.components,
                    frame_shape(img)
                )));
            }
            if !h.lossless && h.precision != 8 {
                return Err(unsupported(format!(
                    "JPEG Extended with {}-bit samples (no pure-Rust decoder)",
                    h.precision
                )));
            }
            if h.precision > ba as u8 || h.precision > 16 {
                return Err(err(format!(
                    "{}-bit JPEG samples in {ba} bits allocated",
                    h.precision
                )));
            }
            if h.rgb_without_transform && img.photometric == "RGB" {
                // The components are RGB already, but jpeg-decoder converts YCbCr → RGB
                // unless the ids say 'R', 'G', 'B' (it reads ids before APP14, and
                // defaults to YCbCr): renamed so, it copies them.
                set_rgb_component_ids(&mut data, &h);
            }
            // jpeg-decoder gives 8-bit samples as bytes whatever Bits Allocated says.
            let width = if h.precision <= 8 { 8 } else { 16 };
            (width, self.bits)
        } else {
            let h = j2k_header(&data).map_err(|e| err(e.to_string()))?;
            if (h.width, h.height) != (img.columns, img.rows) || h.components != self.spp {
                return Err(err(format!(
                    "the JPEG 2000 codestream is {}×{} with {} components, the header says \
                     {}",
                    h.height,
                    h.width,
                    h.components,
                    frame_shape(img)
                )));
            }
            if h.subsampled {
                return Err(unsupported(
                    "JPEG 2000 with subsampled components".to_string(),
                ));
            }
            if h.precision > ba {
                return Err(err(format!(
                    "{}-bit JPEG 2000 samples in {ba} bits allocated",
                    h.precision
                )));
            }
            // As pydicom: a codestream whose signedness differs from Pixel Representation
            // is re-read at its own precision with the header's signedness; otherwise the
            // samples are taken as the codec gives them.
            let bits = if h.signed != img.signed {
                Bits {
                    stored: h.precision,
                    shift: 0,
                    signed: img.signed,
                }
            } else {
                Bits {
                    stored: ba,
                    shift: 0,
                    signed: img.signed,
                }
            };
            (ba, bits)
        };
        let obj = one_frame_object(img, &self.file.meta.transfer_syntax, data)?;
        let decoded = obj
            .decode_pixel_data_frame(0)
            .map_err(|e| err(error_chain(&e)))?
            .into_data();
        Ok(Stored {
            bytes: Cow::Owned(decoded),
            width,
            big_endian: false,
            planar: false,
            bit_offset: 0,
            bits,
        })
    }

    /// A one-component JPEG-LS frame decoded by pure_jpegls, after checking its SOF55
    /// against the DICOM header.
    fn jpeg_ls_frame(&self, f: usize) -> Result<Stored<'a>, DicomError> {
        let img = self.img;
        let data = self.frame_fragments(f)?;
        let err = |why: String| DicomError::Decode { frame: f, why };
        let h = jpeg_ls_header(&data).map_err(|e| err(e.to_string()))?;
        if (h.width, h.height) != (img.columns, img.rows) || h.components != self.spp {
            return Err(err(format!(
                "the JPEG-LS is {}×{} with {} components, the header says {}",
                h.height,
                h.width,
                h.components,
                frame_shape(img)
            )));
        }
        let ba = u32::from(img.bits_allocated);
        if !(2..=16).contains(&h.precision) || h.precision > ba {
            return Err(err(format!(
                "{}-bit JPEG-LS samples in {ba} bits allocated",
                h.precision
            )));
        }
        // Both fit u32: the SOF55 dimensions are 16-bit fields.
        let decoded =
            jpegls::decode(&data, h.width as u32, h.height as u32).map_err(|e| match e {
                jpegls::CodecError::Unsupported(what) => unsupported(format!("JPEG-LS {what}")),
                e => err(format!("JPEG-LS: {e}")),
            })?;
        let bytes = decoded.0.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok(Stored {
            bytes: Cow::Owned(bytes),
            width: 16,
            big_endian: false,
            planar: false,
            bit_offset: 0,
            // As pydicom: JPEG-LS has no signedness, the value is the codestream's
            // precision sign-extended when Pixel Representation is 1, then only Bits
            // Stored of it.
            bits: Bits {
                stored: h.precision.min(self.bits.stored),
                shift: 0,
                signed: img.signed,
            },
        })
    }

    fn grey_into(&self, s: &Stored, f: usize, dst: &mut [f32]) {
        let Colour::Grey { inverted } = self.colour else {
            return;
        };
        let bits = s.bits;
        let rescale = self.img.rescale_of(f);
        for (p, d) in dst.iter_mut().enumerate() {
            let mut v = bits.value(s.raw(p));
            if inverted {
                // The header's Bits Stored, also when a codestream's own bits read the value.
                v = self.bits.inverted(v);
            }
            *d = match &self.modality_lut {
                Some(lut) => f32::from(lut.get(v)),
                None => (v as f64 * rescale.slope + rescale.intercept) as f32,
            };
        }
    }

    fn rgb_into(&self, s: &Stored, dst: &mut [u8]) {
        let bits = s.bits;
        let n = self.pixels;
        match &self.colour {
            Colour::Grey { .. } => {}
            Colour::Rgb => {
                if s.width == 8
                    && !s.planar
                    && bits
                        == (Bits {
                            stored: 8,
                            shift: 0,
                            signed: false,
                        })
                {
                    dst.copy_from_slice(&s.bytes[..n * 3]);
                    return;
                }
                for p in 0..n {
                    for c in 0..3 {
                        let k = if s.planar { c * n + p } else { p * 3 + c };
                        dst[p * 3 + c] = bits.to_u8(bits.value(s.raw(k)));
                    }
                }
            }
            Colour::YbrFull => {
                for p in 0..n {
                    let ybr = std::array::from_fn(|c| {
                        let k = if s.planar { c * n + p } else { p * 3 + c };
                        bits.to_u8(bits.value(s.raw(k)))
                    });
                    dst[p * 3..p * 3 + 3].copy_from_slice(&ybr_to_rgb(ybr));
                }
            }
            Colour::YbrFull422 => {
                for pair in 0..n / 2 {
                    let v = |i: usize| bits.to_u8(bits.value(s.raw(pair * 4 + i)));
                    let (cb, cr) = (v(2), v(3));
                    for (j, y) in [v(0), v(1)].into_iter().enumerate() {
                        let p = pair * 2 + j;
                        dst[p * 3..p * 3 + 3].copy_from_slice(&ybr_to_rgb([y, cb, cr]));
                    }
                }
            }
            Colour::Palette(pal) => {
                let shift = pal.bits.saturating_sub(8);
                for p in 0..n {
                    let v = bits.value(s.raw(p));
                    for (c, lut) in pal.channels.iter().enumerate() {
                        dst[p * 3 + c] = (lut.get(v) >> shift).min(255) as u8;
                    }
                }
            }
        }
    }
}

type InMemValue = Value<InMemDicomObject, Vec<u8>>;

fn pixel_value(file: &DicomFile) -> Result<&InMemValue, DicomError> {
    let obj: &InMemDicomObject = &file.object;
    obj.element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .map(|e| e.value())
        .ok_or(DicomError::Missing("Pixel Data"))
}

/// The byte length of a primitive value as stored in the file.
fn stored_len(p: &PrimitiveValue) -> usize {
    match p {
        PrimitiveValue::U8(v) => v.len(),
        PrimitiveValue::U16(v) => v.len() * 2,
        PrimitiveValue::I16(v) => v.len() * 2,
        PrimitiveValue::U32(v) => v.len() * 4,
        PrimitiveValue::I32(v) => v.len() * 4,
        PrimitiveValue::F32(v) => v.len() * 4,
        _ => 0,
    }
}

/// Bytes `range` of a value as they are in the file: dicom-rs holds OW/OL values as
/// words in host order, pydicom (and DICOM) read the pixel bytes in the file's order.
/// `range` must lie within [`stored_len`].
fn file_bytes(
    p: &PrimitiveValue,
    range: std::ops::Range<usize>,
    big_endian: bool,
) -> Cow<'_, [u8]> {
    if !big_endian
        && cfg!(target_endian = "little")
        && let Cow::Borrowed(b) = p.to_bytes()
    {
        return Cow::Borrowed(&b[range]);
    }
    fn bytes<const N: usize>(
        range: std::ops::Range<usize>,
        word: impl Fn(usize) -> [u8; N],
    ) -> Cow<'static, [u8]> {
        Cow::Owned(range.map(|k| word(k / N)[k % N]).collect())
    }
    macro_rules! words {
        ($v:expr) => {
            bytes(range, |i| {
                if big_endian {
                    $v[i].to_be_bytes()
                } else {
                    $v[i].to_le_bytes()
                }
            })
        };
    }
    match p {
        PrimitiveValue::U8(v) => Cow::Borrowed(&v[range]),
        PrimitiveValue::U16(v) => words!(v),
        PrimitiveValue::I16(v) => words!(v),
        PrimitiveValue::U32(v) => words!(v),
        PrimitiveValue::I32(v) => words!(v),
        PrimitiveValue::F32(v) => words!(v),
        _ => Cow::Borrowed(&[]),
    }
}

/// An RLE Lossless frame (PS3.5 G) decoded to pixel-interleaved little-endian samples of
/// `bits_allocated` bits. Each segment holds one byte of one sample, most significant first.
fn rle_decode(
    data: &[u8],
    pixels: usize,
    spp: usize,
    bits_allocated: u32,
    frame: usize,
) -> Result<Vec<u8>, DicomError> {
    let err = |why: String| DicomError::Decode { frame, why };
    let bps = bits_allocated as usize / 8;
    let segments = spp * bps;
    let word = |i: usize| -> Option<usize> {
        let b = data.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0).ok_or_else(|| err("the RLE header is truncated".into()))?;
    if count != segments {
        return Err(err(format!(
            "the RLE header has {count} segments, {spp} samples of {bits_allocated} bits need \
             {segments}"
        )));
    }
    let mut out = try_alloc::<u8>(pixels * segments)?;
    for s in 0..segments {
        let start = word(1 + s).unwrap_or(0);
        let end = if s + 1 < segments {
            word(2 + s).unwrap_or(0)
        } else {
            data.len()
        };
        let seg = data
            .get(start..end)
            .filter(|_| start >= 64)
            .ok_or_else(|| {
                err(format!(
                    "RLE segment {s} lies outside the frame ({start}..{end})"
                ))
            })?;
        let (c, byte) = (s / bps, bps - 1 - s % bps);
        let mut put = {
            let mut p = 0usize;
            let out = &mut out;
            move |b: u8| {
                if p < pixels {
                    out[(p * spp + c) * bps + byte] = b;
                    p += 1;
                }
                p
            }
        };
        let mut filled = 0;
        let mut i = 0;
        while i < seg.len() && filled < pixels {
            let n = seg[i] as i8;
            i += 1;
            if n >= 0 {
                let run = seg.get(i..i + n as usize + 1).unwrap_or(&seg[i..]);
                for &b in run {
                    filled = put(b);
                }
                i += n as usize + 1;
            } else if n != -128 {
                let Some(&b) = seg.get(i) else { break };
                for _ in 0..(1 - n as isize) {
                    filled = put(b);
                }
                i += 1;
            }
        }
        if filled < pixels {
            return Err(err(format!(
                "RLE segment {s} decodes to {filled} bytes, {pixels} pixels need {pixels}"
            )));
        }
    }
    Ok(out)
}

/// What MedSeg needs from a JPEG frame's markers.
#[derive(Debug, Default, PartialEq)]
struct JpegHeader {
    width: usize,
    height: usize,
    components: usize,
    precision: u8,
    lossless: bool,
    /// Three components stored without a colour transform, as libjpeg (pydicom) reads
    /// them: no JFIF marker, and Adobe APP14 transform 0 or, without APP14, component ids
    /// other than the JFIF 1, 2, 3; ids 'R', 'G', 'B' need nothing.
    rgb_without_transform: bool,
    /// Where the frame header's component ids are, and every scan's component selectors.
    id_positions: Vec<usize>,
    selector_positions: Vec<usize>,
}

/// Reads the markers of a JPEG stream (all of it: a later scan's selectors matter too).
fn jpeg_header(data: &[u8]) -> Result<JpegHeader, &'static str> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("the frame is not a JPEG stream (no SOI marker)");
    }
    let mut h = JpegHeader::default();
    let (mut jfif, mut adobe_transform, mut have_sof) = (false, None, false);
    let mut ids = Vec::new();
    let mut i = 2;
    while i + 1 < data.len() {
        if data[i] != 0xFF {
            return Err("bad JPEG marker");
        }
        let marker = data[i + 1];
        i += 2;
        match marker {
            0xFF => {
                i -= 1; // fill byte
                continue;
            }
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 => break,
            _ => {}
        }
        let len = data
            .get(i..i + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or("truncated JPEG marker")?;
        let seg = data.get(i + 2..i + len).ok_or("truncated JPEG segment")?;
        match marker {
            0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker) => {
                if seg.len() < 6 {
                    return Err("truncated JPEG frame header");
                }
                have_sof = true;
                h.precision = seg[0];
                h.height = usize::from(u16::from_be_bytes([seg[1], seg[2]]));
                h.width = usize::from(u16::from_be_bytes([seg[3], seg[4]]));
                h.components = usize::from(seg[5]);
                h.lossless = matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF);
                ids.clear();
                h.id_positions.clear();
                for c in 0..h.components {
                    let at = 6 + 3 * c;
                    ids.push(*seg.get(at).ok_or("truncated JPEG frame header")?);
                    h.id_positions.push(i + 2 + at);
                }
            }
            0xE0 if seg.starts_with(b"JFIF\0") => jfif = true,
            0xEE if seg.starts_with(b"Adobe") => adobe_transform = seg.get(11).copied(),
            0xDA => {
                let n = usize::from(*seg.first().ok_or("truncated JPEG scan header")?);
                for c in 0..n {
                    if 1 + 2 * c >= seg.len() {
                        return Err("truncated JPEG scan header");
                    }
                    h.selector_positions.push(i + 2 + 1 + 2 * c);
                }
                // Skip the entropy-coded data to the next marker (FF not followed by a
                // stuffed 00, a restart marker or fill).
                i += len;
                while i + 1 < data.len()
                    && !(data[i] == 0xFF
                        && data[i + 1] != 0
                        && data[i + 1] != 0xFF
                        && !(0xD0..=0xD7).contains(&data[i + 1]))
                {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        i += len;
    }
    if !have_sof {
        return Err("the JPEG stream has no frame header");
    }
    let rgb_ids = ids == [b'R', b'G', b'B'] || ids == [b'r', b'g', b'b'];
    h.rgb_without_transform = h.components == 3
        && !jfif
        && !rgb_ids
        && match adobe_transform {
            Some(t) => t == 0,
            None => ids != [1, 2, 3],
        };
    Ok(h)
}

/// Renames the three components 'R', 'G', 'B' (frame header and every scan's selectors).
fn set_rgb_component_ids(data: &mut [u8], h: &JpegHeader) {
    let old: Vec<u8> = h.id_positions.iter().map(|&p| data[p]).collect();
    for (&p, new) in h.id_positions.iter().zip(*b"RGB") {
        data[p] = new;
    }
    for &p in &h.selector_positions {
        if let Some(c) = old.iter().position(|&id| id == data[p]) {
            data[p] = b"RGB"[c];
        }
    }
}

/// What MedSeg needs from a JPEG 2000 codestream's SIZ marker.
#[derive(Debug, PartialEq)]
struct J2kHeader {
    width: usize,
    height: usize,
    components: usize,
    precision: u32,
    signed: bool,
    subsampled: bool,
}

fn j2k_header(data: &[u8]) -> Result<J2kHeader, &'static str> {
    const SOC_SIZ: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];
    let at = data
        .windows(4)
        .position(|w| w == SOC_SIZ)
        .ok_or("no JPEG 2000 codestream (SOC, SIZ) in the frame")?;
    let siz = &data[at + 4..];
    let u32_at = |o: usize| {
        siz.get(o..o + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let short = "truncated JPEG 2000 SIZ marker";
    let (x, y, x0, y0) = (
        u32_at(4).ok_or(short)?,
        u32_at(8).ok_or(short)?,
        u32_at(12).ok_or(short)?,
        u32_at(16).ok_or(short)?,
    );
    let components = siz
        .get(36..38)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        .ok_or(short)?;
    let comps = siz.get(38..38 + 3 * components).ok_or(short)?;
    let ssiz = *comps
        .first()
        .ok_or("a JPEG 2000 codestream without components")?;
    Ok(J2kHeader {
        width: x.checked_sub(x0).ok_or("bad JPEG 2000 image offset")? as usize,
        height: y.checked_sub(y0).ok_or("bad JPEG 2000 image offset")? as usize,
        components,
        precision: u32::from(ssiz & 0x7F) + 1,
        signed: ssiz & 0x80 != 0,
        subsampled: comps.chunks(3).any(|c| c[1] != 1 || c[2] != 1),
    })
}

/// What MedSeg checks in a JPEG-LS frame's SOF55 before decoding it.
#[derive(Debug, PartialEq)]
struct JpegLsHeader {
    width: usize,
    height: usize,
    components: usize,
    precision: u32,
}

/// Reads the markers of a JPEG-LS stream up to its first scan (the frame header comes
/// before it; a SPIFF header is an APP8 segment, skipped as any other).
fn jpeg_ls_header(data: &[u8]) -> Result<JpegLsHeader, &'static str> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("the frame is not a JPEG-LS stream (no SOI marker)");
    }
    let mut header = None;
    let mut i = 2;
    loop {
        let marker = data
            .get(i..i + 2)
            .ok_or("the JPEG-LS stream ends before its scan")?;
        if marker[0] != 0xFF {
            return Err("bad JPEG-LS marker");
        }
        if marker[1] == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = data
            .get(i + 2..i + 4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or("truncated JPEG-LS marker")?;
        let seg = data
            .get(i + 4..i + 2 + len)
            .ok_or("truncated JPEG-LS segment")?;
        match marker[1] {
            0xF7 => {
                let short = "truncated JPEG-LS frame header";
                let field = |at: usize| seg.get(at..at + 2).ok_or(short);
                let (height, width) = (field(1)?, field(3)?);
                header = Some(JpegLsHeader {
                    precision: u32::from(*seg.first().ok_or(short)?),
                    height: usize::from(u16::from_be_bytes([height[0], height[1]])),
                    width: usize::from(u16::from_be_bytes([width[0], width[1]])),
                    components: usize::from(*seg.get(5).ok_or(short)?),
                });
            }
            0xC0..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker[1]) => {
                return Err("a JPEG frame header (SOFn) in a JPEG-LS stream");
            }
            0xDA => return header.ok_or("the JPEG-LS stream has no frame header (SOF55)"),
            _ => {}
        }
        i += 2 + len;
    }
}

/// A one-frame data set around `data` for dicom-rs's codecs: MedSeg picks a frame's
/// fragments itself (pydicom's rules) and hands the codec exactly that frame.
fn one_frame_object(
    img: &ImageMeta,
    transfer_syntax: &str,
    data: Vec<u8>,
) -> Result<dicom_object::DefaultDicomObject, DicomError> {
    let us = |tag: Tag, name: &'static str, v: usize| -> Result<_, DicomError> {
        let v = u16::try_from(v).map_err(|_| bad(name, format!("{v}")))?;
        Ok(DataElement::new(tag, VR::US, PrimitiveValue::from(v)))
    };
    let mut obj = InMemDicomObject::new_empty();
    obj.put(us(tags::ROWS, "Rows", img.rows)?);
    obj.put(us(tags::COLUMNS, "Columns", img.columns)?);
    obj.put(us(
        tags::SAMPLES_PER_PIXEL,
        "Samples per Pixel",
        usize::from(img.samples_per_pixel),
    )?);
    obj.put(us(
        tags::BITS_ALLOCATED,
        "Bits Allocated",
        usize::from(img.bits_allocated),
    )?);
    obj.put(us(
        tags::BITS_STORED,
        "Bits Stored",
        usize::from(img.bits_stored),
    )?);
    obj.put(us(tags::HIGH_BIT, "High Bit", usize::from(img.high_bit))?);
    obj.put(us(
        tags::PIXEL_REPRESENTATION,
        "Pixel Representation",
        usize::from(img.signed),
    )?);
    obj.put(us(tags::PLANAR_CONFIGURATION, "Planar Configuration", 0)?);
    obj.put(DataElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        PrimitiveValue::from(img.photometric.as_str()),
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("1"),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        Value::PixelSequence(PixelFragmentSequence::new_fragments(vec![data])),
    ));
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(transfer_syntax)
        .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.7")
        .media_storage_sop_instance_uid("2.25.1")
        .build()
        .map_err(|e| DicomError::Parse(error_chain(&e)))?;
    Ok(obj.with_exact_meta(meta))
}

/// Words of a LUT's data as pydicom reads them: OW in the file's byte order, US/SS as
/// values, OB (8-bit tables) as bytes.
fn lut_words(
    obj: &InMemDicomObject,
    tag: Tag,
    eight_bit: bool,
    big_endian: bool,
) -> Option<Vec<u16>> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let Value::Primitive(p) = e.value() else {
        return None;
    };
    if !matches!(e.vr(), VR::OW | VR::OB | VR::UN) {
        return e
            .to_multi_int::<i64>()
            .ok()
            .map(|v| v.into_iter().map(|x| x as u16).collect());
    }
    let bytes = file_bytes(p, 0..stored_len(p), big_endian);
    Some(if eight_bit {
        bytes.iter().map(|&b| u16::from(b)).collect()
    } else {
        bytes
            .chunks_exact(2)
            .map(|w| {
                if big_endian {
                    u16::from_be_bytes([w[0], w[1]])
                } else {
                    u16::from_le_bytes([w[0], w[1]])
                }
            })
            .collect()
    })
}

/// A LUT descriptor: (entries, first mapped value, bits); 0 entries means 65536.
fn lut_descriptor(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
    signed: bool,
) -> Result<(usize, i64, u32), DicomError> {
    let v = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .ok_or(DicomError::Missing(name))?;
    let [n, first, bits] = v[..] else {
        return Err(bad(name, format!("{} values, 3 expected", v.len())));
    };
    if !(0..=65535).contains(&n) || !(1..=16).contains(&bits) {
        return Err(bad(name, format!("{v:?}")));
    }
    // The first mapped value is SS when the pixels are signed.
    let first = if signed && first > 32767 {
        first - 65536
    } else {
        first
    };
    Ok((if n == 0 { 65536 } else { n as usize }, first, bits as u32))
}

/// The palette colour tables (plain or segmented, PS3.3 C.7.6.3.1.5–6 and C.7.9).
fn palette(file: &DicomFile, encoding: Encoding) -> Result<Palette, DicomError> {
    let obj: &InMemDicomObject = &file.object;
    let big_endian = encoding == (Encoding::Native { big_endian: true });
    let signed = file.meta.image.as_ref().is_some_and(|i| i.signed);
    let channels = [
        (
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "Red Palette Color Lookup Table",
        ),
        (
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "Green Palette Color Lookup Table",
        ),
        (
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
            tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
            "Blue Palette Color Lookup Table",
        ),
    ];
    let mut luts = Vec::with_capacity(3);
    let mut bits = 8;
    for (desc_tag, data_tag, seg_tag, name) in channels {
        let (n, first, b) = lut_descriptor(obj, desc_tag, name, signed)?;
        bits = b;
        let byte_len = obj
            .element_opt(data_tag)
            .ok()
            .flatten()
            .and_then(|e| match e.value() {
                Value::Primitive(p) => Some(stored_len(p)),
                _ => None,
            });
        let entries = if let Some(len) = byte_len {
            // The entries' real width, as pydicom: 8-bit entries may sit in 16-bit words.
            let eight_bit = len < 2 * n;
            lut_words(obj, data_tag, eight_bit, big_endian).ok_or(DicomError::Missing(name))?
        } else {
            let data =
                lut_words(obj, seg_tag, b == 8, big_endian).ok_or(DicomError::Missing(name))?;
            expand_segmented(&data, b == 8, big_endian, None, 0).map_err(|why| bad(name, why))?
        };
        if entries.len() < n {
            return Err(bad(
                name,
                format!("{} entries, the descriptor says {n}", entries.len()),
            ));
        }
        luts.push(Lut {
            first,
            entries: entries[..n].to_vec(),
        });
    }
    let [r, g, b] = <[Lut; 3]>::try_from(luts).map_err(|_| DicomError::Missing("palette"))?;
    Ok(Palette {
        channels: [r, g, b],
        bits,
    })
}

/// The longest table a segmented LUT may expand to.
const MAX_LUT: usize = 65536;

/// Expands segmented LUT data (PS3.3 C.7.9.2) exactly as pydicom's `_expand_segmented_lut`:
/// linear segments rounded half to even, indirect segments by word offset.
fn expand_segmented(
    data: &[u16],
    eight_bit: bool,
    big_endian: bool,
    limit: Option<(usize, u16)>,
    depth: u32,
) -> Result<Vec<u16>, String> {
    if depth > 8 {
        return Err("segmented LUT: indirect segments nest too deep".into());
    }
    let (max_segments, last_value) = limit.map_or((usize::MAX, None), |(n, v)| (n, Some(v)));
    let short = || "segmented LUT: a segment runs past the data".to_string();
    let mut lut: Vec<u16> = Vec::new();
    let (mut off, mut segments) = (0usize, 0usize);
    while off + 1 < data.len() {
        let (op, len) = (data[off], usize::from(data[off + 1]));
        off += 2;
        match op {
            0 => {
                lut.extend_from_slice(data.get(off..off + len).ok_or_else(short)?);
                off += len;
            }
            1 => {
                let y0 = lut
                    .last()
                    .copied()
                    .or(last_value.filter(|&v| v != 0))
                    .ok_or("segmented LUT: the first segment is linear")?;
                let y1 = *data.get(off).ok_or_else(short)?;
                off += 1;
                if y0 == y1 || len == 0 {
                    lut.extend(std::iter::repeat_n(y1, len));
                } else {
                    // numpy.around(numpy.linspace(y0 + step, y1, len))
                    let (y0, y1) = (f64::from(y0), f64::from(y1));
                    let start = y0 + (y1 - y0) / len as f64;
                    let step = if len > 1 {
                        (y1 - start) / (len - 1) as f64
                    } else {
                        0.0
                    };
                    lut.extend((0..len).map(|i| {
                        let v = if i + 1 == len {
                            y1
                        } else {
                            start + i as f64 * step
                        };
                        v.round_ties_even() as u16
                    }));
                }
            }
            2 => {
                let last = *lut
                    .last()
                    .ok_or("segmented LUT: the first segment is indirect")?;
                let offset = if eight_bit {
                    let ii = if big_endian {
                        [2, 3, 0, 1]
                    } else {
                        [3, 2, 1, 0]
                    };
                    let b = |j: usize| data.get(off + ii[j]).map(|&v| usize::from(v));
                    let (b0, b1, b2, b3) = (b(0), b(1), b(2), b(3));
                    off += 4;
                    match (b0, b1, b2, b3) {
                        (Some(b0), Some(b1), Some(b2), Some(b3)) => {
                            ((b0 << 8 | b1) << 16) | (b2 << 8 | b3)
                        }
                        _ => return Err(short()),
                    }
                } else {
                    let lo = usize::from(*data.get(off).ok_or_else(short)?);
                    let hi = usize::from(*data.get(off + 1).ok_or_else(short)?);
                    off += 2;
                    hi << 16 | lo
                };
                let sub = data.get(offset..).ok_or_else(short)?;
                lut.extend(expand_segmented(
                    sub,
                    eight_bit,
                    big_endian,
                    Some((len, last)),
                    depth + 1,
                )?);
            }
            op => return Err(format!("segmented LUT: unknown segment type {op}")),
        }
        if lut.len() > MAX_LUT {
            return Err(format!("segmented LUT: more than {MAX_LUT} entries"));
        }
        segments += 1;
        if segments == max_segments {
            break;
        }
    }
    Ok(lut)
}

/// The Modality LUT (PS3.3 C.11.1), which replaces the rescale when present.
fn modality_lut(file: &DicomFile, encoding: Encoding) -> Result<Option<Lut>, DicomError> {
    let Some(item) = first_item(&file.object, tags::MODALITY_LUT_SEQUENCE) else {
        return Ok(None);
    };
    let name = "Modality LUT";
    let (n, first, bits) = lut_descriptor(item, tags::LUT_DESCRIPTOR, name, false)?;
    let big_endian = encoding == (Encoding::Native { big_endian: true });
    let entries =
        lut_words(item, tags::LUT_DATA, false, big_endian).ok_or(DicomError::Missing(name))?;
    if entries.len() < n {
        return Err(bad(
            name,
            format!("{} entries, the descriptor says {n}", entries.len()),
        ));
    }
    let mask = if bits >= 16 {
        u16::MAX
    } else {
        (1u16 << bits) - 1
    };
    Ok(Some(Lut {
        first,
        entries: entries[..n].iter().map(|&v| v & mask).collect(),
    }))
}

/// YBR_FULL → RGB, pydicom's `convert_color_space` (f32 matrix, round half up, clip).
fn ybr_to_rgb([y, cb, cr]: [u8; 3]) -> [u8; 3] {
    const R_CR: f32 = 1.402;
    const G_CB: f32 = (-0.114 * 1.772 / 0.587) as f32;
    const G_CR: f32 = (-0.299 * 1.402 / 0.587) as f32;
    const B_CB: f32 = 1.772;
    let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
    let round = |v: f32| (v + 0.5).floor().clamp(0.0, 255.0) as u8;
    [
        round(y + cr * R_CR),
        round(y + cb * G_CB + cr * G_CR),
        round(y + cb * B_CB),
    ]
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

/// What a file without pixel data is, for the error: its modality and SOP class.
fn unsupported(what: String) -> DicomError {
    DicomError::Unsupported(what)
}

fn bad(name: &'static str, why: impl ToString) -> DicomError {
    DicomError::BadAttribute {
        name,
        why: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_masked_sign_extended_and_inverted() {
        let b12 = Bits {
            stored: 12,
            shift: 0,
            signed: true,
        };
        // Garbage above Bits Stored is dropped; bit 11 is the sign.
        assert_eq!(b12.value(0xF800), -2048);
        assert_eq!(b12.value(0x07FF), 2047);
        assert_eq!(b12.inverted(-2048), 2047);
        let u10 = Bits {
            stored: 10,
            shift: 0,
            signed: false,
        };
        assert_eq!(u10.value(0xFFFF), 1023);
        assert_eq!(u10.inverted(0), 1023);
        assert_eq!(u10.to_u8(1023), 255);
        let b32 = Bits {
            stored: 32,
            shift: 0,
            signed: false,
        };
        assert_eq!(b32.value(u32::MAX), i64::from(u32::MAX));
    }

    #[test]
    fn packed_bits_read_lsb_first_across_bytes() {
        let s = Stored {
            bytes: Cow::Owned(vec![0b1000_0001, 0b0000_0010]),
            width: 1,
            big_endian: false,
            planar: false,
            bit_offset: 7,
            bits: Bits {
                stored: 1,
                shift: 0,
                signed: false,
            },
        };
        assert_eq!([s.raw(0), s.raw(1), s.raw(2)], [1, 0, 1]);
    }

    #[test]
    fn ybr_full_to_rgb_as_pydicom() {
        assert_eq!(ybr_to_rgb([128, 128, 128]), [128, 128, 128]);
        assert_eq!(ybr_to_rgb([255, 128, 128]), [255, 255, 255]);
        // Pure red in YBR_FULL (JFIF): Y 76, Cb 85, Cr 255.
        assert_eq!(ybr_to_rgb([76, 85, 255]), [254, 0, 0]);
    }

    #[test]
    fn rle_segments_make_little_endian_samples() {
        // One 16-bit sample a pixel, 3 pixels: MSB segment (run of 3 × 0x01), LSB segment
        // (literal 0x02 0x03 0x04).
        let mut data = vec![0u8; 64];
        data[0] = 2;
        data[4] = 64;
        data[8] = 66;
        data.extend_from_slice(&[0xFE, 0x01]); // repeat 3 times
        data.extend_from_slice(&[0x02, 0x02, 0x03, 0x04]); // 3 literals
        let out = rle_decode(&data, 3, 1, 16, 0).expect("decodes");
        assert_eq!(out, [0x02, 0x01, 0x03, 0x01, 0x04, 0x01]);
        assert!(matches!(
            rle_decode(&data, 4, 1, 16, 0),
            Err(DicomError::Decode { .. })
        ));
    }

    #[test]
    fn jpeg_ls_header_is_checked_without_panicking() {
        // SOI, a SPIFF-like APP8, SOF55 (12-bit, 64 rows, 32 columns, 1 component), SOS.
        let mut jls = vec![0xFF, 0xD8, 0xFF, 0xE8, 0x00, 0x04, 0xAB, 0xCD];
        jls.extend([0xFF, 0xF7, 0x00, 0x0B, 12, 0, 64, 0, 32, 1, 1, 0x11, 0]);
        jls.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 0, 0]);
        let want = JpegLsHeader {
            width: 32,
            height: 64,
            components: 1,
            precision: 12,
        };
        assert_eq!(jpeg_ls_header(&jls), Ok(want));
        for n in 0..jls.len() - 10 {
            assert!(jpeg_ls_header(&jls[..n]).is_err(), "truncated at {n}");
        }
        let mut short_len = jls.clone();
        short_len[11] = 1; // SOF55 length below its own two bytes
        assert!(jpeg_ls_header(&short_len).is_err());
        let mut no_sof = jls.clone();
        no_sof[9] = 0xE9;
        assert!(jpeg_ls_header(&no_sof).is_err());
    }

    #[test]
    fn segmented_lut_expands_as_pydicom() {
        // Discrete [0, 10], linear to 20 over 2, indirect: repeat the first segment.
        let data = [0, 2, 0, 10, 1, 2, 20, 2, 1, 0, 0];
        let lut = expand_segmented(&data, false, false, None, 0).expect("expands");
        assert_eq!(lut, [0, 10, 15, 20, 0, 10]);
        assert!(expand_segmented(&[1, 2, 5], false, false, None, 0).is_err());
    }
}
