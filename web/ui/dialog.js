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
