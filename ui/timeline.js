// The zoomable timeline of the recordings page: one lane per camera (one, or several stacked),
// each showing its recorded runs (the gaps between them are what was not recorded) and its
// events as markers coloured by kind; a time axis whose ticks follow the zoom, a playhead at the
// moment on screen, and a hover line with the time and a preview picture under the pointer.
//
// It zooms from a week to a minute (wheel, pinch, the page's buttons, + and -), pans by dragging
// (or Shift and the arrow keys), and jumps to the previous or next event with the arrow keys.
// It draws only what is in view, and merges what falls on the same pixel, so a week of a camera
// that reconnected often costs no more elements than the track is wide. It knows nothing of
// the API: the page gives it lanes and is told what the user asked for.

import { h, mount } from './dom.js';

export const MINUTE = 60000;
export const HOUR = 3600000;
export const DAY = 86400000;
export const MIN_SPAN = MINUTE;
export const MAX_SPAN = 7 * DAY;

const STEPS = [1, 5, 10, 15, 30].map((s) => s * 1000)
  .concat([1, 2, 5, 10, 15, 30].map((m) => m * MINUTE))
  .concat([1, 2, 3, 6, 12].map((x) => x * HOUR), [1, 2, 7].map((d) => d * DAY));

const KINDS = ['motion', 'person', 'line', 'intrusion', 'tamper'];
/** The colour class of an event kind (the camera's own kinds beyond these share one). */
export const kindClass = (kind) => (KINDS.includes(kind) ? kind : 'other');

export const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
export const dayWords = (ms) => new Date(ms).toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' });
export const when = (ms) => `${dayWords(ms)} ${clock(ms)}`;

