//! The masks made so far, per object and frame (run-length encoded), and the exports
//! that read them: a NIfTI label map with the document's geometry, one PNG per frame,
//! a zip of those PNGs.

use std::collections::BTreeMap;

use crate::app::document::Document;
use crate::app::error::{AppError, AppResult};
use crate::io::image::encode_mask_png;
use crate::io::volume::write_nifti_mask;
use crate::session::mask_store::RleMask;
use crate::session::video::ObjectId;

/// Masks per object and frame, and the full-resolution logits where they are kept.
#[derive(Default)]
pub struct MaskStore {
    masks: BTreeMap<ObjectId, BTreeMap<usize, RleMask>>,
    /// Logits of prompted frames, and of propagated frames with `keep_all_logits`.
    logits: BTreeMap<(ObjectId, usize), Vec<f32>>,
    /// Keep the logits of propagated frames too (parity checks; 4 bytes a pixel a frame).
    pub keep_all_logits: bool,
}

impl MaskStore {
    pub fn get(&self, obj: ObjectId, frame: usize) -> Option<&RleMask> {
        self.masks.get(&obj)?.get(&frame)
    }

    pub fn set(&mut self, obj: ObjectId, frame: usize, mask: RleMask) {
        self.masks.entry(obj).or_default().insert(frame, mask);
    }

    /// Stores the logits of a prompted frame (or forgets stale ones when there are none).
    pub fn set_prompt_logits(&mut self, obj: ObjectId, frame: usize, logits: Option<Vec<f32>>) {
        match logits {
            Some(l) => self.logits.insert((obj, frame), l),
            None => self.logits.remove(&(obj, frame)),
        };
    }

    /// Stores the logits of a propagated frame when asked to keep them.
    pub fn set_propagated_logits(&mut self, obj: ObjectId, frame: usize, logits: Vec<f32>) {
        if self.keep_all_logits {
            self.logits.insert((obj, frame), logits);
        }
    }

    pub fn logits(&self, obj: ObjectId, frame: usize) -> Option<&[f32]> {
        self.logits.get(&(obj, frame)).map(Vec::as_slice)
    }

    pub fn remove(&mut self, obj: ObjectId, frame: usize) {
        if let Some(m) = self.masks.get_mut(&obj) {
            m.remove(&frame);
        }
        self.logits.remove(&(obj, frame));
    }

    /// Frames where `obj` has a mask, ascending.
    pub fn frames_of(&self, obj: ObjectId) -> Vec<usize> {
        self.masks
            .get(&obj)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn objects(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.masks.keys().copied()
    }

    pub fn remove_object(&mut self, obj: ObjectId) {
        self.masks.remove(&obj);
        self.logits.retain(|(o, _), _| *o != obj);
    }

    pub fn clear(&mut self) {
        self.masks.clear();
        self.logits.clear();
    }

    /// Every frame of `doc` as a label map, slice-major (`frames × height × width`):
    /// voxel value = object id (`obj` given: that object only, value 1). Where objects
    /// overlap, the higher id wins.
    pub fn label_map(&self, doc: &Document, obj: Option<ObjectId>) -> Vec<u8> {
        let [d, h, w] = doc.dims();
        let plane = h * w;
        let mut labels = vec![0u8; d * plane];
        for (&id, frames) in &self.masks {
            if obj.is_some_and(|o| o != id) {
                continue;
            }
            // Ids are 1..=255 (checked where objects are made).
            let value = if obj.is_some() { 1 } else { id as u8 };
            for (&f, m) in frames.range(..d) {
                for (dst, v) in labels[f * plane..(f + 1) * plane]
                    .iter_mut()
                    .zip(m.decode())
                {
                    if v != 0 {
                        *dst = value;
                    }
                }
            }
        }
        labels
    }

    /// The masks as a gzipped NIfTI-1 label map with the document's geometry (a volume's
    /// own dims, pixdim, qform and sform bit for bit).
    pub fn export_nifti(&self, doc: &Document, obj: Option<ObjectId>) -> AppResult<Vec<u8>> {
        Ok(write_nifti_mask(
            &doc.geometry(),
            &self.label_map(doc, obj),
        )?)
    }

    /// The mask of `frame` (all objects, or `obj`) as a greyscale PNG, 255 = object.
    pub fn export_png(
        &self,
        doc: &Document,
        frame: usize,
        obj: Option<ObjectId>,
    ) -> AppResult<Vec<u8>> {
        doc.check_frame(frame)?;
        let mut mask = vec![0u8; doc.width() * doc.height()];
        for (&id, frames) in &self.masks {
            if obj.is_some_and(|o| o != id) {
                continue;
            }
            if let Some(m) = frames.get(&frame) {
                for (dst, v) in mask.iter_mut().zip(m.decode()) {
                    *dst |= v;
                }
            }
        }
        Ok(encode_mask_png(&mask, doc.width(), doc.height())?)
    }

    /// Every frame's PNG ([`MaskStore::export_png`]) with its file name,
    /// `mask_00000.png`, ... (frames without a mask are blank).
    pub fn export_png_frames<'a>(
        &'a self,
        doc: &'a Document,
        obj: Option<ObjectId>,
    ) -> impl Iterator<Item = AppResult<(String, Vec<u8>)>> + 'a {
        (0..doc.len()).map(move |f| Ok((png_name(f), self.export_png(doc, f, obj)?)))
    }

    /// [`MaskStore::export_png_frames`] in a zip archive (stored, PNG is compressed).
    pub fn export_png_zip(&self, doc: &Document, obj: Option<ObjectId>) -> AppResult<Vec<u8>> {
        use std::io::Write;
        let zip_err = |e: &dyn std::fmt::Display| AppError::engine(format!("zip: {e}"));
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for entry in self.export_png_frames(doc, obj) {
            let (name, png) = entry?;
            zip.start_file(name, options).map_err(|e| zip_err(&e))?;
            zip.write_all(&png).map_err(|e| zip_err(&e))?;
        }
        Ok(zip.finish().map_err(|e| zip_err(&e))?.into_inner())
    }
}

