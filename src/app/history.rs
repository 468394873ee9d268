//! The edit history: undo and redo step through what the user did one action at a time
//! (a prompt, a whole propagation, a reset), the last action first whatever its object,
//! as in any editor. Each entry keeps, for every (object, frame) it changed, the mask and
//! logits before and after, and how it changed the prompt log, so that undo and redo put
//! them back as they were without running the model (a propagation's masks come back
//! bit for bit). A new action drops what was undone.

use serde::Serialize;

use crate::app::error::{AppError, AppResult};
use crate::app::masks::{CellChange, MaskStore};
use crate::app::prompts::{PromptEntry, PromptStore};
use crate::app::propagation::Directions;
use crate::predictor::ImagePrompt;
use crate::session::video::ObjectId;

/// At most this many actions can be undone: older ones are forgotten.
const MAX_ENTRIES: usize = 100;
/// ... and at most this many bytes of masks and logits kept for them (a wasm32 engine has
/// 4 GiB in all; a prompt on a 1024² image keeps 4 MiB of logits before and after).
const MAX_BYTES: usize = 256 << 20;

/// What the user did, as one entry of the history.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// A prompt on one frame: a box (which starts the frame's prompt afresh) and/or
    /// points added to it.
    Prompt {
        obj: ObjectId,
        frame: usize,
        #[serde(rename = "box")]
        with_box: bool,
        points: usize,
    },
    /// A propagation over `first..=last`, to its end or to where it was cancelled.
    Propagation {
        direction: Directions,
        first: usize,
        last: usize,
    },
    /// Every prompt and mask of one object (`obj`) or of all (`None`) forgotten.
    Reset { obj: Option<ObjectId> },
    /// Every prompted frame segmented again with another model input window.
    Resegment,
}

/// How an action changed the prompt log.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptChange {
    None,
    /// One prompt given: the log's new last entry.
    Pushed(PromptEntry),
    /// The prompts of `obj` (all when `None`) removed, with their places in the log.
    Removed {
        obj: Option<ObjectId>,
        entries: Vec<(usize, PromptEntry)>,
    },
}

impl PromptChange {
    fn is_empty(&self) -> bool {
        match self {
            PromptChange::None => true,
            PromptChange::Pushed(_) => false,
            PromptChange::Removed { entries, .. } => entries.is_empty(),
        }
    }

    /// The (object, frame)s whose prompt it changed, in log order, each once.
    fn keys(&self) -> Vec<(ObjectId, usize)> {
        let mut keys: Vec<(ObjectId, usize)> = match self {
            PromptChange::None => vec![],
            PromptChange::Pushed(e) => vec![(e.obj, e.frame)],
            PromptChange::Removed { entries, .. } => {
                entries.iter().map(|(_, e)| (e.obj, e.frame)).collect()
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        keys.retain(|k| seen.insert(*k));
        keys
    }

    /// Takes the change back; on failure (the log is not as the change left it, which
    /// would be a bug) nothing changes.
    fn unapply(&self, prompts: &mut PromptStore) -> AppResult<()> {
        match self {
            PromptChange::None => {}
            PromptChange::Pushed(e) => {
                if !prompts.pop(e) {
                    return Err(out_of_step());
                }
            }
            PromptChange::Removed { entries, .. } => prompts.restore(entries),
        }
        Ok(())
    }

    /// Makes the change again; on failure nothing changes.
    fn apply(&self, prompts: &mut PromptStore) -> AppResult<()> {
        match self {
            PromptChange::None => {}
            PromptChange::Pushed(e) => prompts.push(e.obj, e.frame, e.prompt.clone()),
            PromptChange::Removed { obj, entries } => {
                let removed = prompts.remove_object(*obj);
                if &removed != entries {
                    prompts.restore(&removed);
                    return Err(out_of_step());
                }
            }
        }
        Ok(())
    }
}

fn out_of_step() -> AppError {
    AppError::engine("the undo history is out of step with the prompts (an internal error)")
}

/// One action and everything it changed.
#[derive(Clone, Debug)]
struct Entry {
    action: Action,
    prompts: PromptChange,
    cells: Vec<CellChange>,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.cells
            .iter()
            .map(|c| c.before.bytes() + c.after.bytes())
            .sum()
    }
}

/// An (object, frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FrameObject {
    pub obj: ObjectId,
    pub frame: usize,
}

/// The prompt of one (object, frame) now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FramePrompt {
    pub obj: ObjectId,
    pub frame: usize,
    /// `{box, points}`, or `None` when the frame has no prompt of the object now.
    #[serde(serialize_with = "crate::app::prompts::serialize_prompt")]
    pub prompt: Option<ImagePrompt>,
}

