//! Masks written as a DICOM Segmentation (SEG): one binary Segmentation instance holding
//! every segment (a label and a colour each) of an opened DICOM document, referring to
//! the source series, instances and frames, so that OHIF, 3D Slicer, highdicom or a PACS
//! lays it over the images it came from.
//!
//! What is written, and why (PS3.3 A.51, C.8.20):
//! - Segmentation Storage (1.2.840.10008.5.1.4.1.1.66.4), Explicit VR Little Endian,
//!   Segmentation Type BINARY: Bits Allocated 1, the frames' bits packed one after the
//!   other (the first pixel in the lowest bit; a frame does not start on a byte boundary,
//!   PS3.5 8.1.1), the whole padded to an even length.
//! - Frames: one per (segment, document frame) whose mask has a pixel set, ordered by
//!   segment then by document frame (as highdicom and dcmqi write them); empty masks are
//!   left out (a reader shows nothing there, which is what they are). Every segment is in
//!   the Segment Sequence, even one with no frame, so the numbers stay the user's order.
//!   When no mask has a pixel set there is nothing to export: [`DicomError::NoMasks`].
//! - Segments: Segment Number 1, 2, … in the order given; the label (LO: 64 characters,
//!   no backslash or control characters); the colour as Recommended Display CIELab Value
//!   (sRGB → CIE XYZ (D65) → L*a*b*, the conversion of highdicom and PixelMed); Segment
//!   Algorithm Type and Name from [`SegOptions`]. MedSeg does not know what a segment
//!   is, so every segment gets the generic pair 3D Slicer gives a new segment:
//!   category SCT 85756007 "Tissue", type SCT 85756007 "Tissue"; the label names it.
//! - Geometry: when the source has a Frame of Reference, an orientation, a pixel spacing
//!   and a position for every frame (a CT/MR volume), the SEG is in the same Frame of
//!   Reference with Plane Orientation and Pixel Measures (Pixel Spacing, Slice Thickness,
//!   Spacing Between Slices as known) shared and a Plane Position per frame; its
//!   dimensions are Referenced Segment Number then Image Position (Patient), whose index
//!   is the frame's place in the document (slices sorted along the normal). Otherwise (a
//!   cine, an ultrasound or a photograph without patient geometry) no plane is written —
//!   the masks are pixel-aligned to their source frames, which each frame's Derivation
//!   Image references — the Frame of Reference is copied only if the source has one, and
//!   the dimensions are Referenced Segment Number then Temporal Position Index (the frame
//!   of the clip, 1-based, in Frame Content). No Frame of Reference is ever made up: a
//!   new one would claim a patient space nobody measured. (Patient Orientation is then
//!   present and empty, Type 2C.)
//! - Each frame's Derivation Image Sequence names its source (SOP class and instance,
//!   Referenced Frame Number for a multi-frame source), with purpose DCM 121322 "Source
//!   image for image processing operation", derivation DCM 113076 "Segmentation" and
//!   Spatial Locations Preserved YES (the mask has the source frame's pixel grid).
//!   Referenced Series Sequence lists every instance of the source series.
//! - Patient and study: exactly the Type 2 attributes of the Patient and General Study
//!   modules (Patient's Name, ID, Birth Date, Sex; Study Date, Time, ID, Accession
//!   Number, Referring Physician's Name), copied from the source (empty where it has
//!   none), and the source's Study Instance UID; nothing else about the patient.
//! - New UIDs (series, instance, dimension organisation) are "2.25." and the decimal
//!   value of a random UUID v4 (PS3.5 B.2). The date and time are the caller's
//!   ([`SegOptions::date`], [`SegOptions::time`]): wasm32 has no clock in std.
//! - Equipment: Manufacturer and Manufacturer's Model Name "MedSeg", Software Versions
//!   the crate version, Device Serial Number "0" (software has none; Type 1, as dcmqi).
//! - Segments Overlap YES or NO as the masks are; Lossy Image Compression "00" (the
//!   SEG's own pixels never were compressed lossily, whatever its source's were).
//! - Text is written as UTF-8 (Specific Character Set ISO_IR 192) when any is not ASCII.

use dicom_core::value::{C, DataSetSequence};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::{DicomError, DicomSource, error_chain};

