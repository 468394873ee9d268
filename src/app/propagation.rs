//! Propagation: which frames a run visits, in which order, and how many steps it takes,
//! for the three ways MedSeg follows a structure:
//! - SAM 2 on a clip: the memory session that holds the prompts, one direction after the
//!   other (`SAM2VideoPredictor.propagate_in_video`).
//! - SAM 2 on a volume: MedSAM2's 3-D recipe (`medsam2_infer_3D_CT.py`) per object: each
//!   direction from a fresh session given the object's prompts, the union of the passes,
//!   then the largest 3-D connected component.
//! - LiteMedSAM: the box-from-previous-mask walk from the object's latest box.
//!
//! Every count comes from [`propagation_order`] or the walk's own length, so that the
//! progress a caller shows is the number of steps it gets.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::app::error::{AppError, AppResult};
use crate::app::prompts::PromptStore;
use crate::model::lite_medsam::LiteMedSam;
use crate::session::frames::FrameSource;
use crate::session::lite_propagation::LitePropagation;
use crate::session::video::{Direction, ObjectId, Propagation, VideoSession, propagation_order};

/// Which way(s) to propagate from the prompted frames (`"forward"`, `"backward"`,
/// `"both"` where a face shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Directions {
    Forward,
    Backward,
    /// Forward, then backward.
    Both,
}

impl Directions {
    /// `forward` (`fwd`), `backward` (`back`, `bwd`), `both` (or empty); case-insensitive.
    pub fn parse(s: &str) -> AppResult<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "forward" | "fwd" => Ok(Directions::Forward),
            "backward" | "back" | "bwd" => Ok(Directions::Backward),
            "both" | "" => Ok(Directions::Both),
            other => Err(AppError::bad_input(format!(
                "direction `{other}`: expected forward, backward or both"
            ))),
        }
    }

    pub fn list(self) -> &'static [Direction] {
        match self {
            Directions::Forward => &[Direction::Forward],
            Directions::Backward => &[Direction::Backward],
            Directions::Both => &[Direction::Forward, Direction::Backward],
        }
    }
}

/// A range `[first, last]` as a user types it (`--range FIRST,LAST`): whole numbers,
/// `0 <= first <= last`; [`frame_range`] then checks it against the frames.
pub fn whole_range([first, last]: [f32; 2]) -> AppResult<(usize, usize)> {
    if first >= 0.0 && last >= first && first.fract() == 0.0 && last.fract() == 0.0 {
        return Ok((first as usize, last as usize));
    }
    Err(AppError::bad_input(format!(
        "range {first},{last}: expected FIRST,LAST whole numbers with 0 <= FIRST <= LAST"
    )))
}

/// A frame range `first..=last` checked against `len` frames (`None`: all of them).
pub fn frame_range(range: Option<(usize, usize)>, len: usize) -> AppResult<(usize, usize)> {
    let (lo, hi) = range.unwrap_or((0, len.saturating_sub(1)));
    if len == 0 || lo > hi || hi >= len {
        return Err(AppError::bad_input(format!(
            "range [{lo}, {hi}] is not within the {len} frames (0..{})",
            len.saturating_sub(1)
        )));
    }
    Ok((lo, hi))
}

