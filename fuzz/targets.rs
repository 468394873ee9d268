//! What each fuzz target does with its input, one function per target: included by the
//! libFuzzer wrappers in `fuzz_targets/` and by `tests/fuzz_regressions.rs`, which runs
//! every input kept in `fuzz/regressions/TARGET/` (each once made a target fail) so that
//! `cargo test` keeps them fixed without libFuzzer. A target fails by panicking (an
//! `Err` is the right answer to a bad file) or, under libFuzzer, by exceeding its memory
//! limit.

use medseg::app::dicom::{DicomImport, DicomOpening};
use medseg::app::prompts::{fit_prompt, parse_numbers, point_label};
use medseg::app::propagation::{frame_range, whole_range};
use medseg::app::{Document, VolumeOpening};
use medseg::io::image::decode_rgb;
use medseg::io::volume::Volume;
use medseg::predictor::ImagePrompt;
use medseg::preprocess::{LiteMedSamTransform, Sam2ImageTransform};
use medseg::weights::{TensorStore, pytorch, safetensors_io};

/// A target's code: takes one input, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name `scripts/fuzz.sh` and the regression folders use.
pub const TARGETS: &[(&str, Target)] = &[
    ("safetensors", safetensors),
    ("pytorch", pytorch),
    ("nifti", nifti),
    ("npz", npz),
    ("image", image),
    ("frames", frames),
    ("dicom", dicom),
    ("arguments", arguments),
];

/// safetensors: the JSON header, the tensor table (dtypes, shapes, offsets) and the
/// conversion of every tensor to f32, as a model file is loaded.
pub fn safetensors(data: &[u8]) {
    if let Ok(store) = safetensors_io::read(data) {
        check_store(&store);
    }
}

/// PyTorch checkpoints (`torch.save`): the zip container, the hand-written pickle VM and
/// the storages it points at.
pub fn pytorch(data: &[u8]) {
    if let Ok(store) = pytorch::read_checkpoint(data) {
        check_store(&store);
    }
}

/// Each tensor's shape describes exactly its values (the loaders index by shape).
fn check_store(store: &TensorStore) {
    for (key, t) in store.iter() {
        let n = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        assert_eq!(n, Some(t.data.len()), "{key}: shape {:?}", t.shape);
    }
}

/// NIfTI-1 (`.nii`, and `.nii.gz` through gzip): header, dimensions, data types, scaling
/// and geometry, as a volume is opened.
pub fn nifti(data: &[u8]) {
    if let Ok(v) = Volume::from_nifti_bytes(data) {
        check_volume(&v);
    }
    // As a file is opened: a 4-D NIfTI is a clip (x, y, 1, t), a choice of time points or
    // the volume of the one chosen.
    for time_point in [None, Some(1)] {
        match Document::open_volume_file("fuzz.nii", data, None, time_point) {
            Ok(VolumeOpening::Opened(doc)) => {
                let _ = doc.frame_rgb(doc.len().saturating_sub(1));
            }
            Ok(VolumeOpening::ChooseTimePoint(c)) => assert!(c.time_points > 1, "{c:?}"),
            Err(_) => {}
        }
    }
}

/// MedSAM `.npz`: the zip, the `.npy` headers (dtype, order, shape) and their data, as a
/// volume (`imgs`) or a label file (`gts`) is opened.
pub fn npz(data: &[u8]) {
    if let Ok(v) = Volume::from_npz_bytes(data, &["imgs", "gts"]) {
        check_volume(&v);
    }
}

/// A volume's values fill its dimensions, and it opens as a document.
fn check_volume(v: &Volume) {
    assert_eq!(v.len(), v.width() * v.height() * v.depth());
    if let Ok(doc) = Document::volume("fuzz", v.clone(), None) {
        let _ = doc.frame_rgb(0);
    }
}

/// PNG / JPEG / WebP images as the page and `medseg segment` open them.
pub fn image(data: &[u8]) {
    if let Ok(img) = decode_rgb(data) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
        if let Ok(doc) = Document::image("fuzz", img) {
            let _ = doc.frame_rgb(0);
        }
    }
}

