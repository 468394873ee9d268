//! The codestream headers checked before a codec sees a frame: JPEG markers, the JPEG 2000
//! SIZ marker, the JPEG-LS SOF55.

/// What MedSeg needs from a JPEG frame's markers.
#[derive(Debug, Default, PartialEq)]
pub(super) struct JpegHeader {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) components: usize,
    pub(super) precision: u8,
    pub(super) lossless: bool,
    /// Three components stored without a colour transform, as libjpeg (pydicom) reads
    /// them: no JFIF marker, and Adobe APP14 transform 0 or, without APP14, component ids
    /// other than the JFIF 1, 2, 3; ids 'R', 'G', 'B' need nothing.
    pub(super) rgb_without_transform: bool,
    /// Where the frame header's component ids are, and every scan's component selectors.
    id_positions: Vec<usize>,
    selector_positions: Vec<usize>,
}

/// Reads the markers of a JPEG stream (all of it: a later scan's selectors matter too).
pub(super) fn jpeg_header(data: &[u8]) -> Result<JpegHeader, &'static str> {
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
pub(super) fn set_rgb_component_ids(data: &mut [u8], h: &JpegHeader) {
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
pub(super) struct J2kHeader {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) components: usize,
    pub(super) precision: u32,
    pub(super) signed: bool,
    pub(super) subsampled: bool,
}

pub(super) fn j2k_header(data: &[u8]) -> Result<J2kHeader, &'static str> {
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
pub(super) struct JpegLsHeader {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) components: usize,
    pub(super) precision: u32,
}

/// Reads the markers of a JPEG-LS stream up to its first scan (the frame header comes
/// before it; a SPIFF header is an APP8 segment, skipped as any other).
pub(super) fn jpeg_ls_header(data: &[u8]) -> Result<JpegLsHeader, &'static str> {
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
#[cfg(test)]
mod tests {
    use super::*;

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
}
