//! Pre/post-processing against the official oracles in `../shared`:
//! SAM 2 (`sam2==1.1.0` on torch, fixtures of the scaled-down model) and
//! LiteMedSAM (the CVPR24 inference recipe on the CT lesion cases).

use std::path::Path;

mod common;

use common::{Fixtures, lite_cases, read_npz_u8, read_store, sam2_small_dir, shared};
use medseg::preprocess::*;

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The fixture image is 96x128 (H x W) and the model input 128x128.
const SAM2_ORIG_HW: (usize, usize) = (96, 128);

#[test]
fn sam2_prepare_matches_transforms_output() {
    let fx = Fixtures::sam2_small();
    let raw = fx.host("image.raw_u8_hwc");
    assert_eq!(raw.shape, [96, 128, 3]);
    let rgb: Vec<u8> = raw.data.iter().map(|&v| v as u8).collect();
    let expected = fx.host("image.input");
    assert_eq!(expected.shape, [1, 3, 128, 128]);

    let ours = Sam2ImageTransform::new(128).prepare(&rgb, 96, 128).unwrap();
    let err = max_abs_diff(&ours, &expected.data);
    println!("SAM2Transforms (ToTensor, Resize antialias, Normalize): max abs error {err:e}");
    assert!(err <= 1e-4, "max abs error {err}");
}

#[test]
fn sam2_box_and_points_to_model_match_prompt_coords() {
    let fx = Fixtures::sam2_small();
    let t = Sam2ImageTransform::new(128);
    let orig = fx.host("predictor.box.in.box_xyxy_orig");
    let box_xyxy: [f32; 4] = orig.data.clone().try_into().unwrap();
    let expected = fx.host("prompt_encoder.box.in.coords");
    assert_eq!(expected.shape, [1, 2, 2]);
    let ours = t.box_to_model(box_xyxy, SAM2_ORIG_HW);
    let err = max_abs_diff(&ours, &expected.data);
    println!("transform_boxes: {box_xyxy:?} -> {ours:?}, max abs error {err:e}");
    assert!(err <= 1e-5, "max abs error {err}");

    // export_fixtures.py: pts = np.array([[0.45 W, 0.55 H], [0.1 W, 0.1 H]], np.float32)
    let (h, w) = (SAM2_ORIG_HW.0 as f64, SAM2_ORIG_HW.1 as f64);
    let points = [
        [(0.45 * w) as f32, (0.55 * h) as f32],
        [(0.1 * w) as f32, (0.1 * h) as f32],
    ];
    let expected = fx.host("prompt_encoder.points.in.coords");
    assert_eq!(expected.shape, [1, 2, 2]);
    let ours: Vec<f32> = t
        .points_to_model(&points, SAM2_ORIG_HW)
        .into_iter()
        .flatten()
        .collect();
    let err = max_abs_diff(&ours, &expected.data);
    println!("transform_coords: max abs error {err:e}");
    assert!(err <= 1e-5, "max abs error {err}");
}

#[test]
fn sam2_postprocess_matches_predictor_logits() {
    let fx = Fixtures::sam2_small();
    let low = fx.host("predictor.box.out.low_res");
    assert_eq!(low.shape, [1, 32, 32]);
    let expected = fx.host("predictor.box.out.masks_logits");
    assert_eq!(expected.shape, [1, 96, 128]);
    // `predict` returns low_res clamped to [-32, 32] after upsampling the unclamped
    // logits; both are the same here.
    assert!(low.data.iter().all(|v| v.abs() < 32.0));

    let ours = Sam2ImageTransform::new(128)
        .postprocess_logits(&low.data, 32, 32, 96, 128)
        .unwrap();
    let err = max_abs_diff(&ours, &expected.data);
    println!("postprocess_masks (bilinear 32x32 -> 96x128): max abs error {err:e}");
    assert!(err <= 1e-4, "max abs error {err}");
}

