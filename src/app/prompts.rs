//! Prompts per (object, frame), with one rule for every face: a box starts the frame's
//! prompt afresh, points are added to it, and the model always receives the frame's
//! whole prompt (box + all points), and only it: the same prompt gives the same mask
//! whatever was clicked before (no earlier output as mask input). The store keeps the log
//! of prompts in the order they were given, so that undo (`app::history`) restores the
//! previous prompt exactly and a SAM 2 session can be rebuilt from the prompts left, in
//! their order.

use std::collections::BTreeSet;

use crate::app::error::{AppError, AppResult};
use crate::model::sam::prompt_encoder::PointLabel;
use crate::predictor::ImagePrompt;
use crate::session::video::ObjectId;

/// The largest object id: ids are the label values of exported masks (uint8).
pub const MAX_OBJECT_ID: u32 = 255;

/// `N` comma-separated finite numbers as a user types them (the CLI's `--box x0,y0,x1,y1`,
/// `--point x,y,label`, `--range first,last`). NaN and infinities parse as `f32` but are
/// refused with a message that says so: no coordinate, label or frame is infinite.
pub fn parse_numbers<const N: usize>(s: &str) -> AppResult<[f32; N]> {
    let expected = |what: &str| format!("expected {N} comma-separated {what}, got `{s}`");
    let values: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| AppError::bad_input(expected("numbers")))?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(AppError::bad_input(format!(
            "{bad} is not a finite number: {}",
            expected("finite numbers")
        )));
    }
    values
        .try_into()
        .map_err(|_| AppError::bad_input(expected("numbers")))
}

/// An object id from a caller, checked to be 1..=255.
pub fn object_id(value: f64) -> AppResult<ObjectId> {
    if value.fract() == 0.0 && (1.0..=MAX_OBJECT_ID as f64).contains(&value) {
        return Ok(value as ObjectId);
    }
    Err(AppError::bad_input(format!(
        "object id {value}: expected 1..={MAX_OBJECT_ID} (it is the label value in exported masks)"
    )))
}

/// A point label from a caller: 1 = object, 0 = background.
pub fn point_label(value: f64) -> AppResult<PointLabel> {
    match value {
        1.0 => Ok(PointLabel::Positive),
        0.0 => Ok(PointLabel::Negative),
        other => Err(AppError::bad_input(format!(
            "point label {other}: expected 1 (object) or 0 (background)"
        ))),
    }
}

/// A prompt checked against a `width × height` frame, as the model gets it: a box is four
/// finite numbers with `x0 < x1`, `y0 < y1` that overlaps the frame, and is clipped to it
/// (the page clips a drawn box to the image; any other caller gets the same box, and a
/// corner at 1e38 cannot reach the model as infinity); points are finite and inside it.
pub fn fit_prompt(prompt: &ImagePrompt, width: usize, height: usize) -> AppResult<ImagePrompt> {
    if prompt.is_empty() {
        return Err(AppError::bad_input(
            "a prompt needs a box or at least one point",
        ));
    }
    let (w, h) = (width as f32, height as f32);
    if let Some(b @ [x0, y0, x1, y1]) = prompt.box_xyxy {
        if !b.iter().all(|v| v.is_finite()) {
            return Err(AppError::bad_input(format!(
                "a box is 4 finite numbers [x0, y0, x1, y1], got {b:?}"
            )));
        }
        if x1 <= x0 || y1 <= y0 {
            return Err(AppError::bad_input(format!(
                "box [{x0}, {y0}, {x1}, {y1}] is empty: x1 must exceed x0 and y1 must exceed y0"
            )));
        }
        if x1 <= 0.0 || y1 <= 0.0 || x0 >= w || y0 >= h {
            return Err(AppError::bad_input(format!(
                "box [{x0}, {y0}, {x1}, {y1}] lies outside the {width}×{height} frame"
            )));
        }
    }
    for ([x, y], _) in &prompt.points {
        if !x.is_finite() || !y.is_finite() {
            return Err(AppError::bad_input(
                "point coordinates must be finite numbers",
            ));
        }
        if *x < 0.0 || *y < 0.0 || *x >= w || *y >= h {
            return Err(AppError::bad_input(format!(
                "point ({x}, {y}) lies outside the {width}×{height} frame"
            )));
        }
    }
    Ok(ImagePrompt {
        box_xyxy: prompt
            .box_xyxy
            .map(|[x0, y0, x1, y1]| [x0.max(0.0), y0.max(0.0), x1.min(w), y1.min(h)]),
        points: prompt.points.clone(),
    })
}

