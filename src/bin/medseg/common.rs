//! What the commands share: reading and writing files with their paths in the message,
//! comma-separated number lists, and loading a model into a workspace.

use std::path::{Path, PathBuf};

use medseg::app::dicom::{DicomImport, DicomOpening};
use medseg::app::{Document, LoadedModel, ModelInfo, Workspace};
use medseg::io::volume::is_zip;
use medseg::model::config::Sam2Preset;
use medseg::weights::TensorStore;

pub type CliResult<T = ()> = Result<T, String>;

pub fn read_file(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub fn write_file(path: &Path, bytes: &[u8]) -> CliResult {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn read_weights(path: &Path) -> CliResult<TensorStore> {
    let bytes = read_file(path)?;
    TensorStore::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A SAM 2 preset name (`--config`), for clap's `value_parser`.
pub fn preset(s: &str) -> Result<Sam2Preset, String> {
    Sam2Preset::parse(s).map_err(|e| e.to_string())
}

/// The model a command segments with.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Weights: .safetensors, or a LiteMedSAM .pth / MedSAM2 .pt checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// SAM 2 architecture for weights that do not name it: medsam2-t512 or sam2.1-t.
    #[arg(long, value_parser = preset)]
    pub config: Option<Sam2Preset>,
}

impl ModelArgs {
    /// A workspace on the CPU with this model loaded.
    pub fn workspace(&self) -> CliResult<(Workspace, ModelInfo)> {
        let mut ws = Workspace::new(medseg::cpu_device());
        let (model, info) =
            LoadedModel::load(read_weights(&self.model)?, self.config, None, ws.device())
                .map_err(|e| format!("{}: {e}", self.model.display()))?;
        ws.set_model(model);
        Ok((ws, info))
    }
}

/// Whether `path` is DICOM input: a Part 10 file, a zip with a Part 10 file in it (a
/// MedSAM `.npz` and a PyTorch checkpoint are zips too), or a folder holding a Part 10
/// file anywhere below it. Only heads are read: a file may be a large checkpoint or volume.
pub fn is_dicom_input(path: &Path) -> CliResult<bool> {
    use std::io::Read;
    if path.is_dir() {
        return Ok(files_below(path)?.iter().any(|f| starts_like_dicom(f)));
    }
    let head = file_head(path, 132);
    if medseg::io::dicom::is_part10(&head) {
        return Ok(true);
    }
    if !is_zip(&head) {
        return Ok(false);
    }
    // The archive's directory, then the first bytes of each entry.
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let Ok(mut zip) = zip::ZipArchive::new(file) else {
        return Ok(false);
    };
    for n in 0..zip.len() {
        let mut head = Vec::with_capacity(132);
        if let Ok(entry) = zip.by_index(n)
            && entry.take(132).read_to_end(&mut head).is_ok()
            && medseg::io::dicom::is_part10(&head)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// For a file named like DICOM (`.dcm`, `.dicom`) that is not (see [`is_dicom_input`]):
/// the message to give instead of the error of the format it was then tried as.
pub fn named_dicom_but_not(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    matches!(ext.as_str(), "dcm" | "dicom").then(|| {
        format!(
            "{}: not a DICOM file: no `DICM` at byte 128 (a DICOM Part 10 file starts with \
             a 128-byte preamble and `DICM`)",
            path.display()
        )
    })
}

fn starts_like_dicom(path: &Path) -> bool {
    medseg::io::dicom::is_part10(&file_head(path, 132))
}

/// The first `n` bytes of a file (fewer when it is shorter or unreadable).
pub fn file_head(path: &Path, n: u64) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(n).read_to_end(&mut head);
    }
    head
}

/// Every file below `dir`, in path order.
fn files_below(dir: &Path) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot read {}: {e}", d.display()))?
                .path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Opens DICOM input (a file, a zip, or a folder: its files that are not DICOM are
/// skipped with a note) as the page does, the series `series` (a Series Instance UID)
/// when it holds several.
pub fn open_dicom(path: &Path, series: Option<&str>) -> CliResult<Document> {
    let name = path.display().to_string();
    let mut import = DicomImport::new();
    if path.is_dir() {
        for file in files_below(path)? {
            let shown = file.display().to_string();
            if starts_like_dicom(&file) {
                import.add_among_others(&shown, &read_file(&file)?);
            } else {
                // Not read whole: a folder may hold large files of other kinds.
                import.skip(&shown, "not a DICOM file");
            }
        }
    } else {
        import
            .add(&name, &read_file(path)?)
            .map_err(|e| e.to_string())?;
    }
    let doc = match import.open(&name, series).map_err(|e| e.to_string())? {
        DicomOpening::Opened(doc) => doc,
        DicomOpening::ChooseSeries(list) => {
            let rows: Vec<String> = list
                .iter()
                .map(|s| {
                    format!(
                        "  {}  {} {:?}: {} frame(s) of {}×{}, a {:?}",
                        s.uid,
                        s.modality.as_deref().unwrap_or("?"),
                        s.description.as_deref().unwrap_or(""),
                        s.frames,
                        s.columns,
                        s.rows,
                        s.kind
                    )
                })
                .collect();
            return Err(format!(
                "{name} holds {} series; choose one with --series UID:\n{}",
                list.len(),
                rows.join("\n")
            ));
        }
    };
    for notice in &doc.info().notices {
        eprintln!("note: {notice}");
    }
    Ok(doc)
}

/// The system clock as DICOM DA ("YYYYMMDD") and TM ("HHMMSS"), in UTC (std knows no
/// local time zone).
pub fn utc_date_time() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60),
    )
}
