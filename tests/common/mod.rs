//! Shared helpers of the integration tests: the official oracles in `../shared`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use burn::tensor::{Tensor, TensorData};
use medseg::weights::{HostTensor, TensorStore, safetensors_io};

/// Runs the `medseg` binary of this build.
pub fn medseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medseg"))
        .args(args)
        .output()
        .expect("run medseg")
}

/// Runs `medseg` and asserts it succeeded (showing its stderr when not).
pub fn medseg_ok(args: &[&str]) -> Output {
    let out = medseg(args);
    assert!(
        out.status.success(),
        "medseg {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `../shared` next to the crate root (the oracles are read-only input).
pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn sam2_small_dir() -> PathBuf {
    shared().join("fixtures/sam2-small")
}

pub fn read_store(path: &std::path::Path) -> TensorStore {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    safetensors_io::read(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The per-stage reference tensors of the official SAM 2 code.
pub struct Fixtures(pub TensorStore);

impl Fixtures {
    pub fn sam2_small() -> Self {
        Self(read_store(&sam2_small_dir().join("fixtures.safetensors")))
    }

    /// The official LiteMedSAM recipe's outputs on the CT lesion cases.
    pub fn lite_medsam() -> Self {
        Self(read_store(
            &shared().join("fixtures/lite-medsam/ct-lesion.safetensors"),
        ))
    }

    pub fn host(&self, name: &str) -> &HostTensor {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("fixture `{name}` missing"))
    }

    pub fn tensor<const D: usize>(&self, name: &str, device: &burn::tensor::Device) -> Tensor<D> {
        let h = self.host(name);
        assert_eq!(h.shape.len(), D, "fixture `{name}` rank");
        Tensor::from_data(TensorData::new(h.data.clone(), h.shape.clone()), device)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.get(name).is_some()
    }
}

/// Max |a - b|, asserting equal shapes.
pub fn max_abs_diff(name: &str, got_shape: &[usize], got: &[f32], want: &HostTensor) -> f32 {
    assert_eq!(got_shape, want.shape.as_slice(), "`{name}` shape");
    got.iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Reads a tensor back to the host.
pub fn host_of<const D: usize>(t: &Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    (shape, t.to_data().try_to_vec::<f32>().expect("f32 tensor"))
}

/// Tracks the worst error per group and prints a table.
#[derive(Default)]
pub struct Report {
    rows: Vec<(String, String, f32, f32)>,
}

impl Report {
    /// Compares `got` with fixture `name` under `group`, tolerance `tol`.
    pub fn check<const D: usize>(
        &mut self,
        group: &str,
        name: &str,
        got: &Tensor<D>,
        fx: &Fixtures,
        tol: f32,
    ) {
        let (shape, data) = host_of(got);
        let err = max_abs_diff(name, &shape, &data, fx.host(name));
        self.rows
            .push((group.to_string(), name.to_string(), err, tol));
    }

    /// Prints the worst error per group and fails on any tolerance breach.
    pub fn finish(self) {
        let mut worst: std::collections::BTreeMap<String, (f32, String)> = Default::default();
        let mut failures = Vec::new();
        for (g, n, e, tol) in &self.rows {
            let w = worst.entry(g.clone()).or_insert((0.0, String::new()));
            if *e >= w.0 {
                *w = (*e, n.clone());
            }
            // NaN must fail too, hence not `e > tol`.
            if e.is_nan() || *e > *tol {
                failures.push(format!("{n}: max abs err {e:.3e} > {tol:.0e}"));
            }
        }
        println!("{:<28} {:>12}  worst tensor", "group", "max abs err");
        for (g, (e, n)) in &worst {
            println!("{g:<28} {e:>12.3e}  {n}");
        }
        assert!(
            failures.is_empty(),
            "parity failures:\n{}",
            failures.join("\n")
        );
    }
}

/// The LiteMedSAM checkpoint: `$MEDSEG_LITE_PTH`, else
/// `weights/.cache/lite_medsam.pth` (fetched by `scripts/fetch-weights.sh`).
/// Panics, rather than skipping, when neither exists.
pub fn lite_medsam_checkpoint() -> PathBuf {
    if let Some(p) = std::env::var_os("MEDSEG_LITE_PTH") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MEDSEG_LITE_PTH={} is not a file (unset it to use weights/.cache/lite_medsam.pth)",
            p.display()
        );
        return p;
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights/.cache/lite_medsam.pth");
    assert!(
        p.is_file(),
        "LiteMedSAM weights not found at {}: run scripts/setup.sh (or scripts/fetch-weights.sh), \
         or point MEDSEG_LITE_PTH at lite_medsam.pth",
        p.display()
    );
    p
}

/// One `uint8` array of a `.npz`, through the crate's own npz reader:
/// shape `[depth, height, width]` and data.
pub fn read_npz_u8(path: &std::path::Path, array: &str) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v = medseg::io::volume::Volume::from_npz_bytes(&bytes, &[array])
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let [nx, ny, nz] = v.dims;
    (vec![nz, ny, nx], v.data.iter().map(|&x| x as u8).collect())
}

/// One CT case of `../shared/fixtures/lite-medsam/ct-lesion.json`.
pub struct LiteCase {
    pub name: String,
    pub key_slice: usize,
    pub z_range: (usize, usize),
    pub box_xyxy: [f32; 4],
    pub box256: [f32; 4],
    pub iou_pred: f32,
    pub dice2d_vs_gt: f64,
    pub dice3d_vs_gt: f64,
}

pub fn lite_cases() -> Vec<LiteCase> {
    let path = shared().join("fixtures/lite-medsam/ct-lesion.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let f4 = |v: &serde_json::Value| -> [f32; 4] {
        let v: Vec<f32> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        v.try_into().unwrap()
    };
    json["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| LiteCase {
            name: name.clone(),
            key_slice: c["key_slice"].as_u64().unwrap() as usize,
            z_range: (
                c["lesion_z_range"][0].as_u64().unwrap() as usize,
                c["lesion_z_range"][1].as_u64().unwrap() as usize,
            ),
            box_xyxy: f4(&c["box_xyxy"]),
            box256: f4(&c["box256"]),
            iou_pred: c["iou_pred"].as_f64().unwrap() as f32,
            dice2d_vs_gt: c["dice2d_vs_gt"].as_f64().unwrap(),
            dice3d_vs_gt: c["dice3d_vs_gt"].as_f64().unwrap(),
        })
        .collect()
}

/// Dice of two binary masks (non-zero = object).
pub fn dice(a: &[u8], b: &[u8]) -> f64 {
    let (mut inter, mut sa, mut sb) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x != 0, y != 0);
        inter += usize::from(x && y);
        sa += usize::from(x);
        sb += usize::from(y);
    }
    2.0 * inter as f64 / (sa + sb) as f64
}

