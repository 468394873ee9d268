//! Samples → values: the bits of a sample word that hold its value (mask, sign), MONOCHROME1,
//! the Modality LUT or rescale for grey; RGB, YBR_FULL(_422) and palette colour to RGB bytes.

use super::Plan;
use super::lut::Palette;
use super::native::Stored;

/// What the decoded samples mean.
#[derive(Debug)]
pub(super) enum Colour {
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
pub(super) struct Bits {
    pub(super) stored: u32,
    /// Where the value's lowest bit sits (High Bit + 1 − Bits Stored).
    pub(super) shift: u32,
    pub(super) signed: bool,
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

impl Plan<'_> {
    pub(super) fn grey_into(&self, s: &Stored, f: usize, dst: &mut [f32]) {
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

    pub(super) fn rgb_into(&self, s: &Stored, dst: &mut [u8]) {
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
    fn ybr_full_to_rgb_as_pydicom() {
        assert_eq!(ybr_to_rgb([128, 128, 128]), [128, 128, 128]);
        assert_eq!(ybr_to_rgb([255, 128, 128]), [255, 255, 255]);
        // Pure red in YBR_FULL (JFIF): Y 76, Cb 85, Cr 255.
        assert_eq!(ybr_to_rgb([76, 85, 255]), [254, 0, 0]);
    }
}