/** "1 min", "3 h", "2 days": the width of the view in words. */
export function spanWords(ms) {
  if (ms >= 2 * DAY) return `${Math.round(ms / DAY)} days`;
  if (ms >= 2 * HOUR) return `${Math.round(ms / HOUR)} h`;
  if (ms >= 2 * MINUTE) return `${Math.round(ms / MINUTE)} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** Items overlapping [from, to), those closer than `px` ms merged into one. */
function merged(items, from, to, px) {
  const out = [];
  for (const it of items) {
    const a = it.start_ms;
    const b = it.end_ms ?? Math.max(it.start_ms, Date.now()); // an ongoing event lasts until now
    if (b < from || a >= to) continue;
    const last = out[out.length - 1];
    if (last && a - last.b <= px) {
      last.b = Math.max(last.b, b);
      last.n += 1;
    } else {
      out.push({ a, b, n: 1, first: it });
    }
  }
  return out;
}

/** Round local times in [from, to) every `step` ms (local midnights for a day). */
function tickTimes(from, to, step) {
  const out = [];
  if (step >= DAY) {
    const d = new Date(from);
    d.setHours(0, 0, 0, 0);
    if (d.getTime() < from) d.setDate(d.getDate() + 1);
    const stride = Math.round(step / DAY);
    for (; d.getTime() < to && out.length < 50; d.setDate(d.getDate() + stride)) out.push(d.getTime());
    return out;
  }
  const off = new Date(from).getTimezoneOffset() * MINUTE;
  for (let t = Math.ceil((from - off) / step) * step + off; t < to && out.length < 50; t += step) out.push(t);
  return out;
}

export class Timeline {
  /**
   * @param {object} o
   * @param {(from: number, span: number) => void} o.onView the view moved or zoomed
   * @param {(lane: object, t: number) => void} o.onPlay a click (or Enter) at `t` in a lane
   * @param {(lane: object, a: number, b: number) => void} o.onSelect a range selected in a lane
   * @param {(ev: object) => void} o.onEvent an event marker chosen
   * @param {(dir: number) => void} o.onJump the previous (-1) or next (1) event asked for
   * @param {(lane: object, t: number, slack: number) => string|null} o.previewAt a picture's URL
   */
  constructor(o) {
    this.o = o;
    this.lanes = [];
    this.from = Date.now() - HOUR;
    this.span = HOUR;
    this.playhead = null;
    this.selecting = false; // the next drag selects instead of panning
    this.lanesEl = h('div.lanes');
    this.ticks = h('div.ticks', { 'aria-hidden': 'true' });
    this.head = h('span.playhead', { hidden: true, 'aria-hidden': 'true' });
    this.hover = h('span.hover', { hidden: true, 'aria-hidden': 'true' }, h('span.hover-time'));
    this.sel = h('span.sel', { hidden: true });
    // The recorded picture (MJPEG) or the nearest event's thumbnail under the pointer.
    this.preview = h('img.preview', { hidden: true, alt: '', 'aria-hidden': 'true' });
    this.help = h('p.sr', { id: 'timeline-help' },
      'Left and right arrows: previous or next event. Shift with arrows: move earlier or later. Plus and minus: zoom. Enter: play from the middle of the view.');
    this.el = h('div.timeline', {
      id: 'timeline', tabindex: '0', role: 'group', 'aria-roledescription': 'timeline',
      'aria-describedby': 'timeline-help',
    }, this.help, this.lanesEl, this.ticks, this.preview);
    this.wire();
  }

  label() {
    return `Recordings timeline, ${dayWords(this.from)} ${clock(this.from)} to ${dayWords(this.from + this.span)} ${clock(this.from + this.span)}`;
  }

  /** The time under a client x (clamped to the view). */
  timeAt(x) {
    const box = this.lanesEl.getBoundingClientRect();
    return this.from + Math.max(0, Math.min(1, (x - box.left) / (box.width || 1))) * this.span;
  }

  msPerPx() { return this.span / (this.lanesEl.getBoundingClientRect().width || 1000); }

  laneAt(y) {
    for (const el of this.lanesEl.querySelectorAll(':scope > .lane')) {
      const b = el.getBoundingClientRect();
      if (y >= b.top && y < b.bottom) return this.lanes[Number(el.dataset.i)];
    }
    return this.lanes[0];
  }

  /** Stops watching the page's width (when the page is left). */
  destroy() { this.resize.disconnect(); }

  setLanes(lanes) {
    this.lanes = lanes;
    this.draw();
  }

  /** Moves the view (clamped to a minute..a week, and to no later than a day from now). */
  setView(from, span, quiet = false) {
    span = Math.max(MIN_SPAN, Math.min(MAX_SPAN, span));
    from = Math.min(from, Date.now() + DAY - span);
    const changed = from !== this.from || span !== this.span;
    this.from = from;
    this.span = span;
    this.draw();
    if (changed && !quiet) this.o.onView(this.from, this.span);
  }

  /** Zooms by `factor` (< 1 in) keeping the time `anchor` where it is on screen. */
  zoom(factor, anchor = this.playhead ?? this.from + this.span / 2) {
    const at = Math.max(this.from, Math.min(this.from + this.span, anchor));
    const span = Math.max(MIN_SPAN, Math.min(MAX_SPAN, this.span * factor));
    const frac = (at - this.from) / this.span;
    this.setView(at - frac * span, span);
  }

  pan(fraction) { this.setView(this.from + this.span * fraction, this.span); }

  /** Puts `t` in view (centred when it was outside). */
  reveal(t) {
    if (t < this.from || t > this.from + this.span) this.setView(t - this.span / 2, this.span);
  }

  setPlayhead(t) {
    this.playhead = t;
    this.placeHead();
  }

  placeHead() {
    const t = this.playhead;
    const show = t !== null && t >= this.from && t <= this.from + this.span;
    this.head.hidden = !show;
    if (show) this.head.style.left = `${((t - this.from) / this.span) * 100}%`;
  }

  pct(t) { return `${((t - this.from) / this.span) * 100}%`; }

  draw() {
    const { from, span } = this;
    const to = from + span;
    const px = this.msPerPx();
    this.el.setAttribute('aria-label', this.label());
    const lanes = this.lanes.map((lane, i) => {
      const runs = merged(lane.runs, from, to, px).map((r) => h('span.run', {
        title: r.n > 1 ? `${r.n} recordings, ${clock(r.a)} – ${clock(r.b)}` : `Recorded ${clock(r.a)} – ${clock(r.b)}`,
        dataset: { codec: r.first.codec || '' },
        style: { left: this.pct(Math.max(r.a, from)), width: this.pct(from + Math.min(r.b, to) - Math.max(r.a, from)) },
      }));
      const marks = merged(lane.events, from, to, px * 3).map((e) => h('span.ev', {
        title: `${e.first.kind}${e.n > 1 ? ` and ${e.n - 1} more` : ''} at ${clock(e.a)}`,
        dataset: { kind: kindClass(e.first.kind), id: e.first.id },
        style: { left: this.pct(Math.max(e.a, from)), width: this.pct(from + Math.min(Math.max(e.b, e.a + px * 3), to) - Math.max(e.a, from)) },
      }));
      return h('div.lane', { dataset: { i: String(i), camera: lane.id } },
        this.lanes.length > 1 || lane.label ? h('span.lane-label', lane.label) : null,
        h('div.track', runs, marks));
    });
    mount(this.lanesEl, lanes.length ? lanes : h('div.lane', h('div.track')), this.sel, this.head, this.hover);
    // Ticks: as many as fit one per ~90 px, on round local times.
    const width = this.lanesEl.getBoundingClientRect().width || 1000;
    const step = STEPS.find((s) => (span / s) * 90 <= width) || 7 * DAY;
    const ticks = [];
    for (const t of tickTimes(from, to, step)) {
      const d = new Date(t);
      const midnight = d.getHours() === 0 && d.getMinutes() === 0;
      const text = step >= DAY || (midnight && step >= HOUR) ? dayWords(t)
        : step < MINUTE ? clock(t)
          : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      ticks.push(h('span.tick', { style: { left: this.pct(t) } }, text));
    }
    mount(this.ticks, ticks);
    this.sel.hidden = !this.selection;
    if (this.selection) this.placeSel(...this.selection);
    this.placeHead();
  }

  placeSel(a, b) {
    this.sel.hidden = false;
    this.sel.style.left = this.pct(Math.max(a, this.from));
    this.sel.style.width = this.pct(this.from + Math.min(b, this.from + this.span) - Math.max(a, this.from));
  }

  clearSelection() {
    this.selection = null;
    this.sel.hidden = true;
  }

  showHover(ev) {
    const t = this.timeAt(ev.clientX);
    const box = this.lanesEl.getBoundingClientRect();
    this.hover.hidden = false;
    this.hover.style.left = `${ev.clientX - box.left}px`;
    this.hover.firstChild.textContent = this.span <= 2 * DAY ? clock(t) : when(t);
    const src = this.o.previewAt(this.laneAt(ev.clientY), t, this.msPerPx() * 6);
    if (!src) {
      this.preview.hidden = true;
      return;
    }
    this.preview.style.left = `${Math.max(80, Math.min(box.width - 80, ev.clientX - box.left))}px`;
    this.preview.hidden = false;
    this.wanted = src;
    // One request at a time: the latest position is asked for when the previous one is in.
    if (!this.preview.getAttribute('src') || this.preview.complete) this.loadWanted();
  }

  loadWanted() {
    if (!this.wanted || this.preview.getAttribute('src') === this.wanted) return;
    this.preview.src = this.wanted;
  }

  hideHover() {
    this.hover.hidden = true;
    this.preview.hidden = true;
    this.wanted = null;
  }

  wire() {
    const el = this.el;
    const lanes = this.lanesEl;
    this.preview.addEventListener('load', () => this.loadWanted());
    this.preview.addEventListener('error', () => this.loadWanted());
    const pointers = new Map(); // id → {x, y}, for pinch
    let down = null; // {x, t, from, lane, mode, moved}
    let pinch = null; // {dist, span, anchor}
    lanes.addEventListener('pointerdown', (ev) => {
      if (ev.button !== 0) return;
      pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
      lanes.setPointerCapture(ev.pointerId);
      if (pointers.size === 2) {
        const [p, q] = [...pointers.values()];
        pinch = { dist: Math.abs(p.x - q.x) || 1, span: this.span, anchor: this.timeAt((p.x + q.x) / 2) };
        down = null;
        return;
      }
      down = {
        x: ev.clientX, t: this.timeAt(ev.clientX), from: this.from, lane: this.laneAt(ev.clientY),
        mode: this.selecting || ev.shiftKey ? 'select' : 'pan', moved: false, target: ev.target,
      };
    });
    lanes.addEventListener('pointermove', (ev) => {
      if (pointers.has(ev.pointerId)) pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
      if (pinch && pointers.size === 2) {
        const [p, q] = [...pointers.values()];
        const dist = Math.abs(p.x - q.x) || 1;
        const span = Math.max(MIN_SPAN, Math.min(MAX_SPAN, pinch.span * (pinch.dist / dist)));
        const frac = ((p.x + q.x) / 2 - lanes.getBoundingClientRect().left) / (lanes.getBoundingClientRect().width || 1);
        this.setView(pinch.anchor - frac * span, span);
        return;
      }
      if (!down) {
        if (ev.pointerType === 'mouse') this.showHover(ev);
        return;
      }
      if (!down.moved && Math.abs(ev.clientX - down.x) < 4) return;
      down.moved = true;
      this.hideHover();
      if (down.mode === 'pan') {
        const box = lanes.getBoundingClientRect();
        this.setView(down.from - ((ev.clientX - down.x) / (box.width || 1)) * this.span, this.span);
      } else {
        const [a, b] = [down.t, this.timeAt(ev.clientX)].sort((x, y) => x - y);
        this.selection = [a, b];
        this.placeSel(a, b);
      }
    });
    const up = (ev) => {
      pointers.delete(ev.pointerId);
      if (pinch) {
        if (pointers.size < 2) pinch = null;
        return;
      }
      if (!down) return;
      const d = down;
      down = null;
      if (ev.type === 'pointercancel') return;
      if (!d.moved) {
        this.clearSelection();
        const mark = d.target.closest?.('.ev');
        const lane = d.lane;
        if (mark && lane) {
          const e = lane.events.find((x) => String(x.id) === mark.dataset.id);
          if (e) { this.o.onEvent(e); return; }
        }
        if (lane) this.o.onPlay(lane, this.timeAt(ev.clientX));
        return;
      }
      if (d.mode === 'select' && this.selection) {
        this.selecting = false;
        this.o.onSelect(d.lane, ...this.selection);
      }
    };
    lanes.addEventListener('pointerup', up);
    lanes.addEventListener('pointercancel', up);
    lanes.addEventListener('pointerleave', () => { if (!down) this.hideHover(); });
    // The wheel zooms around the pointer; a sideways wheel (or Shift) pans.
    el.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const dx = ev.shiftKey ? ev.deltaY : ev.deltaX;
      if (Math.abs(dx) > Math.abs(ev.shiftKey ? 0 : ev.deltaY)) {
        this.setView(this.from + dx * this.msPerPx(), this.span);
      } else {
        this.zoom(Math.exp(ev.deltaY * (ev.deltaMode === 1 ? 0.05 : 0.002)), this.timeAt(ev.clientX));
      }
    }, { passive: false });
    el.addEventListener('keydown', (ev) => {
      const k = ev.key;
      if (k === 'ArrowLeft' || k === 'ArrowRight') {
        const dir = k === 'ArrowLeft' ? -1 : 1;
        if (ev.shiftKey) this.pan(dir * 0.2);
        else this.o.onJump(dir);
      } else if (k === '+' || k === '=') {
        this.zoom(0.5);
      } else if (k === '-' || k === '_') {
        this.zoom(2);
      } else if (k === 'Enter' || k === ' ') {
        if (this.lanes[0]) this.o.onPlay(this.lanes[0], this.playhead ?? this.from + this.span / 2);
      } else {
        return;
      }
      ev.preventDefault();
    });
    // Redrawn when its width changes (ticks and merging depend on it), after the layout.
    let width = 0;
    this.resize = new ResizeObserver((entries) => {
      const w = Math.round(entries[0].contentRect.width);
      if (w === width) return;
      width = w;
      requestAnimationFrame(() => this.draw());
    });
    this.resize.observe(lanes);
  }
}
