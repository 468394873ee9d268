//! What MedSeg reads from a DICOM header: identity (UIDs, modality, description), the
//! image pixel module, geometry (classic single-frame attributes, or an enhanced
//! multi-frame file's shared and per-frame functional groups), the cine frame time, and
//! the few patient/study attributes a Segmentation must copy to link to its source.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::DicomError;

/// The modality rescale: stored value × slope + intercept (HU for CT).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rescale {
    pub slope: f64,
    pub intercept: f64,
}

impl Rescale {
    pub const IDENTITY: Rescale = Rescale {
        slope: 1.0,
        intercept: 0.0,
    };
}

/// The image pixel module and the geometry of the file's frames.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageMeta {
    pub rows: usize,
    pub columns: usize,
    /// Number of Frames (1 when absent).
    pub frames: usize,
    pub samples_per_pixel: u16,
    /// Photometric Interpretation, upper case, trimmed ("MONOCHROME2", "YBR_FULL_422", …).
    pub photometric: String,
    /// 0: colour-by-pixel (RGBRGB…), 1: colour-by-plane (RR…GG…BB…).
    pub planar_configuration: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    /// Pixel Representation 1 (two's complement).
    pub signed: bool,
    /// The rescale of each frame: one entry for a classic file (or an enhanced file whose
    /// rescale is shared), else one per frame from the per-frame functional groups.
    pub rescale: Vec<Rescale>,
    /// The first Window Center / Width, as (center, width).
    pub window: Option<(f64, f64)>,
    /// Pixel Spacing: (between rows, between columns) in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub spacing_between_slices: Option<f64>,
    /// Image Orientation (Patient): the row direction (x, y, z) then the column direction.
    pub orientation: Option<[f64; 6]>,
    /// Image Position (Patient) of each frame: one for a classic file; one per frame from
    /// Plane Position Sequence for an enhanced file (empty when it has none).
    pub positions: Vec<[f64; 3]>,
    /// Time between frames of a cine, ms (Frame Time, else the first Frame Time Vector
    /// step, else 1000 / Cine Rate or Recommended Display Frame Rate).
    pub frame_time_ms: Option<f64>,
}

/// Patient and study attributes a Segmentation copies from its source (and nothing else:
/// the page never shows them).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PatientStudy {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_id: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
}

/// A file's header, as far as MedSeg uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// Transfer Syntax UID (from the file meta information).
    pub transfer_syntax: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    /// The image, when the file has Pixel Data.
    pub image: Option<ImageMeta>,
    pub patient: PatientStudy,
}

type Object = InMemDicomObject;

impl Meta {
    pub(crate) fn read(file: &dicom_object::DefaultDicomObject) -> Result<Self, DicomError> {
        let ts = file.meta().transfer_syntax().trim_end_matches('\0').trim();
        let obj: &Object = file;
        let sop_class_uid = text(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| {
            file.meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0')
                .to_string()
        });
        let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID).unwrap_or_else(|| {
            file.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0')
                .to_string()
        });
        let image = if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_some() {
            Some(ImageMeta::read(obj)?)
        } else {
            None
        };
        Ok(Self {
            transfer_syntax: ts.to_string(),
            sop_class_uid,
            sop_instance_uid,
            study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
            series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
            frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
            modality: text(obj, tags::MODALITY),
            series_description: text(obj, tags::SERIES_DESCRIPTION),
            series_number: int(obj, tags::SERIES_NUMBER),
            instance_number: int(obj, tags::INSTANCE_NUMBER),
            image,
            patient: PatientStudy {
                patient_name: text(obj, tags::PATIENT_NAME),
                patient_id: text(obj, tags::PATIENT_ID),
                patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
                patient_sex: text(obj, tags::PATIENT_SEX),
                study_date: text(obj, tags::STUDY_DATE),
                study_time: text(obj, tags::STUDY_TIME),
                study_id: text(obj, tags::STUDY_ID),
                accession_number: text(obj, tags::ACCESSION_NUMBER),
                referring_physician_name: text(obj, tags::REFERRING_PHYSICIAN_NAME),
            },
        })
    }
}

