// The page's status area: a log of what happened (newest first) and persistent notices.
// Nothing here writes to the console: every problem is shown on the page.
import { el, errorText } from './dom.js';

const MAX_MESSAGES = 60;

export class Messages {
  /**
   * @param {HTMLElement} list   the <ol> that holds the log
   * @param {HTMLElement} notices the container of persistent notices (banner)
   */
  constructor(list, notices) {
    this.list = list;
    this.notices = notices;
    this.noticeMap = new Map();
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
      el('span', { class: 'msg-text' }, text),
    );
    this.list.prepend(item);
    while (this.list.children.length > MAX_MESSAGES) this.list.lastElementChild.remove();
    return item;
  }

  /**
   * Shows (or replaces) a persistent notice under the header; `text` null removes it.
   * `level`: info | warn | error.
   */
  notice(key, level, text) {
    const old = this.noticeMap.get(key);
    if (old) old.remove();
    this.noticeMap.delete(key);
    if (text) {
      const node = el(
        'div',
        { class: `notice notice-${level}`, role: level === 'error' ? 'alert' : 'status' },
        el('span', { class: 'notice-text' }, text),
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
      this.noticeMap.set(key, node);
      this.notices.append(node);
    }
    this.notices.hidden = this.noticeMap.size === 0;
  }
}

const LEVEL_LABEL = { info: 'info', warn: 'warning', ok: 'done', error: 'error' };
