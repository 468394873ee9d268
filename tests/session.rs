//! Session behaviour beyond the reference trace: objects are tracked
//! independently, and a correction mid-clip changes that frame and later
//! frames only.

mod common;

use std::sync::Arc;

use common::{read_store, sam2_small_dir};
use medseg::io::image::RgbImage;
use medseg::model::sam2::Sam2Model;
use medseg::model::{Architecture, detect_architecture, load_sam2};
use medseg::session::frames::InMemoryFrames;
use medseg::session::mask_store::RleMask;
use medseg::session::video::{Direction, ObjectId, VideoSession};

fn model() -> Arc<Sam2Model> {
    let store = read_store(&sam2_small_dir().join("weights.safetensors"));
    let Architecture::Sam2(cfg) = detect_architecture(&store, None).expect("arch") else {
        panic!("sam2")
    };
    Arc::new(load_sam2(store, &cfg, &medseg::cpu_device()).expect("load"))
}

/// Eight frames: the fixture's four, then the same four shifted right by 12 px.
fn clip() -> InMemoryFrames {
    let dir = sam2_small_dir().join("frames_png");
    let mut frames = Vec::new();
    for shift in [0usize, 12] {
        for i in 0..4 {
            let img = image::open(dir.join(format!("{i:05}.png")))
                .expect("png")
                .to_rgb8();
            let (w, h) = (img.width() as usize, img.height() as usize);
            let src = img.into_raw();
            let mut data = vec![0u8; src.len()];
            for y in 0..h {
                for x in 0..w {
                    let sx = (x + w - shift) % w;
                    data[(y * w + x) * 3..][..3].copy_from_slice(&src[(y * w + sx) * 3..][..3]);
                }
            }
            frames.push(RgbImage {
                width: w,
                height: h,
                data,
            });
        }
    }
    InMemoryFrames::new(frames).expect("clip")
}

fn propagate_all(
    session: &mut VideoSession<'_, InMemoryFrames>,
    start: Option<usize>,
) -> Vec<(usize, Vec<(ObjectId, RleMask)>)> {
    let mut run = pollster::block_on(session.start_propagation(start, Direction::Forward, None))
        .expect("start");
    let mut out = Vec::new();
    while let Some(f) = pollster::block_on(session.step(&mut run)).expect("step") {
        out.push((f.frame, f.objects));
    }
    out
}

const BOX_1: [f32; 4] = [38.4, 33.6, 83.2, 81.6];
const BOX_2: [f32; 4] = [4.0, 4.0, 40.0, 30.0];

#[test]
fn two_objects_are_tracked_independently() {
    let m = model();
    let mut alone = VideoSession::new(m.clone(), clip()).expect("session");
    pollster::block_on(alone.add_prompt(0, 1, Some(BOX_1), &[])).expect("box 1");
    let solo = propagate_all(&mut alone, None);
    let mut alone2 = VideoSession::new(m.clone(), clip()).expect("session");
    pollster::block_on(alone2.add_prompt(3, 2, Some(BOX_2), &[])).expect("box 2");
    let solo2 = propagate_all(&mut alone2, Some(0));

    let mut both = VideoSession::new(m, clip()).expect("session");
    pollster::block_on(both.add_prompt(0, 1, Some(BOX_1), &[])).expect("box 1");
    pollster::block_on(both.add_prompt(3, 2, Some(BOX_2), &[])).expect("box 2");
    let pair = propagate_all(&mut both, None);

    assert_eq!(pair.len(), 8, "every frame visited");
    for (((f, solo1), (_, solo2)), (g, pair_objs)) in solo.iter().zip(&solo2).zip(&pair) {
        assert_eq!(f, g);
        let one = &pair_objs
            .iter()
            .find(|(id, _)| *id == 1)
            .expect("object 1")
            .1;
        let two = &pair_objs
            .iter()
            .find(|(id, _)| *id == 2)
            .expect("object 2")
            .1;
        assert_eq!(
            one, &solo1[0].1,
            "object 1 on frame {f} is unaffected by object 2"
        );
        assert_eq!(
            two, &solo2[0].1,
            "object 2 on frame {f} is unaffected by object 1"
        );
    }
    assert!(pair.iter().all(|(_, objs)| objs.len() == 2));
    let prompted = pair[3]
        .1
        .iter()
        .find(|(id, _)| *id == 2)
        .expect("object 2")
        .1
        .area();
    assert!(prompted > 0, "object 2 is segmented on its prompted frame");
}

