//! Stage-by-stage parity of the SAM 2.1 model core with the official
//! implementation, on `../shared/fixtures/sam2-small` (tolerance 1e-4).

mod common;

use burn::tensor::Tensor;
use common::{Fixtures, Report, read_store, sam2_small_dir};
use medseg::model::memory_encoder::MaskInput;
use medseg::model::sam::mask_decoder::MaskOutput;
use medseg::model::sam::prompt_encoder::{PointLabel, PointPrompt};
use medseg::model::sam2::{MaskSource, Sam2Model};
use medseg::model::{Architecture, detect_architecture, load_sam2};

const TOL: f32 = 1e-4;

fn model(device: &medseg::Device) -> Sam2Model {
    let store = read_store(&sam2_small_dir().join("weights.safetensors"));
    let Architecture::Sam2(cfg) = detect_architecture(&store, None).expect("architecture") else {
        panic!("fixture weights are SAM 2")
    };
    load_sam2(store, &cfg, device).expect("fixture weights load strictly")
}

fn prompt_of(fx: &Fixtures, case: &str) -> PointPrompt {
    let coords = fx.host(&format!("prompt_encoder.{case}.in.coords"));
    let labels = fx.host(&format!("prompt_encoder.{case}.in.labels"));
    PointPrompt {
        coords: coords.data.chunks(2).map(|c| [c[0], c[1]]).collect(),
        labels: labels
            .data
            .iter()
            .map(|&l| PointLabel::from_official(l as i64).expect("label"))
            .collect(),
    }
}

#[test]
fn image_encoder_matches_reference() {
    let device = medseg::cpu_device();
    let fx = Fixtures::sam2_small();
    let m = model(&device);
    let mut r = Report::default();
    let input: Tensor<4> = fx.tensor("image.input", &device);
    let trunk = &m.image_encoder.trunk;

    r.check(
        "patch_embed",
        "image_encoder.trunk.patch_embed.out",
        &trunk.patch_embed(input.clone()),
        &fx,
        TOL,
    );
    r.check(
        "pos_embed",
        "image_encoder.trunk.pos_embed.out",
        &trunk.pos_embed(),
        &fx,
        TOL,
    );

    let mut blocks = Vec::new();
    let levels = trunk.forward_observed(input.clone(), |i, x| blocks.push((i, x.clone())));
    for (i, x) in &blocks {
        r.check(
            "hiera blocks",
            &format!("image_encoder.trunk.block{i:02}.out"),
            x,
            &fx,
            TOL,
        );
    }
    assert_eq!(blocks.len(), 7, "every Hiera block observed");
    for (i, x) in levels.iter().enumerate() {
        r.check(
            "trunk levels",
            &format!("image_encoder.trunk.out.{i}"),
            x,
            &fx,
            TOL,
        );
    }
    let neck = m.image_encoder.neck.forward(&levels);
    for (i, (f, p)) in neck.features.iter().zip(&neck.pos).enumerate() {
        r.check(
            "neck features",
            &format!("image_encoder.neck.out.features.{i}"),
            f,
            &fx,
            TOL,
        );
        r.check(
            "neck pos",
            &format!("image_encoder.neck.out.pos.{i}"),
            p,
            &fx,
            TOL,
        );
    }
    let bo = m.forward_image(input);
    for (i, (f, p)) in bo.backbone_fpn.iter().zip(&bo.vision_pos_enc).enumerate() {
        r.check(
            "forward_image",
            &format!("forward_image.out.backbone_fpn.{i}"),
            f,
            &fx,
            TOL,
        );
        r.check(
            "forward_image",
            &format!("forward_image.out.vision_pos_enc.{i}"),
            p,
            &fx,
            TOL,
        );
    }
    r.check(
        "forward_image",
        "forward_image.out.vision_features",
        &bo.vision_features(),
        &fx,
        TOL,
    );
    let feats = m.image_features(&bo);
    r.check(
        "image features",
        "image.image_embed",
        &feats.embed,
        &fx,
        TOL,
    );
    r.check(
        "image features",
        "image.high_res_feats.0",
        &feats.high_res[0],
        &fx,
        TOL,
    );
    r.check(
        "image features",
        "image.high_res_feats.1",
        &feats.high_res[1],
        &fx,
        TOL,
    );
    r.finish();
}

