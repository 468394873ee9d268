//! The `medseg` binary end to end: `segment` reproduces the official
//! `SAM2ImagePredictor` logits; `convert` writes a self-describing file; bad
//! inputs fail with a message naming the problem.

mod common;

use std::path::{Path, PathBuf};

use common::{Fixtures, medseg, medseg_ok, read_store, sam2_small_dir};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medseg-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Reads a little-endian f32 `.npy` written by `medseg` (header + raw data).
fn read_npy(path: &Path) -> (String, Vec<f32>) {
    let bytes = std::fs::read(path).expect("npy");
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + hlen]).to_string();
    let data = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (header, data)
}

#[test]
fn segment_reproduces_the_official_predictor_logits() {
    let dir = sam2_small_dir();
    let (mask, logits) = (scratch("mask.png"), scratch("logits.npy"));
    let out = medseg(&[
        "segment",
        "--model",
        s(&dir.join("weights.safetensors")),
        "--image",
        s(&dir.join("image.png")),
        "--box",
        "32,28.8,89.6,76.8",
        "--out",
        s(&mask),
        "--logits",
        s(&logits),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let fx = Fixtures::sam2_small();
    let want = fx.host("predictor.box.out.masks_logits");
    let (header, got) = read_npy(&logits);
    assert!(header.contains("(1, 96, 128)"), "{header}");
    let err = got
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("segment logits max abs err {err:.3e} (tolerance 1e-3)");
    assert!(err <= 1e-3, "max abs err {err}");
    let iou = fx.host("predictor.box.out.iou").data[0];
    assert!(
        stdout.contains(&format!("iou={iou:.4}")),
        "{stdout} vs reference iou {iou}"
    );
    let png = image::open(&mask).expect("mask png").to_luma8();
    assert_eq!((png.width(), png.height()), (128, 96));
    let agree = png
        .pixels()
        .zip(&want.data)
        .filter(|(p, l)| (p.0[0] == 255) == (**l > 0.0))
        .count();
    assert_eq!(agree, 128 * 96, "binary mask = logits > 0");
}

#[test]
fn convert_writes_a_file_that_loads_without_a_config() {
    let dir = sam2_small_dir();
    let weights = dir.join("weights.safetensors");
    for (flag, tol) in [(None, 0.0f32), (Some("--half"), 1e-3)] {
        let out_path = scratch(if flag.is_some() {
            "half.safetensors"
        } else {
            "full.safetensors"
        });
        let mut args = vec!["convert", s(&weights), s(&out_path)];
        args.extend(flag);
        medseg_ok(&args);
        let converted = read_store(&out_path);
        assert_eq!(
            converted
                .metadata
                .get("medseg_architecture")
                .map(String::as_str),
            Some("sam2")
        );
        let original = read_store(&dir.join("weights.safetensors"));
        assert_eq!(converted.len(), original.len());
        for (k, t) in original.iter() {
            let c = converted.get(k).expect("key kept");
            assert_eq!(c.shape, t.shape);
            let err = c
                .data
                .iter()
                .zip(&t.data)
                .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                .fold(0f32, f32::max);
            assert!(err <= tol, "{k}: {err}");
        }
        // The converted file segments with no --config and no metadata of the exporter.
        medseg_ok(&[
            "segment",
            "--model",
            s(&out_path),
            "--image",
            s(&dir.join("image.png")),
            "--box",
            "32,28.8,89.6,76.8",
            "--out",
            s(&scratch("m2.png")),
        ]);
    }
}

#[test]
fn bad_inputs_fail_with_a_clear_message() {
    let dir = sam2_small_dir();
    let text_png = scratch("notes.png");
    std::fs::write(&text_png, "this is a text file").expect("write");
    let weights = dir.join("weights.safetensors");
    let truncated = scratch("truncated.safetensors");
    let bytes = std::fs::read(&weights).expect("weights");
    std::fs::write(&truncated, &bytes[..1000]).expect("write");
    let empty = scratch("empty.safetensors");
    std::fs::write(&empty, b"").expect("write");
    let image = dir.join("image.png");
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "segment",
                "--model",
                s(&weights),
                "--image",
                s(&text_png),
                "--box",
                "1,1,9,9",
                "--out",
                "/dev/null",
            ],
            "not a PNG, JPEG or WebP",
        ),
        (
            &[
                "segment",
                "--model",
                s(&truncated),
                "--image",
                s(&image),
                "--box",
                "1,1,9,9",
                "--out",
                "/dev/null",
            ],
            "safetensors",
        ),
        (
            &[
                "segment",
                "--model",
                s(&empty),
                "--image",
                s(&image),
                "--box",
                "1,1,9,9",
                "--out",
                "/dev/null",
            ],
            "empty",
        ),
        (
            &[
                "segment",
                "--model",
                s(&weights),
                "--image",
                s(&image),
                "--box",
                "9,9,1,1",
                "--out",
                "/dev/null",
            ],
            "x1 must exceed x0",
        ),
        (
            &[
                "segment",
                "--model",
                s(&weights),
                "--image",
                s(&image),
                "--out",
                "/dev/null",
            ],
            "--box",
        ),
        (
            &[
                "segment",
                "--model",
                s(&weights),
                "--image",
                s(&image),
                "--point",
                "500,5,1",
                "--out",
                "/dev/null",
            ],
            "outside",
        ),
    ];
    for (args, needle) in cases {
        let out = medseg(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
    }
}