#[test]
fn a_correction_changes_that_frame_and_later_ones_only() {
    let mut session = VideoSession::new(model(), clip()).expect("session");
    pollster::block_on(session.add_prompt(0, 1, Some(BOX_1), &[])).expect("box");
    let before = propagate_all(&mut session, None);
    let correction = [20.0, 20.0, 60.0, 50.0];
    let corrected =
        pollster::block_on(session.add_prompt(4, 1, Some(correction), &[])).expect("correction");
    assert_ne!(
        corrected.objects[0].1, before[4].1[0].1,
        "the corrected frame changes at once"
    );
    let after = propagate_all(&mut session, Some(4));
    // Frames before the correction are not visited again: their masks stay as they were.
    assert_eq!(
        after.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        vec![4, 5, 6, 7],
        "re-propagation from the corrected frame visits it and later frames only"
    );
    assert_eq!(
        after[0].1[0].1, corrected.objects[0].1,
        "the corrected frame keeps the correction"
    );
    let changed_later = after[1..]
        .iter()
        .filter(|(f, m)| m[0].1 != before[*f].1[0].1)
        .count();
    assert!(changed_later > 0, "later frames follow the correction");
}

#[test]
fn empty_clip_and_bad_frames_are_clear_errors() {
    let m = model();
    let err = VideoSession::new(m.clone(), InMemoryFrames::default())
        .err()
        .expect("empty clip refused");
    assert!(err.to_string().contains("no frames"), "{err}");
    let mut s = VideoSession::new(m, clip()).expect("session");
    let err = pollster::block_on(s.add_prompt(99, 1, Some(BOX_1), &[])).unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
    let err = pollster::block_on(s.start_propagation(None, Direction::Forward, None)).unwrap_err();
    assert!(err.to_string().contains("prompt"), "{err}");
}

#[test]
fn a_mask_prompt_is_taken_as_that_frames_output_and_propagates() {
    let mut session = VideoSession::new(model(), clip()).expect("session");
    let (h, w) = session.frame_size();
    let disk: Vec<u8> = (0..h * w)
        .map(|i| {
            let (y, x) = ((i / w) as f32, (i % w) as f32);
            u8::from((x - 60.0).powi(2) + (y - 55.0).powi(2) < 18.0f32.powi(2))
        })
        .collect();
    let out = pollster::block_on(session.add_mask(0, 7, &disk)).expect("mask prompt");
    let got = out.objects[0].1.decode();
    let inter = got
        .iter()
        .zip(&disk)
        .filter(|(a, b)| **a == 1 && **b == 1)
        .count();
    let union = got
        .iter()
        .zip(&disk)
        .filter(|(a, b)| **a == 1 || **b == 1)
        .count();
    let iou = inter as f64 / union as f64;
    assert!(
        iou > 0.9,
        "the frame's output is the mask prompt (IoU {iou:.3})"
    );
    let frames = propagate_all(&mut session, None);
    assert_eq!(frames.len(), 8);
    assert_eq!(frames[0].0, 0);
    assert_eq!(
        frames[0].1[0].1.decode(),
        got,
        "the prompted frame keeps its mask"
    );

    let err = pollster::block_on(session.add_mask(1, 7, &disk[..10])).unwrap_err();
    assert!(err.to_string().contains("pixels"), "{err}");
    let empty = vec![0u8; h * w];
    let out = pollster::block_on(session.add_mask(2, 8, &empty)).expect("empty mask prompt");
    assert_eq!(
        out.objects[0].1.area(),
        0,
        "an empty mask prompt marks the object absent"
    );
}