/// Largest absolute difference of two equally long slices.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Frame `i` of a synthetic clip (`w × h`): a bright disc on a dark, slightly graded background, and its mask.
pub fn disc_frame(i: usize, w: usize, h: usize) -> (medseg::io::image::RgbImage, Vec<u16>) {
    let (cx, cy, r) = (
        55.0 + 14.0 * i as f32,
        60.0 + 9.0 * i as f32,
        20.0 + 2.0 * i as f32,
    );
    let mut rgb = Vec::with_capacity(w * h * 3);
    let mut mask = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let inside = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) <= r * r;
            let v = if inside {
                215 + (x % 7) as u8
            } else {
                25 + (y / 8) as u8
            };
            rgb.extend([v, v, v]);
            mask.push(u16::from(inside));
        }
    }
    (
        medseg::io::image::RgbImage {
            width: w,
            height: h,
            data: rgb,
        },
        mask,
    )
}

/// Intersection over union of two binary masks (non-zero = object).
pub fn iou(a: &[u8], b: &[u8]) -> f64 {
    let inter = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 && **y != 0)
        .count();
    let union = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 || **y != 0)
        .count();
    inter as f64 / union.max(1) as f64
}

/// The Python of the DICOM oracle venv (pydicom, pydicom-data, highdicom) that
/// scripts/setup.sh makes; a test that needs it fails, naming the fix, when it is missing.
pub fn dicom_python() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let py = PathBuf::from(home).join(".cache/medseg/dicom-venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup.sh (it installs the DICOM oracles)",
        py.display()
    );
    py
}

/// The DICOM conformance corpus of the oracle venv: (pydicom-data's `data_store/data`,
/// pydicom's own `data/test_files`).
pub fn dicom_corpus() -> (PathBuf, PathBuf) {
    let py = dicom_python();
    let out = std::process::Command::new(&py)
        .args([
            "-c",
            "import data_store, pydicom, os; \
             print(os.path.join(os.path.dirname(data_store.__file__), 'data')); \
             print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))",
        ])
        .output()
        .expect("run the DICOM venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().map(PathBuf::from);
    let (Some(data), Some(test_files)) = (lines.next(), lines.next()) else {
        panic!("the DICOM venv did not name its corpus folders: {text}");
    };
    (data, test_files)
}

/// An empty scratch folder for one test case, named by the test file's `tag`, the case
/// and this process (emptied first: a folder of an earlier run is not reused as it was).
pub fn fresh_dir(tag: &str, case: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medseg-{tag}-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}
