//! File bytes into the module's memory. wasm-bindgen copies a `Uint8Array` argument
//! (`&[u8]`, `Vec<u8>`) with its allocator, which aborts when the module's memory (at
//! most 4 GB, shared by the model, the open document and its masks) cannot grow: the
//! call then ends in a WebAssembly trap ("unreachable") that names nothing. Every file
//! goes in through [`InputBytes::copy`] instead, which reserves the room first and
//! refuses with a message naming the file and its size.

use wasm_bindgen::prelude::*;

use super::js;
use crate::app::{AppError, ErrorKind};

/// A file's bytes in the module's memory.
#[wasm_bindgen]
pub struct InputBytes(Vec<u8>);

#[wasm_bindgen]
impl InputBytes {
    /// `source` copied in, or a `too-large` error naming `name` and its size.
    pub fn copy(source: &js_sys::Uint8Array, name: &str) -> Result<InputBytes, JsValue> {
        let len = source.length() as usize;
        let mut bytes = Vec::new();
        js(bytes.try_reserve_exact(len).map_err(|_| {
            AppError::new(
                ErrorKind::TooLarge,
                format!(
                    "{name}: not enough memory in the browser for its {len} bytes (the page \
                     holds the model, the open file and its masks in at most 4 GB): use a \
                     smaller file, or the medseg command line"
                ),
            )
        }))?;
        // Within the capacity just reserved: no allocation.
        bytes.resize(len, 0);
        source.copy_to(&mut bytes);
        Ok(InputBytes(bytes))
    }
}

impl InputBytes {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.0
    }
}