fn decode_png_rgb(path: &Path) -> (Vec<u8>, usize, usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("decoding {}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    (img.into_raw(), h as usize, w as usize)
}

#[test]
fn sam2_video_frames_match_load_video_frames() {
    let fx = Fixtures::sam2_small();
    let images = fx.host("video.in.images");
    assert_eq!(images.shape, [4, 3, 128, 128]);
    let t = Sam2ImageTransform::new(128);
    let plane = 3 * 128 * 128;
    let mut worst = 0f32;
    for (k, expected) in images.data.chunks_exact(plane).enumerate() {
        let path = shared().join(format!("fixtures/sam2-small/frames_png/{k:05}.png"));
        let (rgb, h, w) = decode_png_rgb(&path);
        assert_eq!((h, w), (96, 128));
        let ours = t.prepare_video_frame(&rgb, h, w).unwrap();
        let err = max_abs_diff(&ours, expected);
        println!(
            "load_video_frames frame {k} (PIL bicubic 96x128 -> 128x128): max abs error {err:e}"
        );
        worst = worst.max(err);
    }
    assert!(worst <= 1e-4, "max abs error {worst}");
}

#[test]
fn hiera_pos_embed_background_matches_torch_bicubic() {
    // `Hiera._get_pos_embed`: F.interpolate(pos_embed, (32, 32), mode="bicubic")
    // + pos_embed_window tiled, as NHWC.
    let weights = Fixtures(read_store(&sam2_small_dir().join("weights.safetensors")));
    let fx = Fixtures::sam2_small();
    let bkg = weights.host("image_encoder.trunk.pos_embed");
    let window = weights.host("image_encoder.trunk.pos_embed_window");
    assert_eq!(bkg.shape, [1, 8, 7, 7]);
    assert_eq!(window.shape, [1, 8, 8, 8]);
    let expected = fx.host("image_encoder.trunk.pos_embed.out");
    assert_eq!(expected.shape, [1, 32, 32, 8]);

    let resized = resize_bicubic(&bkg.data, 8, 7, 7, 32, 32);
    let mut ours = vec![0f32; 32 * 32 * 8];
    for c in 0..8 {
        for y in 0..32 {
            for x in 0..32 {
                let win = window.data[(c * 8 + y % 8) * 8 + x % 8];
                ours[(y * 32 + x) * 8 + c] = resized[(c * 32 + y) * 32 + x] + win;
            }
        }
    }
    let err = max_abs_diff(&ours, &expected.data);
    println!("bicubic 7x7 -> 32x32 (+ window): max abs error {err:e}");
    assert!(err <= 1e-4, "max abs error {err}");
}

// ---------------------------------------------------------------- LiteMedSAM

fn key_slice(case: &common::LiteCase) -> (Vec<u8>, usize, usize) {
    let path = shared().join(format!("data/ct-lesion/{}.npz", case.name));
    let (shape, imgs) = read_npz_u8(&path, "imgs");
    let (h, w) = (shape[1], shape[2]);
    (imgs[case.key_slice * h * w..][..h * w].to_vec(), h, w)
}

#[test]
fn litemedsam_prepare_matches_recipe_input() {
    let fx = Fixtures::lite_medsam();
    let t = LiteMedSamTransform::default();
    for case in lite_cases() {
        let (slice, h, w) = key_slice(&case);
        let input = t.prepare_gray(&slice, h, w).unwrap();
        assert_eq!((input.resized_h, input.resized_w), (256, 256));
        let expected = fx.host(&format!("{}.input", case.name));
        assert_eq!(expected.shape, [1, 3, 256, 256]);
        // The fixture's `.input` was saved from the permuted (non-contiguous)
        // tensor: its bytes are the HWC array (256, 256, 3) under a CHW header.
        let mut ours_hwc = vec![0f32; 3 * 256 * 256];
        for c in 0..3 {
            for p in 0..256 * 256 {
                ours_hwc[p * 3 + c] = input.data[c * 256 * 256 + p];
            }
        }
        let err = max_abs_diff(&ours_hwc, &expected.data);
        println!(
            "{}: LiteMedSAM input (cv2 INTER_AREA, min-max, pad): max abs error {err:e}",
            case.name
        );
        assert!(err <= 1e-3, "{}: max abs error {err}", case.name);
    }
}

#[test]
fn litemedsam_box_to_model_matches_recipe() {
    let t = LiteMedSamTransform::default();
    for case in lite_cases() {
        let ours = t.box_to_model(case.box_xyxy, (512, 512));
        assert_eq!(ours, case.box256, "{}", case.name);
    }
}

#[test]
fn litemedsam_postprocess_matches_recipe_mask() {
    let fx = Fixtures::lite_medsam();
    let t = LiteMedSamTransform::default();
    for case in lite_cases() {
        let low = fx.host(&format!("{}.low_res_logits", case.name));
        assert_eq!(low.shape, [1, 1, 256, 256]);
        let expected = fx.host(&format!("{}.mask2d", case.name));
        assert_eq!(expected.shape, [512, 512]);
        let logits = t
            .postprocess_logits(&low.data, (256, 256), (512, 512))
            .unwrap();
        let mask = LiteMedSamTransform::logits_to_mask(&logits);
        let inter = mask
            .iter()
            .zip(&expected.data)
            .filter(|&(&a, &b)| a == 1 && b == 1.0)
            .count();
        let union = mask
            .iter()
            .zip(&expected.data)
            .filter(|&(&a, &b)| a == 1 || b == 1.0)
            .count();
        let differing = mask
            .iter()
            .zip(&expected.data)
            .filter(|&(&a, &b)| a as f32 != b)
            .count();
        let iou = inter as f64 / union as f64;
        println!(
            "{}: mask IoU {iou:.6} ({differing} of 512x512 pixels differ)",
            case.name
        );
        assert!(iou >= 0.999, "{}: IoU {iou}", case.name);
    }
}

// ---------------------------------------------------------------- behaviour

#[test]
fn transforms_reject_bad_sizes() {
    let sam = Sam2ImageTransform::new(128);
    assert!(matches!(
        sam.prepare(&[], 0, 4),
        Err(PreprocessError::ZeroSize { .. })
    ));
    assert!(matches!(
        sam.prepare(&[0; 10], 2, 2),
        Err(PreprocessError::BufferLength {
            expected: 12,
            found: 10,
            ..
        })
    ));
    assert!(matches!(
        sam.prepare_video_frame(&[0; 12], 2, 3),
        Err(PreprocessError::BufferLength { .. })
    ));
    assert!(matches!(
        sam.postprocess_logits(&[0.0; 10], 3, 3, 4, 4),
        Err(PreprocessError::PartialPlanes { .. })
    ));
    assert!(matches!(
        sam.postprocess_logits(&[0.0; 9], 3, 3, 0, 4),
        Err(PreprocessError::ZeroSize { .. })
    ));

    let lite = LiteMedSamTransform::default();
    assert!(matches!(
        lite.prepare_gray(&[1, 2, 3], 2, 2),
        Err(PreprocessError::BufferLength { .. })
    ));
    assert!(matches!(
        lite.prepare_rgb(&[], 0, 0),
        Err(PreprocessError::ZeroSize { .. })
    ));
    assert!(matches!(
        lite.postprocess_logits(&[0.0; 256 * 256], (300, 10), (512, 512)),
        Err(PreprocessError::TooLarge { .. })
    ));
    assert!(matches!(
        lite.box_from_mask(&[0; 5], 2, 2, 3),
        Err(PreprocessError::BufferLength { .. })
    ));
}

#[test]
fn sam2_transform_handles_multimask_logits() {
    let sam = Sam2ImageTransform::new(128);
    let low: Vec<f32> = (0..3 * 4 * 4).map(|i| i as f32).collect();
    let up = sam.postprocess_logits(&low, 4, 4, 8, 8).unwrap();
    assert_eq!(up.len(), 3 * 64);
    // Each plane is upsampled on its own: plane k is plane 0 plus 16 k.
    for k in 1..3 {
        let err = max_abs_diff(
            &up[k * 64..][..64],
            &up[..64]
                .iter()
                .map(|v| v + 16.0 * k as f32)
                .collect::<Vec<_>>(),
        );
        assert!(err < 1e-5);
    }
}

#[test]
fn constant_images_stay_constant() {
    let grey = vec![0.25f32; 2 * 37 * 53];
    for antialias in [Antialias::On, Antialias::Off] {
        for (oh, ow) in [(128, 128), (11, 7), (37, 200)] {
            let out = resize_bilinear(&grey, 2, 37, 53, oh, ow, antialias);
            assert_eq!(out.len(), 2 * oh * ow);
            assert!(
                out.iter().all(|&v| (v - 0.25).abs() < 1e-6),
                "{antialias:?} {oh}x{ow}"
            );
        }
    }
    let out = resize_bicubic(&grey, 2, 37, 53, 64, 20);
    assert!(out.iter().all(|&v| (v - 0.25).abs() < 1e-6));

    let rgb = vec![77u8; 37 * 53 * 3];
    assert!(
        pil_resize_bicubic_rgb(&rgb, 37, 53, 128, 128)
            .iter()
            .all(|&v| v == 77)
    );
    assert!(
        pil_resize_bicubic_rgb(&rgb, 37, 53, 9, 11)
            .iter()
            .all(|&v| v == 77)
    );
    for (oh, ow) in [(256, 256), (18, 26), (12, 20), (74, 53)] {
        assert!(
            cv2_resize_area_u8(&rgb, 37, 53, 3, oh, ow)
                .iter()
                .all(|&v| v == 77),
            "{oh}x{ow}"
        );
    }
}

#[test]
fn litemedsam_pads_non_square_images_bottom_right() {
    let lite = LiteMedSamTransform::default();
    // 100 x 400 -> 64 x 256, values 0..=255 along x so min-max is [0, 1].
    let gray: Vec<u8> = (0..100 * 400)
        .map(|i| ((i % 400) * 255 / 399) as u8)
        .collect();
    let input = lite.prepare_gray(&gray, 100, 400).unwrap();
    assert_eq!((input.resized_h, input.resized_w), (64, 256));
    let plane = &input.data[..256 * 256];
    assert!(
        plane[64 * 256..].iter().all(|&v| v == 0.0),
        "rows below the image are padding"
    );
    assert_eq!(plane[0], 0.0);
    assert_eq!(plane[255], 1.0);
    assert_eq!(
        lite.box_to_model([10.0, 20.0, 399.0, 99.0], (100, 400)),
        [6.0, 12.0, 255.0, 63.0]
    );
}

#[test]
fn litemedsam_box_from_previous_mask() {
    let lite = LiteMedSamTransform::default();
    let (h, w) = (512, 512);
    let mut mask = vec![0u8; h * w];
    for y in 100..140 {
        for x in 300..360 {
            mask[y * w + x] = 1;
        }
    }
    // 2x2 INTER_AREA keeps the block at rows 50..70, columns 150..180.
    assert_eq!(
        lite.box_from_mask(&mask, h, w, 3).unwrap(),
        Some([147.0, 47.0, 182.0, 72.0])
    );
    assert_eq!(
        lite.box_from_mask(&vec![0u8; h * w], h, w, 3).unwrap(),
        None
    );
}

// ---------------------------------------------------------------- resampler goldens
// Paths the fixtures do not reach, against outputs of Pillow 13.0.0 and
// opencv-python-headless 5.0.0 on the pattern below (made with
// `Image.fromarray(a).resize((ow, oh))` and `cv2.resize(a, (ow, oh),
// interpolation=cv2.INTER_AREA)`).

/// `(x*37 + y*91 + c*53 + (x*y*7) % 29) % 256`, an HWC u8 image.
fn pattern(h: usize, w: usize, c: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(h * w * c);
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                out.push(((x * 37 + y * 91 + ch * 53 + (x * y * 7) % 29) % 256) as u8);
            }
        }
    }
    out
}

