// Recordings: pick a camera of any node and a day; a timeline shows the recorded runs and the
// gaps between them; a click plays from that instant; a drag selects a range to download as
// one MP4. "All cameras" searches every node at once. Media plays from the node that holds it
// (absolute URLs with media tokens) or through this node's relay. Recorded MJPEG, which a
// <video> cannot play, is replayed as a picture stream in an <img> (replay.mjpeg) and shown as
// a still (frame.jpg) when stopped.

import { get } from './api.js';
import { h, mount, duration, uid } from './dom.js';

const DAY = 86400000;
const MAX_VIEW = 6 * 3600000;

function dayStart(value) {
  const [y, m, d] = value.split('-').map(Number);
  return new Date(y, m - 1, d).getTime();
}

function isoDay(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** The run's view URL for another range (the media token, if any, stays). */
export function viewUrl(run, start, end, download = false) {
  const u = new URL(run.url, location.href);
  u.searchParams.set('start', String(Math.round(start)));
  u.searchParams.set('end', String(Math.round(end)));
  if (download) u.searchParams.set('download', '1');
  return u.origin === location.origin ? u.pathname + u.search : u.href;
}

/** The same range of a run as a paced picture stream (MJPEG), or one picture at `at`. */
export function mjpegUrl(run, what, start, end) {
  const u = new URL(viewUrl(run, start, end), location.href);
  u.pathname = u.pathname.replace(/\/view\.mp4$/, what === 'frame' ? '/frame.jpg' : '/replay.mjpeg');
  if (what === 'frame') {
    u.searchParams.delete('start');
    u.searchParams.delete('end');
    u.searchParams.set('at', String(Math.round(start)));
  }
  return u.origin === location.origin ? u.pathname + u.search : u.href;
}

export async function render(main, { notify, act, args }) {
  const cameras = await get('/api/cameras');
  const byNode = new Map();
  for (const c of cameras) {
    if (!byNode.has(c.node_label)) byNode.set(c.node_label, []);
    byNode.get(c.node_label).push(c);
  }
  const camSelect = h('select', { id: uid('cam') },
    h('option', { value: 'all' }, 'All cameras, every node'),
    [...byNode].map(([node, cams]) => h('optgroup', { label: node },
      cams.map((c) => h('option', { value: c.id }, `${c.name} (${node})`)))));
  const chosen = args[0] && cameras.some((c) => c.id === args[0]) ? args[0] : (cameras[0]?.id || 'all');
  camSelect.value = chosen;
  const dayInput = h('input', { type: 'date', id: uid('day'), value: isoDay(Date.now()), max: isoDay(Date.now()) });
  const search = h('button.primary', { type: 'submit' }, 'Show');
  const err = h('p.error', { role: 'alert' });
  const timeline = h('div.timeline', { id: 'timeline', role: 'group', 'aria-label': 'Recorded runs of the day (the recorded hours); click to play, drag to select' });
  const selInfo = h('div.selection');
  const video = h('video', { id: 'playback', controls: true, playsinline: true, preload: 'metadata', 'aria-label': 'Recording' });
  const pictures = h('img', { id: 'playback-pictures', hidden: true, alt: '' });
  const stop = h('button', { type: 'button', hidden: true }, 'Stop');
  const playing = h('p.muted', { 'aria-live': 'polite' }, 'Pick a moment on the timeline or a run below.');
  const list = h('div.runs');
  const nameOf = (id) => cameras.find((c) => c.id === id)?.name || id;

  let runs = [];
  let start = 0;

  video.addEventListener('error', () => {
    const e = video.error;
    playing.textContent = `Cannot play this recording${e?.message ? `: ${e.message}` : ''} (the link may have expired; press Show again).`;
  });

  // MJPEG: which run plays from when (for the still shown when stopped).
  let replay = null;
  pictures.addEventListener('error', () => {
    if (!pictures.getAttribute('src')) return;
    playing.textContent = 'Cannot show these pictures (the link may have expired; press Show again).';
  });
  stop.addEventListener('click', () => {
    if (!replay) return;
    const at = Math.min(replay.end, replay.from + (Date.now() - replay.began));
    pictures.src = mjpegUrl(replay.run, 'frame', at);
    playing.textContent = `Stopped at ${clock(at)} (${nameOf(replay.run.camera || camSelect.value)})`;
    replay = null;
    stop.hidden = true;
  });

  function play(run, at) {
    const from = Math.max(run.start_ms, Math.min(at, run.end_ms - 1000));
    const end = Math.min(run.end_ms, from + MAX_VIEW);
    const who = nameOf(run.camera || camSelect.value);
    if (run.codec === 'mjpeg') {
      video.pause();
      video.removeAttribute('src');
      video.hidden = true;
      // The pictures at their recorded pace; Stop leaves the one showing as a still.
      pictures.src = mjpegUrl(run, 'replay', from, end);
      pictures.alt = `Recording of ${who} from ${clock(from)} (MJPEG pictures)`;
      pictures.hidden = false;
      stop.hidden = false;
      replay = { run, from, end, began: Date.now() };
      playing.textContent = `Playing ${who} from ${clock(from)} as pictures (MJPEG; the download plays in VLC)`;
      return;
    }
    replay = null;
    pictures.removeAttribute('src'); // ends a picture stream
    pictures.hidden = true;
    stop.hidden = true;
    video.hidden = false;
    video.src = viewUrl(run, from, end);
    video.play().catch(() => { /* the user can press play */ });
    playing.textContent = `Playing ${who} from ${clock(from)}`;
  }

  async function download(run, a, b, button) {
    const url = viewUrl(run, a, Math.min(b, a + MAX_VIEW), true);
    await act(button, async () => {
      // Checked first, so a refusal is shown instead of a broken download.
      const same = new URL(url, location.href).origin === location.origin;
      const r = await fetch(url, { method: 'HEAD', credentials: same ? 'same-origin' : 'omit' });
      if (!r.ok) throw new Error(`Download refused: ${r.status} ${r.statusText}`);
      const link = h('a', { href: url, download: '' });
      document.body.append(link);
      link.click();
      link.remove();
    }, { done: 'Download started' });
  }

  /** The run at `t`, else the nearest within `slack` ms, else the next one after `t`. */
  function runAt(t, slack) {
    const dist = (r) => (t < r.start_ms ? r.start_ms - t : t >= r.end_ms ? t - r.end_ms : 0);
    const near = runs.filter((r) => dist(r) <= slack).sort((a, b) => dist(a) - dist(b))[0];
    return near || runs.find((r) => r.start_ms >= t);
  }

  // The timeline spans the recorded hours of the day (at least one), so short runs are visible.
  let from = 0;
  let span = DAY;
  function drawTimeline() {
    const HOUR = 3600000;
    if (runs.length) {
      const first = Math.max(start, Math.min(...runs.map((r) => r.start_ms)));
      const last = Math.min(start + DAY, Math.max(...runs.map((r) => r.end_ms)));
      from = start + Math.floor((first - start) / HOUR) * HOUR;
      span = Math.max(HOUR, Math.ceil((last - from) / HOUR) * HOUR);
    } else {
      from = start;
      span = DAY;
    }
    const pct = (t) => `${((t - from) / span) * 100}%`;
    const step = [5, 10, 15, 30, 60, 120, 180].map((m) => m * 60000).find((st) => span / st <= 6) || 3 * HOUR;
    const ticks = [];
    for (let t = from; t < from + span; t += step) {
      ticks.push(h('span.tick', { style: { left: pct(t) } }, new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
    }
    const blocks = runs.map((r) => h('span.run', {
      title: `${clock(r.start_ms)} – ${clock(r.end_ms)}`,
      style: { left: pct(Math.max(r.start_ms, from)), width: pct(from + Math.min(r.end_ms, from + span) - Math.max(r.start_ms, from)) },
    }));
    const sel = h('span.sel', { hidden: true });
    const track = h('div.track', blocks, sel);
    // MJPEG runs: the recorded picture under the pointer (frame.jpg), for scrubbing.
    const preview = h('img.preview', { hidden: true, alt: '', 'aria-hidden': 'true' });
    mount(timeline, track, h('div.ticks', ticks), preview);
    let down = null;
    const timeAt = (ev) => {
      const box = track.getBoundingClientRect();
      return from + Math.max(0, Math.min(1, (ev.clientX - box.left) / box.width)) * span;
    };
    let shownAt = null;
    let wanted = null; // [which 250 ms of recording, its frame.jpg URL]
    const loadWanted = () => {
      if (!wanted || wanted[0] === shownAt) return;
      [shownAt] = wanted;
      preview.src = wanted[1];
    };
    // One request at a time: the latest position is asked for when the previous one is in.
    preview.addEventListener('load', loadWanted);
    preview.addEventListener('error', loadWanted);
    track.addEventListener('pointermove', (ev) => {
      const box = track.getBoundingClientRect();
      const slack = (span / box.width) * 6;
      const t = timeAt(ev);
      const run = runAt(t, slack);
      if (!run || run.codec !== 'mjpeg' || t < run.start_ms - slack || t >= run.end_ms + slack) {
        preview.hidden = true;
        return;
      }
      const at = Math.max(run.start_ms, Math.min(run.end_ms - 1, t));
      preview.style.left = `${ev.clientX - box.left}px`;
      preview.hidden = false;
      wanted = [Math.floor(at / 250), mjpegUrl(run, 'frame', at)];
      if (!preview.getAttribute('src') || preview.complete) loadWanted();
    });
    track.addEventListener('pointerleave', () => { preview.hidden = true; });
    track.addEventListener('pointerdown', (ev) => {
      down = { x: ev.clientX, t: timeAt(ev) };
      track.setPointerCapture(ev.pointerId);
    });
    track.addEventListener('pointermove', (ev) => {
      if (!down || Math.abs(ev.clientX - down.x) < 4) return;
      const [a, b] = [down.t, timeAt(ev)].sort((x, y) => x - y);
      sel.hidden = false;
      sel.style.left = pct(a);
      sel.style.width = pct(from + b - a);
    });
    track.addEventListener('pointerup', (ev) => {
      if (!down) return;
      const t = timeAt(ev);
      const dragged = Math.abs(ev.clientX - down.x) >= 4;
      const [a, b] = [down.t, t].sort((x, y) => x - y);
      down = null;
      if (!dragged) {
        sel.hidden = true;
        const run = runAt(t, (span / track.getBoundingClientRect().width) * 6);
        if (run) play(run, Math.max(t, run.start_ms));
        else notify('Nothing was recorded at or after that moment.', 'info');
        return;
      }
      const run = runs.find((r) => r.end_ms > a && r.start_ms < b);
      if (!run) {
        mount(selInfo, h('p.muted', 'Nothing recorded in that selection.'));
        return;
      }
      const from = Math.max(a, run.start_ms);
      const dl = h('button', { type: 'button' }, 'Download selection as MP4');
      dl.addEventListener('click', () => download(run, from, b, dl));
      mount(selInfo,
        h('span', `Selected ${clock(from)} – ${clock(b)} (${duration((b - from) / 1000)}${b - from > MAX_VIEW ? ', the first 6 hours are downloaded' : ''})`),
        h('button', { type: 'button', onclick: () => play(run, from) }, 'Play selection'),
        dl);
    });
  }

  function drawList(all) {
    if (!runs.length) {
      mount(list, h('p.muted', 'No recordings on this day.'));
      return;
    }
    const rows = runs.map((r) => {
      const dl = h('button', { type: 'button' }, 'Download');
      dl.addEventListener('click', () => download(r, r.start_ms, r.end_ms, dl));
      return h('tr',
        all ? h('td', h('span.badge', r.node_label || ''), ' ', nameOf(r.camera)) : null,
        h('td', clock(r.start_ms)),
        h('td', duration((r.end_ms - r.start_ms) / 1000)),
        h('td', r.width && r.height ? `${r.width}×${r.height} ${r.codec || ''}` : (r.codec || '')),
        h('td.actions',
          h('button', { type: 'button', onclick: () => play(r, r.start_ms), 'aria-label': `Play from ${clock(r.start_ms)}` }, 'Play'),
          dl));
    });
    mount(list, h('table',
      h('caption', `${runs.length} recorded run${runs.length === 1 ? '' : 's'}`),
      h('thead', h('tr', all ? h('th', { scope: 'col' }, 'Camera') : null, h('th', { scope: 'col' }, 'Start'), h('th', { scope: 'col' }, 'Length'), h('th', { scope: 'col' }, 'Format'), h('th', { scope: 'col' }, h('span.sr', 'Actions')))),
      h('tbody', rows)));
  }

  async function load() {
    const cam = camSelect.value;
    start = dayStart(dayInput.value || isoDay(Date.now()));
    const end = Math.min(start + DAY, Date.now() + 60000);
    mount(selInfo);
    const res = await act(search, () => get(`/api/recordings?camera=${encodeURIComponent(cam)}&start=${start}&end=${Math.max(end, start + 1000)}`), { errorEl: err });
    if (!res) return;
    runs = (res.runs || []).map((r) => ({ ...r, camera: r.camera || cam }));
    for (const e of res.errors || []) notify(`${e.node_label}: ${e.error}`, 'error');
    const all = cam === 'all';
    timeline.hidden = all;
    if (!all) drawTimeline();
    drawList(all);
    history.replaceState(null, "", `#/recordings/${encodeURIComponent(cam)}`);
  }

  const form = h('form.toolbar', { onsubmit: (e) => { e.preventDefault(); load(); } },
    h('h1', 'Recordings'),
    h('label.inline', { for: camSelect.id }, 'Camera ', camSelect),
    h('label.inline', { for: dayInput.id }, 'Day ', dayInput),
    search);
  mount(main, form, err, timeline, selInfo, h('div.player', video, pictures, h('div.buttons', stop), playing), list);
  await load();
  return () => { video.removeAttribute('src'); video.load(); pictures.removeAttribute('src'); };
}
