// A modal question: a <dialog> with a title, a text and buttons; answers the value of the
// button chosen (Esc or closing it answers `cancel`). One dialog element serves every
// question (index.html's #dialog); a second question waits for the first.
import { el } from './dom.js';

let queue = Promise.resolve();

/**
 * @param {HTMLDialogElement} dialog
 * @param {{title: string, text: string | string[], buttons: {label: string, value: string, primary?: boolean}[], cancel?: string}} q
 * @returns {Promise<string>}
 */
export function ask(dialog, { title, text, buttons, cancel = 'cancel' }) {
  const answer = queue.then(
    () =>
      new Promise((resolve) => {
        const paragraphs = (Array.isArray(text) ? text : [text]).map((t) => el('p', {}, t));
        const row = el(
          'div',
          { class: 'dialog-buttons' },
          buttons.map((b) =>
            el('button', { type: 'button', class: b.primary ? 'primary' : '', value: b.value, onclick: () => dialog.close(b.value) }, b.label),
          ),
        );
        dialog.replaceChildren(el('h2', { class: 'dialog-title', id: 'dialog-title' }, title), ...paragraphs, row);
        dialog.returnValue = '';
        dialog.addEventListener('close', () => resolve(dialog.returnValue || cancel), { once: true });
        dialog.showModal();
        /** @type {HTMLButtonElement | null} */ (row.querySelector('button.primary') ?? row.querySelector('button'))?.focus();
      }),
  );
  queue = answer.catch(() => undefined);
  return answer;
}

/**
 * A choice among items: a modal list of buttons, one per item (its cells side by side),
 * and Cancel. Arrow keys move between the items, Enter or a click chooses one, Esc
 * cancels. Answers the chosen item's value, or null.
 * @param {HTMLDialogElement} dialog
 * @param {{title: string, text: string | string[], items: {value: string, cells: string[], label?: string}[], head?: string[]}} q
 * @returns {Promise<string | null>}
 */
export function pick(dialog, { title, text, items, head = [] }) {
  const answer = queue.then(
    () =>
      new Promise((resolve) => {
        const paragraphs = (Array.isArray(text) ? text : [text]).map((t) => el('p', {}, t));
        const header = head.length ? el('div', { class: 'pick-row pick-head', 'aria-hidden': 'true' }, head.map((h) => el('span', {}, h))) : null;
        const buttons = items.map((it, i) =>
          el(
            'button',
            { type: 'button', class: 'pick-row', value: `pick:${i}`, 'aria-label': it.label ?? it.cells.join(', '), onclick: () => dialog.close(`pick:${i}`) },
            it.cells.map((c) => el('span', {}, c)),
          ),
        );
        const list = el('div', { class: 'pick-list', role: 'group', 'aria-label': title }, header, buttons);
        list.addEventListener('keydown', (e) => {
          const at = buttons.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
          if (at < 0 || !['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(e.key)) return;
          e.preventDefault();
          const next = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[e.key];
          buttons[Math.max(0, Math.min(buttons.length - 1, next))].focus();
        });
        const row = el('div', { class: 'dialog-buttons' }, el('button', { type: 'button', value: 'cancel', onclick: () => dialog.close('cancel') }, 'Cancel'));
        dialog.replaceChildren(el('h2', { class: 'dialog-title', id: 'dialog-title' }, title), ...paragraphs, list, row);
        dialog.returnValue = '';
        dialog.addEventListener(
          'close',
          () => {
            const m = /^pick:(\d+)$/.exec(dialog.returnValue);
            resolve(m ? items[Number(m[1])].value : null);
          },
          { once: true },
        );
        dialog.showModal();
        buttons[0]?.focus();
      }),
  );
  queue = answer.catch(() => undefined);
  return answer;
}
