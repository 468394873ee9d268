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
    fn frame(&mut self, index: usize) -> Result<RgbImage, FrameError>;
}

/// Frames held in memory (the browser pushes them; tests build them).
#[derive(Clone, Debug, Default)]
pub struct InMemoryFrames {
    frames: Vec<RgbImage>,
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
        Ok(Self { frames })
    }

    pub fn push(&mut self, frame: RgbImage) -> Result<(), FrameError> {
        if let Some(first) = self.frames.first()
            && (frame.width, frame.height) != (first.width, first.height)
        {
            return Err(FrameError::Unreadable {
                index: self.frames.len(),
                reason: format!(
                    "{}×{} differs from the clip's {}×{}",
                    frame.width, frame.height, first.width, first.height
                ),
            });
        }
        self.frames.push(frame);
        Ok(())
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
    fn frame(&mut self, index: usize) -> Result<RgbImage, FrameError> {
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