/// One segment: a name, a colour and a mask per document frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Segment Label (cut to 64 characters; backslashes and control characters become
    /// spaces; "Segment N" when empty).
    pub label: String,
    /// Display colour, sRGB; written as Recommended Display CIELab Value.
    pub colour: [u8; 3],
    /// One entry per document frame (as [`DicomSource::frames`]): `rows × columns`
    /// bytes, row-major, non-zero = inside; `None` for a frame without a mask.
    pub masks: Vec<Option<Vec<u8>>>,
}

/// How the segments were made (Segment Algorithm Type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlgorithmType {
    Manual,
    Semiautomatic,
    Automatic,
}

impl AlgorithmType {
    fn code(self) -> &'static str {
        match self {
            AlgorithmType::Manual => "MANUAL",
            AlgorithmType::Semiautomatic => "SEMIAUTOMATIC",
            AlgorithmType::Automatic => "AUTOMATIC",
        }
    }
}

/// What the SEG says about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SegOptions {
    /// Series Description (LO, 64 characters).
    pub series_description: String,
    /// Series Number (Type 1 in a Segmentation Series).
    pub series_number: u32,
    /// Content Label (CS: upper-case letters, digits, space and underscore, 16 characters;
    /// other characters become underscores).
    pub content_label: String,
    /// Segment Algorithm Type of every segment.
    pub algorithm_type: AlgorithmType,
    /// Segment Algorithm Name ("MedSAM2", "LiteMedSAM"); written unless MANUAL.
    pub algorithm_name: String,
    /// Content Date (DA, "YYYYMMDD"), also Series Date: when the masks were made, local
    /// time, from the caller's clock (the CLI's system clock, the page's JS `Date`).
    pub date: String,
    /// Content Time (TM, "HHMMSS" or "HHMMSS.FFFFFF"), also Series Time.
    pub time: String,
}

impl SegOptions {
    /// The defaults: "MedSeg segmentation", series 300 (well above a scanner's usual
    /// series numbers, so that viewers list it after the images), label "MEDSEG",
    /// SEMIAUTOMATIC.
    pub fn new(algorithm_name: &str, date: &str, time: &str) -> Self {
        Self {
            series_description: "MedSeg segmentation".into(),
            series_number: 300,
            content_label: "MEDSEG".into(),
            algorithm_type: AlgorithmType::Semiautomatic,
            algorithm_name: algorithm_name.into(),
            date: date.into(),
            time: time.into(),
        }
    }
}

/// The software, for Manufacturer's Model Name and Software Versions.
const SOFTWARE: &str = "MedSeg";
/// MedSeg's Implementation Class UID (file meta information): a fixed UUID-derived UID.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.337663386621647628230124850157648595205";

/// How the SEG's frames are placed: in the patient (a volume) or pixel-aligned to their
/// source frames only.
enum Geometry {
    Patient {
        orientation: [f64; 6],
        spacing: [f64; 2],
        positions: Vec<[f64; 3]>,
    },
    SourcePixels,
}