#[test]
fn prompt_encoder_and_mask_decoder_match_reference() {
    let device = medseg::cpu_device();
    let fx = Fixtures::sam2_small();
    let m = model(&device);
    let mut r = Report::default();
    let pe = &m.sam_prompt_encoder;
    r.check(
        "dense pe",
        "prompt_encoder.dense_pe.out",
        &pe.dense_pe(),
        &fx,
        TOL,
    );

    let embed: Tensor<4> = fx.tensor("image.image_embed", &device);
    let hr0: Tensor<4> = fx.tensor("image.high_res_feats.0", &device);
    let hr1: Tensor<4> = fx.tensor("image.high_res_feats.1", &device);
    for case in ["box", "points", "box_points", "box_mask"] {
        let prompt = prompt_of(&fx, case);
        let mask_name = format!("prompt_encoder.{case}.in.mask");
        let mask = fx
            .has(&mask_name)
            .then(|| fx.tensor::<4>(&mask_name, &device));
        let (sparse, dense) = pe.forward(Some(&prompt), None, mask);
        r.check(
            "prompt encoder",
            &format!("prompt_encoder.{case}.out.sparse"),
            &sparse,
            &fx,
            TOL,
        );
        r.check(
            "prompt encoder",
            &format!("prompt_encoder.{case}.out.dense"),
            &dense,
            &fx,
            TOL,
        );

        // The decoder is checked on the reference prompt embeddings, so its
        // errors are its own.
        let sparse_ref: Tensor<3> =
            fx.tensor(&format!("prompt_encoder.{case}.out.sparse"), &device);
        let dense_ref: Tensor<4> = fx.tensor(&format!("prompt_encoder.{case}.out.dense"), &device);
        for (mm, output) in [(0, MaskOutput::Single), (1, MaskOutput::Multi)] {
            let out = m.sam_mask_decoder.forward(
                embed.clone(),
                pe.dense_pe(),
                sparse_ref.clone(),
                dense_ref.clone(),
                output,
                Some([&hr0, &hr1]),
            );
            let k = format!("mask_decoder.{case}.multimask{mm}.out");
            let g = format!("mask decoder multimask{mm}");
            r.check(&g, &format!("{k}.low_res_masks"), &out.masks, &fx, TOL);
            r.check(&g, &format!("{k}.iou_pred"), &out.iou_pred, &fx, TOL);
            r.check(
                &g,
                &format!("{k}.sam_tokens_out"),
                &out.sam_tokens_out,
                &fx,
                TOL,
            );
            r.check(
                &g,
                &format!("{k}.object_score_logits"),
                &out.object_score_logits,
                &fx,
                TOL,
            );
        }
    }

    let heads = m.forward_sam_heads(
        &embed,
        &[hr0, hr1],
        Some(&prompt_of(&fx, "box")),
        None,
        MaskOutput::Multi,
    );
    let k = "sam_heads.box.out";
    r.check(
        "sam heads",
        &format!("{k}.low_res_multimasks"),
        &heads.low_res_multimasks,
        &fx,
        TOL,
    );
    r.check(
        "sam heads",
        &format!("{k}.high_res_multimasks"),
        &heads.high_res_multimasks,
        &fx,
        TOL,
    );
    r.check("sam heads", &format!("{k}.ious"), &heads.ious, &fx, TOL);
    r.check(
        "sam heads",
        &format!("{k}.low_res_masks"),
        &heads.low_res_masks,
        &fx,
        TOL,
    );
    r.check(
        "sam heads",
        &format!("{k}.high_res_masks"),
        &heads.high_res_masks,
        &fx,
        TOL,
    );
    r.check(
        "sam heads",
        &format!("{k}.obj_ptr"),
        &heads.obj_ptr,
        &fx,
        TOL,
    );
    r.check(
        "sam heads",
        &format!("{k}.object_score_logits"),
        &heads.object_score_logits,
        &fx,
        TOL,
    );
    r.finish();
}

#[test]
fn memory_encoder_and_attention_match_reference() {
    let device = medseg::cpu_device();
    let fx = Fixtures::sam2_small();
    let m = model(&device);
    let mut r = Report::default();

    let pix: Tensor<4> = fx.tensor("memory_encoder.in.pix_feat", &device);
    let masks: Tensor<4> = fx.tensor("memory_encoder.in.masks", &device);
    let (down, fused) = m
        .memory_encoder
        .fuse(pix.clone(), masks.clone(), MaskInput::Prepared);
    r.check(
        "memory encoder",
        "memory_encoder.out.mask_downsampler",
        &down,
        &fx,
        TOL,
    );
    r.check(
        "memory encoder",
        "memory_encoder.out.fuser",
        &fused,
        &fx,
        TOL,
    );
    let me = m
        .memory_encoder
        .forward(pix.clone(), masks, MaskInput::Prepared);
    r.check(
        "memory encoder",
        "memory_encoder.out.vision_features",
        &me.features,
        &fx,
        TOL,
    );
    r.check(
        "memory encoder",
        "memory_encoder.out.vision_pos_enc.0",
        &me.pos,
        &fx,
        TOL,
    );

    let hr_mask: Tensor<4> = fx.tensor("sam_heads.box.out.high_res_masks", &device);
    for (binarised, source) in [(0, MaskSource::Tracking), (1, MaskSource::PointPrompts)] {
        for present in [0, 1] {
            let k = format!("encode_new_memory.from_pts{binarised}.obj{present}");
            let osl: Tensor<2> = fx.tensor(&format!("{k}.in.object_score_logits"), &device);
            let (feats, pos) = m.encode_new_memory(pix.clone(), hr_mask.clone(), osl, source);
            let g = if present == 1 {
                "memory (object present)"
            } else {
                "memory (object absent)"
            };
            r.check(g, &format!("{k}.out.maskmem_features"), &feats, &fx, TOL);
            r.check(g, &format!("{k}.out.maskmem_pos_enc.0"), &pos, &fx, TOL);
        }
    }

    let out = m.memory_attention.forward(
        fx.tensor("memory_attention.in.curr", &device),
        fx.tensor("memory_attention.in.curr_pos", &device),
        fx.tensor("memory_attention.in.memory", &device),
        fx.tensor("memory_attention.in.memory_pos", &device),
        4,
    );
    r.check("memory attention", "memory_attention.out", &out, &fx, TOL);
    r.finish();
}
