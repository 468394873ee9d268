//! The SAM 2 video session against the official 4-frame trace of
//! `../shared/fixtures/sam2-small` (init_state → box on frame 0 → propagate):
//! every prompt-encoder, mask-decoder, memory-encoder and memory-attention
//! call, and every frame's outputs, within 1e-4.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Tensor;
use common::{Fixtures, host_of, read_store, sam2_small_dir};
use medseg::io::image::RgbImage;
use medseg::model::sam::mask_decoder::MaskOutput;
use medseg::model::{Architecture, detect_architecture, load_sam2};
use medseg::session::frames::InMemoryFrames;
use medseg::session::video::{Direction, TraceEvent, VideoSession};

const TOL: f32 = 1e-4;

/// One traced call, read back to the host: (module, frame, [(name, shape, data)]).
type Call = (String, usize, Vec<(String, Vec<usize>, Vec<f32>)>);

fn h<const D: usize>(name: &str, t: &Tensor<D>) -> (String, Vec<usize>, Vec<f32>) {
    let (s, d) = host_of(t);
    (name.to_string(), s, d)
}

fn record(event: TraceEvent<'_>) -> Call {
    match event {
        TraceEvent::PromptEncoder {
            frame,
            prompt,
            sparse,
            dense,
        } => {
            let coords: Vec<f32> = prompt.coords.iter().flat_map(|c| *c).collect();
            let n = prompt.coords.len();
            let labels: Vec<f32> = prompt
                .labels
                .iter()
                .map(|l| match l {
                    medseg::model::sam::prompt_encoder::PointLabel::NotAPoint => -1.0,
                    medseg::model::sam::prompt_encoder::PointLabel::Negative => 0.0,
                    medseg::model::sam::prompt_encoder::PointLabel::Positive => 1.0,
                    medseg::model::sam::prompt_encoder::PointLabel::BoxTopLeft => 2.0,
                    medseg::model::sam::prompt_encoder::PointLabel::BoxBottomRight => 3.0,
                })
                .collect();
            let v = vec![
                ("in.points.0".to_string(), vec![1, n, 2], coords),
                ("in.points.1".to_string(), vec![1, n], labels),
                h("out.0", sparse),
                h("out.1", dense),
            ];
            ("prompt_encoder".into(), frame, v)
        }
        TraceEvent::MaskDecoder {
            frame,
            image_embeddings,
            sparse,
            dense,
            output,
            masks,
            iou,
            tokens,
            object_score,
        } => {
            let _ = output == MaskOutput::Multi;
            let v = vec![
                h("in.image_embeddings", image_embeddings),
                h("in.sparse_prompt_embeddings", sparse),
                h("in.dense_prompt_embeddings", dense),
                h("out.0", masks),
                h("out.1", iou),
                h("out.2", tokens),
                h("out.3", object_score),
            ];
            ("mask_decoder".into(), frame, v)
        }
        TraceEvent::MemoryEncoder {
            frame,
            pix_feat,
            masks,
            features,
            pos,
        } => (
            "memory_encoder".into(),
            frame,
            vec![
                h("in.arg0", pix_feat),
                h("in.arg1", masks),
                h("out.vision_features", features),
                h("out.vision_pos_enc.0", pos),
            ],
        ),
        TraceEvent::MemoryAttention {
            frame,
            curr,
            curr_pos,
            memory,
            memory_pos,
            out,
            ..
        } => (
            "memory_attention".into(),
            frame,
            vec![
                h("in.curr.0", curr),
                h("in.curr_pos.0", curr_pos),
                h("in.memory", memory),
                h("in.memory_pos", memory_pos),
                h("out", out),
            ],
        ),
    }
}

fn frames() -> InMemoryFrames {
    let dir = sam2_small_dir().join("frames_png");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("frames_png")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    let frames = names
        .iter()
        .map(|p| {
            let img = image::open(p).expect("png").to_rgb8();
            RgbImage {
                width: img.width() as usize,
                height: img.height() as usize,
                data: img.into_raw(),
            }
        })
        .collect();
    InMemoryFrames::new(frames).expect("frames")
}

