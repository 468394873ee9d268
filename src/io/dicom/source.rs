//! Where an opened DICOM document's frames came from: what a Segmentation of it must
//! refer to (series, instances, frames, frame of reference, the plane of each frame) and
//! the patient/study attributes it copies.

use super::meta::PatientStudy;

/// The source image of one document frame (slice of a volume, frame of a clip, the image).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameRef {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    /// The frame within a multi-frame instance, 1-based (DICOM's Referenced Frame Number);
    /// `None` for a single-frame instance.
    pub frame_number: Option<u32>,
    /// Image Position (Patient) of this frame, mm (LPS), when the source has one.
    pub position: Option<[f64; 3]>,
}

/// The source series of an opened DICOM document.
#[derive(Clone, Debug, PartialEq)]
pub struct DicomSource {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub modality: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i64>,
    pub patient: PatientStudy,
    /// Rows and columns of every frame.
    pub rows: usize,
    pub columns: usize,
    /// One entry per document frame, in the document's order (a volume's slices sorted
    /// along the slice normal).
    pub frames: Vec<FrameRef>,
    /// Image Orientation (Patient), shared by every frame (a series with several is refused).
    pub orientation: Option<[f64; 6]>,
    /// Pixel Spacing (between rows, between columns), mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    /// The distance between neighbouring slices of a volume along the normal, mm.
    pub spacing_between_slices: Option<f64>,
    /// Time between frames of a cine, ms.
    pub frame_time_ms: Option<f64>,
}