/// Writes `segments` of the document `source` as a binary DICOM Segmentation (a Part 10
/// file, Explicit VR Little Endian).
pub fn write_seg(
    source: &DicomSource,
    segments: &[Segment],
    options: &SegOptions,
) -> Result<Vec<u8>, DicomError> {
    let rows = dimension(source.rows, "Rows")?;
    let columns = dimension(source.columns, "Columns")?;
    let pixels = source.rows * source.columns;
    check_date_time(&options.date, &options.time)?;
    if segments.len() > u16::MAX as usize {
        return Err(DicomError::TooLarge(format!(
            "{} segments (a SEG holds at most {})",
            segments.len(),
            u16::MAX
        )));
    }
    for (s, segment) in segments.iter().enumerate() {
        if segment.masks.len() != source.frames.len() {
            return Err(DicomError::MaskFrames {
                segment: s + 1,
                got: segment.masks.len(),
                expected: source.frames.len(),
            });
        }
        for (f, mask) in segment.masks.iter().enumerate() {
            if let Some(m) = mask
                && m.len() != pixels
            {
                return Err(DicomError::MaskSize {
                    segment: s + 1,
                    frame: f + 1,
                    got: m.len(),
                    rows: source.rows,
                    columns: source.columns,
                });
            }
        }
    }

    // The SEG's frames: (segment index, document frame index, mask).
    let frames: Vec<(usize, usize, &[u8])> = segments
        .iter()
        .enumerate()
        .flat_map(|(s, segment)| {
            segment.masks.iter().enumerate().filter_map(move |(f, m)| {
                m.as_deref()
                    .filter(|m| m.iter().any(|&v| v != 0))
                    .map(|m| (s, f, m))
            })
        })
        .collect();
    if frames.is_empty() {
        return Err(DicomError::NoMasks);
    }
    let pixel_data = pack_bits(frames.iter().map(|&(_, _, m)| m), pixels)?;

    let geometry = geometry(source);
    let series_uid = new_uid()?;
    let instance_uid = new_uid()?;
    let dimension_uid = new_uid()?;

    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag: Tag, vr: VR, value: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, value));
    };

    // SOP Common.
    put(
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SEGMENTATION_STORAGE.into(),
    );
    put(tags::SOP_INSTANCE_UID, VR::UI, instance_uid.clone().into());

    // Patient and General Study: the Type 2 attributes, copied (empty when unknown).
    let p = &source.patient;
    for (tag, vr, value) in [
        (tags::PATIENT_NAME, VR::PN, &p.patient_name),
        (tags::PATIENT_ID, VR::LO, &p.patient_id),
        (tags::PATIENT_BIRTH_DATE, VR::DA, &p.patient_birth_date),
        (tags::PATIENT_SEX, VR::CS, &p.patient_sex),
        (tags::STUDY_DATE, VR::DA, &p.study_date),
        (tags::STUDY_TIME, VR::TM, &p.study_time),
        (tags::STUDY_ID, VR::SH, &p.study_id),
        (tags::ACCESSION_NUMBER, VR::SH, &p.accession_number),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            &p.referring_physician_name,
        ),
    ] {
        put(tag, vr, optional_text(value.as_deref()));
    }
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        required(&source.study_instance_uid, "Study Instance UID")?.into(),
    );

    // General Series and Segmentation Series.
    put(tags::MODALITY, VR::CS, "SEG".into());
    put(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.into());
    put(
        tags::SERIES_NUMBER,
        VR::IS,
        options.series_number.to_string().into(),
    );
    put(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        long_string(&options.series_description).into(),
    );
    put(tags::SERIES_DATE, VR::DA, options.date.clone().into());
    put(tags::SERIES_TIME, VR::TM, options.time.clone().into());

    // Frame of Reference: the source's, when it has one.
    if let Some(for_uid) = source
        .frame_of_reference_uid
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        put(tags::FRAME_OF_REFERENCE_UID, VR::UI, for_uid.into());
        put(
            tags::POSITION_REFERENCE_INDICATOR,
            VR::LO,
            PrimitiveValue::Empty,
        );
    }

    // General Equipment and Enhanced General Equipment.
    put(tags::MANUFACTURER, VR::LO, SOFTWARE.into());
    put(tags::MANUFACTURER_MODEL_NAME, VR::LO, SOFTWARE.into());
    put(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0".into());
    put(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION").into(),
    );

    // General Image, Segmentation Image, Multi-frame Functional Groups.
    put(tags::INSTANCE_NUMBER, VR::IS, "1".into());
    put(tags::CONTENT_DATE, VR::DA, options.date.clone().into());
    put(tags::CONTENT_TIME, VR::TM, options.time.clone().into());
    put(tags::IMAGE_TYPE, VR::CS, strs(&["DERIVED", "PRIMARY"]));
    if matches!(geometry, Geometry::SourcePixels) {
        // Type 2C: required when the image has no Image Orientation/Position (Patient).
        put(tags::PATIENT_ORIENTATION, VR::CS, PrimitiveValue::Empty);
    }
    put(
        tags::CONTENT_LABEL,
        VR::CS,
        content_label(&options.content_label).into(),
    );
    put(
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        long_string(&format!(
            "{SOFTWARE} segmentation ({})",
            options.algorithm_name
        ))
        .into(),
    );
    put(tags::CONTENT_CREATOR_NAME, VR::PN, PrimitiveValue::Empty);
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(columns));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(1_u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(1_u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(0_u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0_u16),
    );
    put(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00".into());
    put(tags::SEGMENTATION_TYPE, VR::CS, "BINARY".into());
    put(
        tags::SEGMENTS_OVERLAP,
        VR::CS,
        if overlap(&frames) { "YES" } else { "NO" }.into(),
    );
    put(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        frames.len().to_string().into(),
    );
    put(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(pixel_data.into()),
    );

    let segment_items = segments
        .iter()
        .enumerate()
        .map(|(s, segment)| segment_item(s, segment, options))
        .collect::<Vec<_>>();
    obj.put(sequence(tags::SEGMENT_SEQUENCE, segment_items));

    // Multi-frame Dimension.
    let (index_pointer, group_pointer, index_label) = match geometry {
        Geometry::Patient { .. } => (
            tags::IMAGE_POSITION_PATIENT,
            tags::PLANE_POSITION_SEQUENCE,
            "ImagePositionPatient",
        ),
        _ => (
            tags::TEMPORAL_POSITION_INDEX,
            tags::FRAME_CONTENT_SEQUENCE,
            "TemporalPositionIndex",
        ),
    };
    obj.put(sequence(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![item(vec![element(
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            dimension_uid.clone().into(),
        )])],
    ));
    let dimension_item = |pointer: Tag, group: Tag, label: &str| {
        item(vec![
            element(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dimension_uid.clone().into(),
            ),
            element(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags(C::from_vec(vec![pointer])),
            ),
            element(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags(C::from_vec(vec![group])),
            ),
            element(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label.into()),
        ])
    };
    obj.put(sequence(
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dimension_item(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dimension_item(index_pointer, group_pointer, index_label),
        ],
    ));

    // Shared functional groups: the plane and pixel size of a volume.
    let mut shared = Vec::new();
    if let Geometry::Patient {
        orientation,
        spacing,
        ..
    } = &geometry
    {
        shared.push(sequence(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![element(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                decimals(orientation)?,
            )])],
        ));
        let mut measures = vec![element(tags::PIXEL_SPACING, VR::DS, decimals(spacing)?)];
        if let Some(t) = source.slice_thickness.filter(|t| *t > 0.0) {
            measures.push(element(tags::SLICE_THICKNESS, VR::DS, decimals(&[t])?));
        }
        if let Some(s) = source.spacing_between_slices.filter(|s| *s > 0.0) {
            measures.push(element(
                tags::SPACING_BETWEEN_SLICES,
                VR::DS,
                decimals(&[s])?,
            ));
        }
        shared.push(sequence(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(measures)],
        ));
    }
    obj.put(sequence(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![item(shared)],
    ));

    // Per-frame functional groups.
    let mut per_frame = Vec::with_capacity(frames.len());
    for &(s, f, _) in &frames {
        let segment_number = (s + 1) as u16;
        let frame_index = (f + 1) as u32;
        let source_frame = &source.frames[f];
        let mut content = vec![element(
            tags::DIMENSION_INDEX_VALUES,
            VR::UL,
            PrimitiveValue::U32(C::from_vec(vec![u32::from(segment_number), frame_index])),
        )];
        let mut groups = Vec::with_capacity(4);
        match &geometry {
            Geometry::Patient { positions, .. } => groups.push(sequence(
                tags::PLANE_POSITION_SEQUENCE,
                vec![item(vec![element(
                    tags::IMAGE_POSITION_PATIENT,
                    VR::DS,
                    decimals(&positions[f])?,
                )])],
            )),
            _ => content.push(element(
                tags::TEMPORAL_POSITION_INDEX,
                VR::UL,
                PrimitiveValue::from(frame_index),
            )),
        }
        groups.push(sequence(tags::FRAME_CONTENT_SEQUENCE, vec![item(content)]));
        let mut reference = vec![
            element(
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                source_frame.sop_class_uid.clone().into(),
            ),
            element(
                tags::REFERENCED_SOP_INSTANCE_UID,
                VR::UI,
                source_frame.sop_instance_uid.clone().into(),
            ),
            sequence(
                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                vec![code(
                    "121322",
                    "DCM",
                    "Source image for image processing operation",
                )],
            ),
            element(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES".into()),
        ];
        if let Some(n) = source_frame.frame_number {
            reference.push(element(
                tags::REFERENCED_FRAME_NUMBER,
                VR::IS,
                n.to_string().into(),
            ));
        }
        groups.push(sequence(
            tags::DERIVATION_IMAGE_SEQUENCE,
            vec![item(vec![
                sequence(tags::SOURCE_IMAGE_SEQUENCE, vec![item(reference)]),
                sequence(
                    tags::DERIVATION_CODE_SEQUENCE,
                    vec![code("113076", "DCM", "Segmentation")],
                ),
            ])],
        ));
        groups.push(sequence(
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            vec![item(vec![element(
                tags::REFERENCED_SEGMENT_NUMBER,
                VR::US,
                PrimitiveValue::from(segment_number),
            )])],
        ));
        per_frame.push(item(groups));
    }
    obj.put(sequence(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    ));

    // Common Instance Reference: every instance of the source series.
    let mut instances: Vec<(&str, &str)> = Vec::new();
    for f in &source.frames {
        let key = (f.sop_class_uid.as_str(), f.sop_instance_uid.as_str());
        if !instances.contains(&key) {
            instances.push(key);
        }
    }
    let instance_items = instances
        .iter()
        .map(|&(class, instance)| {
            item(vec![
                element(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class.into()),
                element(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, instance.into()),
            ])
        })
        .collect();
    obj.put(sequence(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![item(vec![
            sequence(tags::REFERENCED_INSTANCE_SEQUENCE, instance_items),
            element(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                required(&source.series_instance_uid, "Series Instance UID")?.into(),
            ),
        ])],
    ));

    if !all_ascii(&obj) {
        obj.put(DataElement::new(
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            "ISO_IR 192",
        ));
    }

    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(implementation_version_name()),
        )
        .map_err(|e| DicomError::Write(error_chain(&e)))?;
    let mut bytes = Vec::with_capacity(frames.len() * 600 + (pixels * frames.len()) / 8 + 4096);
    file.write_all(&mut bytes)
        .map_err(|e| DicomError::Write(error_chain(&e)))?;
    Ok(bytes)
}

