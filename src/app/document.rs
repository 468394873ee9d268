//! The open document: one image, a clip (frames of a video or a folder of images) or a
//! volume (NIfTI, MedSAM npz), with the window that brings a volume to the model's 0..255
//! input. A 4-D NIfTI ([`Document::open_volume_file`]) opens as a clip of its time points
//! when it has one slice (x, y, 1, t), and as the volume of one chosen time point when
//! it has several. Frames are `height × width`; a volume slice `k` has row `j`, column
//! `i` (the NIfTI voxel grid, like `imgs[k][j][i]` of a MedSAM npz).

use std::cell::OnceCell;
use std::sync::Arc;

use serde::Serialize;

use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::io::dicom::DicomSource;
use crate::io::image::RgbImage;
use crate::io::volume::{DataType, NiftiGeometry, SourceFormat, Volume, VolumeSeries};
use crate::io::window::{WindowLevel, WindowPreset, is_hounsfield, value_range};
use crate::session::frames::{FrameSource, InMemoryFrames, VolumeFrames};

/// What kind of document is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Image,
    /// Frames in time: a video decoded in the browser or a folder of frames.
    Clip,
    Volume,
}

/// An opened volume: its voxels and the window its slices are segmented with (the model's
/// input; what the page shows may be another, [`Document::display_slice`]).
struct OpenVolume {
    /// Shared: a new window makes a new document over the same voxels (up to 1 GB).
    volume: Arc<Volume>,
    window: WindowPreset,
    values: ValueRange,
    /// The MR display window (percentiles of the whole volume), made when first shown.
    mr_display: OnceCell<WindowLevel>,
}

/// A volume's values: their range and whether they are CT Hounsfield units.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ValueRange {
    pub min: f32,
    pub max: f32,
    /// CT Hounsfield units ([`is_hounsfield`]); else the values are in the file's own
    /// units (MR, or data already brought to 0..255), where the CT presets mean nothing.
    pub hounsfield: bool,
}

/// A window the page shows a volume through: a preset, or a level and width of its own.
#[derive(Clone, Copy, Debug)]
pub enum DisplayWindow {
    Preset(WindowPreset),
    LevelWidth(WindowLevel),
}

/// An open image, clip or volume.
pub struct Document {
    kind: DocKind,
    name: String,
    width: usize,
    height: usize,
    /// The frames as RGB (a volume's windowed slices repeated to three channels).
    frames: Arc<dyn FrameSource>,
    /// Grey frames, slice-major (LiteMedSAM's input): the windowed volume, or the clip's
    /// luma, made when first needed.
    grey: OnceCell<Arc<[u8]>>,
    volume: Option<OpenVolume>,
    /// The DICOM series it was opened from: what a Segmentation refers to.
    dicom: Option<Arc<DicomSource>>,
    /// What the user should know about how the file was read (uneven slices, …).
    notices: Vec<String>,
    /// The file's own display window (DICOM's first Window Center/Width).
    file_window: Option<WindowLevel>,
    /// The time point opened of a 4-D NIfTI, and how many it has.
    time_point: Option<TimePoint>,
}

/// Which time point of a 4-D NIfTI a volume document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TimePoint {
    /// 0-based.
    pub index: usize,
    /// The file's time points.
    pub of: usize,
}

/// What [`Document::open_volume_file`] gives: the document, or the time points to choose
/// from.
pub enum VolumeOpening {
    Opened(Document),
    /// A 4-D NIfTI of several 3-D volumes and no time point chosen.
    ChooseTimePoint(TimePointChoice),
}

/// The choice a 4-D NIfTI of several slices asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TimePointChoice {
    pub time_points: usize,
    /// `[nx, ny, nz]` of each time point.
    pub dims: [usize; 3],
}

impl TimePointChoice {
    /// What the user of file `name` is told: the one wording of the CLI and the page,
    /// each naming its own way to choose (`how`: `--volume T`, the `timePoint` option).
    pub fn message(&self, name: &str, how: &str) -> String {
        let [x, y, z] = self.dims;
        format!(
            "{name}: a 4-D NIfTI of {} time points of {x}×{y}×{z} voxels: choose one with {how} \
             (0..{})",
            self.time_points,
            self.time_points.saturating_sub(1)
        )
    }
}

/// What the page shows about a DICOM source: nothing that identifies the patient.
#[derive(Clone, Debug, Serialize)]
pub struct DicomInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modality: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_number: Option<i64>,
    /// Time between a cine's frames, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_time_ms: Option<f64>,
}

