//! Lookup tables: the Modality LUT and the palette colour tables (plain or segmented),
//! read as pydicom reads them.

use dicom_core::value::Value;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::bad;
use super::native::{file_bytes, stored_len};
use super::syntax::Encoding;
use crate::io::dicom::meta::first_item;
use crate::io::dicom::{DicomError, DicomFile};

/// A lookup table (Modality LUT, a palette channel): values from `first`, clamped at both
/// ends as pydicom does.
#[derive(Debug, PartialEq)]
pub(super) struct Lut {
    first: i64,
    entries: Vec<u16>,
}

impl Lut {
    #[inline]
    pub(super) fn get(&self, v: i64) -> u16 {
        let last = self.entries.len().saturating_sub(1);
        let i = (v - self.first).clamp(0, last as i64) as usize;
        self.entries.get(i).copied().unwrap_or(0)
    }
}

#[derive(Debug, PartialEq)]
pub(super) struct Palette {
    pub(super) channels: [Lut; 3],
    /// The table's nominal bits (descriptor), brought to 8 by `>> (bits − 8)`.
    pub(super) bits: u32,
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
pub(super) fn palette(file: &DicomFile, encoding: Encoding) -> Result<Palette, DicomError> {
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
pub(super) fn modality_lut(
    file: &DicomFile,
    encoding: Encoding,
) -> Result<Option<Lut>, DicomError> {
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmented_lut_expands_as_pydicom() {
        // Discrete [0, 10], linear to 20 over 2, indirect: repeat the first segment.
        let data = [0, 2, 0, 10, 1, 2, 20, 2, 1, 0, 0];
        let lut = expand_segmented(&data, false, false, None, 0).expect("expands");
        assert_eq!(lut, [0, 10, 15, 20, 0, 10]);
        assert!(expand_segmented(&[1, 2, 5], false, false, None, 0).is_err());
    }
}