/// A new UID: "2.25." and the decimal value of a random UUID v4 (PS3.5 B.2; at most 44
/// characters).
pub fn new_uid() -> Result<String, DicomError> {
    let mut b = [0_u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| DicomError::Write(format!("no random numbers for a new UID: {e}")))?;
    Ok(uuid_v4_uid(b))
}

/// The UID of 16 random bytes made a UUID v4 (version 4, variant 10).
fn uuid_v4_uid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

fn geometry(source: &DicomSource) -> Geometry {
    let has_for = source
        .frame_of_reference_uid
        .as_deref()
        .is_some_and(|u| !u.is_empty());
    let positions: Option<Vec<[f64; 3]>> = source.frames.iter().map(|f| f.position).collect();
    match (has_for, source.orientation, source.pixel_spacing, positions) {
        (true, Some(orientation), Some(spacing), Some(positions)) => Geometry::Patient {
            orientation,
            spacing,
            positions,
        },
        _ => Geometry::SourcePixels,
    }
}

/// Masks as one bit a pixel (non-zero → 1), frame after frame with no padding between
/// frames, the first pixel in the lowest bit of the first byte; padded to an even length.
fn pack_bits<'a>(
    masks: impl ExactSizeIterator<Item = &'a [u8]>,
    pixels: usize,
) -> Result<Vec<u8>, DicomError> {
    let frames = masks.len();
    let bits = pixels
        .checked_mul(frames)
        .filter(|b| b.div_ceil(8) < u32::MAX as usize - 1)
        .ok_or_else(|| {
            DicomError::TooLarge(format!(
                "{frames} frames of {pixels} pixels (the Pixel Data would exceed 4 GiB)"
            ))
        })?;
    let mut out = vec![0_u8; bits.div_ceil(8).next_multiple_of(2)];
    let mut bit = 0_usize;
    for mask in masks {
        for &v in mask {
            if v != 0 {
                out[bit / 8] |= 1 << (bit % 8);
            }
            bit += 1;
        }
    }
    Ok(out)
}