/// What a caller is told about the open document.
#[derive(Clone, Debug, Serialize)]
pub struct DocInfo {
    pub kind: DocKind,
    pub name: String,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    /// Voxel size (x, y, z) in mm, for volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spacing: Option<[f64; 3]>,
    /// The window's name, for volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<&'static str>,
    /// The range of a volume's values and whether they are Hounsfield units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<ValueRange>,
    /// `nii`, `nii.gz`, `npz` or `dicom`, for volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// The DICOM series, when opened from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dicom: Option<DicomInfo>,
    /// The file's own display window (level = DICOM's Window Center), to show it with first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_window: Option<WindowLevel>,
    /// What the user should know about how the file was read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    /// The time point opened of a 4-D NIfTI of several slices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_point: Option<TimePoint>,
}

impl Document {
    /// One image.
    pub fn image(name: impl Into<String>, image: RgbImage) -> AppResult<Self> {
        Self::clip_of(DocKind::Image, name.into(), vec![image])
    }

    /// Frames held in memory, all of one size.
    pub fn clip(name: impl Into<String>, frames: Vec<RgbImage>) -> AppResult<Self> {
        Self::clip_of(DocKind::Clip, name.into(), frames)
    }

    fn clip_of(kind: DocKind, name: String, frames: Vec<RgbImage>) -> AppResult<Self> {
        let frames = InMemoryFrames::new(frames).map_err(|e| AppError::from(e).context(&name))?;
        Self::from_frames(kind, name, Arc::new(frames))
    }

    /// A clip whose frames come from `frames` one at a time (the CLI's frame folders are
    /// decoded as the model reaches them).
    pub fn clip_from_source(
        name: impl Into<String>,
        frames: Arc<dyn FrameSource>,
    ) -> AppResult<Self> {
        Self::from_frames(DocKind::Clip, name.into(), frames)
    }

    fn from_frames(kind: DocKind, name: String, frames: Arc<dyn FrameSource>) -> AppResult<Self> {
        let (height, width) = frames.frame_size();
        if frames.is_empty() || width == 0 || height == 0 {
            return Err(AppError::bad_input(format!("{name}: there are no frames")));
        }
        Ok(Self {
            kind,
            name,
            width,
            height,
            frames,
            grey: OnceCell::new(),
            volume: None,
            dicom: None,
            notices: Vec::new(),
            file_window: None,
            time_point: None,
        })
    }

    /// A volume, windowed with `window` (`None`: [`WindowPreset::auto`]).
    pub fn volume(
        name: impl Into<String>,
        volume: Volume,
        window: Option<WindowPreset>,
    ) -> AppResult<Self> {
        Self::volume_windowed(DocKind::Volume, name.into(), Arc::new(volume), window)
    }

    /// Opens a volume file (NIfTI-1, MedSAM `.npz`) under `window`: a 3-D volume as a
    /// volume; a single-slice time series (x, y, 1, t) as a clip whose frame k is time
    /// point k (windowed as a volume is, its masks written back as (x, y, 1, t)); of a
    /// series of 3-D volumes (x, y, z, t) the volume of `time_point` (0-based), or the
    /// choice when none is given. `time_point` also picks one time point of a
    /// single-slice series (a one-slice volume). The one rule the CLI's `--volume` and the
    /// page's choice share.
    pub fn open_volume_file(
        name: impl Into<String>,
        bytes: &[u8],
        window: Option<WindowPreset>,
        time_point: Option<usize>,
    ) -> AppResult<VolumeOpening> {
        let name = name.into();
        let file = name.clone();
        let bad = |e: crate::io::volume::VolumeError| AppError::from(e).context(&file);
        let series = VolumeSeries::from_bytes(bytes).map_err(bad)?;
        let time_points = series.time_points();
        let doc = match time_point {
            Some(t) => {
                let volume = series.time_point(t).map_err(bad)?;
                let mut doc = Self::volume(name, volume, window)?;
                if time_points > 1 {
                    doc.time_point = Some(TimePoint {
                        index: t,
                        of: time_points,
                    });
                }
                doc
            }
            None if time_points == 1 => {
                Self::volume(name, series.into_volume().map_err(bad)?, window)?
            }
            None => {
                let dims = series.dims();
                match series.into_time_frames() {
                    Some(frames) => {
                        Self::volume_windowed(DocKind::Clip, name, Arc::new(frames), window)?
                    }
                    None => {
                        return Ok(VolumeOpening::ChooseTimePoint(TimePointChoice {
                            time_points,
                            dims,
                        }));
                    }
                }
            }
        };
        Ok(VolumeOpening::Opened(doc))
    }

