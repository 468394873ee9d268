//! RLE Lossless (PS3.5 G), any bits allocated.

use std::borrow::Cow;

use super::native::Stored;
use super::{Plan, try_alloc};
use crate::io::dicom::DicomError;

impl<'a> Plan<'a> {
    /// Frame `f` of RLE Lossless Pixel Data, decoded.
    pub(super) fn rle_frame(&self, f: usize) -> Result<Stored<'a>, DicomError> {
        let ba = u32::from(self.img.bits_allocated);
        let data = self.frame_fragments(f)?;
        Ok(Stored {
            bytes: Cow::Owned(rle_decode(&data, self.pixels, self.spp, ba, f)?),
            width: ba,
            big_endian: false,
            planar: false,
            bit_offset: 0,
            bits: self.bits,
        })
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
#[cfg(test)]
mod tests {
    use super::*;

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
}