/// The directions of `directions` that visit at least one frame from `start` within
/// `range`, with the number of frames each visits.
pub fn planned_passes(
    start: usize,
    directions: Directions,
    range: (usize, usize),
) -> Vec<(Direction, usize)> {
    directions
        .list()
        .iter()
        .map(|&d| (d, propagation_order(start, d, range).len()))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// The earliest frame within `range` where `obj` has a prompt (`obj` `None`: any object).
pub fn first_prompted(
    prompts: &PromptStore,
    obj: Option<ObjectId>,
    (lo, hi): (usize, usize),
) -> Option<usize> {
    prompts
        .log()
        .iter()
        .filter(|e| obj.is_none_or(|o| o == e.obj) && (lo..=hi).contains(&e.frame))
        .map(|e| e.frame)
        .min()
}

pub(crate) type DocSession = VideoSession<'static, Arc<dyn FrameSource>>;
pub(crate) type LiteWalk = LitePropagation<Arc<LiteMedSam>, Arc<[u8]>>;

/// A propagation in progress, driven one step at a time.
pub(crate) enum Run {
    Sam2Clip {
        passes: VecDeque<(Direction, usize)>,
        start: usize,
        range: (usize, usize),
        current: Option<Propagation>,
    },
    Sam2Volume {
        objects: VecDeque<VolumeObject>,
        range: (usize, usize),
    },
    LiteMedSam {
        walks: VecDeque<(ObjectId, LiteWalk)>,
    },
}

/// One object of a SAM 2 volume run: its passes still to go and the union so far.
pub(crate) struct VolumeObject {
    pub obj: ObjectId,
    pub start: usize,
    pub passes: VecDeque<(Direction, usize)>,
    pub current: Option<(DocSession, Propagation)>,
    /// Mask per visited frame, the union of the passes so far.
    pub union: BTreeMap<usize, Vec<u8>>,
}

/// What one step did: the frames whose masks changed (the frame just segmented first)
/// and the objects updated on them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepOutcome {
    pub frames: Vec<usize>,
    pub objects: Vec<ObjectId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sam::prompt_encoder::PointLabel;
    use crate::predictor::ImagePrompt;

    fn count(start: usize, d: Directions, range: (usize, usize)) -> usize {
        planned_passes(start, d, range).iter().map(|p| p.1).sum()
    }

    #[test]
    fn counts_in_every_direction() {
        // 10 frames, prompt on 4: forward 4..=9, backward 4 down to 0, both = both passes
        // (the prompted frame is the first step of each, as SAM 2 runs it).
        assert_eq!(count(4, Directions::Forward, (0, 9)), 6);
        assert_eq!(count(4, Directions::Backward, (0, 9)), 5);
        assert_eq!(count(4, Directions::Both, (0, 9)), 11);
        // Backward from frame 0 visits nothing (the official predictor's reverse run
        // from frame 0 is empty); forward from the last frame visits it alone.
        assert_eq!(count(0, Directions::Backward, (0, 9)), 0);
        assert_eq!(
            planned_passes(0, Directions::Both, (0, 9)),
            vec![(Direction::Forward, 10)]
        );
        assert_eq!(count(9, Directions::Forward, (0, 9)), 1);
        // Ranges clip both ends.
        assert_eq!(count(4, Directions::Both, (2, 6)), 3 + 3);
        assert_eq!(count(4, Directions::Forward, (4, 4)), 1);
        assert_eq!(count(1, Directions::Forward, (3, 5)), 3);
        assert_eq!(count(1, Directions::Backward, (3, 5)), 0);
    }

    #[test]
    fn directions_and_ranges_parse_with_named_errors() {
        assert_eq!(Directions::parse("Both").unwrap(), Directions::Both);
        assert_eq!(Directions::parse("").unwrap(), Directions::Both);
        assert_eq!(Directions::parse("bwd").unwrap(), Directions::Backward);
        assert!(
            Directions::parse("sideways")
                .unwrap_err()
                .message
                .contains("sideways")
        );
        assert_eq!(frame_range(None, 5).unwrap(), (0, 4));
        assert_eq!(frame_range(Some((1, 3)), 5).unwrap(), (1, 3));
        assert!(frame_range(Some((3, 1)), 5).is_err());
        assert!(frame_range(Some((0, 5)), 5).is_err());
        assert!(frame_range(None, 0).is_err());
        assert_eq!(whole_range([2.0, 5.0]).unwrap(), (2, 5));
        for bad in [[0.5, 3.0], [-1.0, 3.0], [3.0, 1.0], [0.0, f32::NAN]] {
            let e = whole_range(bad).unwrap_err().message;
            assert!(e.contains("whole numbers"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_first_prompted_frame_within_the_range_starts_the_run() {
        let mut p = PromptStore::default();
        let b = ImagePrompt {
            box_xyxy: Some([0.0, 0.0, 4.0, 4.0]),
            points: vec![],
        };
        p.push(1, 7, b.clone());
        p.push(2, 3, b.clone());
        p.push(
            1,
            5,
            ImagePrompt {
                box_xyxy: None,
                points: vec![([1.0, 1.0], PointLabel::Positive)],
            },
        );
        assert_eq!(first_prompted(&p, None, (0, 9)), Some(3));
        assert_eq!(first_prompted(&p, Some(1), (0, 9)), Some(5));
        assert_eq!(first_prompted(&p, Some(1), (6, 9)), Some(7));
        assert_eq!(first_prompted(&p, Some(2), (4, 9)), None);
    }
}