/// Whether two segments have a pixel in common on one frame.
fn overlap(frames: &[(usize, usize, &[u8])]) -> bool {
    let mut order: Vec<usize> = (0..frames.len()).collect();
    order.sort_by_key(|&i| frames[i].1);
    // The masks of one document frame are of different segments (one mask a segment).
    order
        .chunk_by(|&a, &b| frames[a].1 == frames[b].1)
        .any(|group| {
            group.iter().enumerate().any(|(k, &a)| {
                group[k + 1..].iter().any(|&b| {
                    frames[a]
                        .2
                        .iter()
                        .zip(frames[b].2)
                        .any(|(x, y)| *x != 0 && *y != 0)
                })
            })
        })
}

fn segment_item(s: usize, segment: &Segment, options: &SegOptions) -> InMemDicomObject {
    let label = long_string(&segment.label);
    let label = if label.is_empty() {
        format!("Segment {}", s + 1)
    } else {
        label
    };
    let mut elements = vec![
        element(
            tags::SEGMENT_NUMBER,
            VR::US,
            PrimitiveValue::from((s + 1) as u16),
        ),
        element(tags::SEGMENT_LABEL, VR::LO, label.into()),
        element(
            tags::SEGMENT_ALGORITHM_TYPE,
            VR::CS,
            options.algorithm_type.code().into(),
        ),
        element(
            tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
            VR::US,
            PrimitiveValue::U16(C::from_vec(cielab(segment.colour).to_vec())),
        ),
        sequence(
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            vec![code("85756007", "SCT", "Tissue")],
        ),
        sequence(
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            vec![code("85756007", "SCT", "Tissue")],
        ),
    ];
    if options.algorithm_type != AlgorithmType::Manual {
        let name = long_string(&options.algorithm_name);
        elements.push(element(
            tags::SEGMENT_ALGORITHM_NAME,
            VR::LO,
            if name.is_empty() {
                SOFTWARE.into()
            } else {
                name
            }
            .into(),
        ));
    }
    item(elements)
}

