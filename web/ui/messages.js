// The page's status area: a log of what happened (newest first) and persistent notices.
// Nothing here writes to the console: every problem is shown on the page.
import { el, errorText } from './dom.js';

const MAX_MESSAGES = 60;
/** Longer messages show four lines until clicked, so one cannot fill the panel. */
const MAX_UNCLAMPED = 180;

export class Messages {
  /**
   * @param {HTMLElement} list   the <ol> that holds the log
   * @param {HTMLElement} notices the container of persistent notices (banner)
   */
  constructor(list, notices) {
    this.list = list;
    this.notices = notices;
    /** @type {Map<string, {node: HTMLElement, level: string, next: HTMLElement, at: number}>} */
    this.noticeMap = new Map();
    this.noticeSeq = 0;
    /** @type {string | null} the key of the notice on show */
    this.current = null;
    this.last = { text: '', at: 0 };
  }

  info(text) {
    return this.add('info', text);
  }

  warn(text) {
    return this.add('warn', text);
  }

  ok(text) {
    return this.add('ok', text);
  }

  /**
   * Logs an error; `context` says what was being done ("Opening ct.nii.gz"). The latest
   * error also stays in view under the header until dismissed or replaced, unless
   * `banner` is false (when a notice already says it).
   */
  error(context, err, { banner = true } = {}) {
    const text = err === undefined ? errorText(context) : `${context}: ${errorText(err)}`;
    if (banner) this.notice('last-error', 'error', text);
    return this.add('error', text);
  }

  add(level, text) {
    const now = Date.now();
    // The same message twice in a row within a second is shown once.
    if (this.last.text === `${level}:${text}` && now - this.last.at < 1000) return null;
    this.last = { text: `${level}:${text}`, at: now };
    const time = new Date(now).toLocaleTimeString([], { hour12: false });
    const item = el(
      'li',
      { class: `msg msg-${level}` },
      el('time', { datetime: new Date(now).toISOString() }, time),
      el('span', { class: 'msg-level' }, LEVEL_LABEL[level] ?? level),
      el('span', { class: `msg-text${text.length > MAX_UNCLAMPED ? ' clamped' : ''}`, title: text.length > MAX_UNCLAMPED ? text : undefined, onclick: (e) => e.currentTarget.classList.remove('clamped') }, text),
    );
    this.list.prepend(item);
    while (this.list.children.length > MAX_MESSAGES) this.list.lastElementChild.remove();
    return item;
  }

  /**
   * Shows (or replaces) a persistent notice in the one-line strip under the header; `text`
   * null removes it. `level`: info | warn | error. The strip shows one notice at a time
   * (the newest of the most severe level; a counter steps to the others) and never
   * changes height, so the image does not move when one appears.
   */
  notice(key, level, text) {
    const old = this.noticeMap.get(key);
    if (old) old.node.remove();
    this.noticeMap.delete(key);
    if (text) {
      const next = el('button', {
        class: 'notice-next',
        type: 'button',
        title: 'Show the next notice',
        onclick: () => this.showNextNotice(),
      });
      const node = el(
        'div',
        { class: `notice notice-${level}`, role: level === 'error' ? 'alert' : 'status', 'data-key': key },
        el('span', { class: 'notice-text', title: text }, text),
        next,
        el(
          'button',
          {
            class: 'notice-close',
            type: 'button',
            'aria-label': 'Dismiss notice',
            title: 'Dismiss',
            onclick: () => this.notice(key, level, null),
          },
          '×',
        ),
      );
      this.noticeMap.set(key, { node, level, next, at: ++this.noticeSeq });
      this.notices.append(node);
    }
    this.current = this.mostUrgentNotice();
    this.showCurrentNotice();
  }

  /** The key of the notice to show: the newest of the most severe level. */
  mostUrgentNotice() {
    let best = null;
    for (const [key, n] of this.noticeMap) {
      const b = best && this.noticeMap.get(best);
      if (!b || SEVERITY[n.level] > SEVERITY[b.level] || (SEVERITY[n.level] === SEVERITY[b.level] && n.at > b.at)) best = key;
    }
    return best;
  }

  showNextNotice() {
    const keys = [...this.noticeMap.keys()];
    const i = keys.indexOf(this.current);
    this.current = keys[(i + 1) % keys.length] ?? null;
    this.showCurrentNotice();
  }

  showCurrentNotice() {
    const count = this.noticeMap.size;
    for (const [key, n] of this.noticeMap) {
      n.node.classList.toggle('current', key === this.current);
      n.next.hidden = count < 2;
      n.next.textContent = `${[...this.noticeMap.keys()].indexOf(key) + 1} of ${count} ›`;
    }
  }
}

/** A notice's priority in the strip. */
const SEVERITY = { info: 0, warn: 1, error: 2 };

const LEVEL_LABEL = { info: 'info', warn: 'warning', ok: 'done', error: 'error' };
