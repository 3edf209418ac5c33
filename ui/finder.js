// Finding a camera for the camera-add form without typing its URL: a USB/CSI camera of this node
// (GET /api/system/devices, its formats, sizes and rates) or an IP camera found on the network
// (POST /api/system/onvif/scan without credentials, then POST /api/system/onvif/device with the
// camera's user name and password for the one the user picks; its profiles' main and sub
// streams). Choosing one calls
// `use({ source, name, xaddr, username, password, note })`; the form stays the place where
// things are saved.

import { get, post } from './api.js';
import { h, mount, field, uid } from './dom.js';

/** The two finders as toggle buttons with a panel each (one open at a time). */
export function finder(act, use) {
  const panel = h('div.finder-panel', { id: uid('finder') });
  const local = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': panel.id }, 'USB / CSI camera');
  const scan = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': panel.id }, 'Scan network (ONVIF)');
  let open = null;
  function toggle(button, render) {
    const closing = open === button;
    for (const b of [local, scan]) b.setAttribute('aria-expanded', 'false');
    open = closing ? null : button;
    if (closing) { mount(panel); return; }
    button.setAttribute('aria-expanded', 'true');
    render(panel, act, (choice) => { use(choice); });
  }
  local.addEventListener('click', () => toggle(local, localCameras));
  scan.addEventListener('click', () => toggle(scan, onvifScan));
  return h('fieldset.finder',
    h('legend', 'Find the camera'),
    h('p.muted', 'Pick a camera plugged into this node or one found on the network, or type its source URL below.'),
    h('div.buttons', local, scan),
    panel);
}

// ---- USB / CSI (V4L2) ----

const fourccNames = { MJPG: 'MJPEG', H264: 'H.264', YUYV: 'YUYV (raw)', NV12: 'NV12 (raw)' };

/** `v4l2://` source for a device path and a chosen mode (rates rounded, as the API takes them). */
export function v4l2Source(path, { fourcc, width, height, fps }) {
  const q = new URLSearchParams();
  if (width && height) { q.set('width', String(width)); q.set('height', String(height)); }
  if (fps >= 1) q.set('fps', String(Math.round(fps)));
  if (fourcc) q.set('format', fourcc);
  return `v4l2://${path}${q.toString() ? `?${q}` : ''}`;
}

async function localCameras(panel, act, use) {
  const status = h('p.muted', { role: 'status' }, 'Looking for cameras on this node…');
  const again = h('button', { type: 'button' }, 'Look again');
  const err = h('p.error', { role: 'alert' });
  const body = h('div');
  mount(panel, h('h4', 'Cameras plugged into this node'), status, err, body);
  async function look() {
    status.textContent = 'Looking for cameras on this node…';
    mount(body);
    const r = await act(again, () => get('/api/system/devices'), { errorEl: err });
    status.textContent = '';
    if (!r) { mount(body, h('div.buttons', again)); return; }
    const devices = r.devices || [];
    if (!devices.length) {
      mount(body, h('p.empty', { id: 'no-devices' }, 'No USB or CSI camera is connected to this node. Plug one in, then look again.'), h('div.buttons', again));
      return;
    }
    status.textContent = `${devices.length} camera${devices.length === 1 ? '' : 's'} found.`;
    mount(body, chooser(devices, use), h('div.buttons', again));
  }
  again.addEventListener('click', look);
  await look();
}

