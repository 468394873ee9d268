//! The masks made so far, per object and frame (run-length encoded), and the exports
//! that read them: a NIfTI label map with the document's geometry, one PNG per frame,
//! a zip of those PNGs, a DICOM Segmentation of a DICOM source. While a journal is open the store notes what each (object,
//! frame) held before its first change, so that an action can be undone and redone
//! (`app::history`) from those snapshots instead of by running the model again.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::app::document::Document;
use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::io::dicom::seg::{SegOptions, Segment, write_seg};
use crate::io::image::encode_mask_png;
use crate::io::volume::write_nifti_mask;
use crate::session::mask_store::RleMask;
use crate::session::video::ObjectId;

/// What one (object, frame) holds: its mask and logits (shared, so that a snapshot of
/// them in the history costs no copy).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    pub mask: Option<RleMask>,
    pub logits: Option<Rc<[f32]>>,
}

impl Cell {
    /// Bytes it keeps alive (an upper bound: logits may be shared).
    pub fn bytes(&self) -> usize {
        self.mask.as_ref().map_or(0, RleMask::heap_bytes)
            + self.logits.as_ref().map_or(0, |l| 4 * l.len())
    }
}

/// One (object, frame) that an action changed: what it held before and after.
#[derive(Clone, Debug, PartialEq)]
pub struct CellChange {
    pub obj: ObjectId,
    pub frame: usize,
    pub before: Cell,
    pub after: Cell,
}

/// Masks per object and frame, and the full-resolution logits where they are kept.
#[derive(Default)]
pub struct MaskStore {
    masks: BTreeMap<ObjectId, BTreeMap<usize, RleMask>>,
    /// Logits of prompted frames, and of propagated frames with `keep_all_logits`.
    logits: BTreeMap<(ObjectId, usize), Rc<[f32]>>,
    /// Keep the logits of propagated frames too (parity checks; 4 bytes a pixel a frame).
    pub keep_all_logits: bool,
    /// While open: what each (object, frame) changed since held before its first change.
    journal: Option<BTreeMap<(ObjectId, usize), Cell>>,
}

impl MaskStore {
    pub fn get(&self, obj: ObjectId, frame: usize) -> Option<&RleMask> {
        self.masks.get(&obj)?.get(&frame)
    }

    pub fn set(&mut self, obj: ObjectId, frame: usize, mask: RleMask) {
        self.note(obj, frame);
        self.masks.entry(obj).or_default().insert(frame, mask);
    }

    /// Stores the logits of a prompted frame (or forgets stale ones when there are none).
    pub fn set_prompt_logits(&mut self, obj: ObjectId, frame: usize, logits: Option<Vec<f32>>) {
        self.note(obj, frame);
        match logits {
            Some(l) => self.logits.insert((obj, frame), l.into()),
            None => self.logits.remove(&(obj, frame)),
        };
    }

    /// Stores the logits of a propagated frame when asked to keep them.
    pub fn set_propagated_logits(&mut self, obj: ObjectId, frame: usize, logits: Vec<f32>) {
        if self.keep_all_logits {
            self.note(obj, frame);
            self.logits.insert((obj, frame), logits.into());
        }
    }

    pub fn logits(&self, obj: ObjectId, frame: usize) -> Option<&[f32]> {
        self.logits.get(&(obj, frame)).map(|l| &**l)
    }

    /// The mask and logits of `obj` on `frame`.
    pub fn cell(&self, obj: ObjectId, frame: usize) -> Cell {
        Cell {
            mask: self.get(obj, frame).cloned(),
            logits: self.logits.get(&(obj, frame)).cloned(),
        }
    }

    /// Puts `cell` back as the mask and logits of `obj` on `frame`.
    pub fn set_cell(&mut self, obj: ObjectId, frame: usize, cell: Cell) {
        self.note(obj, frame);
        match cell.mask {
            Some(m) => {
                self.masks.entry(obj).or_default().insert(frame, m);
            }
            None => {
                if let Some(m) = self.masks.get_mut(&obj) {
                    m.remove(&frame);
                    if m.is_empty() {
                        self.masks.remove(&obj);
                    }
                }
            }
        }
        match cell.logits {
            Some(l) => self.logits.insert((obj, frame), l),
            None => self.logits.remove(&(obj, frame)),
        };
    }

    /// Starts noting changes (see [`MaskStore::take_journal`]); forgets earlier notes.
    pub fn start_journal(&mut self) {
        self.journal = Some(BTreeMap::new());
    }

