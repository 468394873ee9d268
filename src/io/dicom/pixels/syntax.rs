//! Transfer syntax → how the Pixel Data is stored, or a named refusal.

use crate::io::dicom::DicomError;

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
pub(super) enum Encoding {
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
    pub(super) fn of(uid: &str) -> Result<Self, DicomError> {
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

    pub(super) fn encapsulated(self) -> bool {
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
