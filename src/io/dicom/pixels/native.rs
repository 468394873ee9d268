//! The native (uncompressed) layouts: sample words of 1, 8, 16 or 32 bits in either byte
//! order, interleaved or planar, read in the file's byte order.

use std::borrow::Cow;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::values::Bits;
use super::{Plan, frame_shape};
use crate::io::dicom::{DicomError, DicomFile};

/// One frame's samples as stored: pixel-interleaved unless `planar`; sample words of
/// `width` bits (1, 8, 16, 32) in the given byte order; 1-bit samples start at bit
/// `bit_offset` of `bytes` (frames of packed bits need not start on a byte); `bits` says
/// which bits of a sample word hold its value.
pub(super) struct Stored<'b> {
    pub(super) bytes: Cow<'b, [u8]>,
    pub(super) width: u32,
    pub(super) big_endian: bool,
    pub(super) planar: bool,
    pub(super) bit_offset: usize,
    pub(super) bits: Bits,
}

impl Stored<'_> {
    /// Sample `k` in storage order; `k` must be below the count checked by the caller.
    #[inline]
    pub(super) fn raw(&self, k: usize) -> u32 {
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
    pub(super) fn needed(width: u32, samples: usize, bit_offset: usize) -> usize {
        if width == 1 {
            (bit_offset + samples).div_ceil(8)
        } else {
            samples * (width as usize / 8)
        }
    }
}

impl<'a> Plan<'a> {
    /// Frame `f` of native Pixel Data, borrowed from the file where its bytes allow.
    pub(super) fn native_frame(
        &self,
        f: usize,
        big_endian: bool,
    ) -> Result<Stored<'a>, DicomError> {
        let ba = u32::from(self.img.bits_allocated);
        let samples = self.frame_samples();
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
        Ok(Stored {
            // 8-bit samples in OW of a big-endian file are byte-swapped with their words
            // (PS3.5 A.3.1): read them from little-endian words.
            bytes: file_bytes(p, start..start + len, big_endian && ba != 8),
            width: ba,
            big_endian,
            planar: self.spp == 3 && self.img.planar_configuration == 1,
            bit_offset,
            bits: self.bits,
        })
    }
}

type InMemValue = Value<InMemDicomObject, Vec<u8>>;

pub(super) fn pixel_value(file: &DicomFile) -> Result<&InMemValue, DicomError> {
    let obj: &InMemDicomObject = &file.object;
    obj.element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .map(|e| e.value())
        .ok_or(DicomError::Missing("Pixel Data"))
}

/// The byte length of a primitive value as stored in the file.
pub(super) fn stored_len(p: &PrimitiveValue) -> usize {
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
pub(super) fn file_bytes(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