    /// Ends the journal: every (object, frame) changed since it started, with what it
    /// held before the first change and holds now.
    pub fn take_journal(&mut self) -> Vec<CellChange> {
        let journal = self.journal.take().unwrap_or_default();
        journal
            .into_iter()
            .map(|((obj, frame), before)| CellChange {
                obj,
                frame,
                before,
                after: self.cell(obj, frame),
            })
            .collect()
    }

    /// Whether the open journal has noted a change.
    pub fn journal_changed(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| !j.is_empty())
    }

    /// Notes what `obj` on `frame` holds before a change, once per journal.
    fn note(&mut self, obj: ObjectId, frame: usize) {
        if self
            .journal
            .as_ref()
            .is_some_and(|j| !j.contains_key(&(obj, frame)))
        {
            let before = self.cell(obj, frame);
            if let Some(j) = self.journal.as_mut() {
                j.insert((obj, frame), before);
            }
        }
    }

    /// Notes every (object, frame) of `obj` (all objects when `None`) before a removal.
    fn note_all(&mut self, obj: Option<ObjectId>) {
        if self.journal.is_none() {
            return;
        }
        let keys: Vec<(ObjectId, usize)> = self
            .masks
            .iter()
            .flat_map(|(&o, frames)| frames.keys().map(move |&f| (o, f)))
            .chain(self.logits.keys().copied())
            .filter(|(o, _)| obj.is_none_or(|id| id == *o))
            .collect();
        for (o, f) in keys {
            self.note(o, f);
        }
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
        self.note_all(Some(obj));
        self.masks.remove(&obj);
        self.logits.retain(|(o, _), _| *o != obj);
    }

    pub fn clear(&mut self) {
        self.note_all(None);
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

/// How one object appears in a DICOM Segmentation: its label and colour (sRGB), each
/// "Object N" / [`DEFAULT_SEGMENT_COLOURS`] when not given.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct SegmentStyle {
    pub obj: ObjectId,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub colour: Option<[u8; 3]>,
}

/// What a DICOM Segmentation export needs besides the masks: each object's label and
/// colour (an object not listed is "Object N" in [`DEFAULT_SEGMENT_COLOURS`]) and when it
/// is made (DA "YYYYMMDD", TM "HHMMSS": the caller's clock, as wasm32 has none).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct SegRequest {
    #[serde(default)]
    pub segments: Vec<SegmentStyle>,
    pub date: String,
    pub time: String,
}

/// Colours of objects whose caller names none (the CLI): distinct on grey images.
pub const DEFAULT_SEGMENT_COLOURS: [[u8; 3]; 6] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
];

impl MaskStore {
    /// The masks as a binary DICOM Segmentation of the document's DICOM source: one
    /// segment per object (`obj`: that one only) that has a mask, in id order.
    pub fn export_dicom_seg(
        &self,
        doc: &Document,
        obj: Option<ObjectId>,
        request: &SegRequest,
        algorithm: &str,
    ) -> AppResult<Vec<u8>> {
        let source = doc.dicom().ok_or_else(|| {
            AppError::bad_input(
                "a DICOM Segmentation refers to its DICOM source; the open file is not DICOM \
                 (export NIfTI or PNG instead)",
            )
        })?;
        let mut segments = Vec::new();
        for (&id, frames) in &self.masks {
            if obj.is_some_and(|o| o != id) || frames.values().all(|m| m.area() == 0) {
                continue;
            }
            let style = request.segments.iter().find(|s| s.obj == id);
            let masks = (0..doc.len())
                .map(|f| frames.get(&f).filter(|m| m.area() > 0).map(|m| m.decode()))
                .collect();
            segments.push(Segment {
                label: style
                    .and_then(|s| s.label.clone())
                    .unwrap_or_else(|| format!("Object {id}")),
                colour: style.and_then(|s| s.colour).unwrap_or(
                    DEFAULT_SEGMENT_COLOURS
                        [(id as usize).saturating_sub(1) % DEFAULT_SEGMENT_COLOURS.len()],
                ),
                masks,
            });
        }
        if segments.is_empty() {
            return Err(AppError::new(
                ErrorKind::NoPrompt,
                "there are no masks to export: segment something first",
            ));
        }
        let options = SegOptions::new(algorithm, &request.date, &request.time);
        Ok(write_seg(source, &segments, &options)?)
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
