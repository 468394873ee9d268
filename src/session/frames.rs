//! Frame sources: where a session's frames come from. Frames are decoded and
//! prepared lazily, one at a time, so a long clip never sits in memory as
//! model inputs.

use crate::io::image::RgbImage;
use crate::preprocess::{PreprocessError, Sam2ImageTransform};

/// Why a frame could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame {index} is out of range (the clip has {len} frames)")]
    OutOfRange { index: usize, len: usize },
    #[error("frame {index}: {reason}")]
    Unreadable { index: usize, reason: String },
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
}

/// A clip or volume seen as a sequence of equally sized RGB frames.
pub trait FrameSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// (height, width) of every frame, the grid masks are returned on.
    fn frame_size(&self) -> (usize, usize);
    /// Frame `index` as RGB.
    fn frame(&self, index: usize) -> Result<RgbImage, FrameError>;
}

/// A shared source (a document's frames, shared by its sessions) is a source too.
impl<T: FrameSource + ?Sized> FrameSource for std::sync::Arc<T> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn frame_size(&self) -> (usize, usize) {
        (**self).frame_size()
    }
    fn frame(&self, index: usize) -> Result<RgbImage, FrameError> {
        (**self).frame(index)
    }
}

/// Frames held in memory: a clip decoded in the browser, images opened as frames, test
/// clips. Shared, so that a document and its sessions hold one copy.
#[derive(Clone, Debug, Default)]
pub struct InMemoryFrames {
    frames: std::sync::Arc<[RgbImage]>,
}

impl InMemoryFrames {
    /// All frames must share one size.
    pub fn new(frames: Vec<RgbImage>) -> Result<Self, FrameError> {
        if let Some(first) = frames.first() {
            for (i, f) in frames.iter().enumerate() {
                if (f.width, f.height) != (first.width, first.height) {
                    return Err(FrameError::Unreadable {
                        index: i,
                        reason: format!(
                            "{}×{} differs from the first frame's {}×{}",
                            f.width, f.height, first.width, first.height
                        ),
                    });
                }
            }
        }
        Ok(Self {
            frames: frames.into(),
        })
    }
}

impl FrameSource for InMemoryFrames {
    fn len(&self) -> usize {
        self.frames.len()
    }
    fn frame_size(&self) -> (usize, usize) {
        self.frames
            .first()
            .map(|f| (f.height, f.width))
            .unwrap_or((0, 0))
    }
    fn frame(&self, index: usize) -> Result<RgbImage, FrameError> {
        self.frames
            .get(index)
            .cloned()
            .ok_or(FrameError::OutOfRange {
                index,
                len: self.frames.len(),
            })
    }
}

/// Prepares a frame as SAM 2's video predictor does (`load_video_frames`:
/// Pillow bicubic resize of the u8 frame, then ImageNet normalisation).
pub fn video_model_input(frame: &RgbImage, image_size: usize) -> Result<Vec<f32>, FrameError> {
    Ok(Sam2ImageTransform::new(image_size).prepare_video_frame(
        &frame.data,
        frame.height,
        frame.width,
    )?)
}

/// The slices of a windowed (u8) volume as grey frames, expanded to RGB on
/// demand (MedSAM2 repeats the grey channel). `slices` is `depth × height × width`.
#[derive(Clone, Debug)]
pub struct VolumeFrames {
    slices: std::sync::Arc<[u8]>,
    depth: usize,
    height: usize,
    width: usize,
}

impl VolumeFrames {
    pub fn new(
        slices: std::sync::Arc<[u8]>,
        [depth, height, width]: [usize; 3],
    ) -> Result<Self, FrameError> {
        if slices.len() != depth * height * width {
            return Err(FrameError::Unreadable {
                index: 0,
                reason: format!(
                    "volume holds {} voxels, not {depth}×{height}×{width}",
                    slices.len()
                ),
            });
        }
        Ok(Self {
            slices,
            depth,
            height,
            width,
        })
    }
}

impl FrameSource for VolumeFrames {
    fn len(&self) -> usize {
        self.depth
    }
    fn frame_size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn frame(&self, index: usize) -> Result<RgbImage, FrameError> {
        if index >= self.depth {
            return Err(FrameError::OutOfRange {
                index,
                len: self.depth,
            });
        }
        let plane = self.height * self.width;
        let grey = &self.slices[index * plane..(index + 1) * plane];
        Ok(RgbImage {
            width: self.width,
            height: self.height,
            data: grey.iter().flat_map(|&v| [v, v, v]).collect(),
        })
    }
}

/// PNG / JPEG frames in a folder, decoded one at a time (native only).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug)]
pub struct FolderFrames {
    paths: Vec<std::path::PathBuf>,
    size: (usize, usize),
}

#[cfg(not(target_arch = "wasm32"))]
impl FolderFrames {
    /// Every `.png`, `.jpg`, `.jpeg` or `.webp` file of `dir`, in name order.
    pub fn open(dir: &std::path::Path) -> Result<Self, FrameError> {
        let unreadable = |reason: String| FrameError::Unreadable { index: 0, reason };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| unreadable(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "png" | "jpg" | "jpeg" | "webp"
                    )
                })
            })
            .collect();
        paths.sort();
        let first = paths.first().ok_or_else(|| {
            unreadable(format!("{} holds no PNG/JPEG/WebP frames", dir.display()))
        })?;
        let bytes =
            std::fs::read(first).map_err(|e| unreadable(format!("{}: {e}", first.display())))?;
        let img = crate::io::image::decode_rgb(&bytes)
            .map_err(|e| unreadable(format!("{}: {e}", first.display())))?;
        Ok(Self {
            paths,
            size: (img.height, img.width),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl FrameSource for FolderFrames {
    fn len(&self) -> usize {
        self.paths.len()
    }
    fn frame_size(&self) -> (usize, usize) {
        self.size
    }
    fn frame(&self, index: usize) -> Result<RgbImage, FrameError> {
        let path = self.paths.get(index).ok_or(FrameError::OutOfRange {
            index,
            len: self.paths.len(),
        })?;
        let unreadable = |reason: String| FrameError::Unreadable { index, reason };
        let bytes =
            std::fs::read(path).map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
        let img = crate::io::image::decode_rgb(&bytes)
            .map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
        if (img.height, img.width) != self.size {
            return Err(unreadable(format!(
                "{} is {}×{}, the clip is {}×{}",
                path.display(),
                img.width,
                img.height,
                self.size.1,
                self.size.0
            )));
        }
        Ok(img)
    }
}
