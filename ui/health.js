// Health: a widget per node (this one and every remote node): reachable, latency, last seen,
// disk used of total, cameras recording of total, uptime, CPU and temperature when reported.
// An unreachable node's numbers are its last ones: they are marked with their age, and a
// "Check now" button asks this node to poll it at once. Refreshed every few seconds.

import { get, post } from './api.js';
import { h, mount, bytes, duration, ago } from './dom.js';

function bar(used, total, label) {
  if (!total) return h('p.muted', `${label}: not reported`);
  const pct = Math.min(100, Math.round((used / total) * 100));
  return h('div.meter',
    h('div.meter-label', h('span', label), h('span', `${bytes(used)} of ${bytes(total)} (${pct} %)`)),
    h('div.bar', { role: 'meter', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-valuetext': `${pct} percent` },
      h('div.fill', { style: { width: `${pct}%` }, dataset: { level: pct > 90 ? 'high' : pct > 75 ? 'mid' : 'low' } })));
}

function row(k, v) { return [h('dt', k), h('dd', v)]; }

// What makes a local (V4L2) camera's video, in words (health's `encoder`, docs/api.md).
const ENCODERS = {
  'camera-h264': 'H.264 from the camera',
  'camera-mjpeg': 'MJPEG from the camera',
  'software-mjpeg': 'encoded to MJPEG by Eyrie',
};
function encoder(c) {
  if (!c.encoder) return null;
  const words = ENCODERS[c.encoder]
    || (c.encoder.startsWith('v4l2-m2m:') ? `H.264 by the hardware encoder ${c.encoder.slice(9)}` : c.encoder);
  return [h('small.muted', ` · ${words}`),
    c.encoder_error ? h('small.muted', ` (hardware encoder not used: ${c.encoder_error})`) : null];
}

function local(hl) {
  const rec = hl.cameras.filter((c) => c.state === 'recording').length;
  return h('article.card.node', { dataset: { node: hl.label } },
    h('h2', hl.label, ' ', h('span.badge', 'this node')),
    h('span.status', { dataset: { state: 'recording' } }, 'reachable'),
    bar(hl.disk.used_bytes, hl.disk.total_bytes, 'Disk'),
    h('dl',
      row('Cameras recording', `${rec} of ${hl.cameras.length}`),
      row('Recordings', bytes(hl.disk.recordings_bytes)),
      row('Uptime', duration(hl.uptime_s)),
      row('CPU', `${hl.cpu.process_percent} % (load ${hl.cpu.load_1m.toFixed(2)} on ${hl.cpu.cores} cores)`),
      hl.temperature_c !== undefined && hl.temperature_c !== null ? row('Temperature', `${hl.temperature_c} °C`) : null,
      row('Memory', `${bytes(hl.memory.process_rss_bytes)} used by Eyrie`),
      row('Version', hl.version)),
    hl.cameras.length ? h('ul.cams', hl.cameras.map((c) => h('li',
      h('span', c.name), ' ', h('span.status', { dataset: { state: c.enabled ? c.state : 'disabled' } }, c.enabled ? c.state : 'disabled'),
      encoder(c),
      c.last_error ? h('small.muted', ` ${c.last_error}`) : null))) : null);
}

function remote(n, reload, notify) {
  const hh = n; // the peer's numbers come flattened into its entry
  const state = !n.reachable ? 'offline' : n.stale ? 'stale' : 'recording';
  const old = (!n.reachable || n.stale) && n.last_seen_age_s !== null && n.last_seen_age_s !== undefined;
  const check = n.reachable ? null : h('button', { type: 'button' }, 'Check now');
  check?.addEventListener('click', async () => {
    check.disabled = true;
    try {
      await post(`/api/system/nodes/${n.id}/check`);
      await reload();
    } catch (e) {
      notify(`Cannot check ${n.label}: ${e.message}`, 'error');
      check.disabled = false;
    }
  });
  return h('article.card.node', { dataset: { node: n.label } },
    h('h2', n.label, ' ', h('span.badge', 'remote')),
    h('span.status', { dataset: { state } }, n.reachable ? (n.stale ? 'stale' : 'reachable') : 'unreachable'),
    check,
    old ? h('p.muted.age', `Last numbers, from ${duration(n.last_seen_age_s)} ago`) : null,
    bar(hh.disk_used_bytes, hh.disk_total_bytes, 'Disk'),
    h('dl',
      row('Latency', n.latency_ms !== null && n.latency_ms !== undefined ? `${n.latency_ms} ms` : '–'),
      row('Last seen', ago(n.last_seen)),
      row('Cameras recording', hh.cameras_total !== undefined ? `${hh.cameras_recording} of ${hh.cameras_total}` : '–'),
      row('Uptime', duration(hh.uptime_s)),
      hh.temperature_c !== undefined && hh.temperature_c !== null ? row('Temperature', `${hh.temperature_c} °C`) : null,
      hh.status ? row('Status', hh.status) : null,
      row('Version', n.version || '–')),
    n.last_error ? h('p.error', `Last error: ${n.last_error}`) : null);
}

export async function render(main, { notify }) {
  const grid = h('div.nodes', { id: 'health-grid' });
  const updated = h('small.muted', { 'aria-live': 'off' });
  mount(main, h('div.toolbar', h('h1', 'Health'), updated), grid);
  let failing = false;
  async function load() {
    try {
      const hl = await get('/api/health');
      mount(grid, local(hl), (hl.nodes || []).map((n) => remote(n, load, notify)));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
      failing = false;
    } catch (e) {
      if (!failing) notify(`Cannot load health: ${e.message}`, 'error');
      failing = true;
    }
  }
  await load();
  const t = setInterval(load, 5000);
  return () => clearInterval(t);
}