/// sRGB → DICOM's CIELab encoding (L* 0..100 → 0..65535, a*, b* -128..127 → 0..65535),
/// through CIE XYZ with the D65 white point, as highdicom and PixelMed convert.
fn cielab(rgb: [u8; 3]) -> [u16; 3] {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c > 0.04045 {
            ((c + 0.055) / 1.055).powf(2.4)
        } else {
            c / 12.92
        }
    };
    let [r, g, b] = rgb.map(linear);
    let x = (r * 0.4124 + g * 0.3576 + b * 0.1805) / 0.95047;
    let y = r * 0.2126 + g * 0.7152 + b * 0.0722;
    let z = (r * 0.0193 + g * 0.1192 + b * 0.9505) / 1.08883;
    let f = |t: f64| {
        if t >= 8.856_451_679_035_631e-3 {
            t.cbrt()
        } else {
            841.0 / 108.0 * t + 4.0 / 29.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let l = (116.0 * fy - 16.0).clamp(0.0, 100.0);
    let a = (500.0 * (fx - fy)).clamp(-128.0, 127.0);
    let bb = (200.0 * (fy - fz)).clamp(-128.0, 127.0);
    let scale = |v: f64, lo: f64, span: f64| ((v - lo) * 65535.0 / span).round() as u16;
    [
        scale(l, 0.0, 100.0),
        scale(a, -128.0, 255.0),
        scale(bb, -128.0, 255.0),
    ]
}

/// A number as DS: at most 16 characters, the shortest form that fits.
fn decimal(v: f64) -> Result<String, DicomError> {
    if !v.is_finite() {
        return Err(DicomError::BadAttribute {
            name: "geometry",
            why: format!("{v} is not a finite number"),
        });
    }
    let s = format!("{v}");
    if s.len() <= 16 {
        return Ok(s);
    }
    // The closer of fixed point with as many decimals as fit (trailing zeros dropped)
    // and scientific notation with as many digits as fit.
    let fixed = (0..=15).rev().find_map(|precision| {
        let s = format!("{v:.precision$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        (s.len() <= 16).then_some(s)
    });
    let scientific = (0..=15)
        .rev()
        .map(|precision| format!("{v:.precision$e}"))
        .find(|s| s.len() <= 16);
    let error = |s: &String| s.parse::<f64>().map_or(f64::INFINITY, |p| (p - v).abs());
    fixed
        .into_iter()
        .chain(scientific)
        .min_by(|a, b| error(a).total_cmp(&error(b)))
        .ok_or_else(|| DicomError::BadAttribute {
            name: "geometry",
            why: format!("{v} does not fit a DICOM decimal string"),
        })
}

fn decimals(values: &[f64]) -> Result<PrimitiveValue, DicomError> {
    let strings = values
        .iter()
        .map(|&v| decimal(v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PrimitiveValue::Strs(C::from_vec(strings)))
}

/// LO text: control characters and backslashes (the value separator) become spaces,
/// trimmed, at most 64 characters.
fn long_string(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() || c == '\\' { ' ' } else { c })
        .collect();
    cleaned
        .trim()
        .chars()
        .take(64)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// CS text for Content Label: upper case, other than A-Z, 0-9, space and underscore
/// become underscores, at most 16 characters, "MEDSEG" when nothing is left.
fn content_label(s: &str) -> String {
    let label: String = s
        .trim()
        .to_uppercase()
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(16)
        .collect();
    let label = label.trim_end().to_string();
    if label.is_empty() {
        "MEDSEG".into()
    } else {
        label
    }
}

/// Implementation Version Name (SH, 16 characters): "MEDSEG_" and the crate version.
fn implementation_version_name() -> String {
    format!("MEDSEG_{}", env!("CARGO_PKG_VERSION"))
        .chars()
        .take(16)
        .collect()
}

fn check_date_time(date: &str, time: &str) -> Result<(), DicomError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if date.len() != 8 || !digits(date) {
        return Err(DicomError::BadAttribute {
            name: "Content Date",
            why: format!("{date:?} is not YYYYMMDD"),
        });
    }
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    if !(digits(hms) && [2, 4, 6].contains(&hms.len()) && digits(fraction) && fraction.len() <= 6) {
        return Err(DicomError::BadAttribute {
            name: "Content Time",
            why: format!("{time:?} is not HHMMSS[.FFFFFF]"),
        });
    }
    Ok(())
}

fn dimension(n: usize, name: &'static str) -> Result<u16, DicomError> {
    u16::try_from(n)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| DicomError::BadAttribute {
            name,
            why: format!("{n} (a DICOM image has 1 to 65535)"),
        })
}

fn required<'a>(s: &'a str, name: &'static str) -> Result<&'a str, DicomError> {
    let s = s.trim();
    if s.is_empty() {
        Err(DicomError::Missing(name))
    } else {
        Ok(s)
    }
}

fn optional_text(s: Option<&str>) -> PrimitiveValue {
    match s {
        Some(s) if !s.is_empty() => s.into(),
        _ => PrimitiveValue::Empty,
    }
}

fn strs(values: &[&str]) -> PrimitiveValue {
    PrimitiveValue::Strs(C::from_vec(values.iter().map(|s| s.to_string()).collect()))
}

fn element(tag: Tag, vr: VR, value: PrimitiveValue) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value)
}

fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// A code sequence item (Code Value, Coding Scheme Designator, Code Meaning).
fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(vec![
        element(tags::CODE_VALUE, VR::SH, value.into()),
        element(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme.into()),
        element(tags::CODE_MEANING, VR::LO, meaning.into()),
    ])
}

/// Whether every text value in `obj` (and its sequences) is ASCII.
fn all_ascii(obj: &InMemDicomObject) -> bool {
    obj.iter().all(|e| match e.items() {
        Some(items) => items.iter().all(all_ascii),
        None => match e.value().primitive() {
            Some(PrimitiveValue::Str(s)) => s.is_ascii(),
            Some(PrimitiveValue::Strs(v)) => v.iter().all(|s| s.is_ascii()),
            _ => true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::dicom::FrameRef;
    use crate::io::dicom::meta::PatientStudy;

    #[test]
    fn bits_run_on_across_frames() {
        // Two 3×3 frames: 18 bits, frame 2 starts at bit 1 of byte 1 (no per-frame
        // padding), 3 bytes padded to 4.
        let a = [1, 0, 0, 0, 1, 0, 0, 0, 1_u8];
        let b = [0, 0, 0, 0, 0, 0, 0, 1, 7_u8];
        let packed = pack_bits([&a[..], &b[..]].into_iter(), 9).unwrap();
        assert_eq!(packed, vec![0b0001_0001, 0b0000_0001, 0b0000_0011, 0]);
    }

    #[test]
    fn uids_are_uuid_derived_decimals() {
        let uid = new_uid().unwrap();
        assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
        let digits = &uid[5..];
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{uid}");
        assert!(!digits.starts_with('0'), "{uid}");
        assert_ne!(uid, new_uid().unwrap());
        // Version 4 and variant 10 whatever the random bytes.
        let v = uuid_v4_uid([0xff; 16])[5..].parse::<u128>().unwrap();
        assert_eq!((v >> 76) & 0xf, 4);
        assert_eq!((v >> 62) & 0x3, 2);
        assert!(uuid_v4_uid([0xff; 16]).len() <= 44);
    }

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        assert_eq!(decimal(-72.199997).unwrap(), "-72.199997");
        assert_eq!(decimal(0.488281).unwrap(), "0.488281");
        assert_eq!(decimal(0.1 + 0.2).unwrap(), "0.3");
        assert_eq!(decimal(1.0 / 3.0).unwrap(), "0.33333333333333");
        for v in [
            1e-300,
            -1.234_567_890_123_456_7e200,
            123_456_789_012_345_680.0,
        ] {
            let s = decimal(v).unwrap();
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            assert!(((back - v) / v).abs() < 1e-6, "{v} → {s}");
        }
        assert!(decimal(f64::NAN).is_err());
    }

    #[test]
    fn colours_as_dicom_cielab() {
        // highdicom's CIELabColor.from_rgb(…).value for the same colours.
        assert_eq!(cielab([255, 255, 255]), [65535, 32897, 32893]);
        assert_eq!(cielab([0, 0, 0]), [0, 32896, 32896]);
        assert_eq!(cielab([230, 25, 75]), [32458, 51749, 40111]);
    }

    #[test]
    fn text_is_made_valid() {
        assert_eq!(content_label("MedSeg v1.2 (liver)"), "MEDSEG V1_2 _LIV");
        assert_eq!(content_label("  "), "MEDSEG");
        assert_eq!(long_string(" a\\b\nc "), "a b c");
        assert_eq!(long_string(&"é".repeat(70)).chars().count(), 64);
        assert!(check_date_time("20261206", "134501.123").is_ok());
        assert!(check_date_time("2026-12-06", "134501").is_err());
        assert!(check_date_time("20261206", "1345011").is_err());
    }

    fn source(frames: usize) -> DicomSource {
        DicomSource {
            study_instance_uid: "1.2.3".into(),
            series_instance_uid: "1.2.3.4".into(),
            frame_of_reference_uid: None,
            modality: Some("US".into()),
            series_description: None,
            series_number: None,
            patient: PatientStudy::default(),
            rows: 2,
            columns: 3,
            frames: (0..frames)
                .map(|i| FrameRef {
                    sop_class_uid: "1.2.840.10008.5.1.4.1.1.3.1".into(),
                    sop_instance_uid: "1.2.3.4.5".into(),
                    frame_number: Some(i as u32 + 1),
                    position: None,
                })
                .collect(),
            orientation: None,
            pixel_spacing: None,
            slice_thickness: None,
            spacing_between_slices: None,
            frame_time_ms: None,
        }
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        let options = SegOptions::new("MedSAM2", "20261206", "120000");
        let segment = |masks| Segment {
            label: "a".into(),
            colour: [255, 0, 0],
            masks,
        };
        let empty = segment(vec![None, Some(vec![0; 6])]);
        assert!(matches!(
            write_seg(&source(2), &[empty], &options),
            Err(DicomError::NoMasks)
        ));
        let short = segment(vec![Some(vec![1; 6])]);
        assert!(matches!(
            write_seg(&source(2), &[short], &options),
            Err(DicomError::MaskFrames {
                segment: 1,
                got: 1,
                expected: 2
            })
        ));
        let wrong = segment(vec![None, Some(vec![1; 5])]);
        assert!(matches!(
            write_seg(&source(2), &[wrong], &options),
            Err(DicomError::MaskSize {
                segment: 1,
                frame: 2,
                got: 5,
                ..
            })
        ));
        let ok = segment(vec![None, Some(vec![1; 6])]);
        let bad_date = SegOptions::new("MedSAM2", "today", "120000");
        assert!(matches!(
            write_seg(&source(2), std::slice::from_ref(&ok), &bad_date),
            Err(DicomError::BadAttribute { .. })
        ));
        let bytes = write_seg(&source(2), &[ok], &options).unwrap();
        let back = crate::io::dicom::DicomFile::read(&bytes).unwrap();
        assert_eq!(back.meta.sop_class_uid, uids::SEGMENTATION_STORAGE);
        assert_eq!(back.meta.study_instance_uid.as_deref(), Some("1.2.3"));
    }

    #[test]
    fn overlap_is_per_frame() {
        let a = [1, 1, 0_u8];
        let b = [0, 1, 0_u8];
        let c = [0, 0, 1_u8];
        assert!(overlap(&[(0, 0, &a), (1, 1, &b), (1, 0, &b)]));
        assert!(!overlap(&[(0, 0, &a), (1, 1, &b), (1, 0, &c)]));
    }
}