/// Frame folders (a clip of images): the input is cut at each `FRAME` into image files,
/// decoded in order and made one clip, as `medseg track` does with a folder of frames and
/// the page with a multi-file drop.
pub fn frames(data: &[u8]) {
    let mut frames = Vec::new();
    for part in data.split_str(b"FRAME") {
        match decode_rgb(part) {
            Ok(img) => frames.push(img),
            Err(_) => return,
        }
    }
    if let Ok(doc) = Document::clip("fuzz", frames) {
        for k in 0..doc.len() {
            let _ = doc.frame_rgb(k);
        }
    }
}

/// DICOM Part 10 files: the data set (dicom-rs), our reading of its attributes, series
/// assembly and the pixel data decoders (native, RLE, JPEG, JPEG-LS, JPEG 2000), as one
/// dropped file is opened; every frame is decoded.
pub fn dicom(data: &[u8]) {
    let mut import = DicomImport::new();
    if import.add("fuzz.dcm", data).is_err() {
        return;
    }
    if let Ok(DicomOpening::Opened(doc)) = import.open("fuzz.dcm", None) {
        for k in 0..doc.len() {
            let _ = doc.frame_rgb(k);
        }
    }
}

/// The CLI's typed numbers (`--box`, `--point`, `--range`) through the rules every face
/// shares: the first 3 bytes give a frame of width 1 + 4·b0, height 1 + 4·b1 and
/// 1 + b2 frames; the rest is text, a line each for the box, the point and the range. A
/// box or point as `fit_prompt` gives it to the model maps to finite model coordinates
/// (SAM 2's and LiteMedSAM's transforms); a range that passes lies within the frames.
pub fn arguments(data: &[u8]) {
    let &[bw, bh, bd, ref rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (width, height, frames) = (1 + 4 * bw as usize, 1 + 4 * bh as usize, 1 + bd as usize);
    let mut lines = text.lines();
    let (box_text, point_text, range_text) = (lines.next(), lines.next(), lines.next());
    if let Some(Ok(b)) = box_text.map(parse_numbers::<4>) {
        let prompt = ImagePrompt {
            box_xyxy: Some(b),
            points: Vec::new(),
        };
        if let Ok(fitted) = fit_prompt(&prompt, width, height)
            && let Some(b) = fitted.box_xyxy
        {
            let hw = (height, width);
            let sam2 = Sam2ImageTransform::new(1024).box_to_model(b, hw);
            let lite = LiteMedSamTransform::default().box_to_model(b, hw);
            assert!(sam2.iter().chain(&lite).all(|v| v.is_finite()), "{b:?}");
        }
    }
    if let Some(Ok([x, y, label])) = point_text.map(parse_numbers::<3>)
        && let Ok(label) = point_label(label as f64)
    {
        let prompt = ImagePrompt {
            box_xyxy: None,
            points: vec![([x, y], label)],
        };
        if fit_prompt(&prompt, width, height).is_ok() {
            let p = Sam2ImageTransform::new(1024).point_to_model([x, y], (height, width));
            assert!(p.iter().all(|v| v.is_finite()), "{x}, {y}");
        }
    }
    if let Some(Ok(r)) = range_text.map(parse_numbers::<2>)
        && let Ok((lo, hi)) = whole_range(r).and_then(|r| frame_range(Some(r), frames))
    {
        assert!(lo <= hi && hi < frames, "{r:?} → {lo}..={hi} of {frames}");
    }
}

/// `split` on a byte string (std has it only for single-byte separators).
trait SplitStr {
    fn split_str<'a>(&'a self, sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]>;
}

impl SplitStr for [u8] {
    fn split_str<'a>(&'a self, sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = Some(self);
        std::iter::from_fn(move || {
            let r = rest?;
            match r.windows(sep.len()).position(|w| w == sep) {
                Some(i) => {
                    rest = Some(&r[i + sep.len()..]);
                    Some(&r[..i])
                }
                None => {
                    rest = None;
                    Some(r)
                }
            }
        })
    }
}
