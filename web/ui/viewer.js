// The main canvas: draws the frame scaled to fit, the mask overlays, the prompts, and turns
// pointer input (mouse, touch, pen) into box and point prompts in image pixel coordinates.
import { clamp } from './dom.js';

const BG = '#000000';
/** A drag shorter than this (CSS pixels) is a click, not a box. */
const MIN_DRAG = 4;

export class Viewer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} handlers {onBox([x0,y0,x1,y1]), onPoint(x, y, label), onHover(x, y | null),
   *   onWheel(steps)}
   */
  constructor(canvas, handlers) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.handlers = handlers;
    this.frame = null; // canvas holding the frame at its own resolution
    this.imgW = 0;
    this.imgH = 0;
    this.aspect = 1; // physical height of a pixel / its width (volumes with spacing)
    this.overlays = []; // [{canvas}]
    this.prompts = []; // [{color, selected, box, points}]
    this.tool = 'box';
    this.enabled = false;
    this.drag = null;
    this.hint = '';
    this.cssW = 0;
    this.cssH = 0;
    this.fit = { ox: 0, oy: 0, sx: 1, sy: 1 };
    this.wheelAcc = 0;
    this.bind();
    this.resize(false);
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
  }

  bind() {
    const c = this.canvas;
    c.addEventListener('pointerdown', (e) => this.onDown(e));
    c.addEventListener('pointermove', (e) => this.onMove(e));
    c.addEventListener('pointerup', (e) => this.onUp(e));
    c.addEventListener('pointercancel', () => this.cancelDrag());
    c.addEventListener('pointerleave', () => this.handlers.onHover?.(null));
    c.addEventListener('contextmenu', (e) => e.preventDefault());
    c.addEventListener(
      'wheel',
      (e) => {
        if (!this.frame) return;
        e.preventDefault();
        this.wheelAcc += e.deltaMode === 1 ? e.deltaY * 40 : e.deltaY;
        const steps = Math.trunc(this.wheelAcc / 60);
        if (steps) {
          this.wheelAcc -= steps * 60;
          this.handlers.onWheel?.(steps);
        }
      },
      { passive: false },
    );
  }

  /** Scale (display pixels per image pixel, horizontal). */
  get scale() {
    return this.fit.sx;
  }

  /** Matches the canvas to its box; `notify` tells the page (not during construction). */
  resize(notify = true) {
    const parent = this.canvas.parentElement;
    const w = Math.max(1, parent.clientWidth);
    const h = Math.max(1, parent.clientHeight);
    const dpr = window.devicePixelRatio || 1;
    this.cssW = w;
    this.cssH = h;
    const bw = Math.round(w * dpr);
    const bh = Math.round(h * dpr);
    if (this.canvas.width !== bw || this.canvas.height !== bh) {
      this.canvas.width = bw;
      this.canvas.height = bh;
    }
    this.dpr = dpr;
    this.computeFit();
    this.draw();
    if (notify) this.handlers.onResize?.();
  }

  computeFit() {
    if (!this.imgW) return;
    const pad = 8;
    const availW = Math.max(1, this.cssW - 2 * pad);
    const availH = Math.max(1, this.cssH - 2 * pad);
    const physH = this.imgH * this.aspect;
    const s = Math.min(availW / this.imgW, availH / physH);
    const dw = this.imgW * s;
    const dh = physH * s;
    this.fit = { ox: (this.cssW - dw) / 2, oy: (this.cssH - dh) / 2, sx: s, sy: s * this.aspect, dw, dh };
  }

  /** Sets the frame canvas (or null to clear), its size and the pixel aspect. */
  setFrame(frameCanvas, aspect = 1) {
    this.frame = frameCanvas;
    const w = frameCanvas ? frameCanvas.width : 0;
    const h = frameCanvas ? frameCanvas.height : 0;
    const changed = w !== this.imgW || h !== this.imgH || aspect !== this.aspect;
    this.imgW = w;
    this.imgH = h;
    this.aspect = aspect > 0 && Number.isFinite(aspect) ? aspect : 1;
    if (changed) this.computeFit();
  }

  setOverlays(list) {
    this.overlays = list;
  }

  setPrompts(list) {
    this.prompts = list;
  }

  setTool(tool) {
    this.tool = tool;
    this.cancelDrag();
  }

  setEnabled(on) {
    this.enabled = on;
    if (!on) this.cancelDrag();
  }

  setHint(text) {
    this.hint = text || '';
  }

  /** CSS pixel position of a pointer event -> image coordinates (unclamped). */
  toImage(e) {
    const r = this.canvas.getBoundingClientRect();
    const cx = e.clientX - r.left;
    const cy = e.clientY - r.top;
    return { x: (cx - this.fit.ox) / this.fit.sx, y: (cy - this.fit.oy) / this.fit.sy, cx, cy };
  }

  inside(p) {
    return p.x >= 0 && p.y >= 0 && p.x < this.imgW && p.y < this.imgH;
  }

  onDown(e) {
    if (!this.frame || !this.enabled) return;
    if (e.pointerType === 'mouse' && e.button !== 0 && e.button !== 2) return;
    const p = this.toImage(e);
    if (!this.inside(p)) return;
    e.preventDefault();
    this.canvas.focus({ preventScroll: true });
    this.canvas.setPointerCapture(e.pointerId);
    this.drag = { id: e.pointerId, start: p, end: p, button: e.button, alt: e.altKey || e.shiftKey };
    this.handlers.onPromptStart?.();
    this.draw();
  }

  onMove(e) {
    if (!this.frame) return;
    const p = this.toImage(e);
    this.handlers.onHover?.(this.inside(p) ? p : null);
    if (!this.drag || this.drag.id !== e.pointerId) return;
    this.drag.end = p;
    if (this.tool === 'box') this.draw();
  }

  onUp(e) {
    const d = this.drag;
    if (!d || d.id !== e.pointerId) return;
    this.drag = null;
    d.end = this.toImage(e);
    const moved = Math.hypot(d.end.cx - d.start.cx, d.end.cy - d.start.cy);
    const W = this.imgW - 1;
    const H = this.imgH - 1;
    if (this.tool === 'box') {
      if (moved >= MIN_DRAG) {
        const x0 = clamp(Math.round(Math.min(d.start.x, d.end.x)), 0, W);
        const y0 = clamp(Math.round(Math.min(d.start.y, d.end.y)), 0, H);
        const x1 = clamp(Math.round(Math.max(d.start.x, d.end.x)), 0, W);
        const y1 = clamp(Math.round(Math.max(d.start.y, d.end.y)), 0, H);
        if (x1 > x0 && y1 > y0) this.handlers.onBox?.([x0, y0, x1, y1]);
      } else {
        this.handlers.onTooSmall?.();
      }
    } else if (moved < MIN_DRAG * 2) {
      let label = this.tool === 'point-' ? 0 : 1;
      // Right button or Shift/Alt inverts the point's label.
      if (d.button === 2 || d.alt) label = 1 - label;
      const x = clamp(Math.floor(d.start.x), 0, W);
      const y = clamp(Math.floor(d.start.y), 0, H);
      this.handlers.onPoint?.(x, y, label);
    }
    this.draw();
  }

  cancelDrag() {
    if (!this.drag) return false;
    this.drag = null;
    this.draw();
    return true;
  }

  draw() {
    const { ctx, dpr } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = BG;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!this.frame) {
      this.drawHint();
      return;
    }
    const { ox, oy, dw, dh, sx, sy } = this.fit;
    ctx.imageSmoothingEnabled = sx < 1;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(this.frame, ox, oy, dw, dh);
    ctx.imageSmoothingEnabled = false;
    for (const ov of this.overlays) ctx.drawImage(ov.canvas, ox, oy, dw, dh);
    const X = (x) => ox + x * sx;
    const Y = (y) => oy + y * sy;
    for (const p of this.prompts) {
      if (p.box) {
        const [x0, y0, x1, y1] = p.box;
        ctx.lineWidth = p.selected ? 2 : 1.25;
        ctx.setLineDash(p.selected ? [] : [5, 4]);
        ctx.strokeStyle = p.color;
        ctx.strokeRect(X(x0), Y(y0), (x1 - x0) * sx, (y1 - y0) * sy);
        ctx.setLineDash([]);
      }
      for (const [x, y, label] of p.points) {
        const cx = X(x + 0.5);
        const cy = Y(y + 0.5);
        ctx.beginPath();
        ctx.arc(cx, cy, 6, 0, Math.PI * 2);
        ctx.fillStyle = label ? '#22c55e' : '#ef4444';
        ctx.fill();
        ctx.lineWidth = 1.5;
        ctx.strokeStyle = p.selected ? '#ffffff' : p.color;
        ctx.stroke();
        ctx.beginPath();
        ctx.moveTo(cx - 3, cy);
        ctx.lineTo(cx + 3, cy);
        if (label) {
          ctx.moveTo(cx, cy - 3);
          ctx.lineTo(cx, cy + 3);
        }
        ctx.strokeStyle = '#ffffff';
        ctx.stroke();
      }
    }
    if (this.drag && this.tool === 'box') {
      const a = this.drag.start;
      const b = this.drag.end;
      const x0 = clamp(Math.min(a.x, b.x), 0, this.imgW);
      const y0 = clamp(Math.min(a.y, b.y), 0, this.imgH);
      const x1 = clamp(Math.max(a.x, b.x), 0, this.imgW);
      const y1 = clamp(Math.max(a.y, b.y), 0, this.imgH);
      ctx.lineWidth = 1.5;
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = '#ffffff';
      ctx.strokeRect(X(x0), Y(y0), (x1 - x0) * sx, (y1 - y0) * sy);
      ctx.setLineDash([]);
    }
    this.drawHint();
  }

  drawHint() {
    if (!this.hint) return;
    const { ctx } = this;
    ctx.font = '14px system-ui, sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    const lines = this.hint.split('\n');
    const y0 = this.frame ? 22 : this.cssH / 2 - (lines.length - 1) * 11;
    lines.forEach((line, i) => {
      const y = y0 + i * 22;
      const w = ctx.measureText(line).width + 16;
      if (this.frame) {
        ctx.fillStyle = 'rgba(0,0,0,0.6)';
        ctx.fillRect(this.cssW / 2 - w / 2, y - 11, w, 22);
      }
      ctx.fillStyle = this.frame ? '#e6ebf2' : '#7d8799';
      ctx.fillText(line, this.cssW / 2, y);
    });
  }
}