/// A frame's prompt as the JavaScript API holds it: `{box: [x0, y0, x1, y1] | null,
/// points: [[x, y, label], ...]}` (label 1 = object, 0 = background); `null` for none.
pub fn serialize_prompt<S: serde::Serializer>(
    prompt: &Option<ImagePrompt>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct View {
        #[serde(rename = "box")]
        box_xyxy: Option<[f32; 4]>,
        points: Vec<[f32; 3]>,
    }
    let view = prompt.as_ref().map(|p| View {
        box_xyxy: p.box_xyxy,
        points: p
            .points
            .iter()
            .map(|([x, y], l)| [*x, *y, f32::from(u8::from(*l == PointLabel::Positive))])
            .collect(),
    });
    serde::Serialize::serialize(&view, serializer)
}

/// What a frame's prompt becomes after `edit`: the edit itself when it has a box (a box
/// starts afresh), else the current prompt with the edit's points added.
pub fn edited(current: Option<&ImagePrompt>, edit: &ImagePrompt) -> ImagePrompt {
    match (current, edit.box_xyxy) {
        (Some(cur), None) => {
            let mut p = cur.clone();
            p.points.extend(edit.points.iter().copied());
            p
        }
        _ => edit.clone(),
    }
}

/// One prompt given: the object, the frame, and the frame's whole prompt after it.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptEntry {
    pub obj: ObjectId,
    pub frame: usize,
    pub prompt: ImagePrompt,
}

/// Every prompt given, in order.
#[derive(Clone, Debug, Default)]
pub struct PromptStore {
    log: Vec<PromptEntry>,
}

impl PromptStore {
    /// The whole prompt of `obj` on `frame` now.
    pub fn get(&self, obj: ObjectId, frame: usize) -> Option<&ImagePrompt> {
        self.log
            .iter()
            .rev()
            .find(|e| e.obj == obj && e.frame == frame)
            .map(|e| &e.prompt)
    }

    /// What the prompt of `obj` on `frame` becomes after `edit` (nothing is stored).
    pub fn preview(&self, obj: ObjectId, frame: usize, edit: &ImagePrompt) -> ImagePrompt {
        edited(self.get(obj, frame), edit)
    }

    /// Records `prompt` as the whole prompt of `obj` on `frame`.
    pub fn push(&mut self, obj: ObjectId, frame: usize, prompt: ImagePrompt) {
        self.log.push(PromptEntry { obj, frame, prompt });
    }

    /// Takes back the last prompt when it is `expected` (an undo); whether it was. The
    /// frame's prompt is then the one before it, or none.
    pub fn pop(&mut self, expected: &PromptEntry) -> bool {
        let last = self.log.last() == Some(expected);
        if last {
            self.log.pop();
        }
        last
    }

    /// The prompt of every (object, frame) that has one, in the order of their latest
    /// change: the order in which a session is given them again.
    pub fn current(&self) -> Vec<&PromptEntry> {
        let mut out: Vec<&PromptEntry> = Vec::new();
        for e in &self.log {
            out.retain(|o| (o.obj, o.frame) != (e.obj, e.frame));
            out.push(e);
        }
        out
    }

