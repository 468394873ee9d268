//! Opening DICOM: files (a dropped folder's, several picked, or a `.zip`'s entries) are
//! added one at a time, grouped into series, and one series becomes the open document.
//! The page and the CLI both go through [`DicomImport`], so a folder gives the same
//! volume and the same masks in both.

use std::io::{Cursor, Read};

use crate::app::document::Document;
use crate::app::error::{AppError, AppResult, ErrorKind};
use crate::io::dicom::series::{self, Assembled, SeriesInfo};
use crate::io::dicom::{DicomError, DicomFile, is_part10};
use crate::io::volume::{MAX_VOXELS, SourceFormat, Volume, is_zip};
use crate::io::window::WindowLevel;

impl From<DicomError> for AppError {
    fn from(e: DicomError) -> Self {
        let kind = match &e {
            DicomError::TooLarge(_) => ErrorKind::TooLarge,
            _ => ErrorKind::BadInput,
        };
        Self::new(kind, e.to_string())
    }
}

/// The most bytes a `.zip` may unpack to: the largest volume's voxels as 16-bit samples,
/// plus room for headers (a zip that claims more is refused before anything is unpacked).
const MAX_ZIP_BYTES: u64 = MAX_VOXELS * 2 + (256 << 20);

/// DICOM files gathered for opening.
#[derive(Default)]
pub struct DicomImport {
    files: Vec<DicomFile>,
    /// Files that were not taken, each "name: why".
    skipped: Vec<String>,
}

/// What [`DicomImport::open`] gives: the document, or the series to choose from.
pub enum DicomOpening {
    Opened(Document),
    /// Several series and none chosen: the user picks one by its UID.
    ChooseSeries(Vec<SeriesInfo>),
}