/// Whether there is something to undo or redo, and what.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryState {
    pub can_undo: bool,
    pub can_redo: bool,
    /// What an undo would take back.
    pub next_undo: Option<Action>,
    /// What a redo would do again.
    pub next_redo: Option<Action>,
}

/// What an undo or redo changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    /// The action undone or redone.
    pub action: Action,
    /// Each (object, frame) whose prompt changed, with its prompt now.
    pub prompts: Vec<FramePrompt>,
    /// Each (object, frame) whose mask (or logits) changed.
    pub masks: Vec<FrameObject>,
    /// The objects with a prompt or a mask now.
    pub objects: Vec<ObjectId>,
    #[serde(flatten)]
    pub history: HistoryState,
}

/// The actions done (oldest first), those undone (the next to redo last), and the one
/// under way (a propagation between its start and its end).
#[derive(Default)]
pub struct History {
    done: Vec<Entry>,
    undone: Vec<Entry>,
    open: Option<Action>,
}

impl History {
    /// Starts recording `action`: the mask store notes what it changes until
    /// [`History::commit`]. An action still open is committed first.
    pub fn begin(&mut self, action: Action, masks: &mut MaskStore) {
        self.commit(masks, PromptChange::None);
        self.open = Some(action);
        masks.start_journal();
    }

    /// Ends the open action (if any) as one entry, with how it changed the prompts. An
    /// action that changed nothing is no entry. A new entry drops what was undone.
    pub fn commit(&mut self, masks: &mut MaskStore, prompts: PromptChange) {
        let Some(action) = self.open.take() else {
            return;
        };
        let cells = masks.take_journal();
        if cells.is_empty() && prompts.is_empty() {
            return;
        }
        self.undone.clear();
        self.done.push(Entry {
            action,
            prompts,
            cells,
        });
        self.trim();
    }

    /// Forgets everything (a new document).
    pub fn clear(&mut self, masks: &mut MaskStore) {
        self.open = None;
        masks.take_journal();
        self.done.clear();
        self.undone.clear();
    }

    /// Drops the oldest entries beyond [`MAX_ENTRIES`] or [`MAX_BYTES`] (keeping the
    /// newest always).
    fn trim(&mut self) {
        let mut bytes: usize = self.done.iter().map(Entry::bytes).sum();
        let mut drop = 0;
        while self.done.len() - drop > 1
            && (self.done.len() - drop > MAX_ENTRIES || bytes > MAX_BYTES)
        {
            bytes -= self.done[drop].bytes();
            drop += 1;
        }
        self.done.drain(..drop);
    }

    /// Whether there is something to undo or redo; `masks` tells whether the open action
    /// has changed anything yet (it is what an undo would take back then).
    pub fn state(&self, masks: &MaskStore) -> HistoryState {
        let open = self.open.as_ref().filter(|_| masks.journal_changed());
        let next_undo = open.or(self.done.last().map(|e| &e.action)).cloned();
        let next_redo = self.undone.last().map(|e| e.action.clone());
        HistoryState {
            can_undo: next_undo.is_some(),
            can_redo: next_redo.is_some(),
            next_undo,
            next_redo,
        }
    }

    /// Takes back the last action (committing an open one first): its prompts and masks
    /// are as before it. `None` when there is nothing to undo.
    pub fn undo(
        &mut self,
        prompts: &mut PromptStore,
        masks: &mut MaskStore,
    ) -> AppResult<Option<Restored>> {
        self.commit(masks, PromptChange::None);
        let Some(entry) = self.done.pop() else {
            return Ok(None);
        };
        if let Err(e) = entry.prompts.unapply(prompts) {
            self.done.push(entry);
            return Err(e);
        }
        for c in &entry.cells {
            masks.set_cell(c.obj, c.frame, c.before.clone());
        }
        let restored = self.restored(&entry, prompts, masks);
        self.undone.push(entry);
        Ok(Some(self.with_state(restored, masks)))
    }

    /// Does the last undone action again: its prompts and masks are as after it. `None`
    /// when there is nothing to redo.
    pub fn redo(
        &mut self,
        prompts: &mut PromptStore,
        masks: &mut MaskStore,
    ) -> AppResult<Option<Restored>> {
        self.commit(masks, PromptChange::None);
        let Some(entry) = self.undone.pop() else {
            return Ok(None);
        };
        if let Err(e) = entry.prompts.apply(prompts) {
            self.undone.push(entry);
            return Err(e);
        }
        for c in &entry.cells {
            masks.set_cell(c.obj, c.frame, c.after.clone());
        }
        let restored = self.restored(&entry, prompts, masks);
        self.done.push(entry);
        Ok(Some(self.with_state(restored, masks)))
    }

