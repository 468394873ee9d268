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
const ITEM_DELIMITER: (u16, u16) = (0xFFFE, 0xE00D);
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
    // The file meta information is explicit VR little endian, always, and read as
    // dicom-object 0.10 reads it: a group length (0002,0000) of 4 bytes, then elements of
    // any group until that many bytes are read; the data set starts where they end, which
    // is not where group 0002 ends when the group length says otherwise (found by
    // fuzzing). dicom-object refuses anything else there, and so the pass stops.
    let Some(h) = r.header()? else { return Ok(()) };
    let Some(group_length) = r
        .u32(r.at)
        .filter(|_| h.tag == (0x0002, 0x0000) && h.len == 4)
    else {
        return Ok(());
    };
    r.at += 4;
    let mut syntax = Vec::new();
    let mut meta_read = 0u32;
    while meta_read < group_length {
        let start = r.at;
        let Some(h) = r.header()? else { return Ok(()) };
        if h.len == UNDEFINED {
            return Ok(());
        }
        if h.tag == (0x0002, 0x0010) {
            let end = r.at.saturating_add(h.len as usize);
            syntax = r.bytes.get(r.at..end).unwrap_or_default().to_vec();
        }
        r.skip(&h)?;
        // At most the file's length: `skip` checked the value fits.
        meta_read = meta_read.saturating_add(u32::try_from(r.at - start).unwrap_or(u32::MAX));
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

/// A sequence or item open where the walk is, as dicom-rs's reader keeps it.
struct Open {
    item: bool,
    /// In encapsulated pixel data: its items are fragments, whose bytes dicom-rs reads
    /// into a buffer of the item's length.
    pixel_data: bool,
    /// Where a defined length ends it.
    end: Option<usize>,
}

/// The data set from `r`'s position to its end, walked in the states of dicom-rs's
/// `DataSetReader` (dicom-parser 0.10): after a sequence starts it reads item headers,
/// inside a fragment the fragment's bytes, elsewhere element headers. What a header means
/// depends on that state: in a data set, a tag of group FFFE other than the item
/// delimiter is a plain element whose value dicom-rs reads by its length (a fuzzed
/// (FFFE,DF0D) declared 4.3 GB); an element of undefined length, whatever its VR, is a
/// sequence. A defined-length sequence or item ends where its length says. Where
/// dicom-rs would stop with an error, the walk stops too.
fn walk_data_set(r: &mut Reader) -> Result<(), DicomError> {
    let mut open: Vec<Open> = Vec::new();
    let mut in_sequence = false;
    loop {
        while let Some(end) = open.last().and_then(|o| o.end) {
            match r.at.cmp(&end) {
                std::cmp::Ordering::Less => break,
                std::cmp::Ordering::Equal => {
                    in_sequence = open.pop().is_some_and(|o| o.item);
                }
                std::cmp::Ordering::Greater => return Ok(()),
            }
        }
        if in_sequence {
            let Some(h) = r.item_header() else {
                return Ok(());
            };
            match h.tag {
                ITEM => {
                    let Some(pixel_data) = open.last().map(|o| o.pixel_data) else {
                        return Ok(());
                    };
                    r.fits(&h)?;
                    open.push(Open {
                        item: true,
                        pixel_data,
                        end: r.end_of(&h),
                    });
                    in_sequence = false;
                }
                ITEM_DELIMITER => {
                    open.pop();
                }
                SEQUENCE_DELIMITER => {
                    open.pop();
                    in_sequence = false;
                }
                _ => return Ok(()),
            }
        } else if let Some(Open {
            item: true,
            pixel_data: true,
            end,
        }) = open.last()
        {
            // The fragment's length was checked with its item header.
            let Some(end) = *end else { return Ok(()) };
            r.at = end;
        } else {
            let Some(h) = r.header()? else {
                return Ok(());
            };
            if h.vr == VR::SQ {
                r.fits(&h)?;
                open.push(Open {
                    item: false,
                    pixel_data: false,
                    end: r.end_of(&h),
                });
                in_sequence = true;
            } else if h.tag == ITEM_DELIMITER {
                // Outside any sequence dicom-rs ignores it.
                if open.pop().is_some() {
                    in_sequence = true;
                }
            } else if h.len == UNDEFINED {
                open.push(Open {
                    item: false,
                    pixel_data: h.tag == PIXEL_DATA,
                    end: None,
                });
                in_sequence = true;
            } else {
                r.skip_as_read(&h)?;
            }
        }
    }
}

struct Header {
    tag: (u16, u16),
    /// The file's VR in explicit VR; in implicit VR the dictionary's (`implicit_vr`).
    vr: VR,
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

    /// The next element's header, the reader after it; `None` at the end, or where the
    /// bytes are not a header this pass reads (dicom-rs says what is wrong there).
    fn header(&mut self) -> Result<Option<Header>, DicomError> {
        let at = self.at;
        let (Some(group), Some(element)) = (self.u16(at), self.u16(at + 2)) else {
            return Ok(None);
        };
        let tag = (group, element);
        // Items and delimiters have no VR in any encoding; in explicit VR dicom-rs reads
        // every header of their group so, as UN.
        let (vr, len, size) = if !self.explicit {
            (implicit_vr(tag), self.u32(at + 4), 8)
        } else if group == 0xFFFE {
            (VR::UN, self.u32(at + 4), 8)
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
                (vr, self.u32(at + 8), 12)
            } else {
                (vr, self.u16(at + 6).map(u32::from), 8)
            }
        };
        let Some(len) = len else { return Ok(None) };
        self.at = at + size;
        Ok(Some(Header { tag, vr, len }))
    }

    /// An item header (tag and length, no VR in any encoding), the reader after it.
    fn item_header(&mut self) -> Option<Header> {
        let at = self.at;
        let tag = (self.u16(at)?, self.u16(at + 2)?);
        let len = self.u32(at + 4)?;
        self.at = at + 8;
        Some(Header {
            tag,
            vr: VR::UN,
            len,
        })
    }

    /// Where a value of `h`'s length that starts here ends; `None` for undefined.
    fn end_of(&self, h: &Header) -> Option<usize> {
        (h.len != UNDEFINED).then(|| self.at + h.len as usize)
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
        use VR::*;
        let size = match h.vr {
            FD | OD | SV | UV | OV => 8,
            FL | OF | SL | UL | OL | AT => 4,
            SS | US | OW => 2,
            _ => 1,
        };
        self.at += h.len as usize / size * size;
        Ok(())
    }
}

/// An implicit-VR element's VR as the pass steps over it, looked up once per header: the
/// dictionary's, US for its US-or-SS ones, UN where it has none or several.
fn implicit_vr((group, element): (u16, u16)) -> VR {
    match StandardDataDictionary
        .by_tag(Tag(group, element))
        .map(|e| e.vr())
    {
        Some(VirtualVr::Exact(vr)) => vr,
        Some(VirtualVr::Xs) => VR::US,
        _ => VR::UN,
    }
}
