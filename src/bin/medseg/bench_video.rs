//! `medseg bench-video`: propagation speed and peak memory on a synthetic clip.

use std::time::Instant;

use medseg::app::LoadedModel;
use medseg::app::bench::median;
use medseg::io::image::RgbImage;
use medseg::session::frames::{FrameError, FrameSource};
use medseg::session::video::{Direction, VideoSession};

use crate::bench::{DeviceArgs, Weights};
use crate::common::CliResult;

/// Propagate a box through a synthetic clip with SAM 2 memory; prints ms per frame and
/// resident memory after 10 frames and at the end (the clip is generated on demand, so
/// the figures are the session's own).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    weights: Weights,
    #[command(flatten)]
    device: DeviceArgs,
    /// Number of frames.
    #[arg(long)]
    frames: usize,
    /// Frame side in pixels.
    #[arg(long, default_value_t = 512)]
    size: usize,
}

pub fn run(a: Args) -> CliResult {
    let device = a.device.open()?;
    let LoadedModel::Sam2(model) = a.weights.load(&device.device)? else {
        return Err("bench-video needs SAM 2 / MedSAM2 weights, not LiteMedSAM".into());
    };
    let image_size = model.image_size();
    let clip = SyntheticClip {
        frames: a.frames,
        size: a.size,
    };
    let mut session = VideoSession::new(model, clip).map_err(|e| e.to_string())?;
    let s = a.size as f32;
    pollster::block_on(session.add_prompt(
        0,
        1,
        Some([0.15 * s, 0.35 * s, 0.45 * s, 0.65 * s]),
        &[],
    ))
    .map_err(|e| e.to_string())?;
    let mut run = pollster::block_on(session.start_propagation(Some(0), Direction::Forward, None))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut after_10, mut done) = (f64::NAN, 0);
    let mut per_frame = Vec::new();
    let mut t = Instant::now();
    while pollster::block_on(session.step(&mut run))
        .map_err(|e| e.to_string())?
        .is_some()
    {
        per_frame.push(t.elapsed().as_secs_f64() * 1e3);
        t = Instant::now();
        done += 1;
        if done == 10 {
            after_10 = rss_mb().1;
        }
    }
    let (peak, now) = rss_mb();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "frames={} size={} image_size={image_size} device={} dtype={} propagated={done} in \
         {secs:.1} s ({:.1} ms/frame)",
        a.frames,
        a.size,
        device.backend.name(),
        device.precision.name(),
        secs * 1e3 / done.max(1) as f64
    );
    // The first step hands back the prompted frame (segmented when prompted); the next
    // carries warm-up (on wgpu, the memory path's shader compilation).
    match per_frame.as_slice() {
        [_, first] => println!("per frame: first propagated {first:.1} ms (no more frames)"),
        [_, first, rest @ ..] => println!(
            "per frame: first propagated {first:.1} ms, median of the rest {:.1} ms ({} frames)",
            median(rest),
            rest.len()
        ),
        _ => {}
    }
    if done >= 10 {
        println!("rss after 10 frames {after_10:.1} MB, at end {now:.1} MB, peak {peak:.1} MB");
    } else {
        println!("rss at end {now:.1} MB, peak {peak:.1} MB");
    }
    Ok(())
}

/// A bright disk moving over a noisy background, generated on demand so the clip itself
/// takes no memory.
struct SyntheticClip {
    frames: usize,
    size: usize,
}

impl FrameSource for SyntheticClip {
    fn len(&self) -> usize {
        self.frames
    }
    fn frame_size(&self) -> (usize, usize) {
        (self.size, self.size)
    }
    fn frame(&self, index: usize) -> Result<RgbImage, FrameError> {
        let s = self.size as f32;
        let t = index as f32 / self.frames.max(1) as f32;
        let (cx, cy, r) = (s * (0.3 + 0.4 * t), s * 0.5, s * 0.12);
        let mut data = Vec::with_capacity(self.size * self.size * 3);
        for y in 0..self.size {
            for x in 0..self.size {
                let noise = ((x * 7919 + y * 104_729 + index * 31) % 61) as f32;
                let inside = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r;
                let v = if inside { 200.0 } else { 50.0 } + noise;
                data.extend([v as u8; 3]);
            }
        }
        Ok(RgbImage {
            width: self.size,
            height: self.size,
            data,
        })
    }
}

/// Peak and current resident memory of this process in MB (Linux `/proc`).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