impl ImageMeta {
    fn read(obj: &Object) -> Result<Self, DicomError> {
        let rows = required_uint(obj, tags::ROWS, "Rows")?;
        let columns = required_uint(obj, tags::COLUMNS, "Columns")?;
        let frames = match obj.element_opt(tags::NUMBER_OF_FRAMES).ok().flatten() {
            None => 1,
            Some(e) => {
                let s = e.to_str().map_err(|e| bad("Number of Frames", e))?;
                let n: i64 = s
                    .trim()
                    .trim_end_matches('\0')
                    .parse()
                    .map_err(|_| bad("Number of Frames", format!("{s:?} is not a number")))?;
                if n < 1 {
                    return Err(bad("Number of Frames", format!("{n}")));
                }
                n as usize
            }
        };
        let samples_per_pixel =
            required_uint(obj, tags::SAMPLES_PER_PIXEL, "Samples per Pixel")? as u16;
        let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION)
            .ok_or(DicomError::Missing("Photometric Interpretation"))?
            .to_ascii_uppercase();
        let bits_allocated = required_uint(obj, tags::BITS_ALLOCATED, "Bits Allocated")? as u16;
        let bits_stored = int(obj, tags::BITS_STORED).map_or(bits_allocated, |v| v as u16);
        let high_bit = int(obj, tags::HIGH_BIT).map_or(bits_stored.saturating_sub(1), |v| v as u16);
        let signed = int(obj, tags::PIXEL_REPRESENTATION) == Some(1);
        let planar_configuration = int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) as u16;

        // Enhanced multi-frame: the shared groups, then each frame's own.
        let shared = first_item(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let per_frame: Vec<&Object> = obj
            .element_opt(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
            .ok()
            .flatten()
            .and_then(|e| e.items())
            .map(|items| items.iter().collect())
            .unwrap_or_default();
        // A functional group macro's attribute: in the shared groups, else in the first
        // frame's, else at the top level (classic files).
        let grouped = |seq: Tag, tag: Tag| -> Option<Vec<f64>> {
            shared
                .and_then(|s| first_item(s, seq))
                .and_then(|g| floats(g, tag))
                .or_else(|| {
                    per_frame
                        .first()
                        .and_then(|f| first_item(f, seq))
                        .and_then(|g| floats(g, tag))
                })
                .or_else(|| floats(obj, tag))
        };

        let pixel_spacing = grouped(tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
            .and_then(|v| (v.len() >= 2).then(|| [v[0], v[1]]));
        let slice_thickness = grouped(tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied());
        let spacing_between_slices =
            grouped(tags::PIXEL_MEASURES_SEQUENCE, tags::SPACING_BETWEEN_SLICES)
                .and_then(|v| v.first().copied());
        let orientation = grouped(
            tags::PLANE_ORIENTATION_SEQUENCE,
            tags::IMAGE_ORIENTATION_PATIENT,
        )
        .and_then(|v| (v.len() >= 6).then(|| [v[0], v[1], v[2], v[3], v[4], v[5]]));

        let position_of = |o: &Object| -> Option<[f64; 3]> {
            floats(o, tags::IMAGE_POSITION_PATIENT)
                .and_then(|v| (v.len() >= 3).then(|| [v[0], v[1], v[2]]))
        };
        let positions: Vec<[f64; 3]> = if per_frame.is_empty() {
            position_of(obj).into_iter().collect()
        } else {
            let each: Option<Vec<[f64; 3]>> = per_frame
                .iter()
                .map(|f| first_item(f, tags::PLANE_POSITION_SEQUENCE).and_then(position_of))
                .collect();
            each.unwrap_or_default()
        };

        let rescale_of = |o: &Object| -> Option<Rescale> {
            let slope = floats(o, tags::RESCALE_SLOPE).and_then(|v| v.first().copied());
            let intercept = floats(o, tags::RESCALE_INTERCEPT).and_then(|v| v.first().copied());
            (slope.is_some() || intercept.is_some()).then(|| Rescale {
                slope: slope.filter(|s| s.is_finite() && *s != 0.0).unwrap_or(1.0),
                intercept: intercept.filter(|i| i.is_finite()).unwrap_or(0.0),
            })
        };
        let rescale = if let Some(r) = shared
            .and_then(|s| first_item(s, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE))
            .and_then(rescale_of)
        {
            vec![r]
        } else if !per_frame.is_empty()
            && per_frame
                .iter()
                .all(|f| first_item(f, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE).is_some())
        {
            per_frame
                .iter()
                .map(|f| {
                    first_item(f, tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)
                        .and_then(rescale_of)
                        .unwrap_or(Rescale::IDENTITY)
                })
                .collect()
        } else {
            vec![rescale_of(obj).unwrap_or(Rescale::IDENTITY)]
        };

        let window = {
            let center = grouped(tags::FRAME_VOILUT_SEQUENCE, tags::WINDOW_CENTER);
            let width = grouped(tags::FRAME_VOILUT_SEQUENCE, tags::WINDOW_WIDTH);
            match (
                center.and_then(|c| c.first().copied()),
                width.and_then(|w| w.first().copied()),
            ) {
                (Some(c), Some(w)) if c.is_finite() && w.is_finite() && w > 0.0 => Some((c, w)),
                _ => None,
            }
        };

        let frame_time_ms = floats(obj, tags::FRAME_TIME)
            .and_then(|v| v.first().copied())
            .or_else(|| floats(obj, tags::FRAME_TIME_VECTOR).and_then(|v| v.get(1).copied()))
            .or_else(|| {
                floats(obj, tags::CINE_RATE)
                    .or_else(|| floats(obj, tags::RECOMMENDED_DISPLAY_FRAME_RATE))
                    .and_then(|v| v.first().copied())
                    .filter(|r| *r > 0.0)
                    .map(|r| 1000.0 / r)
            })
            .filter(|t| t.is_finite() && *t > 0.0);

        Ok(Self {
            rows,
            columns,
            frames,
            samples_per_pixel,
            photometric,
            planar_configuration,
            bits_allocated,
            bits_stored,
            high_bit,
            signed,
            rescale,
            window,
            pixel_spacing,
            slice_thickness,
            spacing_between_slices,
            orientation,
            positions,
            frame_time_ms,
        })
    }

    /// The rescale of frame `index`.
    pub fn rescale_of(&self, index: usize) -> Rescale {
        self.rescale
            .get(index)
            .or_else(|| self.rescale.first())
            .copied()
            .unwrap_or(Rescale::IDENTITY)
    }
}

fn bad(name: &'static str, why: impl ToString) -> DicomError {
    DicomError::BadAttribute {
        name,
        why: why.to_string(),
    }
}

/// A text attribute, trimmed of padding; `None` when absent or empty.
pub(crate) fn text(obj: &Object, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// An integer attribute (US, SS, UL, IS …); `None` when absent or not a number.
pub(crate) fn int(obj: &Object, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

fn required_uint(obj: &Object, tag: Tag, name: &'static str) -> Result<usize, DicomError> {
    let e = obj
        .element_opt(tag)
        .ok()
        .flatten()
        .ok_or(DicomError::Missing(name))?;
    let v = e.to_int::<i64>().map_err(|e| bad(name, e))?;
    if v < 1 {
        return Err(bad(name, format!("{v}")));
    }
    Ok(v as usize)
}

/// A numeric attribute's values (DS, FD, FL, IS …); `None` when absent, empty or not numbers.
/// An element of VR UN (explicit VR files that did not know the attribute) holds the
/// raw bytes: decimal strings are read from their text.
pub(crate) fn floats(obj: &Object, tag: Tag) -> Option<Vec<f64>> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let v = if e.vr() == dicom_core::VR::UN {
        let bytes = e.value().to_bytes().ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        text.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .split('\\')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<Vec<f64>, _>>()
            .ok()?
    } else {
        e.to_multi_float64().ok()?
    };
    (!v.is_empty()).then_some(v)
}

/// The first item of a sequence attribute.
pub(crate) fn first_item(obj: &Object, tag: Tag) -> Option<&Object> {
    obj.element_opt(tag).ok().flatten()?.items()?.first()
}

/// A SOP class's name for messages ("RT Plan Storage"), or its UID when unknown.
pub fn sop_class_name(uid: &str) -> String {
    use dicom_core::dictionary::UidDictionary;
    dicom_dictionary_std::sop_class::StandardSopClassDictionary
        .by_uid(uid)
        .map_or_else(|| uid.to_string(), |e| e.name.to_string())
}

/// What a data set is, for a message: "an RT Plan Storage (RTPLAN) object".
pub fn what_it_is(meta: &Meta) -> String {
    let class = if meta.sop_class_uid.is_empty() {
        "data set".to_string()
    } else {
        sop_class_name(&meta.sop_class_uid)
    };
    match meta.modality.as_deref() {
        Some(m) => format!("{class} ({m}) object"),
        None => format!("{class} object"),
    }
}