function chooser(devices, use) {
  const device = h('select', devices.map((d, i) => h('option', { value: String(i) }, `${d.name || 'Camera'} (${d.path})${d.recordable ? '' : ' – cannot record'}`)));
  const format = h('select');
  const size = h('select');
  const rate = h('select');
  const note = h('p.muted', { 'aria-live': 'polite' });
  const choose = h('button.primary', { type: 'button' }, 'Use this camera');
  const options = (select, items, label) => {
    mount(select, items.map((it, i) => h('option', { value: String(i) }, label(it))));
    select.disabled = !items.length;
  };
  const current = () => {
    const d = devices[Number(device.value)];
    const f = d?.formats?.[Number(format.value)];
    const s = f?.sizes?.[Number(size.value)];
    const fps = s?.fps?.[Number(rate.value)];
    return { d, f, s, fps };
  };
  const refreshRates = () => {
    const { s } = current();
    options(rate, s?.fps || [], (f) => `${Number(f.toFixed(2))} fps`);
  };
  const refreshSizes = () => {
    const { f } = current();
    options(size, f?.sizes || [], (s) => `${s.width}×${s.height}`);
    refreshRates();
  };
  const refreshFormats = () => {
    const { d } = current();
    options(format, d.formats || [], (f) => `${fourccNames[f.fourcc] || f.fourcc}${f.description && f.description !== fourccNames[f.fourcc] ? ` – ${f.description}` : ''}`);
    refreshSizes();
    note.textContent = d.recordable ? '' : (d.note || 'This build cannot record this camera.');
    choose.disabled = !d.recordable;
  };
  device.addEventListener('change', refreshFormats);
  format.addEventListener('change', refreshSizes);
  size.addEventListener('change', refreshRates);
  choose.addEventListener('click', () => {
    const { d, f, s, fps } = current();
    const path = d.stable_path || d.path;
    use({
      source: v4l2Source(path, { fourcc: f?.fourcc, width: s?.width, height: s?.height, fps }),
      name: d.name || '',
      note: `Filled in for ${d.name || d.path}${s ? `, ${s.width}×${s.height}` : ''}${f ? ` ${fourccNames[f.fourcc] || f.fourcc}` : ''}.`,
    });
  });
  refreshFormats();
  return h('div',
    field('Device', device)[0],
    h('div.row', field('Format', format)[0], field('Size', size)[0], field('Frame rate', rate)[0]),
    note,
    h('div.buttons', choose));
}

// ---- ONVIF ----

/** "1920×1080 H264 25 fps" from what the API gives (any of it may be missing). */
function streamInfo(p) {
  return [p.width && p.height ? `${p.width}×${p.height}` : null, p.encoding, p.fps ? `${Number(p.fps.toFixed(2))} fps` : null]
    .filter(Boolean).join(' ') || 'format not given';
}

async function onvifScan(panel, act, use) {
  const seconds = h('input', { type: 'number', min: 1, max: 10, value: 3, required: true });
  // Credentials for every device that answers: only when asked for, since any device on the
  // network can answer a scan and would receive a digest of the password to guess at.
  const user = h('input', { autocomplete: 'off', spellcheck: false });
  const pass = h('input', { type: 'password', autocomplete: 'off' });
  const toAll = h('details.sign-all',
    h('summary', 'Send a user name and password to every camera that answers'),
    h('p.muted', 'Any device on this network can answer a scan and would receive a digest of this password, which can be guessed offline. Leave these empty to give the password only to the camera you pick.'),
    h('div.row', field('User name for every camera', user)[0], field('Password for every camera', pass)[0]));
  const go = h('button.primary', { type: 'button' }, 'Scan');
  const status = h('p.muted', { role: 'status' });
  const err = h('p.error', { role: 'alert' });
  const results = h('div.scan-results', { 'aria-label': 'Cameras found' });
  // Enter in these fields scans (it would otherwise submit the camera form around them).
  for (const input of [user, pass, seconds]) {
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); go.click(); } });
  }
  go.addEventListener('click', async () => {
    const wait = Math.min(10, Math.max(1, Math.round(Number(seconds.value) || 3)));
    seconds.value = String(wait);
    if (pass.value && !user.value.trim()) { err.textContent = 'A password needs a user name.'; return; }
    const body = { seconds: wait };
    if (user.value.trim()) Object.assign(body, { username: user.value.trim(), password: pass.value, authenticate_all: true });
    status.textContent = `Scanning the network: answers are awaited for ${wait} s, then each camera is asked for its streams…`;
    results.setAttribute('aria-busy', 'true');
    mount(results);
    // The API ends a scan within `seconds` + 20 s; wait a little longer than that.
    const r = await act(go, () => post('/api/system/onvif/scan', body, { timeout: (wait + 25) * 1000 }), { errorEl: err });
    results.removeAttribute('aria-busy');
    if (!r) { status.textContent = ''; return; }
    const n = r.devices.length;
    status.textContent = n ? `Found ${n} camera${n === 1 ? '' : 's'}${r.truncated ? ' (more answered than are listed)' : ''}.` : '';
    if (!n) {
      mount(results, h('p.empty', `No ONVIF camera answered within ${wait} s. Check that the camera is on this network and has ONVIF turned on, or wait longer.`));
      return;
    }
    const creds = body.username ? { username: body.username, password: body.password } : {};
    mount(results, h('ul.cards', r.devices.map((d) => {
      const item = h('li');
      const show = (dev, given) => mount(item, deviceCard(dev, given, use, act, show));
      show(d, creds);
      return item;
    })));
  });
  mount(panel,
    h('h4', 'IP cameras on this network (ONVIF)'),
    h('p.muted', 'The scan asks every camera without a password; give the password only to the camera you pick. The stream you use is saved with it.'),
    h('div.row', field('Wait for answers (seconds)', seconds)[0]),
    toAll,
    h('div.buttons', go),
    status, err, results);
}

