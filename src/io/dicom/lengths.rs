//! A pass over a Part 10 file's element headers before dicom-rs reads it: every defined
//! length must fit in the bytes that follow it. dicom-rs sizes a value's buffer by its
//! declared length before reading it: binary values with a fallible reservation that it
//! then fills with zeros (a 700-byte file declaring a 3.7 GB element makes it reserve and
//! touch 3.7 GB natively; found by fuzzing, `fuzz/regressions/dicom/`), text values with
//! an allocation that cannot fail softly (in the browser, an abort of the engine). The
//! pass only refuses what cannot be read anyway; a deflated data set is walked inflated
//! (at most `MAX_INFLATED` bytes; a corrupt stream as far as it inflates); where the
//! bytes end mid-header it stops and leaves the rest to dicom-rs.

use std::io::Read;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use super::DicomError;

const UNDEFINED: u32 = u32::MAX;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const SEQUENCE_DELIMITER: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// Checks `file` (a whole Part 10 file, preamble included) as the module says.
pub fn check_declared_lengths(file: &[u8]) -> Result<(), DicomError> {
    let mut r = Reader {
        bytes: file.get(132..).unwrap_or_default(),
        at: 0,
        explicit: true,
        big_endian: false,
    };
    // The file meta information (group 0002) is explicit VR little endian, always.
    let mut syntax = Vec::new();
    while r.peek_group() == Some(0x0002) {
        let Some(h) = r.header()? else { return Ok(()) };
        if h.tag == (0x0002, 0x0010) {
            let end = r.at.saturating_add(h.len as usize);
            syntax = r.bytes.get(r.at..end).unwrap_or_default().to_vec();
        }
        r.skip(&h)?;
    }
    let syntax = String::from_utf8_lossy(&syntax);
    match syntax.trim_end_matches(['\0', ' ']) {
        // Deflated (and JPIP referenced deflate): the data set is a raw deflate stream of
        // explicit VR little endian (PS3.5 A.5), which dicom-rs inflates as it reads; it
        // is walked inflated.
        "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.4.95" => {
            let inflated = inflate(r.bytes.get(r.at..).unwrap_or_default())?;
            let mut inner = Reader {
                bytes: &inflated,
                at: 0,
                explicit: true,
                big_endian: false,
            };
            return walk_data_set(&mut inner);
        }
        "1.2.840.10008.1.2" => r.explicit = false,
        "1.2.840.10008.1.2.2" => r.big_endian = true,
        _ => {}
    }
    walk_data_set(&mut r)
}

/// The most a deflated data set may inflate to (deflate expands up to 1032:1: a few MB of
/// file could ask for gigabytes); a larger one is refused before dicom-rs reads it.
const MAX_INFLATED: u64 = if cfg!(target_pointer_width = "32") {
    1 << 29
} else {
    1 << 31
};

/// The inflated data set; where the stream is corrupt, what inflated before the damage
/// (dicom-rs reads that far too, then says what is wrong).
fn inflate(deflated: &[u8]) -> Result<Vec<u8>, DicomError> {
    let mut out = Vec::new();
    // On an error, the bytes inflated so far are in `out`.
    let _ = flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out);
    if out.len() as u64 > MAX_INFLATED {
        return Err(DicomError::TooLarge(format!(
            "the deflated data set inflates to more than {MAX_INFLATED} bytes"
        )));
    }
    Ok(out)
}

/// The data set from `r`'s position to its end.
fn walk_data_set(r: &mut Reader) -> Result<(), DicomError> {
    // The data set, header after header, as dicom-rs reads it: the values of sequences,
    // of their items and of any other element of undefined length (taken as a sequence,
    // in the file's encoding) are data sets themselves, walked into; other values are
    // stepped over. In encapsulated pixel data the items are fragments, stepped over.
    let mut in_fragments = false;
    while let Some(h) = r.header()? {
        match h.tag {
            ITEM if in_fragments => r.skip(&h)?,
            ITEM => r.fits(&h)?,
            SEQUENCE_DELIMITER => in_fragments = false,
            (0xFFFE, _) => {}
            PIXEL_DATA if h.len == UNDEFINED => in_fragments = true,
            _ if h.len == UNDEFINED => {}
            _ if r.is_sequence(&h) => r.fits(&h)?,
            _ => r.skip_as_read(&h)?,
        }
    }
    Ok(())
}