#[test]
fn pil_bicubic_matches_pillow_on_both_axes() {
    // Height shrinks by more than twice the width: Pillow 13 resamples vertically first.
    assert!(pil_vertical_first(11, 9, 5, 7));
    let expected: [u8; 105] = [
        80, 120, 145, 111, 145, 147, 135, 118, 128, 90, 131, 179, 122, 141, 106, 113, 118, 129,
        114, 136, 93, 112, 145, 117, 134, 112, 125, 124, 110, 166, 118, 157, 128, 159, 101, 133,
        144, 155, 117, 147, 138, 115, 137, 172, 118, 152, 105, 118, 135, 111, 119, 124, 101, 143,
        127, 129, 152, 125, 114, 121, 88, 118, 116, 122, 114, 140, 114, 128, 127, 166, 110, 118,
        128, 102, 135, 120, 140, 108, 130, 136, 93, 112, 142, 96, 116, 137, 163, 142, 147, 146,
        116, 135, 118, 119, 93, 124, 64, 124, 135, 119, 144, 120, 127, 167, 117,
    ];
    assert_eq!(
        pil_resize_bicubic_rgb(&pattern(11, 9, 3), 11, 9, 5, 7),
        expected
    );
    // Horizontal pass first.
    assert!(!pil_vertical_first(9, 11, 7, 5));
    let expected: [u8; 105] = [
        43, 104, 150, 121, 151, 180, 149, 142, 113, 70, 85, 120, 113, 146, 155, 161, 160, 134, 116,
        92, 106, 64, 130, 164, 165, 187, 96, 140, 106, 69, 95, 105, 128, 104, 163, 186, 199, 125,
        98, 130, 112, 112, 93, 139, 206, 148, 156, 107, 169, 69, 106, 88, 122, 164, 133, 157, 143,
        185, 68, 90, 149, 126, 115, 98, 129, 153, 156, 136, 137, 99, 79, 106, 66, 129, 150, 119,
        160, 152, 186, 93, 80, 105, 67, 129, 108, 164, 108, 136, 120, 95, 124, 83, 104, 103, 113,
        174, 145, 204, 109, 157, 117, 71, 64, 90, 143,
    ];
    assert_eq!(
        pil_resize_bicubic_rgb(&pattern(9, 11, 3), 9, 11, 7, 5),
        expected
    );
    // Upscale on both axes.
    let expected: [u8; 429] = [
        0, 42, 95, 0, 48, 101, 12, 65, 117, 31, 84, 138, 48, 99, 167, 64, 117, 194, 80, 144, 212,
        97, 173, 228, 125, 195, 246, 154, 210, 255, 165, 217, 255, 11, 61, 118, 15, 69, 125, 32,
        88, 145, 52, 109, 159, 71, 129, 158, 90, 143, 158, 110, 144, 173, 127, 142, 193, 131, 157,
        213, 129, 177, 230, 129, 184, 235, 51, 102, 174, 58, 114, 185, 76, 142, 215, 100, 171, 212,
        127, 202, 136, 154, 207, 72, 186, 144, 80, 201, 70, 111, 148, 67, 134, 70, 97, 152, 43,
        107, 160, 99, 154, 184, 108, 158, 196, 130, 168, 231, 151, 184, 222, 161, 220, 119, 172,
        225, 30, 203, 135, 33, 220, 30, 67, 144, 21, 92, 37, 56, 113, 1, 68, 123, 157, 226, 92,
        169, 198, 104, 201, 132, 132, 204, 91, 143, 143, 118, 109, 89, 142, 78, 98, 105, 84, 120,
        60, 105, 97, 67, 135, 60, 97, 167, 49, 109, 182, 175, 252, 26, 189, 206, 37, 227, 99, 60,
        221, 24, 88, 119, 44, 115, 27, 80, 138, 20, 92, 148, 44, 103, 157, 70, 127, 177, 98, 152,
        200, 110, 163, 209, 95, 161, 55, 108, 140, 70, 142, 91, 103, 150, 63, 138, 97, 86, 165, 50,
        119, 188, 49, 137, 207, 68, 154, 214, 107, 182, 182, 151, 208, 135, 170, 220, 116, 14, 68,
        114, 26, 78, 127, 54, 103, 157, 80, 128, 186, 91, 143, 199, 100, 158, 211, 112, 170, 237,
        125, 183, 246, 154, 210, 171, 184, 238, 68, 198, 250, 25, 32, 83, 180, 45, 104, 167, 73,
        157, 138, 106, 183, 120, 135, 139, 132, 161, 97, 150, 184, 103, 173, 194, 125, 185, 171,
        149, 141, 134, 173, 77, 119, 183, 50, 90, 143, 232, 104, 162, 191, 134, 214, 96, 166, 218,
        28, 189, 111, 39, 210, 15, 68, 241, 14, 84, 251, 46, 100, 172, 65, 111, 61, 83, 118, 14,
        90, 120, 140, 195, 177, 153, 196, 148, 186, 190, 79, 202, 160, 32, 177, 83, 47, 156, 21,
        74, 178, 26, 91, 198, 56, 109, 143, 75, 135, 63, 92, 161, 29, 100, 173, 184, 243, 72, 196,
        218, 73, 230, 128, 75, 225, 59, 83, 134, 55, 101, 55, 70, 123, 61, 87, 142, 94, 108, 161,
        101, 129, 183, 100, 149, 205, 101, 157, 214, 204, 255, 28, 215, 229, 41, 251, 102, 73, 236,
        16, 103, 116, 43, 123, 12, 89, 142, 12, 111, 162, 50, 129, 182, 83, 151, 204, 115, 171,
        224, 130, 180, 233,
    ];
    assert_eq!(
        pil_resize_bicubic_rgb(&pattern(6, 5, 3), 6, 5, 13, 11),
        expected
    );
}

