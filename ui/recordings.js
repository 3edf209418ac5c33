// Recordings, around time: a timeline of one camera of any node, or of every camera stacked
// (ui/timeline.js: zoom from a week to a minute, pan, event markers, a playhead), a calendar of
// the days that have recordings and events, the events in view with filters (play from the
// pre-roll, keep, download), and the runs in view. Media plays from the node that holds it
// (absolute URLs with media tokens) or through this node's relay. Recorded MJPEG, which a
// <video> cannot play, is replayed as a picture stream in an <img> (replay.mjpeg) and shown as
// a still (frame.jpg) when stopped.
//
// Fast on a Pi: only the range around the view is asked for (at most two weeks, runs without
// their segments), once the view has rested for a moment; answers to an older question (another
// camera, another range) are dropped; lists show at most MAX_ROWS rows.
//
// Live: this node's events come on the change notices (ui/notices.js: `event_start`,
// `event_end`) and are added or updated in place, keyed by node and id. Other nodes' events
// are not on this node's stream: while the view includes now, what is in view is asked for
// again every LIVE_REFRESH_MS (one question at a time, none once the page is left), and the
// view's right edge follows the clock.
//
// Keep: peers read each other with read-only keys (docs/security.md), so another node's event
// is kept on its own node: its row links to that node's recordings page at the event.

import { get, post } from './api.js';
import { h, mount, duration } from './dom.js';
import { follow } from './notices.js';
import { Timeline, DAY, HOUR, MINUTE, clock, when, spanWords, kindClass } from './timeline.js';

const MAX_VIEW = 6 * HOUR;
const MAX_FETCH = 14 * DAY;
const MAX_ROWS = 100;
const MAX_EVENT_ROWS = 50;
/** How long a recording may take to start or to continue after a seek before the page says so. */
export const PLAY_DEADLINE_MS = 12000;
const SETTLE_MS = 300;
/** How often what is in view is asked for again while the view includes now. */
export const LIVE_REFRESH_MS = 30000;
const FOLLOW_MS = 1000;
/** At most this many events are held (a listing holds at most 5 000). */
const MAX_EVENTS = 5000;

/** An event's identity across nodes. */
const eventKey = (e) => `${e.node}/${e.id}`;

/**
 * The owning node's recordings page at another node's event (`#/recordings/{camera}/{ms}`
 * there), or null when the node's address is not a plain http(s) URL.
 */