    /// A document over `volume`'s slices: a volume, or a clip whose slices are the time
    /// points of a single-slice series.
    fn volume_windowed(
        kind: DocKind,
        name: String,
        volume: Arc<Volume>,
        window: Option<WindowPreset>,
    ) -> AppResult<Self> {
        let window = window.unwrap_or_else(|| auto_window(&volume));
        let (min, max) = value_range(&volume.data);
        let values = ValueRange {
            min,
            max,
            hounsfield: is_hounsfield(stored_as_8_bit(&volume), min),
        };
        let slices: Arc<[u8]> = window.windowing().apply(&volume.data).into();
        let dims = [volume.depth(), volume.height(), volume.width()];
        let frames = VolumeFrames::new(slices.clone(), dims).map_err(AppError::from)?;
        Ok(Self {
            kind,
            name,
            width: volume.width(),
            height: volume.height(),
            frames: Arc::new(frames),
            grey: OnceCell::from(slices),
            volume: Some(OpenVolume {
                volume,
                window,
                values,
                mr_display: OnceCell::new(),
            }),
            dicom: None,
            notices: Vec::new(),
            file_window: None,
            time_point: None,
        })
    }

    /// The same document, known to come from the DICOM series `source`, with what the
    /// reader noticed and the file's own display window.
    pub fn with_dicom(
        mut self,
        source: DicomSource,
        notices: Vec<String>,
        file_window: Option<WindowLevel>,
    ) -> Self {
        self.dicom = Some(Arc::new(source));
        self.notices = notices;
        self.file_window = file_window;
        self
    }

    /// The volume's values as read (a volume document only).
    pub fn source_volume(&self) -> Option<&Volume> {
        self.volume.as_ref().map(|v| &*v.volume)
    }

    /// The DICOM series the document was opened from.
    pub fn dicom(&self) -> Option<&DicomSource> {
        self.dicom.as_deref()
    }

    /// The same volume under another window (`None`: automatic).
    pub fn rewindowed(&self, window: Option<WindowPreset>) -> AppResult<Self> {
        let v = self.volume.as_ref().ok_or_else(|| {
            AppError::bad_input("windowing applies to volumes; the open file is not one")
        })?;
        let mut doc =
            Self::volume_windowed(self.kind, self.name.clone(), v.volume.clone(), window)?;
        doc.dicom = self.dicom.clone();
        doc.notices = self.notices.clone();
        doc.file_window = self.file_window;
        doc.time_point = self.time_point;
        Ok(doc)
    }

    pub fn kind(&self) -> DocKind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    /// Number of frames (slices).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[frames, height, width]`.
    pub fn dims(&self) -> [usize; 3] {
        [self.len(), self.height, self.width]
    }

    /// The window of a volume.
    pub fn window(&self) -> Option<WindowPreset> {
        self.volume.as_ref().map(|v| v.window)
    }

    /// The frames as a source a SAM 2 session reads (shared, not copied).
    pub fn frames(&self) -> Arc<dyn FrameSource> {
        self.frames.clone()
    }

    pub fn frame_rgb(&self, index: usize) -> AppResult<RgbImage> {
        self.check_frame(index)?;
        Ok(self.frames.frame(index)?)
    }

    /// Slice `index` of a volume shown through `window`, grey (`height × width`): each
    /// value mapped on its own ([`WindowLevel::map_value`]), so a slice is windowed
    /// without the rest of the volume. Display only: the model's input stays
    /// [`Document::window`]'s.
    pub fn display_slice(&self, index: usize, window: DisplayWindow) -> AppResult<Vec<u8>> {
        let v = self.open_volume()?;
        self.check_frame(index)?;
        let wl = match window {
            DisplayWindow::LevelWidth(wl) if wl.width > 0.0 && wl.level.is_finite() => wl,
            DisplayWindow::LevelWidth(wl) => {
                return Err(AppError::bad_input(format!(
                    "window width {} at level {}: the width must be a positive number",
                    wl.width, wl.level
                )));
            }
            DisplayWindow::Preset(WindowPreset::Mr) => *v
                .mr_display
                .get_or_init(|| WindowPreset::Mr.display_window(&v.volume.data)),
            DisplayWindow::Preset(p) => p.display_window(&[]),
        };
        Ok(self
            .slice_values(index)?
            .iter()
            .map(|&x| wl.map_value(x))
            .collect())
    }

