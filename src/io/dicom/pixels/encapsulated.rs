//! Encapsulated frames: which fragments make a frame, and the codecs (dicom-rs for JPEG and
//! JPEG 2000, pure_jpegls for JPEG-LS) after their codestream headers are checked.

use std::borrow::Cow;

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;

use super::codestream::{j2k_header, jpeg_header, jpeg_ls_header, set_rgb_component_ids};
use super::native::{Stored, pixel_value};
use super::syntax::Encoding;
use super::values::Bits;
use super::{Plan, bad, frame_shape, unsupported};
use crate::io::dicom::meta::ImageMeta;
use crate::io::dicom::{DicomError, error_chain};

impl<'a> Plan<'a> {
    /// The compressed bytes of frame `f`: the fragments that make it (PS3.5 A.4).
    pub(super) fn frame_fragments(&self, f: usize) -> Result<Cow<'a, [u8]>, DicomError> {
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
    pub(super) fn codec_frame(&self, f: usize) -> Result<Stored<'a>, DicomError> {
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
    pub(super) fn jpeg_ls_frame(&self, f: usize) -> Result<Stored<'a>, DicomError> {
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