    fn restored(&self, entry: &Entry, prompts: &PromptStore, masks: &MaskStore) -> Restored {
        let mut objects: Vec<ObjectId> = masks.objects().chain(prompts.objects()).collect();
        objects.sort_unstable();
        objects.dedup();
        Restored {
            action: entry.action.clone(),
            prompts: entry
                .prompts
                .keys()
                .into_iter()
                .map(|(obj, frame)| FramePrompt {
                    obj,
                    frame,
                    prompt: prompts.get(obj, frame).cloned(),
                })
                .collect(),
            masks: entry
                .cells
                .iter()
                .map(|c| FrameObject {
                    obj: c.obj,
                    frame: c.frame,
                })
                .collect(),
            objects,
            history: HistoryState::default(),
        }
    }

    fn with_state(&self, mut restored: Restored, masks: &MaskStore) -> Restored {
        restored.history = self.state(masks);
        restored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::mask_store::RleMask;

    fn mask(bits: &[u8]) -> RleMask {
        RleMask::encode(bits, 4, 1)
    }

    /// A prompt as the workspace records it: the prompt, its frame's mask and logits.
    fn prompt(
        h: &mut History,
        prompts: &mut PromptStore,
        masks: &mut MaskStore,
        (obj, frame): (ObjectId, usize),
        bits: &[u8],
    ) {
        let p = ImagePrompt::boxed([0.0, 0.0, 2.0 + frame as f32, 1.0]);
        h.begin(
            Action::Prompt {
                obj,
                frame,
                with_box: true,
                points: 0,
            },
            masks,
        );
        prompts.push(obj, frame, p.clone());
        masks.set(obj, frame, mask(bits));
        masks.set_prompt_logits(obj, frame, Some(bits.iter().map(|&b| b as f32).collect()));
        h.commit(
            masks,
            PromptChange::Pushed(PromptEntry {
                obj,
                frame,
                prompt: p,
            }),
        );
    }

    fn propagation(h: &mut History, masks: &mut MaskStore, obj: ObjectId, frames: &[usize]) {
        h.begin(
            Action::Propagation {
                direction: Directions::Forward,
                first: frames[0],
                last: frames[frames.len() - 1],
            },
            masks,
        );
        for (i, &f) in frames.iter().enumerate() {
            masks.set(obj, f, mask(&[0, 1, (i % 2) as u8, 1]));
        }
        h.commit(masks, PromptChange::None);
    }

    /// Every mask, logits and prompt, to compare whole states.
    fn snapshot(prompts: &PromptStore, masks: &MaskStore) -> (Vec<PromptEntry>, Vec<String>) {
        let mut cells = vec![];
        for obj in masks.objects() {
            for f in masks.frames_of(obj) {
                cells.push(format!("{obj}:{f}:{:?}", masks.cell(obj, f)));
            }
        }
        (prompts.log().to_vec(), cells)
    }

    #[test]
    fn undo_and_redo_step_through_prompts_and_propagations_exactly() {
        let (mut h, mut p, mut m) = (
            History::default(),
            PromptStore::default(),
            MaskStore::default(),
        );
        assert!(!h.state(&m).can_undo && h.undo(&mut p, &mut m).unwrap().is_none());
        let empty = snapshot(&p, &m);
        prompt(&mut h, &mut p, &mut m, (1, 2), &[1, 1, 0, 0]);
        let after_box = snapshot(&p, &m);
        propagation(&mut h, &mut m, 1, &[2, 3, 4, 5]);
        let after_run = snapshot(&p, &m);
        assert_eq!(
            h.state(&m)
                .next_undo
                .map(|a| matches!(a, Action::Propagation { .. })),
            Some(true)
        );

        // Undo of the propagation: the key frame's prompt mask is back, the rest gone.
        let r = h.undo(&mut p, &mut m).unwrap().unwrap();
        assert!(matches!(r.action, Action::Propagation { .. }));
        assert!(r.prompts.is_empty());
        let frames: Vec<usize> = r.masks.iter().map(|c| c.frame).collect();
        assert_eq!(frames, vec![2, 3, 4, 5]);
        assert_eq!(snapshot(&p, &m), after_box);
        assert!(r.history.can_undo && r.history.can_redo);
        // Redo: the propagated masks come back as they were.
        h.redo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(snapshot(&p, &m), after_run);
        // Twice undo: no prompt, no mask, no object.
        h.undo(&mut p, &mut m).unwrap().unwrap();
        let r = h.undo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(
            r.prompts,
            vec![FramePrompt {
                obj: 1,
                frame: 2,
                prompt: None
            }]
        );
        assert!(r.objects.is_empty() && !r.history.can_undo);
        assert_eq!(snapshot(&p, &m), empty);
        assert!(h.undo(&mut p, &mut m).unwrap().is_none());
        // Redo twice gets everything back; a third has nothing to redo.
        h.redo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(snapshot(&p, &m), after_box);
        h.redo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(snapshot(&p, &m), after_run);
        assert!(h.redo(&mut p, &mut m).unwrap().is_none());
    }

    #[test]
    fn a_new_action_drops_the_redo_and_a_reset_is_undone_in_place() {
        let (mut h, mut p, mut m) = (
            History::default(),
            PromptStore::default(),
            MaskStore::default(),
        );
        prompt(&mut h, &mut p, &mut m, (1, 0), &[1, 0, 0, 0]);
        prompt(&mut h, &mut p, &mut m, (2, 1), &[0, 1, 0, 0]);
        prompt(&mut h, &mut p, &mut m, (1, 1), &[0, 0, 1, 0]);
        h.undo(&mut p, &mut m).unwrap();
        assert!(h.state(&m).can_redo);
        prompt(&mut h, &mut p, &mut m, (1, 3), &[0, 0, 0, 1]);
        assert!(!h.state(&m).can_redo, "a new prompt drops what was undone");
        let before = snapshot(&p, &m);

        // A reset of object 1 as the workspace does it, then undo and redo.
        h.begin(Action::Reset { obj: Some(1) }, &mut m);
        let entries = p.remove_object(Some(1));
        m.remove_object(1);
        h.commit(
            &mut m,
            PromptChange::Removed {
                obj: Some(1),
                entries,
            },
        );
        let after = snapshot(&p, &m);
        assert_eq!(after.0.len(), 1);
        let r = h.undo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(
            snapshot(&p, &m),
            before,
            "prompts back in their order, masks back"
        );
        assert_eq!(r.objects, vec![1, 2]);
        let keys: Vec<_> = r.prompts.iter().map(|c| (c.obj, c.frame)).collect();
        assert_eq!(keys, vec![(1, 0), (1, 3)]);
        let r = h.redo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(snapshot(&p, &m), after);
        assert!(r.prompts.iter().all(|c| c.prompt.is_none()));
        // A reset with nothing to forget is no entry.
        h.begin(Action::Reset { obj: Some(7) }, &mut m);
        let entries = p.remove_object(Some(7));
        m.remove_object(7);
        h.commit(
            &mut m,
            PromptChange::Removed {
                obj: Some(7),
                entries,
            },
        );
        assert_eq!(h.state(&m).next_undo, Some(Action::Reset { obj: Some(1) }));
    }

    #[test]
    fn an_open_propagation_is_undone_whole_and_the_oldest_entries_go() {
        let (mut h, mut p, mut m) = (
            History::default(),
            PromptStore::default(),
            MaskStore::default(),
        );
        prompt(&mut h, &mut p, &mut m, (1, 0), &[1, 0, 0, 0]);
        let before = snapshot(&p, &m);
        h.begin(
            Action::Propagation {
                direction: Directions::Both,
                first: 0,
                last: 9,
            },
            &mut m,
        );
        assert_eq!(
            h.state(&m)
                .next_undo
                .map(|a| matches!(a, Action::Prompt { .. })),
            Some(true)
        );
        m.set(1, 1, mask(&[1, 1, 1, 1]));
        m.set(1, 1, mask(&[0, 1, 1, 1]));
        // A cancelled run (still open) is one entry with the frames it made.
        assert!(matches!(
            h.state(&m).next_undo,
            Some(Action::Propagation { .. })
        ));
        let r = h.undo(&mut p, &mut m).unwrap().unwrap();
        assert_eq!(r.masks, vec![FrameObject { obj: 1, frame: 1 }]);
        assert_eq!(snapshot(&p, &m), before);

        for i in 0..MAX_ENTRIES + 5 {
            prompt(&mut h, &mut p, &mut m, (1, i), &[1, 1, 0, 0]);
        }
        let mut undone = 0;
        while h.undo(&mut p, &mut m).unwrap().is_some() {
            undone += 1;
        }
        assert_eq!(undone, MAX_ENTRIES);
        assert_eq!(
            p.log().len(),
            6,
            "the oldest prompts can no longer be undone"
        );
    }

    #[test]
    fn a_log_out_of_step_is_an_error_that_changes_nothing() {
        let (mut h, mut p, mut m) = (
            History::default(),
            PromptStore::default(),
            MaskStore::default(),
        );
        prompt(&mut h, &mut p, &mut m, (1, 0), &[1, 0, 0, 0]);
        // A prompt the history never saw (a bug): the undo refuses.
        p.push(1, 5, ImagePrompt::boxed([0.0, 0.0, 1.0, 1.0]));
        let before = snapshot(&p, &m);
        let e = h.undo(&mut p, &mut m).unwrap_err();
        assert_eq!(e.kind, crate::app::ErrorKind::Engine);
        assert_eq!(snapshot(&p, &m), before);
        assert!(h.state(&m).can_undo);
    }
}
