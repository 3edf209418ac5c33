// Eyrie's own motion detection of a camera, for its settings form (docs/api.md, the cameras'
// `motion`): on or off, sensitivity, minimum duration, and the cells of the 32×18 grid in which
// motion does not count, drawn on a still of the camera (a click or a drag toggles cells; the
// arrow keys and Space do the same from the keyboard).
//
// The still is the camera's first live picture: the live stream every viewer shares is opened,
// one picture drawn to a canvas, and the stream closed again. That costs the node nothing it does
// not do for the dashboard (no decoding there, no new endpoint); the browser decodes one picture.
// A camera without a live picture (disabled, connecting, a codec this browser cannot decode, a
// camera being added) gets the grid on a blank box and a line saying why.

import { h, uid } from './dom.js';
import { LivePlayer } from './live.js';
import { clock } from './timeline.js';

export const GRID_W = 32;
export const GRID_H = 18;
/** How long the still may take before the grid stays on a blank box. */
const STILL_MS = 10000;
/** The canvas's own pixels: 20 per cell. */
const CELL_PX = 20;

/**
 * The motion fields for `cam` (null for a new camera). Returns `{ el, value(), inputs, stop() }`:
 * `value()` is the API's `motion` object as a whole, `inputs` maps each API key
 * (`motion.sensitivity`, …) to the element its error is shown beside, `stop()` closes the stream
 * of a still still loading.
 */
export function motionFields(cam) {
  const m = cam?.motion || {};
  const enabled = h('input', { type: 'checkbox', checked: Boolean(m.enabled), id: uid('mo') });
  const sensitivity = h('input', { type: 'number', min: 1, max: 100, step: 1, value: m.sensitivity ?? 50, inputmode: 'numeric' });
  const minDuration = h('input', { type: 'number', min: 0, max: 60000, step: 100, value: m.min_duration_ms ?? 1000, inputmode: 'numeric' });
  const cells = new Uint8Array(GRID_W * GRID_H);
  (m.ignore || []).forEach((row, y) => {
    for (let x = 0; x < GRID_W; x++) if (row[x] === 'x') cells[y * GRID_W + x] = 1;
  });

  const still = h('canvas.still', { width: GRID_W * CELL_PX, height: GRID_H * CELL_PX, 'aria-hidden': 'true' });
  const hintId = uid('zh');
  const grid = h('canvas.cells', {
    width: GRID_W * CELL_PX, height: GRID_H * CELL_PX, tabindex: '0', role: 'application', id: uid('zones'),
    'aria-label': 'Zones to ignore: 32 by 18 cells over the picture',
    'aria-describedby': hintId,
  });
  const said = h('p.muted.zone-count', { 'aria-live': 'polite' });
  const note = h('small.hint.still-note');
  const hint = h('small.hint', { id: hintId },
    'Click or drag over cells to ignore them (shaded), again to watch them. Keyboard: arrows move, Space toggles.');
  const clear = h('button', { type: 'button' }, 'Watch everything');

  let cursor = 0;
  let focused = false;
  function draw() {
    const g = grid.getContext('2d');
    g.clearRect(0, 0, grid.width, grid.height);
    g.fillStyle = 'rgba(179, 38, 30, 0.5)';
    for (let i = 0; i < cells.length; i++) {
      if (cells[i]) g.fillRect((i % GRID_W) * CELL_PX, Math.floor(i / GRID_W) * CELL_PX, CELL_PX, CELL_PX);
    }
    g.strokeStyle = 'rgba(255, 255, 255, 0.35)';
    g.lineWidth = 1;
    g.beginPath();
    for (let x = 1; x < GRID_W; x++) { g.moveTo(x * CELL_PX + 0.5, 0); g.lineTo(x * CELL_PX + 0.5, grid.height); }
    for (let y = 1; y < GRID_H; y++) { g.moveTo(0, y * CELL_PX + 0.5); g.lineTo(grid.width, y * CELL_PX + 0.5); }
    g.stroke();
    if (focused) {
      g.strokeStyle = '#ffd400';
      g.lineWidth = 3;
      g.strokeRect((cursor % GRID_W) * CELL_PX + 1.5, Math.floor(cursor / GRID_W) * CELL_PX + 1.5, CELL_PX - 3, CELL_PX - 3);
    }
    const n = cells.reduce((a, b) => a + b, 0);
    grid.dataset.ignored = String(n);
    said.textContent = n ? `${n} of ${cells.length} cells ignored.` : 'Motion is watched everywhere in the picture.';
  }

  const cellAt = (ev) => {
    const r = grid.getBoundingClientRect();
    const x = Math.floor(((ev.clientX - r.left) / r.width) * GRID_W);
    const y = Math.floor(((ev.clientY - r.top) / r.height) * GRID_H);
    return x < 0 || y < 0 || x >= GRID_W || y >= GRID_H ? -1 : y * GRID_W + x;
  };
  let paint = null; // what a drag sets the cells it crosses to
  grid.addEventListener('pointerdown', (ev) => {
    const i = cellAt(ev);
    if (i < 0) return;
    ev.preventDefault();
    grid.focus({ preventScroll: true });
    paint = cells[i] ? 0 : 1;
    cells[i] = paint;
    cursor = i;
    grid.setPointerCapture(ev.pointerId);
    draw();
  });
  grid.addEventListener('pointermove', (ev) => {
    if (paint === null) return;
    const i = cellAt(ev);
    if (i >= 0 && cells[i] !== paint) {
      cells[i] = paint;
      cursor = i;
      draw();
    }
  });
  const end = () => { paint = null; };
  grid.addEventListener('pointerup', end);
  grid.addEventListener('pointercancel', end);
  grid.addEventListener('focus', () => { focused = true; draw(); });
  grid.addEventListener('blur', () => { focused = false; draw(); });
  grid.addEventListener('keydown', (ev) => {
    const x = cursor % GRID_W;
    const y = Math.floor(cursor / GRID_W);
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[ev.key]) {
      const [dx, dy] = moves[ev.key];
      cursor = Math.min(GRID_H - 1, Math.max(0, y + dy)) * GRID_W + Math.min(GRID_W - 1, Math.max(0, x + dx));
    } else if (ev.key === ' ' || ev.key === 'Enter') {
      cells[cursor] ^= 1;
    } else {
      return;
    }
    ev.preventDefault(); // no scrolling, and Enter does not submit the form
    draw();
    if (ev.key === ' ' || ev.key === 'Enter') {
      said.textContent = `Row ${y + 1}, column ${x + 1}: ${cells[cursor] ? 'ignored' : 'watched'}. ${said.textContent}`;
    }
  });
  clear.addEventListener('click', () => { cells.fill(0); draw(); });
  draw();

  const stop = loadStill(cam, still, note);
  const el = h('fieldset.motion',
    h('legend', 'Motion detection by Eyrie'),
    h('p.muted', 'For cameras that report no motion of their own. Each motion becomes an event on the timeline.'),
    h('div.field.check', enabled, h('label', { for: enabled.id }, 'Detect motion')),
    h('div.row.wrap',
      fieldOf('Sensitivity (1–100)', sensitivity, '1: only strong changes; 100: the faintest.'),
      fieldOf('Motion must last (milliseconds)', minDuration, '0 to 60000 before an event starts.')),
    h('div.field',
      h('strong', 'Zones to ignore'),
      h('div.zones', still, grid),
      hint, note,
      h('div.row.zone-tools', said, clear)));
  return {
    el,
    stop,
    inputs: { 'motion.enabled': enabled, 'motion.sensitivity': sensitivity, 'motion.min_duration_ms': minDuration, 'motion.ignore': grid },
    value() {
      const rows = [];
      for (let y = 0; y < GRID_H; y++) {
        let row = '';
        for (let x = 0; x < GRID_W; x++) row += cells[y * GRID_W + x] ? 'x' : '.';
        rows.push(row);
      }
      // Numbers as typed: the API judges them and names the key when one is wrong.
      const num = (input, dflt) => (input.value.trim() === '' ? dflt : Number(input.value));
      return {
        enabled: enabled.checked,
        sensitivity: num(sensitivity, 50),
        min_duration_ms: num(minDuration, 1000),
        ignore: cells.some((c) => c) ? rows : [],
      };
    },
  };
}