    /// The values of a volume's slice `index` as stored (NIfTI scaling applied), row-major.
    pub fn slice_values(&self, index: usize) -> AppResult<&[f32]> {
        let v = self.open_volume()?;
        self.check_frame(index)?;
        let plane = self.width * self.height;
        Ok(&v.volume.data[index * plane..(index + 1) * plane])
    }

    fn open_volume(&self) -> AppResult<&OpenVolume> {
        self.volume.as_ref().ok_or_else(|| {
            AppError::bad_input(
                "display windows and voxel values apply to volumes; the open file is not one",
            )
        })
    }

    /// Grey frames, slice-major: LiteMedSAM's input (the luma of RGB frames).
    pub fn grey(&self) -> AppResult<Arc<[u8]>> {
        if let Some(g) = self.grey.get() {
            return Ok(g.clone());
        }
        let mut out = Vec::with_capacity(self.len() * self.width * self.height);
        for i in 0..self.len() {
            out.extend(self.frames.frame(i)?.grey());
        }
        Ok(self.grey.get_or_init(|| out.into()).clone())
    }

    /// Grey frame `index` (`height × width`).
    pub fn grey_frame(&self, index: usize) -> AppResult<Vec<u8>> {
        self.check_frame(index)?;
        let plane = self.width * self.height;
        Ok(self.grey()?[index * plane..(index + 1) * plane].to_vec())
    }

    /// An error naming the valid range when `frame` is not a frame of this document.
    pub fn check_frame(&self, frame: usize) -> AppResult<()> {
        if frame < self.len() {
            return Ok(());
        }
        Err(AppError::bad_input(format!(
            "{} {frame} is outside the {} {}s (0..{})",
            self.frame_word(),
            self.len(),
            self.frame_word(),
            self.len() - 1
        )))
    }

    /// `slice` for volumes, `frame` otherwise.
    pub fn frame_word(&self) -> &'static str {
        match self.kind {
            DocKind::Volume => "slice",
            _ => "frame",
        }
    }

    /// Where masks of this document lie in space: a volume's own NIfTI geometry (a time
    /// series' 4-D one), else `width × height × frames` with 1 mm voxels.
    pub fn geometry(&self) -> NiftiGeometry {
        match &self.volume {
            Some(v) => v.volume.geometry.clone(),
            None => NiftiGeometry::from_spacing([self.width, self.height, self.len()], [1.0; 3]),
        }
    }

    pub fn info(&self) -> DocInfo {
        let v = self.volume.as_ref();
        DocInfo {
            kind: self.kind,
            name: self.name.clone(),
            frames: self.len(),
            width: self.width,
            height: self.height,
            spacing: v.map(|v| v.volume.spacing),
            window: v.map(|v| v.window.name()),
            values: v.map(|v| v.values),
            format: v.map(|v| match v.volume.format {
                SourceFormat::Nifti => "nii",
                SourceFormat::NiftiGz => "nii.gz",
                SourceFormat::Npz => "npz",
                SourceFormat::Dicom => "dicom",
            }),
            dicom: self.dicom.as_ref().map(|d| DicomInfo {
                modality: d.modality.clone(),
                description: d.series_description.clone(),
                series_number: d.series_number,
                frame_time_ms: d.frame_time_ms,
            }),
            file_window: self.file_window,
            notices: self.notices.clone(),
            time_point: self.time_point,
        }
    }
}

/// The automatic window of a volume ([`WindowPreset::auto`] on its type and values).
pub fn auto_window(volume: &Volume) -> WindowPreset {
    WindowPreset::auto(stored_as_8_bit(volume), &volume.data)
}

fn stored_as_8_bit(volume: &Volume) -> bool {
    matches!(volume.dtype, DataType::U8 | DataType::Bool)
}

/// Frames pushed one at a time (a clip decoded in the browser), made into a document at
/// the end. Each frame must have the first one's size.
pub struct ClipBuilder {
    name: String,
    frames: Vec<RgbImage>,
}

impl ClipBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            frames: Vec::new(),
        }
    }

    /// Adds a frame, decoded from image file `file` when it was one (the message of a
    /// frame of the wrong size names it); returns the number of frames so far.
    pub fn push(&mut self, frame: RgbImage, file: Option<&str>) -> AppResult<usize> {
        if let Some(first) = self.frames.first()
            && (first.width, first.height) != (frame.width, frame.height)
        {
            let file = file.map(|f| format!(" ({f})")).unwrap_or_default();
            return Err(AppError::bad_input(format!(
                "{}: frame {}{file} is {}×{}, the clip is {}×{}",
                self.name,
                self.frames.len(),
                frame.width,
                frame.height,
                first.width,
                first.height
            )));
        }
        self.frames.push(frame);
        Ok(self.frames.len())
    }

    pub fn finish(self) -> AppResult<Document> {
        if self.frames.is_empty() {
            return Err(AppError::new(
                ErrorKind::BadInput,
                format!("{}: the clip has no frames", self.name),
            ));
        }
        Document::clip(self.name, self.frames)
    }
}