/** The camera's user name and password, sent to this device alone; `show` redraws the card. */
function signIn(d, title, act, show) {
  const user = h('input', { autocomplete: 'off', spellcheck: false });
  const pass = h('input', { type: 'password', autocomplete: 'off' });
  const read = h('button.primary', { type: 'button' }, 'Read streams');
  const err = h('p.error', { role: 'alert' });
  const submit = async () => {
    if (!user.value.trim()) { err.textContent = 'The camera needs a user name.'; return; }
    const creds = { username: user.value.trim(), password: pass.value };
    const r = await act(read, () => post('/api/system/onvif/device', { xaddr: d.xaddr, ...creds }, { timeout: 25000 }), { errorEl: err });
    if (!r) return;
    // The read knows nothing of discovery: keep the scan's name and endpoint.
    show({ ...r, name: d.name, endpoint: d.endpoint, host: d.host }, creds);
  };
  for (const input of [user, pass]) {
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); submit(); } });
  }
  read.addEventListener('click', submit);
  return h('div.sign-in',
    h('p', `${title} needs its user name and password to show its streams. They are sent to this camera only.`),
    h('div.row', field('Camera user name', user)[0], field('Camera password', pass)[0]),
    h('div.buttons', read),
    err);
}

function deviceCard(d, creds, use, act, show) {
  const title = d.name || [d.manufacturer, d.model].filter(Boolean).join(' ') || d.host;
  const heading = h('h4', { id: uid('dev') }, title);
  const role = (p) => (p.uri && p.uri === d.main ? 'Main stream' : p.uri && p.uri === d.sub ? 'Sub stream' : 'Other stream');
  const rank = (p) => ['Main stream', 'Sub stream'].indexOf(role(p)) >>> 0;
  const rows = [...(d.profiles || [])].sort((a, b) => rank(a) - rank(b)).map((p) => {
    const choose = p.uri ? h('button', {
      type: 'button', 'aria-label': `Use ${role(p).toLowerCase()} of ${title}`,
      onclick: () => use({
        source: p.uri,
        name: title,
        xaddr: d.xaddr,
        ...creds,
        note: `Filled in from ${title}: ${role(p).toLowerCase()}, ${streamInfo(p)}.`,
      }),
    }, 'Use') : null;
    return h('tr', { dataset: { role: role(p) } },
      h('td', h('strong', role(p)), h('br'), h('small.muted', p.name || p.token)),
      h('td', streamInfo(p)),
      h('td', p.uri ? h('code.wrap', p.uri) : h('span.error', p.error || 'no stream address')),
      h('td.actions', choose));
  });
  const quiet = !rows.length && !d.error && !d.needs_credentials;
  return h('article.card.device', { 'aria-labelledby': heading.id, dataset: { host: d.host } },
    heading,
    h('dl',
      d.manufacturer || d.model ? [h('dt', 'Make'), h('dd', [d.manufacturer, d.model].filter(Boolean).join(' '))] : null,
      [h('dt', 'Address'), h('dd', d.host)],
      d.firmware ? [h('dt', 'Firmware'), h('dd', d.firmware)] : null),
    d.error ? h('p.error.device-error', `Could not read this camera: ${d.error}`) : null,
    d.needs_credentials && d.xaddr ? signIn(d, title, act, show) : null,
    rows.length ? h('table',
      h('caption', h('span.sr', `Streams of ${title}`)),
      h('thead', h('tr', ['Stream', 'Format', 'Address', ''].map((c) => h('th', { scope: 'col' }, c || h('span.sr', 'Actions'))))),
      h('tbody', rows)) : (quiet ? h('p.muted', 'This camera offers no streams.') : null));
}