/// The file name of frame `f`'s mask in PNG exports.
pub fn png_name(f: usize) -> String {
    format!("mask_{f:05}.png")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::image::RgbImage;
    use crate::io::volume::Volume;

    /// A 3-frame 4×2 clip with masks: object 1 on frames 0 and 2, object 2 on frame 2
    /// (overlapping object 1 in one pixel).
    fn clip_with_masks() -> (Document, MaskStore) {
        let frame = RgbImage {
            width: 4,
            height: 2,
            data: vec![0; 24],
        };
        let doc = Document::clip("clip", vec![frame; 3]).unwrap();
        let mut masks = MaskStore::default();
        masks.set(1, 0, RleMask::encode(&[1, 1, 0, 0, 0, 0, 0, 0], 4, 2));
        masks.set(1, 2, RleMask::encode(&[0, 1, 1, 0, 0, 0, 0, 0], 4, 2));
        masks.set(2, 2, RleMask::encode(&[0, 0, 1, 1, 0, 0, 0, 1], 4, 2));
        (doc, masks)
    }

    #[test]
    fn label_map_holds_object_ids_and_the_higher_id_wins() {
        let (doc, masks) = clip_with_masks();
        let all = masks.label_map(&doc, None);
        assert_eq!(&all[..8], &[1, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&all[8..16], &[0; 8]);
        assert_eq!(&all[16..], &[0, 1, 2, 2, 0, 0, 0, 2]);
        let one = masks.label_map(&doc, Some(2));
        assert_eq!(&one[16..], &[0, 0, 1, 1, 0, 0, 0, 1]);
        assert!(one[..16].iter().all(|&v| v == 0));
    }

    #[test]
    fn nifti_export_reads_back_with_the_documents_grid() {
        let (doc, masks) = clip_with_masks();
        let back = Volume::from_bytes(&masks.export_nifti(&doc, None).unwrap()).unwrap();
        assert_eq!(back.dims, [4, 2, 3]);
        assert_eq!(back.spacing, [1.0, 1.0, 1.0]);
        let labels: Vec<u8> = back.data.iter().map(|&v| v as u8).collect();
        assert_eq!(labels, masks.label_map(&doc, None));
    }

    #[test]
    fn png_exports_name_every_frame_and_zip_them() {
        let (doc, masks) = clip_with_masks();
        let frames: Vec<_> = masks
            .export_png_frames(&doc, None)
            .collect::<AppResult<_>>()
            .unwrap();
        let names: Vec<&str> = frames.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["mask_00000.png", "mask_00001.png", "mask_00002.png"]
        );
        let union = image::load_from_memory(&frames[2].1).unwrap().to_luma8();
        assert_eq!(union.into_raw(), vec![0, 255, 255, 255, 0, 0, 0, 255]);
        let zip = masks.export_png_zip(&doc, Some(1)).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), 3);
        let mut entry = archive.by_name("mask_00002.png").unwrap();
        let mut png = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut png).unwrap();
        let obj1 = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(obj1.into_raw(), vec![0, 255, 255, 0, 0, 0, 0, 0]);
        assert!(masks.export_png(&doc, 3, None).is_err(), "frame 3 of 3");
    }
}