struct Header {
    tag: (u16, u16),
    /// Explicit VR only.
    vr: Option<VR>,
    len: u32,
}

struct Reader<'a> {
    /// The file after the preamble and "DICM".
    bytes: &'a [u8],
    at: usize,
    explicit: bool,
    big_endian: bool,
}

impl Reader<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn peek_group(&self) -> Option<u16> {
        self.u16(self.at)
    }

    /// The next element's header, the reader after it; `None` at the end, or where the
    /// bytes are not a header this pass reads (dicom-rs says what is wrong there).
    fn header(&mut self) -> Result<Option<Header>, DicomError> {
        let at = self.at;
        let (Some(group), Some(element)) = (self.u16(at), self.u16(at + 2)) else {
            return Ok(None);
        };
        let tag = (group, element);
        // Items and delimiters have no VR in any encoding.
        let (vr, len, size) = if !self.explicit || group == 0xFFFE {
            (None, self.u32(at + 4), 8)
        } else {
            let Some(vr) = self
                .bytes
                .get(at + 4..at + 6)
                // An unknown VR is read as UN, as dicom-rs does.
                .map(|b| VR::from_binary([b[0], b[1]]).unwrap_or(VR::UN))
            else {
                return Ok(None);
            };
            // PS3.5 7.1.2: these VRs have 2 reserved bytes and a 4-byte length.
            use VR::*;
            if matches!(
                vr,
                OB | OD | OF | OL | OV | OW | SQ | SV | UC | UN | UR | UT | UV
            ) {
                (Some(vr), self.u32(at + 8), 12)
            } else {
                (Some(vr), self.u16(at + 6).map(u32::from), 8)
            }
        };
        let Some(len) = len else { return Ok(None) };
        self.at = at + size;
        Ok(Some(Header { tag, vr, len }))
    }

    /// A defined length must fit in what is left of the file.
    fn fits(&self, h: &Header) -> Result<(), DicomError> {
        let left = self.bytes.len() - self.at;
        if h.len != UNDEFINED && h.len as usize > left {
            let (g, e) = h.tag;
            return Err(DicomError::Parse(format!(
                "element ({g:04X},{e:04X}) declares {} bytes, but only {left} follow it",
                h.len
            )));
        }
        Ok(())
    }

    fn skip(&mut self, h: &Header) -> Result<(), DicomError> {
        self.fits(h)?;
        if h.len != UNDEFINED {
            self.at += h.len as usize;
        }
        Ok(())
    }

    /// Steps over a value as dicom-rs does: a value of fixed-size numbers is read as whole
    /// numbers only (`len / size` of them), so a length that is not a multiple of the
    /// size leaves its reader that many bytes early (its next header starts there).
    fn skip_as_read(&mut self, h: &Header) -> Result<(), DicomError> {
        self.fits(h)?;
        let vr =
            h.vr.or_else(
                || match StandardDataDictionary.by_tag(Tag(h.tag.0, h.tag.1))?.vr() {
                    VirtualVr::Exact(vr) => Some(vr),
                    VirtualVr::Xs => Some(VR::US),
                    _ => None,
                },
            );
        use VR::*;
        let size = match vr {
            Some(FD | OD | SV | UV | OV) => 8,
            Some(FL | OF | SL | UL | OL | AT) => 4,
            Some(SS | US | OW) => 2,
            _ => 1,
        };
        self.at += h.len as usize / size * size;
        Ok(())
    }

    fn is_sequence(&self, h: &Header) -> bool {
        match h.vr {
            Some(vr) => vr == VR::SQ,
            None => StandardDataDictionary
                .by_tag(Tag(h.tag.0, h.tag.1))
                .is_some_and(|e| e.vr() == VirtualVr::Exact(VR::SQ)),
        }
    }
}