#[test]
fn lite_medsam_converts_and_segments_a_ct_slice() {
    use common::{lite_cases, lite_medsam_checkpoint, read_npz_u8, shared};
    let case = &lite_cases()[0];
    let (dims, imgs) = read_npz_u8(
        &shared().join(format!("data/ct-lesion/{}.npz", case.name)),
        "imgs",
    );
    let (h, w) = (dims[1], dims[2]);
    let slice = &imgs[case.key_slice * h * w..(case.key_slice + 1) * h * w];
    let png = scratch("ct-slice.png");
    image::GrayImage::from_raw(w as u32, h as u32, slice.to_vec())
        .expect("slice")
        .save(&png)
        .expect("png");

    let converted = scratch("lite.safetensors");
    medseg_ok(&[
        "convert",
        s(&lite_medsam_checkpoint()),
        s(&converted),
        "--half",
    ]);
    let store = read_store(&converted);
    assert_eq!(
        store
            .metadata
            .get("medseg_architecture")
            .map(String::as_str),
        Some("lite-medsam")
    );
    assert_eq!(
        store.len(),
        408,
        "435 tensors less the 27 BatchNorm step counters"
    );

    let b = case.box_xyxy;
    let mask = scratch("ct-mask.png");
    let out = medseg_ok(&[
        "segment",
        "--model",
        s(&converted),
        "--image",
        s(&png),
        "--box",
        &format!("{},{},{},{}", b[0], b[1], b[2], b[3]),
        "--out",
        s(&mask),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let iou: f32 = stdout
        .split_whitespace()
        .find_map(|t| t.strip_prefix("iou="))
        .and_then(|v| v.parse().ok())
        .expect("iou printed");
    // f16 storage moves the prediction slightly; the mask must still agree.
    assert!(
        (iou - case.iou_pred).abs() < 5e-3,
        "iou {iou} vs reference {}",
        case.iou_pred
    );
    let fx = Fixtures::lite_medsam();
    let want = fx.host(&format!("{}.mask2d", case.name));
    let got = image::open(&mask).expect("mask").to_luma8();
    let (mut inter, mut union) = (0usize, 0usize);
    for (p, r) in got.pixels().zip(&want.data) {
        let (a, b) = (p.0[0] == 255, *r > 0.0);
        inter += usize::from(a && b);
        union += usize::from(a || b);
    }
    let m_iou = inter as f64 / union as f64;
    println!("LiteMedSAM f16 via CLI: iou={iou:.4}, mask IoU vs reference {m_iou:.4}");
    assert!(m_iou >= 0.99, "mask IoU vs reference {m_iou}");
}

/// `medseg bench --check-masks` compares the model on --device/--dtype with itself on
/// the CPU in f32: on the CPU in f32 both sides are the same computation, so the masks
/// agree exactly. Bad --device / --dtype values are refused naming what is expected.
#[test]
fn bench_check_masks_compares_with_the_cpu() {
    use common::{lite_cases, shared};
    let weights = sam2_small_dir().join("weights.safetensors");
    let case = &lite_cases()[0];
    let ct = shared().join(format!("data/ct-lesion/{}.npz", case.name));
    let b = case.box_xyxy;
    let out = medseg_ok(&[
        "bench",
        "--model",
        s(&weights),
        "--check-masks",
        "--check-slice",
        s(&ct),
        "--check-z",
        &case.key_slice.to_string(),
        "--check-box",
        &format!("{},{},{},{}", b[0], b[1], b[2], b[3]),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("mask check: model sam2 on cpu f32 vs cpu f32"),
        "{stdout}"
    );
    let checks: Vec<&str> = stdout.lines().filter(|l| l.contains(" IoU ")).collect();
    assert_eq!(checks.len(), 2, "synthetic image and CT slice: {stdout}");
    for line in checks {
        assert!(
            line.contains("IoU 1.0000") && line.contains("max |logit diff| 0.000e0 "),
            "{line}"
        );
    }

    for (args, needle) in [
        (["--device", "tpu"], "expected `cpu` or `wgpu`"),
        (["--dtype", "bf16"], "expected `f32` or `f16`"),
    ] {
        let out = medseg(&[&["bench", "--model", s(&weights)], &args[..]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: `{err}` lacks `{needle}`");
    }
    if !cfg!(feature = "wgpu") {
        let out = medseg(&["bench", "--model", s(&weights), "--device", "wgpu"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("--features wgpu"),
            "{err}"
        );
    }
}
