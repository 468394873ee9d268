//! The open document: one image, a clip (frames of a video or a folder of images) or a
//! volume (NIfTI, MedSAM npz), with the window that brings a volume to the model's 0..255
//! input. Frames are `height × width`; a volume slice `k` has row `j`, column `i` (the
//! NIfTI voxel grid, like `imgs[k][j][i]` of a MedSAM npz).

use std::cell::OnceCell;
use std::sync::Arc;

use serde::Serialize;

use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::io::image::RgbImage;
use crate::io::volume::{DataType, NiftiGeometry, SourceFormat, Volume};
use crate::io::window::WindowPreset;
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

/// An opened volume: its voxels and the window its slices are shown and segmented with.
struct OpenVolume {
    /// Shared: a new window makes a new document over the same voxels (up to 1 GB).
    volume: Arc<Volume>,
    window: WindowPreset,
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
    /// `nii`, `nii.gz` or `npz`, for volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
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
        })
    }

    /// A volume, windowed with `window` (`None`: [`WindowPreset::auto`]).
    pub fn volume(
        name: impl Into<String>,
        volume: Volume,
        window: Option<WindowPreset>,
    ) -> AppResult<Self> {
        Self::volume_windowed(name.into(), Arc::new(volume), window)
    }

    fn volume_windowed(
        name: String,
        volume: Arc<Volume>,
        window: Option<WindowPreset>,
    ) -> AppResult<Self> {
        let window = window.unwrap_or_else(|| auto_window(&volume));
        let slices: Arc<[u8]> = window.windowing().apply(&volume.data).into();
        let dims = [volume.depth(), volume.height(), volume.width()];
        let frames = VolumeFrames::new(slices.clone(), dims).map_err(AppError::from)?;
        Ok(Self {
            kind: DocKind::Volume,
            name,
            width: volume.width(),
            height: volume.height(),
            frames: Arc::new(frames),
            grey: OnceCell::from(slices),
            volume: Some(OpenVolume { volume, window }),
        })
    }

    /// The same volume under another window (`None`: automatic).
    pub fn rewindowed(&self, window: Option<WindowPreset>) -> AppResult<Self> {
        let v = self.volume.as_ref().ok_or_else(|| {
            AppError::bad_input("windowing applies to volumes; the open file is not one")
        })?;
        Self::volume_windowed(self.name.clone(), v.volume.clone(), window)
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

    /// Where masks of this document lie in space: a volume's own NIfTI geometry, else
    /// `width × height × frames` with 1 mm voxels.
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
            format: v.map(|v| match v.volume.format {
                SourceFormat::Nifti => "nii",
                SourceFormat::NiftiGz => "nii.gz",
                SourceFormat::Npz => "npz",
            }),
        }
    }
}

/// The automatic window of a volume ([`WindowPreset::auto`] on its type and values).
pub fn auto_window(volume: &Volume) -> WindowPreset {
    WindowPreset::auto(
        matches!(volume.dtype, DataType::U8 | DataType::Bool),
        &volume.data,
    )
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

    /// Adds a frame; returns the number of frames so far.
    pub fn push(&mut self, frame: RgbImage) -> AppResult<usize> {
        if let Some(first) = self.frames.first()
            && (first.width, first.height) != (frame.width, frame.height)
        {
            return Err(AppError::bad_input(format!(
                "{}: frame {} is {}×{}, the clip is {}×{}",
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
    let expected = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels));
    if width == 0 || height == 0 || expected != Some(data.len()) {
        let kind = match channels {
            1 => "grey",
            4 => "RGBA",
            _ => "RGB",
        };
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