#[test]
fn four_frame_trace_matches_reference() {
    let device = medseg::cpu_device();
    let fx = Fixtures::sam2_small();
    let store = read_store(&sam2_small_dir().join("weights.safetensors"));
    let Architecture::Sam2(cfg) = detect_architecture(&store, None).expect("arch") else {
        panic!("sam2")
    };
    let model = load_sam2(store, &cfg, &device).expect("load");

    let calls: Rc<RefCell<Vec<Call>>> = Rc::default();
    let sink = calls.clone();
    let mut session = VideoSession::new(std::sync::Arc::new(model), frames()).expect("session");
    session.set_tracer(move |e| sink.borrow_mut().push(record(e)));

    let b = &fx.host("video.in.box_frame0").data;
    let added = pollster::block_on(session.add_prompt(0, 1, Some([b[0], b[1], b[2], b[3]]), &[]))
        .expect("add box");
    let mut worst: Vec<(String, f32)> = Vec::new();
    let mut check = |name: &str, got: &[f32], got_shape: &[usize], tol_rel: f32| {
        let want = fx.host(name);
        assert_eq!(got_shape, want.shape.as_slice(), "{name} shape");
        let err = got
            .iter()
            .zip(&want.data)
            .map(|(a, b)| ((a - b).abs() - tol_rel * b.abs()).max(0.0))
            .fold(0f32, f32::max);
        assert!(err <= TOL, "{name}: max abs err {err:.3e}");
        worst.push((name.to_string(), err));
    };
    check(
        "video.add_box.out.video_res_masks",
        &added.logits[0].1,
        &[1, 1, 96, 128],
        0.0,
    );

    let mut run = pollster::block_on(session.start_propagation(None, Direction::Forward, None))
        .expect("start");
    let mut seen = Vec::new();
    while let Some(out) = pollster::block_on(session.step(&mut run)).expect("step") {
        let f = out.frame;
        seen.push(f);
        let k = format!("video.frame{f:02}.out");
        check(
            &format!("{k}.video_res_masks"),
            &out.logits[0].1,
            &[1, 1, 96, 128],
            0.0,
        );
        let rec = session.record(f, 1).expect("record kept");
        let (s, d) = host_of(&rec.pred_masks);
        check(&format!("{k}.pred_masks"), &d, &s, 0.0);
        let (s, d) = host_of(&rec.obj_ptr);
        check(&format!("{k}.obj_ptr"), &d, &s, 0.0);
        let (s, d) = host_of(&rec.object_score_logits);
        check(&format!("{k}.object_score_logits"), &d, &s, 0.0);
        // Stored in bfloat16 by both implementations: compare at bf16 precision.
        let mem = rec.maskmem_features(&device).expect("memory");
        let (s, d) = host_of(&mem);
        check(&format!("{k}.maskmem_features"), &d, &s, 1.0 / 128.0);
    }
    assert_eq!(seen, vec![0, 1, 2, 3]);

    // Every traced call, in order, against the reference's calls (image
    // encoder calls are covered by the image tests).
    let mut reference: Vec<(String, usize, String)> =
        fx.0.iter()
            .filter_map(|(name, _)| {
                let rest = name.strip_prefix("video.call")?;
                let (idx, rest) = rest.split_once('.')?;
                let (frame, rest) = rest.split_once('.')?;
                let (module, _) = rest.split_once('.')?;
                (module != "image_encoder").then(|| {
                    (
                        idx.to_string(),
                        frame.trim_start_matches('f').parse().unwrap_or(0),
                        format!("video.call{idx}.{frame}.{module}"),
                    )
                })
            })
            .collect();
    reference.sort();
    reference.dedup();
    let calls = calls.borrow();
    assert_eq!(calls.len(), reference.len(), "number of traced calls");
    for ((module, frame, tensors), (_, ref_frame, prefix)) in calls.iter().zip(&reference) {
        assert!(
            prefix.ends_with(module.as_str()),
            "call order: got {module}, reference {prefix}"
        );
        assert_eq!(frame, ref_frame, "{prefix} frame");
        for (name, shape, data) in tensors {
            let want = fx.host(&format!("{prefix}.{name}"));
            assert_eq!(shape, &want.shape, "{prefix}.{name} shape");
            // The memory bank holds the bfloat16-stored features of earlier
            // frames: one bf16 rounding step (2^-8 relative) may flip there.
            let bf16_rel = if name == "in.memory" {
                1.0 / 128.0
            } else {
                0.0
            };
            let err = data
                .iter()
                .zip(&want.data)
                .map(|(a, b)| ((a - b).abs() - bf16_rel * b.abs()).max(0.0))
                .fold(0f32, f32::max);
            assert!(
                err <= TOL,
                "{prefix}.{name}: max abs err {err:.3e} beyond bf16 rounding"
            );
            worst.push((format!("{prefix}.{name}"), err));
        }
    }
    let (name, err) = worst.iter().fold((String::new(), 0f32), |acc, (n, e)| {
        if *e >= acc.1 { (n.clone(), *e) } else { acc }
    });
    println!(
        "video trace: {} tensors compared, worst {err:.3e} at {name}",
        worst.len()
    );
}