function fieldOf(label, input, hint) {
  const id = input.id || (input.id = uid('f'));
  const hintEl = h('small.hint', { id: `${id}-hint` }, hint);
  input.setAttribute('aria-describedby', hintEl.id);
  return h('div.field', h('label', { for: id }, label), input, hintEl);
}

/** Draws the camera's first live picture on `canvas`; returns what stops it early. */
function loadStill(cam, canvas, note) {
  if (!cam) {
    note.textContent = 'The picture of the camera appears here once it is added.';
    return () => {};
  }
  if (!cam.enabled) {
    note.textContent = 'No picture: the camera is disabled. The grid still covers the whole picture.';
    return () => {};
  }
  note.textContent = 'Getting a picture of the camera…';
  const video = h('video.offscreen', { 'aria-hidden': 'true', tabindex: '-1', muted: true });
  canvas.after(video);
  let done = false;
  const finish = (text) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    player.stop();
    player.img?.remove();
    video.remove();
    if (text) note.textContent = text;
  };
  /** Draws `src` if it has a picture yet (a video may report data before its first frame is
   * decoded, and then draws nothing): whether it did. */
  const drawn = (src) => {
    if (done) return true;
    const g = canvas.getContext('2d', { willReadFrequently: true });
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.drawImage(src, 0, 0, canvas.width, canvas.height);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = false;
    for (let i = 3; i < d.length && !painted; i += 4 * 97) painted = d[i] !== 0;
    if (!painted) return false;
    canvas.dataset.still = 'live';
    finish(`The camera's picture at ${clock(Date.now())}; the grid covers the whole picture.`);
    return true;
  };
  const whenFrame = () => { if (video.readyState >= 2) drawn(video); };
  const player = new LivePlayer(video, async () => cam.live_url || `/api/cameras/${encodeURIComponent(cam.id)}/live`, (state, detail) => {
    if (done) return;
    if (state === 'playing') {
      if (player.img && !player.img.hidden) {
        drawn(player.img); // MJPEG: the <img> has its first picture
      } else {
        // Tried now and at each new frame until one is drawn (or the deadline).
        video.addEventListener('loadeddata', whenFrame);
        video.addEventListener('timeupdate', whenFrame);
        whenFrame();
      }
    } else if (state === 'reconnecting' || state === 'error') {
      const why = (detail || '').split('; retrying')[0];
      finish(`No picture of the camera now (${why}): the grid is drawn on a blank box and still covers the whole picture.`);
    }
  });
  const timer = setTimeout(() => finish(`No picture of the camera within ${STILL_MS / 1000} s: the grid is drawn on a blank box and still covers the whole picture.`), STILL_MS);
  player.start();
  return () => finish(null);
}
