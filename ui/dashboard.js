// Dashboard: a card per camera of every node, with its node's label, its status and live
// video; layouts of 1, 2×2 or 3×3 cards a page; a node filter; a click enlarges a camera.

import { get } from './api.js';
import { h, mount } from './dom.js';
import { LivePlayer } from './live.js';

const LAYOUTS = { 1: 1, 4: 2, 9: 3 };
// Browsers open at most 6 HTTP/1.1 connections to one origin, and each live stream holds one:
// the grid plays at most this many from one node, leaving room for the enlarged view and the
// page's own API calls.
const MAX_STREAMS_PER_ORIGIN = 4;

function originOf(url) {
  try { return new URL(url, location.href).origin; } catch { return location.origin; }
}

const WORDS = { connecting: 'Connecting…', reconnecting: 'No live picture', error: 'Cannot play' };
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

function stateOf(cam) {
  if (cam.remote && !cam.online) return 'offline';
  if (cam.stale) return 'stale';
  if (!cam.enabled) return 'disabled';
  return cam.status?.state || 'unknown';
}

export async function render(main, { notify }) {
  let cameras = await get('/api/cameras');
  const prefs = JSON.parse(localStorage.getItem('eyrie.dashboard') || '{}');
  let per = LAYOUTS[prefs.per] ? prefs.per : 4;
  let node = prefs.node || '';
  let page = 0;
  const players = new Map(); // camera id → LivePlayer
  const save = () => localStorage.setItem('eyrie.dashboard', JSON.stringify({ per, node }));

  // Always the newest URL: remote tokens are re-issued on every poll.
  const urlOf = async (id) => {
    const c = cameras.find((x) => x.id === id);
    return c?.live_url ?? null;
  };

  const nodeSelect = h('select', { id: 'node-filter', onchange: () => { node = nodeSelect.value; page = 0; save(); draw(); } });
  const layoutGroup = h('div.segmented', { role: 'group', 'aria-label': 'Layout' });
  const grid = h('div.grid', { id: 'camera-grid' });
  const pager = h('div.pager');
  const dialog = h('dialog.enlarged', { 'aria-label': 'Camera' });

  function stopAll() {
    for (const p of players.values()) p.stop();
    players.clear();
    streams.clear();
  }

  const streams = new Map(); // origin → live players of the grid using it

  function card(cam, big = false) {
    const video = h('video', { muted: true, playsinline: true, 'aria-label': `Live video of ${cam.name}` });
    const status = h('span.status', { dataset: { state: stateOf(cam) } }, stateOf(cam));
    const note = h('small.note', { 'aria-live': 'polite' });
    const name = big
      ? h('span.name', cam.name)
      : h('button.name', { type: 'button', 'aria-label': `${cam.name} (${cam.node_label}, ${stateOf(cam)}): enlarge` }, cam.name);
    const el = h('article.cam', { dataset: { camera: cam.id, node: cam.node_label, state: stateOf(cam) } },
      h('div.video', video, note),
      h('div.caption',
        name,
        h('span.badge', { title: `Node ${cam.node_label}` }, cam.node_label),
        status),
    );
    if (!big) {
      // The name is the keyboard's way in; a click anywhere on the card does the same.
      el.addEventListener('click', () => enlarge(cam));
    }
    const canPlay = cam.enabled && (cam.live_url || cam.remote);
    const origin = cam.live_url ? originOf(cam.live_url) : `node:${cam.node_id}`;
    if (canPlay && !big && (streams.get(origin) || 0) >= MAX_STREAMS_PER_ORIGIN) {
      note.textContent = `not playing: ${MAX_STREAMS_PER_ORIGIN} streams from ${cam.node_label} already; choose a smaller layout or enlarge`;
    } else if (canPlay) {
      if (!big) streams.set(origin, (streams.get(origin) || 0) + 1);
      // Once it has played, a picture that stopped coming stays on screen: it is greyed out
      // (app.css) and says since when it is not live, so it never looks live.
      let since = null;
      const p = new LivePlayer(video, () => urlOf(cam.id), (state, detail) => {
        el.dataset.live = state;
        if (state === 'playing') {
          el.dataset.played = 'yes';
          since = null;
          note.textContent = '';
          return;
        }
        if (el.dataset.played && !since) since = Date.now();
        const what = since ? `Not live: the last picture came at ${clock(since)}` : WORDS[state] || state;
        note.textContent = `${what}${detail ? `. ${detail[0].toUpperCase()}${detail.slice(1)}` : ''}`;
      });
      players.set(big ? `${cam.id}#big` : cam.id, p);
      p.start();
    } else {
      note.textContent = 'no live video';
    }
    return el;
  }

  function enlarge(cam) {
    const old = players.get(`${cam.id}#big`);
    old?.stop();
    const close = h('button', { type: 'button', onclick: () => dialog.close() }, 'Close');
    mount(dialog, h('div.dialog-head', h('h2', cam.name, ' ', h('span.badge', cam.node_label)), close), card(cam, true));
    dialog.showModal();
    close.focus();
  }
  dialog.addEventListener('close', () => {
    players.get([...players.keys()].find((k) => k.endsWith('#big')))?.stop();
    for (const k of [...players.keys()]) if (k.endsWith('#big')) players.delete(k);
  });

  function draw() {
    stopAll();
    const nodes = [...new Map(cameras.map((c) => [c.node_label, c.node_id])).keys()];
    mount(nodeSelect, h('option', { value: '' }, 'All nodes'), nodes.map((n) => h('option', { value: n, selected: n === node }, n)));
    mount(layoutGroup, Object.keys(LAYOUTS).map((n) => h('button', {
      type: 'button', 'aria-pressed': String(Number(n) === per),
      onclick: () => { per = Number(n); page = 0; save(); draw(); },
    }, n === '1' ? '1' : `${LAYOUTS[n]}×${LAYOUTS[n]}`)));
    const shown = cameras.filter((c) => !node || c.node_label === node);
    const pages = Math.max(1, Math.ceil(shown.length / per));
    page = Math.min(page, pages - 1);
    grid.dataset.cols = String(LAYOUTS[per]);
    const slice = shown.slice(page * per, page * per + per);
    mount(grid, slice.length ? slice.map((c) => card(c)) : h('p.muted', cameras.length ? 'No camera on this node.' : 'No cameras yet: add one in Settings → Cameras.'));
    mount(pager, pages > 1 ? [
      h('button', { type: 'button', disabled: page === 0, onclick: () => { page--; draw(); } }, '‹ Previous'),
      h('span', `Page ${page + 1} of ${pages}`),
      h('button', { type: 'button', disabled: page >= pages - 1, onclick: () => { page++; draw(); } }, 'Next ›'),
    ] : []);
  }

  // Statuses and fresh URLs every few seconds; cards are redrawn only when the set changes.
  let failing = false;
  const refresh = setInterval(async () => {
    try {
      const next = await get('/api/cameras');
      const key = (l) => l.map((c) => `${c.id}:${c.enabled}`).join(',');
      const changed = key(next) !== key(cameras);
      cameras = next;
      if (changed) {
        draw();
      } else {
        for (const c of cameras) {
          for (const card of document.querySelectorAll(`article.cam[data-camera="${CSS.escape(c.id)}"]`)) {
            card.dataset.state = stateOf(c);
            const s = card.querySelector('.status');
            s.textContent = stateOf(c);
            s.dataset.state = stateOf(c);
          }
        }
      }
      failing = false;
    } catch (e) {
      if (!failing) notify(`Cannot refresh the cameras: ${e.message}`, 'error');
      failing = true;
    }
  }, 5000);

  // No streams while the page is hidden (a phone in a pocket, a background tab).
  const visibility = () => { if (document.hidden) stopAll(); else draw(); };
  document.addEventListener('visibilitychange', visibility);

  mount(main,
    h('div.toolbar',
      h('h1', 'Cameras'),
      h('label.inline', { for: 'node-filter' }, 'Node ', nodeSelect),
      layoutGroup),
    grid, pager, dialog);
  draw();
  return () => {
    clearInterval(refresh);
    document.removeEventListener('visibilitychange', visibility);
    stopAll();
  };
}