/// An RGB frame from `width × height` pixels of `channels` bytes each (1: grey, 4: RGBA
/// as `ImageData`), checked against its size.
pub fn rgb_from_pixels(
    data: &[u8],
    width: usize,
    height: usize,
    channels: usize,
) -> AppResult<RgbImage> {
    let kind = match channels {
        1 => "grey",
        3 => "RGB",
        4 => "RGBA",
        _ => {
            return Err(AppError::bad_input(format!(
                "a frame has 1 (grey), 3 (RGB) or 4 (RGBA) channels, got {channels}"
            )));
        }
    };
    let expected = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels));
    if width == 0 || height == 0 || expected != Some(data.len()) {
        return Err(AppError::bad_input(format!(
            "a {kind} frame of {width}×{height} has {} bytes, got {}",
            expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            data.len()
        )));
    }
    let rgb = match channels {
        1 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        4 => data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        _ => data.to_vec(),
    };
    Ok(RgbImage {
        width,
        height,
        data: rgb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2 × 3 × 2 CT volume in HU (x fastest), stored as int16.
    fn ct() -> Document {
        let data = vec![
            -1000.0, -160.0, 40.0, 240.0, 1000.0, 0.0, // slice 0
            -200.0, -100.0, 100.0, 200.0, 300.0, 3000.0, // slice 1
        ];
        let volume = Volume {
            data,
            dims: [3, 2, 2],
            spacing: [1.0, 1.0, 2.0],
            geometry: NiftiGeometry::from_spacing([3, 2, 2], [1.0, 1.0, 2.0]),
            dtype: DataType::I16,
            format: SourceFormat::Nifti,
        };
        Document::volume("ct.nii", volume, None).unwrap()
    }

    #[test]
    fn a_display_window_leaves_the_model_input_as_it_was() {
        let doc = ct();
        let input = doc.grey().unwrap();
        let values = doc.info().values.unwrap();
        assert!(values.hounsfield);
        assert_eq!((values.min, values.max), (-1000.0, 3000.0));
        assert_eq!(
            doc.window(),
            Some(WindowPreset::Ct(crate::io::window::CtWindow::SoftTissue))
        );
        // Soft tissue W400 L40 is -160..240 HU, mapped per value.
        let soft = doc
            .display_slice(
                0,
                DisplayWindow::Preset(WindowPreset::parse("soft").unwrap().unwrap()),
            )
            .unwrap();
        assert_eq!(soft, vec![0, 0, 127, 255, 255, 102]);
        // A level and width of the user's own: W200 L0 is -100..100.
        let own = doc
            .display_slice(
                1,
                DisplayWindow::LevelWidth(WindowLevel {
                    level: 0.0,
                    width: 200.0,
                }),
            )
            .unwrap();
        assert_eq!(own, vec![0, 0, 255, 255, 255, 255]);
        assert_eq!(doc.slice_values(1).unwrap()[1], -100.0);
        assert_eq!(doc.grey().unwrap(), input, "the model's input is unchanged");
        // Bad requests are named.
        let bad = doc.display_slice(
            0,
            DisplayWindow::LevelWidth(WindowLevel {
                level: 0.0,
                width: 0.0,
            }),
        );
        assert!(bad.unwrap_err().message.contains("width"));
        assert!(
            doc.display_slice(2, DisplayWindow::Preset(WindowPreset::None))
                .is_err()
        );
    }

    /// A 4-D uint8 NIfTI of `dims` and `t` time points (value = voxel index % 251).
    fn four_d(dims: [usize; 3], t: usize) -> Vec<u8> {
        let mut g = NiftiGeometry::from_spacing(dims, [1.0, 1.0, 2.0]);
        g.time_points = t;
        let n = dims.iter().product::<usize>() * t;
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        crate::io::volume::write_nifti_mask_uncompressed(&g, &data).unwrap()
    }

    #[test]
    fn a_4d_nifti_opens_as_a_clip_or_asks_for_a_time_point() {
        // One slice: a clip of the time points, windowed as a volume, masks back in 4-D.
        let VolumeOpening::Opened(doc) =
            Document::open_volume_file("seq.nii", &four_d([4, 3, 1], 5), None, None).unwrap()
        else {
            panic!("a single-slice series opens");
        };
        assert_eq!((doc.kind(), doc.dims()), (DocKind::Clip, [5, 3, 4]));
        assert_eq!(doc.frame_word(), "frame");
        assert_eq!(doc.geometry().shape(), vec![4, 3, 1, 5]);
        assert_eq!(doc.slice_values(1).unwrap()[0], 12.0);
        assert!(doc.info().values.is_some() && doc.window().is_some());
        let rewindowed = doc.rewindowed(Some(WindowPreset::None)).unwrap();
        assert_eq!(rewindowed.kind(), DocKind::Clip);
        // Several slices: the choice, then the time point asked for.
        let bytes = four_d([4, 3, 2], 3);
        match Document::open_volume_file("vol.nii", &bytes, None, None).unwrap() {
            VolumeOpening::ChooseTimePoint(c) => {
                assert_eq!((c.time_points, c.dims), (3, [4, 3, 2]));
            }
            VolumeOpening::Opened(_) => panic!("several slices need a time point"),
        }
        let VolumeOpening::Opened(doc) =
            Document::open_volume_file("vol.nii", &bytes, None, Some(2)).unwrap()
        else {
            panic!("time point 2 opens");
        };
        assert_eq!((doc.kind(), doc.dims()), (DocKind::Volume, [2, 3, 4]));
        assert_eq!(doc.slice_values(0).unwrap()[0], 48.0);
        assert_eq!(doc.info().time_point, Some(TimePoint { index: 2, of: 3 }));
        assert_eq!(doc.geometry().shape(), vec![4, 3, 2]);
        let e = Document::open_volume_file("vol.nii", &bytes, None, Some(3))
            .err()
            .unwrap();
        assert_eq!(
            e.message,
            "vol.nii: time point 3 is outside the 3 time point(s) of the file (0..2)"
        );
    }

    #[test]
    fn values_in_0_to_255_are_not_hounsfield_units() {
        let mut data = vec![0.0f32; 12];
        data[3] = 255.0;
        let volume = Volume {
            data,
            dims: [3, 2, 2],
            spacing: [1.0; 3],
            geometry: NiftiGeometry::from_spacing([3, 2, 2], [1.0; 3]),
            dtype: DataType::F32,
            format: SourceFormat::Npz,
        };
        let doc = Document::volume("x.npz", volume, None).unwrap();
        assert!(!doc.info().values.unwrap().hounsfield);
        assert_eq!(doc.window(), Some(WindowPreset::None));
        let image = Document::image(
            "a.png",
            RgbImage {
                width: 1,
                height: 1,
                data: vec![1, 2, 3],
            },
        )
        .unwrap();
        assert!(image.info().values.is_none());
        assert!(image.slice_values(0).is_err());
    }

    #[test]
    fn pixels_of_1_3_or_4_channels_become_rgb() {
        assert_eq!(
            rgb_from_pixels(&[7, 9], 2, 1, 1).unwrap().data,
            [7, 7, 7, 9, 9, 9]
        );
        assert_eq!(
            rgb_from_pixels(&[1, 2, 3, 4], 1, 1, 4).unwrap().data,
            [1, 2, 3]
        );
        let e = |c: usize| rgb_from_pixels(&[0; 4], 1, 2, c).unwrap_err().message;
        assert!(e(2).contains("1 (grey), 3 (RGB) or 4 (RGBA) channels, got 2"));
        assert!(e(1).contains("a grey frame of 1×2 has 2 bytes, got 4"));
    }

    #[test]
    fn a_clip_frame_of_another_size_is_named_by_index_and_file() {
        let grey = |w: usize, h: usize| RgbImage {
            width: w,
            height: h,
            data: vec![0; w * h * 3],
        };
        let mut clip = ClipBuilder::new("scan");
        assert_eq!(clip.push(grey(4, 3), Some("a.png")).unwrap(), 1);
        let e = clip.push(grey(2, 2), Some("b.png")).unwrap_err().message;
        assert_eq!(e, "scan: frame 1 (b.png) is 2×2, the clip is 4×3");
        let e = clip.push(grey(2, 2), None).unwrap_err().message;
        assert_eq!(e, "scan: frame 1 is 2×2, the clip is 4×3");
        assert_eq!(clip.finish().unwrap().len(), 1);
    }
}