impl DicomImport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file: a DICOM Part 10 file, or a `.zip` whose DICOM entries are added (its
    /// other entries are skipped with a note). A file that is not DICOM is an error when
    /// added on its own; the caller of a folder decides whether to skip it
    /// ([`DicomImport::skip`]).
    pub fn add(&mut self, name: &str, bytes: &[u8]) -> AppResult<()> {
        if bytes.is_empty() {
            return Err(AppError::bad_input(format!("{name}: the file is empty")));
        }
        if is_zip(bytes) {
            return self.add_zip(name, bytes);
        }
        let file = DicomFile::read(bytes).map_err(|e| AppError::from(e).context(name))?;
        self.files.push(file);
        Ok(())
    }

    /// Adds a file of a folder, a drop or a pick of several: one that is not DICOM or
    /// cannot be read is skipped with a note (the opened document's notices list it)
    /// instead of failing the others.
    pub fn add_among_others(&mut self, name: &str, bytes: &[u8]) {
        if !is_zip(bytes) && !is_part10(bytes) {
            self.skip(name, "not a DICOM file");
        } else if let Err(e) = self.add(name, bytes) {
            // The message names the file already ("a.dcm: ..."): keep only the why.
            let why = e
                .message
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(&e.message)
                .to_string();
            self.skip(name, &why);
        }
    }

    /// Notes a file of a folder or drop that was not taken ("name: why").
    pub fn skip(&mut self, name: &str, why: &str) {
        self.skipped.push(format!("{name}: {why}"));
    }

    fn add_zip(&mut self, name: &str, bytes: &[u8]) -> AppResult<()> {
        let bad = |e: &dyn std::fmt::Display| {
            AppError::bad_input(format!("{name}: not a readable zip: {e}"))
        };
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(&e))?;
        // What the entries claim to unpack to, checked before unpacking any.
        let mut total = 0u64;
        for n in 0..zip.len() {
            let entry = zip.by_index_raw(n).map_err(|e| bad(&e))?;
            total = total.saturating_add(entry.size());
        }
        if total > MAX_ZIP_BYTES {
            return Err(AppError::new(
                ErrorKind::TooLarge,
                format!(
                    "{name}: unpacks to {:.1} GB; MedSeg opens at most {:.1} GB here",
                    total as f64 / 1e9,
                    MAX_ZIP_BYTES as f64 / 1e9
                ),
            ));
        }
        let before = self.files.len();
        // What is unpacked is counted too: an entry may unpack to more than it claims.
        let mut budget = MAX_ZIP_BYTES;
        for n in 0..zip.len() {
            let entry = zip.by_index(n).map_err(|e| bad(&e))?;
            if entry.is_dir() {
                continue;
            }
            let entry_name = format!("{name}/{}", entry.name());
            let mut data = Vec::new();
            if let Err(e) = entry.take(budget + 1).read_to_end(&mut data) {
                self.skip(&entry_name, &format!("could not unpack: {e}"));
                continue;
            }
            budget = budget.checked_sub(data.len() as u64).ok_or_else(|| {
                AppError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "{name}: unpacks to more than {:.1} GB, the most MedSeg opens here",
                        MAX_ZIP_BYTES as f64 / 1e9
                    ),
                )
            })?;
            if !is_part10(&data) {
                self.skip(&entry_name, "not a DICOM file");
                continue;
            }
            match DicomFile::read(&data) {
                Ok(f) => self.files.push(f),
                Err(e) => self.skip(&entry_name, &e.to_string()),
            }
        }
        if self.files.len() == before {
            return Err(AppError::bad_input(format!(
                "{name}: the zip holds no DICOM file{}",
                self.skipped_summary()
            )));
        }
        Ok(())
    }

    /// Number of DICOM files taken so far.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The series among the files, in the order of their first file.
    pub fn series(&self) -> Vec<SeriesInfo> {
        series::group(&self.files)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    /// " (skipped: a: why; b: why …)" for messages, or "".
    fn skipped_summary(&self) -> String {
        if self.skipped.is_empty() {
            return String::new();
        }
        let shown: Vec<&str> = self.skipped.iter().take(3).map(String::as_str).collect();
        let more = self.skipped.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        format!(" (skipped: {}{more})", shown.join("; "))
    }

    /// Opens the series `uid`, or the only one when `uid` is `None`; with several series
    /// and no choice, lists them.
    pub fn open(&self, name: &str, uid: Option<&str>) -> AppResult<DicomOpening> {
        let groups = series::group(&self.files);
        let chosen = match (uid, groups.len()) {
            (_, 0) => {
                let why = if self.files.is_empty() {
                    "no DICOM file".to_string()
                } else {
                    let mut kinds: Vec<String> = self
                        .files
                        .iter()
                        .map(|f| crate::io::dicom::meta::what_it_is(&f.meta))
                        .collect();
                    kinds.dedup();
                    format!(
                        "no DICOM image: the files have no pixel data ({})",
                        kinds.join(", ")
                    )
                };
                return Err(AppError::bad_input(format!(
                    "{name}: {why}{}",
                    self.skipped_summary()
                )));
            }
            (None, 1) => &groups[0],
            (None, _) => {
                return Ok(DicomOpening::ChooseSeries(
                    groups.into_iter().map(|(i, _)| i).collect(),
                ));
            }
            (Some(uid), _) => groups.iter().find(|(i, _)| i.uid == uid).ok_or_else(|| {
                AppError::bad_input(format!("{name}: no series {uid} among the files"))
            })?,
        };
        let (info, idx) = chosen;
        let opened = series::assemble(&self.files, info, idx)
            .map_err(|e| AppError::from(e).context(name))?;
        let mut notices = opened.notices;
        if !self.skipped.is_empty() {
            notices.push(format!(
                "{} file(s) skipped{}",
                self.skipped.len(),
                self.skipped_summary()
            ));
        }
        if groups.len() > 1 {
            notices.push(format!(
                "opened series {} of {} in the files ({})",
                groups
                    .iter()
                    .position(|(i, _)| i.uid == info.uid)
                    .map_or(1, |p| p + 1),
                groups.len(),
                info.description.as_deref().unwrap_or("no description")
            ));
        }
        let doc = match opened.assembled {
            Assembled::Volume {
                data,
                dims,
                geometry,
                dtype,
                window,
            } => {
                let volume = Volume {
                    data,
                    dims,
                    spacing: geometry.spacing(),
                    geometry,
                    dtype,
                    format: SourceFormat::Dicom,
                };
                let file_window = window.map(|(level, width)| WindowLevel { level, width });
                Document::volume(name, volume, None)?.with_dicom(
                    opened.source,
                    notices,
                    file_window,
                )
            }
            Assembled::Clip(frames) => {
                Document::clip(name, frames)?.with_dicom(opened.source, notices, None)
            }
            Assembled::Image(image) => {
                Document::image(name, image)?.with_dicom(opened.source, notices, None)
            }
        };
        Ok(DicomOpening::Opened(doc))
    }
}
