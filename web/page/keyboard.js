// Keyboard shortcuts (listed on the page).
import { ui, state } from './state.js';
import { setFrame } from './view.js';
import { nextDisplayWindow } from './documents.js';
import { selectObject, newObject } from './objects.js';
import { undo, redo, setTool } from './prompts.js';
import { propagate, cancelWork } from './propagation.js';

function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable) return true;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  if (target instanceof HTMLInputElement) return !['checkbox', 'radio', 'button', 'color', 'file'].includes(target.type);
  return false;
}

window.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    cancelWork();
    return;
  }
  if (isTyping(e.target) || e.altKey) return;
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (ctrl) {
    // Ctrl+Z undoes; Ctrl+Shift+Z and Ctrl+Y redo (Cmd on a Mac).
    if (key === 'z' || key === 'y') {
      e.preventDefault();
      if (key === 'z' && !e.shiftKey) undo();
      else redo();
    }
    return;
  }
  let handled = true;
  switch (key) {
    case 'b':
      setTool('box');
      break;
    case 'p':
      setTool(e.shiftKey ? 'point-' : 'point+');
      break;
    case 'ArrowLeft':
      setFrame(state.frame - (e.shiftKey ? 10 : 1));
      break;
    case 'ArrowRight':
      setFrame(state.frame + (e.shiftKey ? 10 : 1));
      break;
    case 'PageUp':
      setFrame(state.frame - 10);
      break;
    case 'PageDown':
      setFrame(state.frame + 10);
      break;
    case 'Home':
      setFrame(0);
      break;
    case 'End':
      setFrame((state.doc?.frameCount ?? 1) - 1);
      break;
    case 'f':
      if (!ui.propForward.disabled) propagate('forward');
      break;
    case 'r':
      if (!ui.propBackward.disabled) propagate('backward');
      break;
    case 'a':
      if (!ui.propBoth.disabled) propagate('both');
      break;
    case 'n':
      if (!ui.addObject.disabled) newObject();
      break;
    case 'w':
      if (!ui.windowRow.hidden) nextDisplayWindow();
      break;
    default:
      if (/^[1-9]$/.test(key)) {
        const obj = state.objects[Number(key) - 1];
        if (obj) selectObject(obj.id);
      } else {
        handled = false;
      }
  }
  if (handled) e.preventDefault();
});
