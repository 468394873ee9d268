//! 2-D images in and masks out (PNG / JPEG / WebP through the `image` crate).

/// Largest image side accepted; bigger images are refused with a message
/// rather than exhausting memory (the model works at 256–1024 px anyway).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Largest pixel count accepted (about 100 megapixels).
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// An 8-bit RGB image, row-major HWC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// The luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, rounded) of each pixel, row-major:
    /// what LiteMedSAM takes from a colour frame.
    pub fn grey(&self) -> impl Iterator<Item = u8> + '_ {
        self.data.chunks_exact(3).map(|p| {
            (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round() as u8
        })
    }
}

/// Why an image could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image file is empty")]
    Empty,
    #[error("not a PNG, JPEG or WebP image (or the file is damaged): {0}")]
    Decode(String),
    #[error("image is {width}×{height}: larger than the {max_side} px side / {max_mp} MP limit", max_side = MAX_IMAGE_SIDE, max_mp = MAX_IMAGE_PIXELS / 1_000_000)]
    TooLarge { width: u32, height: u32 },
    /// The decoder refused the image's size before telling it (in wasm32 the PNG
    /// decoder's buffer size of a huge header does not fit its 32-bit `usize`).
    #[error("image is larger than the decoder can hold ({0}): larger than the {max_side} px side / {max_mp} MP limit", max_side = MAX_IMAGE_SIDE, max_mp = MAX_IMAGE_PIXELS / 1_000_000)]
    TooLargeToRead(String),
    #[error("image has no pixels")]
    NoPixels,
    #[error("could not write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Decodes an image file's bytes to RGB (grey and RGBA are converted).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(decode_error)?;
    let (w, h) = reader.into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(l) => ImageError::TooLargeToRead(l.to_string()),
        e => decode_error(e),
    })?;
    check_size(w, h)?;
    let img = image::load_from_memory(bytes).map_err(decode_error)?;
    let rgb = img.to_rgb8();
    Ok(RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    })
}

/// The decoder's error as one line: some (the JPEG decoder's) end in a newline.
fn decode_error(e: impl std::fmt::Display) -> ImageError {
    ImageError::Decode(e.to_string().trim_end().to_string())
}

fn check_size(w: u32, h: u32) -> Result<(), ImageError> {
    if w == 0 || h == 0 {
        return Err(ImageError::NoPixels);
    }
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || (w as u64) * (h as u64) > MAX_IMAGE_PIXELS {
        return Err(ImageError::TooLarge {
            width: w,
            height: h,
        });
    }
    Ok(())
}

/// Encodes a binary mask (`0` / non-zero, row-major) as a greyscale PNG with 255 = object.
pub fn encode_mask_png(mask: &[u8], width: usize, height: usize) -> Result<Vec<u8>, ImageError> {
    let pixels: Vec<u8> = mask.iter().map(|&m| if m != 0 { 255 } else { 0 }).collect();
    encode_png(
        &pixels,
        width,
        height,
        image::ExtendedColorType::L8,
        "mask.png",
    )
}

/// Encodes an RGB image as a PNG.
pub fn encode_rgb_png(image: &RgbImage) -> Result<Vec<u8>, ImageError> {
    encode_png(
        &image.data,
        image.width,
        image.height,
        image::ExtendedColorType::Rgb8,
        "frame.png",
    )
}

fn encode_png(
    pixels: &[u8],
    width: usize,
    height: usize,
    color: image::ExtendedColorType,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(encoder, pixels, width as u32, height as u32, color).map_err(
        |e| ImageError::Write {
            path: what.into(),
            reason: e.to_string(),
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_renamed_png_is_a_clear_error() {
        let err = decode_rgb(b"hello, I am a text file").unwrap_err();
        assert!(matches!(err, ImageError::Decode(_)), "{err}");
        assert!(matches!(decode_rgb(b"").unwrap_err(), ImageError::Empty));
    }

    #[test]
    fn mask_png_round_trips() {
        let mask = [0u8, 1, 1, 0, 0, 1];
        let png = encode_mask_png(&mask, 3, 2).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(back.into_raw(), vec![0, 255, 255, 0, 0, 255]);
    }
}