#[test]
fn cv2_inter_area_matches_opencv() {
    // Non-integer downscale (`resizeArea_`).
    let expected: [u8; 105] = [
        68, 121, 163, 134, 133, 143, 115, 131, 121, 87, 115, 125, 137, 136, 125, 132, 122, 111, 92,
        136, 164, 158, 139, 128, 155, 140, 98, 92, 123, 165, 149, 154, 109, 144, 84, 130, 109, 133,
        154, 128, 138, 127, 150, 78, 119, 119, 140, 139, 143, 123, 113, 135, 88, 125, 95, 121, 115,
        109, 135, 120, 122, 106, 123, 132, 114, 149, 119, 161, 114, 136, 127, 90, 93, 110, 138,
        133, 164, 155, 126, 111, 119, 83, 104, 148, 130, 170, 111, 137, 127, 123, 115, 114, 155,
        150, 178, 118, 126, 109, 108, 122, 100, 153, 133, 123, 176,
    ];
    assert_eq!(
        cv2_resize_area_u8(&pattern(13, 11, 3), 13, 11, 3, 7, 5),
        expected
    );
    // Upscale (fixed-point bilinear fallback).
    let expected: [u8; 117] = [
        0, 0, 28, 37, 56, 74, 83, 111, 111, 0, 0, 28, 37, 56, 74, 83, 111, 111, 36, 36, 66, 76, 96,
        116, 126, 156, 156, 91, 91, 124, 135, 157, 179, 190, 223, 223, 91, 91, 124, 135, 157, 179,
        190, 223, 223, 164, 164, 201, 213, 136, 58, 65, 84, 84, 182, 182, 220, 233, 131, 28, 34,
        50, 50, 149, 149, 188, 201, 122, 43, 49, 66, 66, 17, 17, 61, 75, 90, 104, 111, 133, 133,
        17, 17, 61, 75, 90, 104, 111, 133, 133, 72, 72, 118, 134, 150, 167, 175, 200, 200, 108,
        108, 157, 173, 191, 209, 218, 245, 245, 108, 108, 157, 173, 191, 209, 218, 245, 245,
    ];
    assert_eq!(
        cv2_resize_area_u8(&pattern(5, 4, 1), 5, 4, 1, 13, 9),
        expected
    );
    // Integer factors (`resizeAreaFast_`): 2x2 blocks and 3x3 blocks.
    let expected: [u8; 36] = [
        66, 119, 172, 147, 136, 125, 93, 146, 135, 127, 116, 105, 79, 132, 185, 159, 148, 137, 181,
        170, 95, 139, 64, 117, 83, 136, 189, 106, 159, 148, 184, 109, 98, 134, 59, 112,
    ];
    assert_eq!(
        cv2_resize_area_u8(&pattern(8, 6, 3), 8, 6, 3, 4, 3),
        expected
    );
    let expected: [u8; 6] = [107, 109, 128, 132, 119, 146];
    assert_eq!(
        cv2_resize_area_u8(&pattern(9, 6, 1), 9, 6, 1, 3, 2),
        expected
    );
}
