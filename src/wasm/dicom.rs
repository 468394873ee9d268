//! The DICOM part of [`Session`]: gathering files one at a time (the worker sends a
//! folder's files as it reads them), opening a series, exporting a Segmentation.

use wasm_bindgen::prelude::*;

use super::types::{self, busy, from_js, js_error, to_js};
use super::{InputBytes, Session, js};
use crate::app::AppError;
use crate::app::dicom::{DicomImport, DicomOpening};
use crate::app::masks::SegRequest;

#[wasm_bindgen]
impl Session {
    /// Starts gathering DICOM files (a folder's, several picked, a `.zip`): they follow
    /// with [`Session::push_dicom`], then [`Session::finish_dicom`]. Forgets files
    /// gathered before.
    pub fn begin_dicom(&self) {
        *self.dicom.borrow_mut() = Some(DicomImport::new());
    }

    /// Adds a DICOM file or a `.zip` of them; returns the number of DICOM files gathered.
    /// With `lenient` (a file of a folder or of several), a file that is not DICOM or
    /// cannot be read is skipped with a note ([`DicomImport::add_among_others`]); without,
    /// it is an error.
    pub fn push_dicom(
        &self,
        bytes: &InputBytes,
        name: String,
        lenient: bool,
    ) -> Result<u32, JsValue> {
        let bytes = bytes.bytes();
        let mut import = self.dicom.borrow_mut();
        let import = js(import.as_mut().ok_or_else(|| {
            AppError::bad_input("no DICOM import was begun (call beginDicom first)")
        }))?;
        if lenient {
            import.add_among_others(&name, bytes);
        } else {
            import.add(&name, bytes).map_err(|e| js_error(&e))?;
        }
        Ok(import.len() as u32)
    }

    /// Notes a file that was not pushed ("DICOMDIR: a directory, not an image").
    pub fn skip_dicom(&self, name: String, why: String) -> Result<(), JsValue> {
        let mut import = self.dicom.borrow_mut();
        let import = js(import
            .as_mut()
            .ok_or_else(|| AppError::bad_input("no DICOM import was begun")))?;
        import.skip(&name, &why);
        Ok(())
    }

    /// Opens the series `series` (its UID) of the gathered files, or the only one, as the
    /// document `name` → its info. With several series and none chosen → `{choose:
    /// [{uid, modality, description, number, files, frames, rows, columns, kind}]}`, and
    /// the files stay gathered for the next call. On failure the open document stays.
    pub fn finish_dicom(&self, name: String, series: Option<String>) -> Result<JsValue, JsValue> {
        let opening = {
            let import = self.dicom.borrow();
            let import = js(import
                .as_ref()
                .ok_or_else(|| AppError::bad_input("no DICOM import was begun")))?;
            let uid = series.as_deref().map(str::trim).filter(|s| !s.is_empty());
            js(import.open(&name, uid))?
        };
        match opening {
            DicomOpening::ChooseSeries(list) => to_js(&types::ChooseSeries { choose: list }),
            DicomOpening::Opened(doc) => {
                let info = self.open(doc)?;
                *self.dicom.borrow_mut() = None;
                Ok(info)
            }
        }
    }

    /// Forgets the gathered DICOM files.
    pub fn cancel_dicom(&self) {
        *self.dicom.borrow_mut() = None;
    }

    /// The masks as a DICOM Segmentation of the document's DICOM source (`obj`: that
    /// object only). `request`: `{segments: [{obj, label, colour: [r, g, b]}], date:
    /// "YYYYMMDD", time: "HHMMSS"}` (the caller's clock: wasm32 has none).
    pub fn export_dicom_seg(&self, obj: Option<u32>, request: JsValue) -> Result<Vec<u8>, JsValue> {
        let request: SegRequest = from_js(request, "DICOM SEG export")?;
        js(self
            .ws
            .try_borrow()
            .map_err(busy)?
            .export_dicom_seg(obj, &request))
    }
}
