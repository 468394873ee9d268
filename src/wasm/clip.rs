//! The clip part of [`Session`]: frames pushed one at a time (decoded video frames, or
//! image files of a multi-file drop), then made the open document.

use wasm_bindgen::prelude::*;

use super::{InputBytes, Session, js};
use crate::app::document::{ClipBuilder, rgb_from_pixels};
use crate::app::{AppError, AppResult};
use crate::io::image::{RgbImage, decode_rgb};

#[wasm_bindgen]
impl Session {
    /// Starts a clip: frames follow with `push_frame_*`, then [`Session::finish_clip`].
    pub fn begin_clip(&self, name: String) {
        *self.clip.borrow_mut() = Some(ClipBuilder::new(name));
    }

    /// Adds a frame of `channels` bytes a pixel (4: `ImageData`'s RGBA, 1: grey) to the
    /// clip begun; returns the count.
    pub fn push_frame_pixels(
        &self,
        data: &InputBytes,
        width: u32,
        height: u32,
        channels: u32,
    ) -> Result<u32, JsValue> {
        let (w, h, c) = (width as usize, height as usize, channels as usize);
        self.push(rgb_from_pixels(data.bytes(), w, h, c), None)
    }

    /// Adds an encoded image (PNG / JPEG / WebP) as the next frame of the clip begun.
    pub fn push_frame_image(&self, bytes: &InputBytes, name: String) -> Result<u32, JsValue> {
        let frame = decode_rgb(bytes.bytes()).map_err(|e| AppError::from(e).context(&name));
        self.push(frame, Some(&name))
    }

    /// Makes the pushed frames the open document (masks of the previous one go).
    pub fn finish_clip(&self) -> Result<JsValue, JsValue> {
        let clip = self.clip.borrow_mut().take();
        let clip = js(clip.ok_or_else(|| AppError::bad_input("no clip was begun")))?;
        self.open(js(clip.finish())?)
    }
}

impl Session {
    /// Adds `frame` (decoded from image file `file`, when it was one) to the clip begun.
    fn push(&self, frame: AppResult<RgbImage>, file: Option<&str>) -> Result<u32, JsValue> {
        let mut clip = self.clip.borrow_mut();
        let clip = js(clip
            .as_mut()
            .ok_or_else(|| AppError::bad_input("no clip was begun (call beginClip first)")))?;
        Ok(js(frame.and_then(|f| clip.push(f, file)))? as u32)
    }
}