export function ownerPage(e, nodes) {
  const node = nodes.find((n) => n.id === e.node);
  const prefix = `r-${e.node}-`;
  if (!node || !e.camera.startsWith(prefix)) return null;
  let u;
  try { u = new URL(node.url); } catch { return null; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  u.hash = `#/recordings/${encodeURIComponent(e.camera.slice(prefix.length))}/${Math.round(e.start_ms)}`;
  return u.href;
}

function isoDay(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

function dayStart(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** The run's view URL for another range (the media token, if any, stays). */
export function viewUrl(run, start, end, download = false) {
  const u = new URL(run.url, location.href);
  u.searchParams.set('start', String(Math.round(start)));
  u.searchParams.set('end', String(Math.round(end)));
  if (download) u.searchParams.set('download', '1');
  else u.searchParams.delete('download');
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

const sameOrigin = (url) => new URL(url, location.href).origin === location.origin;

/** Why a media URL does not play, in the node's own words when it answers. */
async function whyNot(url) {
  try {
    const r = await fetch(url, {
      headers: { range: 'bytes=0-0' }, credentials: sameOrigin(url) ? 'same-origin' : 'omit',
      signal: AbortSignal.timeout(8000),
    });
    if (r.ok) return 'the browser cannot decode it';
    const j = await r.json().catch(() => null);
    return j?.error || `the node answered ${r.status}`;
  } catch {
    return 'the node that holds it does not answer (it may be offline or unreachable)';
  }
}

export async function render(main, { notify, act, args }) {
  // The nodes' addresses, for another node's "Keep" (none when they cannot be read).
  const [cameras, nodes] = await Promise.all([
    get('/api/cameras'),
    get('/api/system/nodes').catch(() => []),
  ]);
  const byNode = new Map();
  for (const c of cameras) {
    if (!byNode.has(c.node_label)) byNode.set(c.node_label, []);
    byNode.get(c.node_label).push(c);
  }
  const camSelect = h('select', { id: 'rec-camera' },
    h('option', { value: 'all' }, 'All cameras, every node'),
    [...byNode].map(([node, cams]) => h('optgroup', { label: node },
      cams.map((c) => h('option', { value: c.id }, `${c.name} (${node})`)))));
  camSelect.value = args[0] && cameras.some((c) => c.id === args[0]) ? args[0] : (cameras[0]?.id || 'all');
  const search = h('button.primary', { type: 'submit' }, 'Show');
  const err = h('p.error', { role: 'alert' });
  const nodeErrors = h('ul.node-errors', { 'aria-label': 'Nodes that did not answer' });
  const range = h('span.range');
  const selInfo = h('div.selection');
  const video = h('video', { id: 'playback', controls: true, playsinline: true, preload: 'metadata', 'aria-label': 'Recording' });
  const pictures = h('img', { id: 'playback-pictures', hidden: true, alt: '' });
  const stop = h('button', { type: 'button', hidden: true }, 'Stop');
  const onScreen = h('p.clock', { id: 'on-screen' });
  const playing = h('p.muted', { 'aria-live': 'polite' }, 'Pick a moment on the timeline, an event or a run below.');
  const playErr = h('p.error', { role: 'alert', id: 'play-error' });
  const calendar = h('section.calendar', { 'aria-label': 'Calendar' });
  const eventsBox = h('section.events', { 'aria-labelledby': 'events-title' });
  const list = h('div.runs');
  const camById = new Map(cameras.map((c) => [c.id, c]));
  const nameOf = (id) => camById.get(id)?.name || id;
  const laneLabel = (id, node) => `${nameOf(id)} (${camById.get(id)?.node_label || node || 'this node'})`;

  let cam = camSelect.value;
  // What is loaded: for which camera, which range, and what it holds.
  let data = { cam, start: 0, end: 0, runs: [], events: [] };
  let gen = 0; // of fetches: an answer to an older question is dropped
  let lanes = [];

  const timeline = new Timeline({
    onView: () => { showRange(); settle(); },
    onPlay: (lane, t) => {
      const run = runAt(lane.runs, t, timeline.msPerPx() * 6);
      if (run) play(run, Math.max(t, run.start_ms));
      else notify(`${lane.label}: nothing was recorded at or after ${when(t)} in the loaded days.`, 'info');
    },
    onSelect: (lane, a, b) => {
      selectMode.setAttribute('aria-pressed', 'false');
      select(lane, a, b);
    },
    onEvent: (e) => playEvent(e),
    onJump: (dir) => jump(dir),
    previewAt: (lane, t, slack) => {
      const run = lane && runAt(lane.runs, t, slack);
      if (run && run.codec === 'mjpeg' && t >= run.start_ms - slack && t < run.end_ms + slack) {
        return mjpegUrl(run, 'frame', Math.max(run.start_ms, Math.min(run.end_ms - 1, Math.floor(t / 250) * 250)));
      }
      const near = lane?.events.filter((e) => e.thumbnail_url && Math.abs(e.start_ms - t) <= slack * 4)
        .sort((x, y) => Math.abs(x.start_ms - t) - Math.abs(y.start_ms - t))[0];
      return near ? near.thumbnail_url : null;
    },
  });

  // ---- playing ----

  let current = null; // { run, from, end, who, began (MJPEG) }
  let deadline = null;
  let ticker = null;
  const quiet = () => { clearTimeout(deadline); deadline = null; };
  /** Says so when nothing plays within the deadline (a node that went down never answers). */
  const watch = () => {
    quiet();
    const what = current;
    deadline = setTimeout(() => {
      if (current !== what || !what) return;
      halt();
      playing.textContent = '';
      playErr.textContent = `${what.who}: nothing came from the node that holds this recording in ${PLAY_DEADLINE_MS / 1000} s. It may be offline or unreachable; try again later.`;
    }, PLAY_DEADLINE_MS);
  };
  const halt = () => {
    quiet();
    clearInterval(ticker);
    video.pause();
    video.removeAttribute('src');
    video.load();
    pictures.removeAttribute('src');
    stop.hidden = true;
  };

  video.addEventListener('playing', () => {
    quiet();
    if (current) playing.textContent = `Playing ${current.who} from ${when(current.from)}`;
  });
  video.addEventListener('waiting', () => { if (current && video.getAttribute('src')) watch(); });
  video.addEventListener('seeking', () => { if (current) watch(); });
  video.addEventListener('seeked', () => { if (!video.paused) return; quiet(); });
  video.addEventListener('canplay', () => { if (video.paused) quiet(); });
  video.addEventListener('timeupdate', () => {
    if (!current || current.run.codec === 'mjpeg') return;
    const t = current.from + video.currentTime * 1000;
    timeline.setPlayhead(t);
    onScreen.textContent = `On screen: ${when(t)}`;
  });
  video.addEventListener('error', async () => {
    if (!current || !video.getAttribute('src')) return;
    quiet();
    const what = current;
    const why = await whyNot(video.getAttribute('src'));
    if (current !== what) return;
    playing.textContent = '';
    playErr.textContent = `Cannot play ${what.who} from ${when(what.from)}: ${why}.`;
  });
  pictures.addEventListener('load', () => { if (current?.run.codec === 'mjpeg') quiet(); });
  pictures.addEventListener('error', () => {
    if (!pictures.getAttribute('src') || !current) return;
    quiet();
    playErr.textContent = `Cannot show the pictures of ${current.who}: the link may have expired or the node is unreachable; choose the moment again.`;
  });
  stop.addEventListener('click', () => {
    if (!current?.began) return;
    const at = Math.min(current.end, current.from + (Date.now() - current.began));
    clearInterval(ticker);
    pictures.src = mjpegUrl(current.run, 'frame', at);
    playing.textContent = `Stopped at ${clock(at)} (${current.who})`;
    current.began = null;
    stop.hidden = true;
  });

  /** Plays `run` from `at` until `until` (at most 6 hours; the run's end by default). */
  function play(run, at, until) {
    halt();
    playErr.textContent = '';
    const from = Math.max(run.start_ms, Math.min(at, run.end_ms - 1000));
    const end = Math.min(until ?? run.end_ms, from + MAX_VIEW);
    const who = laneLabel(run.camera, run.node_label);
    current = { run, from, end, who, began: null };
    timeline.setPlayhead(from);
    onScreen.textContent = `On screen: ${when(from)}`;
    if (run.codec === 'mjpeg') {
      video.hidden = true;
      // The pictures at their recorded pace; Stop leaves the one showing as a still.
      pictures.src = mjpegUrl(run, 'replay', from, end);
      pictures.alt = `Recording of ${nameOf(run.camera)} from ${clock(from)} (MJPEG pictures)`;
      pictures.hidden = false;
      stop.hidden = false;
      current.began = Date.now();
      ticker = setInterval(() => {
        if (!current?.began) return;
        const t = Math.min(current.end, current.from + (Date.now() - current.began));
        timeline.setPlayhead(t);
        onScreen.textContent = `On screen: ${when(t)}`;
      }, 500);
      playing.textContent = `Playing ${who} from ${when(from)} as pictures (MJPEG; the download plays in VLC)`;
      watch();
      return;
    }
    pictures.hidden = true;
    video.hidden = false;
    video.src = viewUrl(run, from, end);
    playing.textContent = `Loading ${who} from ${when(from)}…`;
    watch();
    video.play().catch(() => { /* the user can press play */ });
  }

  async function download(run, a, b, button) {
    const url = viewUrl(run, a, Math.min(b, a + MAX_VIEW), true);
    await act(button, async () => {
      // Checked first, so a refusal is shown in words instead of a broken download.
      const r = await fetch(url, { method: 'HEAD', credentials: sameOrigin(url) ? 'same-origin' : 'omit', signal: AbortSignal.timeout(10000) })
        .catch(() => null);
      if (!r) throw new Error(`Cannot download: ${await whyNot(url)}.`);
      if (!r.ok) throw new Error(`Cannot download: ${await whyNot(url)}.`);
      const link = h('a', { href: url, download: '' });
      document.body.append(link);
      link.click();
      link.remove();
    }, { done: 'Download started' });
  }

  /** The run at `t`, else the nearest within `slack` ms, else the next one after `t`. */
  function runAt(runs, t, slack) {
    const dist = (r) => (t < r.start_ms ? r.start_ms - t : t >= r.end_ms ? t - r.end_ms : 0);
    let best = null;
    for (const r of runs) if (dist(r) <= slack && (!best || dist(r) < dist(best))) best = r;
    return best || runs.find((r) => r.start_ms >= t);
  }

  function select(lane, a, b) {
    const inside = lane.runs.filter((r) => r.end_ms > a && r.start_ms < b);
    if (!inside.length) {
      mount(selInfo, h('p.muted', 'Nothing recorded in that selection.'));
      return;
    }
    const run = inside[0];
    const from = Math.max(a, run.start_ms);
    // Gaps are closed up by view.mp4, up to a change of format (a new run of another codec).
    const same = inside.filter((r) => r.codec === run.codec && r.width === run.width && r.height === run.height);
    const to = Math.min(b, same[same.length - 1].end_ms);
    const dl = h('button', { type: 'button' }, 'Download selection as MP4');
    dl.addEventListener('click', () => download(run, from, to, dl));
    mount(selInfo,
      h('span', `Selected ${lane.label}, ${when(from)} – ${clock(to)} (${duration((to - from) / 1000)}${to - from > MAX_VIEW ? ', the first 6 hours are played and downloaded' : ''})`),
      h('button', { type: 'button', onclick: () => play(run, from, to) }, 'Play selection'),
      dl,
      h('button', { type: 'button', onclick: () => { timeline.clearSelection(); mount(selInfo); } }, 'Clear selection'));
  }

  // ---- events ----

  /** An event's clip as a run-like range to play or download (from the pre-roll). */
  function clipOf(e) {
    const u = new URL(e.clip_url, location.href);
    const a = Number(u.searchParams.get('start')) || e.start_ms;
    const b = Number(u.searchParams.get('end')) || (e.end_ms ?? e.start_ms + MINUTE);
    const run = data.runs.find((r) => r.camera === e.camera && r.end_ms > a && r.start_ms <= b);
    return { url: e.clip_url, camera: e.camera, node_label: e.node_name, start_ms: a, end_ms: b, codec: run?.codec || 'h264', width: run?.width, height: run?.height };
  }

  function playEvent(e) {
    if (!e.clip_url) return;
    const clip = clipOf(e);
    timeline.reveal(e.start_ms);
    play(clip, clip.start_ms, clip.end_ms);
    current.event = e;
  }

  /**
   * The previous or next event (else recording) of what is shown, from the event playing (its
   * clip starts before it, so the playhead would find it again), else from the playhead.
   */
  function jump(dir) {
    const ev = current?.event;
    const t = ev ? ev.start_ms : timeline.playhead ?? timeline.from + timeline.span / 2;
    const slack = ev ? 0 : 1000;
    const shown = new Set(lanes.map((l) => l.id));
    const evs = data.events.filter((e) => shown.has(e.camera) && e !== ev);
    const pick = (items) => (dir > 0
      ? items.find((x) => x.start_ms > t + slack)
      : items.filter((x) => x.start_ms < t - slack).pop());
    const e = pick(evs);
    if (e) {
      playEvent(e);
      return;
    }
    const r = pick(lanes.flatMap((l) => l.runs).sort((x, y) => x.start_ms - y.start_ms));
    if (r) {
      timeline.reveal(r.start_ms);
      play(r, r.start_ms);
      return;
    }
    notify(`No ${dir > 0 ? 'later' : 'earlier'} event or recording in the loaded days.`, 'info');
  }

  const filters = { node: '', camera: '', kind: '' };
  function drawEvents() {
    const from = timeline.from;
    const to = from + timeline.span;
    const inView = data.events.filter((e) => (e.end_ms ?? Date.now()) >= from && e.start_ms < to);
    const options = (key, label, all, values) => {
      const sel = h('select', { id: `events-${key}`, onchange: () => { filters[key] = sel.value; drawEvents(); } },
        h('option', { value: '' }, all),
        [...values].sort().map(([v, text]) => h('option', { value: v, selected: v === filters[key] }, text)));
      return h('label.inline', { for: sel.id }, label, ' ', sel);
    };
    const shown = inView.filter((e) => (!filters.node || e.node_name === filters.node)
      && (!filters.camera || e.camera === filters.camera)
      && (!filters.kind || e.kind === filters.kind));
    const rows = shown.slice(0, MAX_EVENT_ROWS).map((e) => {
      let keep;
      if (e.camera.startsWith('r-')) {
        // Kept on the node that holds it: peers' keys only read (docs/ui.md).
        const href = ownerPage(e, nodes);
        keep = href
          ? h('a.keep-there', {
            href, target: '_blank', rel: 'noopener noreferrer',
            title: `Opens ${e.node_name}'s recordings at this event, where it can be kept (you log in there)`,
          }, e.protected ? `Kept on ${e.node_name}` : `Keep on ${e.node_name} ↗`)
          : h('span.muted', e.protected ? `Kept on ${e.node_name}` : `Kept only on ${e.node_name}`);
      } else {
        keep = h('button', { type: 'button', 'aria-pressed': String(Boolean(e.protected)) }, e.protected ? 'Kept' : 'Keep');
        keep.addEventListener('click', () => act(keep, async () => {
          await post(`/api/recordings/events/${encodeURIComponent(e.id)}/protect`, { protected: !e.protected });
          e.protected = !e.protected;
          drawEvents();
        }));
      }
      const dl = h('button', { type: 'button' }, 'Download');
      dl.addEventListener('click', () => {
        const c = clipOf(e);
        download(c, c.start_ms, c.end_ms, dl);
      });
      return h('tr', { dataset: { kind: kindClass(e.kind), id: e.id, key: eventKey(e) } },
        h('td.thumb', e.thumbnail_url ? h('img', { src: e.thumbnail_url, alt: '', loading: 'lazy', width: 96, height: 54 }) : null),
        h('td', nameOf(e.camera)),
        h('td', h('span.badge', e.node_name || '')),
        h('td', h('span.kind', { dataset: { kind: kindClass(e.kind) } }, e.kind)),
        h('td', when(e.start_ms)),
        h('td', e.end_ms === null || e.end_ms === undefined ? 'ongoing' : duration((e.end_ms - e.start_ms) / 1000)),
        h('td.actions',
          h('button', { type: 'button', onclick: () => playEvent(e), 'aria-label': `Play ${e.kind} of ${nameOf(e.camera)} at ${clock(e.start_ms)}` }, 'Play'),
          keep, dl));
    });
    mount(eventsBox,
      h('h2', { id: 'events-title' }, 'Events in view'),
      h('div.toolbar.filters',
        options('node', 'Node', 'All nodes', new Map(data.events.map((e) => [e.node_name, e.node_name]))),
        options('camera', 'Camera', 'All cameras', new Map(data.events.map((e) => [e.camera, nameOf(e.camera)]))),
        options('kind', 'Kind', 'All kinds', new Map(data.events.map((e) => [e.kind, e.kind])))),
      rows.length
        ? h('table',
          h('caption', `${shown.length} event${shown.length === 1 ? '' : 's'}${shown.length > MAX_EVENT_ROWS ? `, the first ${MAX_EVENT_ROWS} shown: zoom in for the rest` : ''}`),
          h('thead', h('tr', ['Picture', 'Camera', 'Node', 'Kind', 'Time', 'Length'].map((t) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col' }, h('span.sr', 'Actions')))),
          h('tbody', rows))
        : h('p.muted', 'No events in view.'));
  }

  // ---- runs ----

  function drawRuns() {
    const all = cam === 'all';
    const from = timeline.from;
    const to = from + timeline.span;
    const runs = lanes.flatMap((l) => l.runs).filter((r) => r.end_ms > from && r.start_ms < to)
      .sort((a, b) => a.start_ms - b.start_ms);
    if (!runs.length) {
      mount(list, h('p.muted', 'No recordings in view.'));
      return;
    }
    const rows = runs.slice(0, MAX_ROWS).map((r) => {
      const dl = h('button', { type: 'button' }, 'Download');
      dl.addEventListener('click', () => download(r, r.start_ms, r.end_ms, dl));
      return h('tr',
        all ? h('td', h('span.badge', r.node_label || camById.get(r.camera)?.node_label || ''), ' ', nameOf(r.camera)) : null,
        h('td', when(r.start_ms)),
        h('td', duration((r.end_ms - r.start_ms) / 1000)),
        h('td', r.width && r.height ? `${r.width}×${r.height} ${r.codec || ''}` : (r.codec || '')),
        h('td.actions',
          h('button', { type: 'button', onclick: () => play(r, r.start_ms), 'aria-label': `Play from ${clock(r.start_ms)}` }, 'Play'),
          dl));
    });
    mount(list, h('table',
      h('caption', `${runs.length} recorded run${runs.length === 1 ? '' : 's'} in view${runs.length > MAX_ROWS ? `, the first ${MAX_ROWS} shown` : ''}`),
      h('thead', h('tr', all ? h('th', { scope: 'col' }, 'Camera') : null, h('th', { scope: 'col' }, 'Start'), h('th', { scope: 'col' }, 'Length'), h('th', { scope: 'col' }, 'Format'), h('th', { scope: 'col' }, h('span.sr', 'Actions')))),
      h('tbody', rows)));
  }

  // ---- loading ----

  /** Runs and events of `camera` in [start, end): the node's listing, and its events. */
  async function ask(camera, start, end) {
    const q = `camera=${encodeURIComponent(camera)}&start=${Math.round(start)}&end=${Math.round(end)}`;
    const [rec, evs] = await Promise.allSettled([
      get(`/api/recordings?${q}&segments=0`),
      get(`/api/recordings/events?${q}`),
    ]);
    if (rec.status === 'rejected') throw rec.reason;
    const runs = (rec.value.runs || []).map((r) => ({ ...r, camera: r.camera || camera, node_label: r.node_label || camById.get(camera)?.node_label }));
    const problems = (rec.value.errors || []).map((e) => `${e.node_label}: ${e.error}`);
    let events = [];
    if (evs.status === 'fulfilled') {
      events = (evs.value?.events || []).map((e) => ({ ...e, camera: e.camera || camera }));
      for (const n of evs.value?.nodes || []) {
        if (!n.ok && !problems.some((p) => p.startsWith(`${n.name}:`))) problems.push(`${n.name}: ${n.error}`);
      }
      if (evs.value?.truncated) problems.push('More events than one listing holds: zoom in to see them all.');
    } else if (evs.reason?.status !== 404) {
      problems.push(`Events: ${evs.reason?.message}`);
    }
    if (rec.value.truncated) problems.push('More recordings than one listing holds: zoom in to see them all.');
    return { runs, events, problems };
  }

  function buildLanes() {
    if (cam !== 'all') {
      lanes = [{ id: cam, label: laneLabel(cam), runs: data.runs, events: data.events }];
    } else {
      const ids = cameras.map((c) => c.id);
      for (const r of data.runs) if (!ids.includes(r.camera)) ids.push(r.camera);
      lanes = ids.map((id) => ({
        id,
        label: laneLabel(id, data.runs.find((r) => r.camera === id)?.node_label),
        runs: data.runs.filter((r) => r.camera === id),
        events: data.events.filter((e) => e.camera === id),
      }));
    }
    timeline.setLanes(lanes);
  }

  function showRange() {
    const a = timeline.from;
    const b = a + timeline.span;
    range.textContent = `${when(a)} – ${dayStart(a) === dayStart(b) ? clock(b) : when(b)} (${spanWords(timeline.span)})`;
  }

  let settleTimer = null;
  /** After the view rests: lists redrawn, and the range around it loaded when it is not. */
  function settle() {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(() => {
      const a = timeline.from;
      const b = a + timeline.span;
      const now = Date.now();
      const covered = data.cam === cam && a >= data.start && Math.min(b, now) <= data.end && !data.failed;
      if (!covered) load(false);
      else {
        drawEvents();
        drawRuns();
      }
      shownMonth = null;
      drawCalendar();
    }, SETTLE_MS);
  }

  /** Loads the range around the view; `fit` then fits the view to what was recorded. */
  async function load(fit) {
    const mine = ++gen;
    const camera = cam;
    const now = Date.now();
    const span = timeline.span;
    let start = fit ? now - DAY : timeline.from - span;
    let end = Math.min(now + MINUTE, fit ? now + MINUTE : timeline.from + 2 * span);
    if (end - start > MAX_FETCH) start = end - MAX_FETCH;
    if (end <= start) end = start + MINUTE;
    err.textContent = '';
    search.setAttribute('aria-busy', 'true');
    let got;
    try {
      got = await ask(camera, start, end);
    } catch (e) {
      if (mine !== gen) return;
      // Nothing of the camera shown before stays on screen under this one's name.
      data = { cam: camera, start, end, runs: [], events: [], failed: true };
      buildLanes();
      drawEvents();
      drawRuns();
      err.textContent = `Cannot list the recordings of ${camera === 'all' ? 'all cameras' : laneLabel(camera)}: ${e.message}`;
      return;
    } finally {
      if (mine === gen) search.removeAttribute('aria-busy');
    }
    if (mine !== gen) return;
    data = { cam: camera, start, end: Math.min(end, now), live: end >= now, runs: got.runs, events: got.events };
    merge(recent.map((r) => r.e).filter(fits));
    mount(nodeErrors, got.problems.map((p) => h('li.error', p)));
    buildLanes();
    if (fit) {
      const runs = data.runs.filter((r) => r.end_ms > now - DAY);
      if (runs.length) {
        const a = Math.max(now - DAY, Math.min(...runs.map((r) => r.start_ms)));
        const b = Math.max(...runs.map((r) => r.end_ms));
        const w = Math.max(10 * MINUTE, (b - a) * 1.1);
        timeline.setView(a - (w - (b - a)) / 2, w, true);
      } else {
        timeline.setView(now - DAY, DAY, true);
      }
      showRange();
    }
    drawEvents();
    drawRuns();
    drawCalendar();
  }

  /** Another camera (or Show): everything of the previous one goes, then the new one loads. */
  function choose() {
    cam = camSelect.value;
    gen++;
    halt();
    current = null;
    playErr.textContent = '';
    onScreen.textContent = '';
    playing.textContent = 'Pick a moment on the timeline, an event or a run below.';
    timeline.setPlayhead(null);
    timeline.clearSelection();
    mount(selInfo);
    mount(nodeErrors);
    filters.camera = '';
    data = { cam, start: 0, end: 0, runs: [], events: [] };
    month = { cam: null };
    buildLanes();
    drawEvents();
    drawRuns();
    history.replaceState(null, '', `#/recordings/${encodeURIComponent(cam)}`);
    return load(true);
  }

  // ---- live: new events in place, the view following the clock ----

  /** Adds events not held yet and updates those held (keyed by node and id), in start order. */
  function merge(evs) {
    const at = new Map(data.events.map((e, i) => [eventKey(e), i]));
    for (const e of evs) {
      const i = at.get(eventKey(e));
      if (i === undefined) {
        at.set(eventKey(e), data.events.length);
        data.events.push(e);
      } else {
        // An event that ended never opens again (an older notice merged into a newer listing).
        const held = data.events[i];
        data.events[i] = { ...held, ...e, end: e.end ?? held.end, end_ms: e.end_ms ?? held.end_ms };
      }
    }
    data.events.sort((a, b) => a.start_ms - b.start_ms);
    // The earliest go first: what is live is what is new.
    if (data.events.length > MAX_EVENTS) data.events.splice(0, data.events.length - MAX_EVENTS);
  }

  /** Merges `evs` and shows them. */
  function upsert(evs) {
    merge(evs);
    buildLanes();
    drawEvents();
  }

  /** Whether an event of this node belongs to what is loaded. */
  function fits(e) {
    if (data.cam !== cam || data.failed || (cam !== 'all' && e.camera !== cam)) return false;
    const end = e.end_ms ?? Infinity;
    return end >= data.start && (data.live || e.start_ms < data.end);
  }

  // This node's notices of the last minute (at most 200): merged again into a listing that was
  // asked for before they came and answered after, so none is lost to a load in flight.
  const recent = [];
  /** An event of this node began or ended: shown when it is of what is loaded. */
  function noticed(e) {
    if (typeof e?.id !== 'string' || typeof e.camera !== 'string' || !Number.isFinite(e.start_ms)) return;
    const now = Date.now();
    recent.push({ at: now, e });
    while (recent.length > 200 || (recent.length && recent[0].at < now - MINUTE)) recent.shift();
    if (fits(e)) upsert([e]);
  }

  /** Whether the view includes now (with a moment's slack: it moves by whole pixels). */
  const viewingNow = (now) => now >= timeline.from && now <= timeline.from + timeline.span + 2 * FOLLOW_MS;

  let followed = Date.now(); // the clock when the view last followed it
  /** While the view includes now, its edges move with the clock (by whole pixels). */
  function followClock() {
    const now = Date.now();
    if (!viewingNow(followed)) {
      followed = now;
      return;
    }
    const shift = now - followed;
    if (shift < timeline.msPerPx()) return;
    followed = now;
    timeline.setView(timeline.from + shift, timeline.span, true);
    showRange();
  }

  let refreshing = false;
  /**
   * While the view includes now: what is in view asked for again (the runs grow, and other
   * nodes' events are on no stream here); the runs from there on replaced, events merged.
   */
  async function refresh() {
    const now = Date.now();
    if (refreshing || data.cam !== cam || data.failed || !data.live || !viewingNow(now)) return;
    refreshing = true;
    const mine = gen;
    const from = Math.max(data.start, timeline.from);
    try {
      const got = await ask(cam, from, now + MINUTE);
      if (mine !== gen || data.cam !== cam) return;
      data.runs = data.runs.filter((r) => r.end_ms <= from).concat(got.runs)
        .sort((a, b) => a.start_ms - b.start_ms);
      data.end = Math.max(data.end, now);
      mount(nodeErrors, got.problems.map((p) => h('li.error', p)));
      upsert(got.events);
      drawRuns();
    } catch {
      // The next refresh, or the user, tries again; what is shown stays.
    } finally {
      refreshing = false;
    }
  }

  // ---- calendar: which days of a month have recordings and events ----

  let month = { cam: null }; // { cam, first, days: Map(day start → {rec, ev}) }
  let shownMonth = null; // the first day of the month shown
  let monthGen = 0;
  async function drawCalendar(first) {
    if (first !== undefined) shownMonth = first;
    const d = new Date(shownMonth ?? timeline.from + timeline.span / 2);
    d.setDate(1);
    d.setHours(0, 0, 0, 0);
    const start = d.getTime();
    const next = new Date(d);
    next.setMonth(d.getMonth() + 1);
    const now = Date.now();
    if (month.cam !== cam || month.first !== start) {
      const mine = ++monthGen;
      month = { cam, first: start, days: null };
      const end = Math.min(next.getTime(), now + MINUTE, start + 31 * DAY);
      if (end > start) {
        try {
          const got = await ask(cam, start, end);
          if (mine !== monthGen) return;
          const days = new Map();
          const mark = (a, b, key) => {
            for (let t = dayStart(Math.max(a, start)); t < Math.min(b, end); t = dayStart(t + DAY + HOUR)) {
              const v = days.get(t) || { rec: false, ev: 0 };
              if (key === 'rec') v.rec = true; else v.ev += 1;
              days.set(t, v);
            }
          };
          for (const r of got.runs) mark(r.start_ms, r.end_ms, 'rec');
          for (const e of got.events) mark(e.start_ms, e.start_ms + 1, 'ev');
          month.days = days;
        } catch {
          if (mine !== monthGen) return;
          month.days = new Map();
          month.failed = true;
        }
      } else {
        month.days = new Map();
      }
    }
    const viewDay = dayStart(timeline.from + timeline.span / 2);
    const cells = [];
    const lead = (d.getDay() + 6) % 7; // weeks start on Monday
    for (let i = 0; i < lead; i++) cells.push(h('span.pad', { 'aria-hidden': 'true' }));
    for (let t = start; t < next.getTime(); t = dayStart(t + DAY + HOUR)) {
      const info = month.days?.get(t);
      const words = [new Date(t).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' })];
      if (info?.rec) words.push('recorded');
      if (info?.ev) words.push(`${info.ev} event${info.ev === 1 ? '' : 's'}`);
      cells.push(h('button.day', {
        type: 'button', 'aria-label': words.join(', '), 'aria-pressed': String(timeline.span <= DAY && t === viewDay),
        disabled: t > now, dataset: { rec: info?.rec ? '1' : '', ev: info?.ev ? '1' : '', day: isoDay(t) },
        onclick: () => { shownMonth = null; timeline.setView(t, DAY); },
      }, String(new Date(t).getDate())));
    }
    const prev = new Date(d);
    prev.setMonth(d.getMonth() - 1);
    mount(calendar,
      h('div.cal-head',
        h('button', { type: 'button', 'aria-label': 'Previous month', onclick: () => drawCalendar(prev.getTime()) }, '‹'),
        h('h2', d.toLocaleDateString([], { month: 'long', year: 'numeric' })),
        h('button', { type: 'button', 'aria-label': 'Next month', disabled: next.getTime() > now, onclick: () => drawCalendar(next.getTime()) }, '›')),
      h('div.cal-grid',
        ['Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa', 'Su'].map((w) => h('span.wd', { 'aria-hidden': 'true' }, w)),
        cells),
      h('p.cal-key.muted', h('span.key-rec', { 'aria-hidden': 'true' }), ' recorded ', h('span.key-ev', { 'aria-hidden': 'true' }), ' events',
        month.failed ? ' (could not be read for this month)' : ''));
  }

  // ---- the page ----

  const button = (label, text, onclick, extra = {}) => h('button', { type: 'button', 'aria-label': label, title: label, onclick, ...extra }, text);
  const selectMode = button('Select a range', 'Select', () => {
    timeline.selecting = !timeline.selecting;
    selectMode.setAttribute('aria-pressed', String(timeline.selecting));
  }, { 'aria-pressed': 'false' });
  const bar = h('div.tl-bar', { role: 'toolbar', 'aria-label': 'Timeline', 'aria-controls': 'timeline' },
    button('Zoom out', '−', () => timeline.zoom(2)),
    button('Zoom in', '+', () => timeline.zoom(0.5)),
    button('Earlier', '‹', () => timeline.pan(-0.5)),
    button('Later', '›', () => timeline.pan(0.5)),
    button('Previous event', '← Event', () => jump(-1)),
    button('Next event', 'Event →', () => jump(1)),
    button('Now', 'Now', () => timeline.setView(Date.now() - timeline.span * 0.9, timeline.span)),
    selectMode,
    range);
  camSelect.addEventListener('change', () => choose());
  const form = h('form.toolbar', { onsubmit: (e) => { e.preventDefault(); choose(); } },
    h('h1', 'Recordings'),
    h('label.inline', { for: camSelect.id }, 'Camera ', camSelect),
    search);
  mount(main, form, err, nodeErrors, bar, timeline.el,
    h('div.rec-body',
      h('div.rec-main', selInfo, h('div.player', video, pictures, h('div.buttons', stop), onScreen, playing, playErr), list),
      h('div.rec-side', calendar, eventsBox)));
  showRange();
  await choose();
  // A link from another node's page: the view around that moment (`#/recordings/{camera}/{ms}`).
  const at = Number(args[1]);
  if (args[1] && Number.isFinite(at) && at > 0) {
    timeline.setView(at - 5 * MINUTE, 10 * MINUTE);
    showRange();
  }
  const stopNotices = follow({ event_start: noticed, event_end: noticed });
  const following = setInterval(followClock, FOLLOW_MS);
  const refresher = setInterval(refresh, LIVE_REFRESH_MS);
  return () => {
    gen++;
    monthGen++;
    stopNotices();
    clearInterval(following);
    clearInterval(refresher);
    clearTimeout(settleTimer);
    timeline.destroy();
    halt();
    current = null;
  };
}