    /// Every prompt ever given and not undone, oldest first.
    pub fn log(&self) -> &[PromptEntry] {
        &self.log
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// Objects with a prompt.
    pub fn objects(&self) -> BTreeSet<ObjectId> {
        self.log.iter().map(|e| e.obj).collect()
    }

    /// Frames where `obj` has a prompt, in the order of their latest prompt.
    pub fn frames_of(&self, obj: ObjectId) -> Vec<usize> {
        self.current()
            .into_iter()
            .filter(|e| e.obj == obj)
            .map(|e| e.frame)
            .collect()
    }

    /// The most recent frame where `obj`'s prompt has a box, with that box: the key
    /// slice of LiteMedSAM's walk.
    pub fn latest_box(&self, obj: ObjectId) -> Option<(usize, [f32; 4])> {
        self.frames_of(obj)
            .into_iter()
            .rev()
            .find_map(|f| Some((f, self.get(obj, f)?.box_xyxy?)))
    }

    /// Removes every prompt of `obj` (of all objects when `None`); returns them with
    /// their places in the log, ascending, for [`PromptStore::restore`].
    pub fn remove_object(&mut self, obj: Option<ObjectId>) -> Vec<(usize, PromptEntry)> {
        let (removed, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.log)
            .into_iter()
            .enumerate()
            .partition(|(_, e)| obj.is_none_or(|o| o == e.obj));
        self.log = kept.into_iter().map(|(_, e)| e).collect();
        removed
    }

    /// Puts prompts removed by [`PromptStore::remove_object`] back in their places.
    pub fn restore(&mut self, removed: &[(usize, PromptEntry)]) {
        for (i, e) in removed {
            // Ascending places: each one is at most the log's length by then.
            self.log.insert((*i).min(self.log.len()), e.clone());
        }
    }

    pub fn clear(&mut self) {
        self.log.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_numbers_are_finite_and_counted() {
        assert_eq!(
            parse_numbers::<4>(" 1, 2.5,3 ,-4").unwrap(),
            [1.0, 2.5, 3.0, -4.0]
        );
        let e = |s: &str| parse_numbers::<3>(s).unwrap_err().message;
        assert!(e("1,2").contains("expected 3 comma-separated numbers, got `1,2`"));
        assert!(e("1,2,x").contains("expected 3 comma-separated numbers"));
        assert!(e("1,NaN,2").contains("NaN is not a finite number"));
        assert!(e("inf,1,2").contains("inf is not a finite number"));
        assert!(e("").contains("expected 3"));
    }

    fn points(p: &[(f32, f32, PointLabel)]) -> ImagePrompt {
        ImagePrompt {
            box_xyxy: None,
            points: p.iter().map(|&(x, y, l)| ([x, y], l)).collect(),
        }
    }

    fn apply(store: &mut PromptStore, obj: ObjectId, frame: usize, edit: &ImagePrompt) {
        let p = store.preview(obj, frame, edit);
        store.push(obj, frame, p);
    }

    const POS: PointLabel = PointLabel::Positive;
    const NEG: PointLabel = PointLabel::Negative;

    #[test]
    fn box_then_points_keeps_the_box_and_adds_each_point() {
        let mut s = PromptStore::default();
        apply(&mut s, 1, 3, &ImagePrompt::boxed([1.0, 2.0, 30.0, 40.0]));
        apply(&mut s, 1, 3, &points(&[(5.0, 6.0, POS)]));
        apply(&mut s, 1, 3, &points(&[(7.0, 8.0, NEG)]));
        let p = s.get(1, 3).unwrap();
        assert_eq!(p.box_xyxy, Some([1.0, 2.0, 30.0, 40.0]));
        assert_eq!(p.points, vec![([5.0, 6.0], POS), ([7.0, 8.0], NEG)]);
        // Other frames and objects are untouched.
        assert!(s.get(1, 4).is_none() && s.get(2, 3).is_none());
    }

    #[test]
    fn points_then_box_starts_afresh() {
        let mut s = PromptStore::default();
        apply(&mut s, 1, 0, &points(&[(5.0, 6.0, POS)]));
        apply(&mut s, 1, 0, &ImagePrompt::boxed([1.0, 2.0, 30.0, 40.0]));
        assert_eq!(
            s.get(1, 0),
            Some(&ImagePrompt::boxed([1.0, 2.0, 30.0, 40.0]))
        );
        // A box with points in one edit (the CLI's --box with --point) is taken whole.
        let both = ImagePrompt {
            box_xyxy: Some([0.0, 0.0, 9.0, 9.0]),
            points: vec![([3.0, 3.0], NEG)],
        };
        apply(&mut s, 1, 0, &both);
        assert_eq!(s.get(1, 0), Some(&both));
    }

    #[test]
    fn pop_takes_back_only_the_last_prompt_and_restores_the_previous_one() {
        let mut s = PromptStore::default();
        apply(&mut s, 1, 2, &ImagePrompt::boxed([1.0, 2.0, 30.0, 40.0]));
        apply(&mut s, 2, 5, &ImagePrompt::boxed([4.0, 4.0, 8.0, 8.0]));
        apply(&mut s, 1, 2, &points(&[(5.0, 6.0, POS)]));
        let last = s.log().last().unwrap().clone();
        let older = s.log()[0].clone();
        // Only the last entry can be taken back (the history is linear).
        assert!(!s.pop(&older));
        assert_eq!(s.log().len(), 3);
        assert!(s.pop(&last));
        assert_eq!(
            s.get(1, 2),
            Some(&ImagePrompt::boxed([1.0, 2.0, 30.0, 40.0]))
        );
        assert_eq!(s.get(2, 5), Some(&ImagePrompt::boxed([4.0, 4.0, 8.0, 8.0])));
    }

    #[test]
    fn removed_prompts_go_back_in_their_places() {
        let mut s = PromptStore::default();
        apply(&mut s, 1, 2, &ImagePrompt::boxed([1.0, 2.0, 30.0, 40.0]));
        apply(&mut s, 2, 5, &ImagePrompt::boxed([4.0, 4.0, 8.0, 8.0]));
        apply(&mut s, 1, 3, &ImagePrompt::boxed([2.0, 2.0, 9.0, 9.0]));
        apply(&mut s, 2, 5, &points(&[(5.0, 6.0, NEG)]));
        let all = s.log().to_vec();
        let removed = s.remove_object(Some(1));
        assert_eq!(
            removed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 2]
        );
        assert_eq!(s.objects().into_iter().collect::<Vec<_>>(), vec![2]);
        s.restore(&removed);
        assert_eq!(s.log(), &all[..], "the same log, in the same order");
        let removed = s.remove_object(None);
        assert!(s.is_empty() && removed.len() == 4);
        s.restore(&removed);
        assert_eq!(s.log(), &all[..]);
    }

    #[test]
    fn the_latest_boxed_frame_is_the_key_and_frames_keep_prompt_order() {
        let mut s = PromptStore::default();
        apply(&mut s, 1, 8, &ImagePrompt::boxed([1.0, 1.0, 9.0, 9.0]));
        apply(&mut s, 1, 3, &ImagePrompt::boxed([2.0, 2.0, 9.0, 9.0]));
        apply(&mut s, 1, 8, &points(&[(5.0, 5.0, POS)]));
        assert_eq!(s.frames_of(1), vec![3, 8]);
        let current: Vec<_> = s.current().iter().map(|e| (e.obj, e.frame)).collect();
        assert_eq!(current, vec![(1, 3), (1, 8)]);
        assert_eq!(
            s.current()[1].prompt.points.len(),
            1,
            "the latest prompt of frame 8"
        );
        assert_eq!(s.latest_box(1), Some((8, [1.0, 1.0, 9.0, 9.0])));
        apply(&mut s, 1, 6, &points(&[(5.0, 5.0, POS)]));
        assert_eq!(s.latest_box(1), Some((8, [1.0, 1.0, 9.0, 9.0])));
        s.remove_object(Some(1));
        assert!(s.objects().is_empty());
    }

    #[test]
    fn prompts_are_checked_against_the_frame() {
        let ok = |p: &ImagePrompt| fit_prompt(p, 100, 50);
        assert!(ok(&ImagePrompt::boxed([10.0, 10.0, 20.0, 20.0])).is_ok());
        let clipped = ok(&ImagePrompt::boxed([-1e30, 10.0, 1e38, 60.0])).unwrap();
        assert_eq!(clipped.box_xyxy, Some([0.0, 10.0, 100.0, 50.0]));
        for bad in [
            ImagePrompt::boxed([20.0, 10.0, 10.0, 20.0]),
            ImagePrompt::boxed([f32::NAN, 0.0, 1.0, 1.0]),
            ImagePrompt::boxed([100.0, 0.0, 120.0, 10.0]),
            points(&[(100.0, 10.0, POS)]),
            points(&[(-1.0, 10.0, POS)]),
            ImagePrompt::default(),
        ] {
            let e = ok(&bad).unwrap_err();
            assert_eq!(e.kind, crate::app::ErrorKind::BadInput, "{e}");
        }
        assert!(object_id(0.0).is_err() && object_id(256.0).is_err() && object_id(1.5).is_err());
        assert_eq!(object_id(255.0).unwrap(), 255);
        assert!(point_label(2.0).is_err());
    }
}
