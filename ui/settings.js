// Settings, in tabs: General, System (the appliance's updates, ui/system.js), Cameras,
// Federation keys, Remote nodes, Account.

import { get, post, put, del } from './api.js';
import { h, mount, field, ago, uid } from './dom.js';
import { pairingSections } from './pairing.js';
import { finder } from './finder.js';
import { system } from './system.js';
import { motionFields } from './motion.js';

const TABS = [
  { id: 'general', title: 'General', render: general },
  { id: 'system', title: 'System', render: system },
  { id: 'cameras', title: 'Cameras', render: cameras },
  { id: 'keys', title: 'Federation keys', render: keys },
  { id: 'nodes', title: 'Remote nodes', render: nodes },
  { id: 'account', title: 'Account', render: account },
];

export async function render(main, ctx) {
  const current = TABS.find((t) => t.id === ctx.args[0]) || TABS[0];
  const panel = h('section.panel', { id: 'settings-panel', role: 'tabpanel', tabindex: '0', 'aria-labelledby': `tab-${current.id}` });
  const tabs = TABS.map((t) => h('a', {
    id: `tab-${t.id}`, role: 'tab', href: `#/settings/${t.id}`,
    'aria-selected': String(t === current), 'aria-controls': 'settings-panel',
    tabindex: t === current ? '0' : '-1',
  }, t.title));
  const list = h('div.tabs', { role: 'tablist', 'aria-label': 'Settings' }, tabs);
  list.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(document.activeElement);
    if (i < 0 || !['ArrowLeft', 'ArrowRight'].includes(e.key)) return;
    const next = tabs[(i + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    next.click();
  });
  mount(main, h('h1', 'Settings'), list, panel);
  mount(panel, h('p.muted', 'Loading…'));
  try {
    return await current.render(panel, ctx);
  } catch (e) {
    mount(panel, h('p.error', { role: 'alert' }, e.message));
    return undefined;
  }
}

function kv(rows) {
  return h('dl', rows.filter(Boolean).map(([k, v]) => [h('dt', k), h('dd', v)]));
}

// ---- General ----

/** Bytes as the API also reads them back ("20 GiB"), for editing. */
function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && v % 1024 === 0 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v} ${units[i]}`;
}

async function general(panel, { act }) {
  const [hl, s] = await Promise.all([get('/api/health'), get('/api/system/settings')]);
  const label = h('input', { required: true, maxlength: 64, value: s.label });
  const segment = h('input', { type: 'number', required: true, min: 10, max: 300, value: s.segment_seconds });
  const budget = h('input', { value: s.budget_bytes == null ? '' : size(s.budget_bytes), placeholder: 'no budget', spellcheck: false });
  const minFree = h('input', { required: true, value: size(s.min_free_bytes), spellcheck: false });
  const err = h('p.error', { role: 'alert' });
  const save = h('button.primary', { type: 'submit' }, 'Save');
  const form = h('form.card.form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const body = {
        label: label.value.trim(),
        segment_seconds: Number(segment.value),
        budget: budget.value.trim() === '' ? null : budget.value.trim(),
        min_free: minFree.value.trim(),
      };
      const r = await act(save, () => put('/api/system/settings', body), { errorEl: err, done: 'Settings saved' });
      if (!r) return;
      const brand = document.querySelector('.brand .node');
      if (brand) brand.textContent = r.label;
      await general(panel, { act });
    },
  },
  h('h3', 'Recording and this node'),
  field('Node label', label, 'How people and other nodes know this node (also its name on the network).')[0],
  field('Segment length (seconds)', segment, '10 to 300; files are cut at the first key frame after it.')[0],
  h('div.row',
    field('Recordings may use', budget, 'A size like 200 GiB; empty: no budget, only the free space below limits them.')[0],
    field('Free space to keep', minFree, 'The oldest recordings go first to keep this much of the disk free.')[0]),
  err,
  h('div.buttons', save));
  mount(panel,
    h('h2', 'This node'),
    kv([
      ['Node id', h('code', hl.node_id)],
      ['Version', hl.version],
      hl.tls_fingerprint ? ['HTTPS certificate (SHA-256)', h('code.wrap', hl.tls_fingerprint)] : null,
    ]),
    form,
    h('p.muted', 'Saved here, these win over eyrie.toml and apply at once.'));
}

// ---- Cameras ----

/**
 * Errors of the API beside the field they are about: the API names the key first
 * (`motion.sensitivity: 0 is outside 1 to 100`), even inside a longer message. `place(errEl)`
 * moves the message shown in `errEl` beside its field when it names one.
 */
function fieldErrors(inputs) {
  const shown = [];
  const keys = Object.keys(inputs);
  return {
    clear() {
      for (const [input, el] of shown.splice(0)) {
        input.removeAttribute('aria-invalid');
        input.setAttribute('aria-describedby', input.getAttribute('aria-describedby').replace(` ${el.id}`, '').replace(el.id, '').trim());
        if (!input.getAttribute('aria-describedby')) input.removeAttribute('aria-describedby');
        el.remove();
      }
    },
    place(errEl) {
      const msg = errEl.textContent;
      const key = keys.find((k) => new RegExp(`(?:^|[^\\w.])${k.replace('.', '\\.')}:`).test(msg));
      if (!key) return;
      const input = inputs[key];
      const el = h('small.error.field-error', { id: uid('fe'), role: 'alert', dataset: { key } }, msg);
      const wrap = input.closest('.field') || input.parentElement;
      wrap.append(el);
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', `${input.getAttribute('aria-describedby') || ''} ${el.id}`.trim());
      shown.push([input, el]);
      errEl.textContent = '';
      input.focus();
    },
  };
}

function cameraForm(cam, { act, notify }, done) {
  const name = h('input', { required: true, maxlength: 64, value: cam?.name || '' });
  const source = h('input', { required: !cam, placeholder: 'rtsp://192.0.2.7/stream1', value: cam?.source || '', spellcheck: false });
  const user = h('input', { autocomplete: 'off', placeholder: cam?.has_credentials ? 'unchanged' : '' });
  const pass = h('input', { type: 'password', autocomplete: 'new-password', placeholder: cam?.has_credentials ? 'unchanged' : '' });
  const transport = h('select', h('option', { value: 'tcp' }, 'TCP (interleaved)'), h('option', { value: 'udp' }, 'UDP'));
  transport.value = cam?.transport || 'tcp';
  const retention = h('input', { type: 'number', min: 0, max: 3650, value: cam?.retention_days ?? '' });
  // Events: how long their recordings are kept, and how much before and after belongs to a clip.
  const eventRetention = h('input', { type: 'number', min: 0, max: 3650, value: cam?.event_retention_days ?? '' });
  const preRoll = h('input', { type: 'number', min: 0, max: 300, value: cam?.pre_roll_s ?? 5 });
  const postRoll = h('input', { type: 'number', min: 0, max: 300, value: cam?.post_roll_s ?? 5 });
  const motion = motionFields(cam);
  const enabled = h('input', { type: 'checkbox', checked: cam ? cam.enabled : true });
  // The camera's own events over ONVIF (docs/devices.md): its device service, filled in by the
  // finder.
  const xaddr = h('input', { placeholder: 'http://192.0.2.7/onvif/device_service', value: cam?.onvif?.xaddr || '', spellcheck: false });
  const events = h('input', { type: 'checkbox', checked: Boolean(cam?.onvif?.events) });
  const quiet = h('input', { type: 'number', min: 5, max: 3600, value: cam?.onvif?.quiet_seconds ?? 30 });
  const result = h('p.result', { 'aria-live': 'polite' });
  const err = h('p.error', { role: 'alert' });
  const test = h('button', { type: 'button' }, 'Test source');
  const save = h('button.primary', { type: 'submit' }, cam ? 'Save' : 'Add camera');
  const close = (changed) => { motion.stop(); done(changed); };
  const cancel = h('button', { type: 'button', onclick: () => close(false) }, 'Cancel');
  test.addEventListener('click', async () => {
    result.textContent = 'Connecting (up to 10 s)…';
    result.dataset.ok = '';
    const r = await act(test, () => post('/api/cameras/test', {
      source: source.value.trim() || cam?.source || '',
      username: user.value || undefined, password: pass.value || undefined,
      transport: transport.value, id: cam?.id,
    }), { errorEl: err });
    result.textContent = r ? (r.ok ? `Works: ${r.message}` : `Does not work: ${r.message}`) : '';
    result.dataset.ok = r ? String(r.ok) : '';
  });
  // A camera found by the finder fills in the fields; a name typed by hand is kept.
  let typedName = Boolean(cam);
  name.addEventListener('input', () => { typedName = name.value.trim() !== ''; });
  const find = cam ? null : finder(act, (c) => {
    source.value = c.source;
    if (!typedName) name.value = c.name.slice(0, 64);
    user.value = c.username || '';
    pass.value = c.password || '';
    xaddr.value = c.xaddr || '';
    result.textContent = c.note || '';
    result.dataset.ok = '';
    name.focus();
  });
  // Each key the API may name in an error, and the field it is shown beside.
  const keyed = fieldErrors({
    name, source, username: user, password: pass, transport, retention_days: retention,
    event_retention_days: eventRetention, pre_roll_s: preRoll, post_roll_s: postRoll,
    'onvif.xaddr': xaddr, 'onvif.quiet_seconds': quiet, ...motion.inputs,
  });
  // The API is the one judge of the values (the browser's own checks would hide its message).
  const form = h('form.card.form', {
    novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      keyed.clear();
      const body = { name: name.value.trim(), transport: transport.value, enabled: enabled.checked };
      if (source.value.trim() && source.value.trim() !== cam?.source) body.source = source.value.trim();
      if (!cam && !body.source) { err.textContent = 'A source is needed.'; return; }
      if (user.value) body.username = user.value;
      if (pass.value) body.password = pass.value;
      if (retention.value !== '') body.retention_days = Number(retention.value);
      else if (cam?.retention_days) body.retention_days = 0;
      // Numbers as typed (a typo is the API's error beside the field, not a silent default).
      const num = (input) => (input.value.trim() === '' ? undefined : Number(input.value));
      if (eventRetention.value !== '') body.event_retention_days = num(eventRetention);
      else if (cam?.event_retention_days) body.event_retention_days = 0;
      if (num(preRoll) !== undefined) body.pre_roll_s = num(preRoll);
      if (num(postRoll) !== undefined) body.post_roll_s = num(postRoll);
      body.motion = motion.value();
      if (xaddr.value.trim()) body.onvif = { xaddr: xaddr.value.trim(), events: events.checked, quiet_seconds: Number(quiet.value) || 30 };
      else if (cam?.onvif) body.onvif = { xaddr: '' };
      else if (events.checked) { err.textContent = "The camera's events need its ONVIF address."; return; }
      const r = await act(save, () => (cam ? put(`/api/cameras/${cam.id}`, body) : post('/api/cameras', body)),
        { errorEl: err, done: cam ? 'Camera saved' : 'Camera added' });
      if (r) close(true);
      else keyed.place(err);
    },
  },
  h('h3', cam ? `Edit ${cam.name}` : 'Add a camera'),
  find,
  field('Name', name)[0],
  field('Source URL', source, 'rtsp:// or rtsps:// (an IP camera), v4l2:///dev/videoN (a USB or CSI camera), or file:///path.mp4 (a looped clip). Credentials in the URL are stored separately.')[0],
  h('div.row', field('User name', user)[0], field('Password', pass)[0]),
  h('div.row', field('Transport', transport)[0], field('Keep recordings (days, empty: no limit)', retention)[0]),
  h('div.field.check', enabled, h('label', { for: enabled.id || (enabled.id = uid('en')) }, 'Enabled (recording)')),
  h('fieldset',
    h('legend', "The camera's own events (ONVIF)"),
    field('ONVIF address', xaddr, 'The device service the ONVIF scan found; the camera\'s user name and password above are used.')[0],
    h('div.row',
      h('div.field.check', events, h('label', { for: events.id || (events.id = uid('ev')) }, 'Record its events (motion, tamper, line crossing…)')),
      field('Close an event after (seconds without news)', quiet)[0])),
  h('fieldset',
    h('legend', 'Events'),
    h('div.row.wrap',
      field('Keep event recordings (days)', eventRetention, 'Recordings around an event may be kept longer than the rest: 1 to 3650; empty: as long as the others.')[0],
      field('Before an event (seconds)', preRoll, 'Recording before its start that belongs to its clip: 0 to 300.')[0],
      field('After an event (seconds)', postRoll, 'Recording after its end that belongs to its clip: 0 to 300.')[0])),
  motion.el,
  result, err,
  h('div.buttons', test, save, cancel));
  return form;
}

async function cameras(panel, ctx) {
  const { act } = ctx;
  const area = h('div.below');
  const listEl = h('div');
  async function reload() {
    const cams = await get('/api/cameras?scope=local');
    mount(listEl, cams.length ? h('table',
      h('caption', 'Cameras of this node'),
      h('thead', h('tr', ['Name', 'Source', 'State', 'Enabled', ''].map((c) => h('th', { scope: 'col' }, c || h('span.sr', 'Actions'))))),
      h('tbody', cams.map((c) => {
        const toggle = h('input', { type: 'checkbox', checked: c.enabled, 'aria-label': `${c.name} enabled` });
        toggle.addEventListener('change', async () => {
          toggle.disabled = true;
          const ok = await act(null, () => put(`/api/cameras/${c.id}`, { enabled: toggle.checked }), { done: toggle.checked ? `${c.name} enabled` : `${c.name} disabled` });
          toggle.disabled = false;
          if (!ok) toggle.checked = !toggle.checked;
        });
        const edit = h('button', { type: 'button', onclick: () => mount(area, cameraForm(c, ctx, finish)) }, 'Edit');
        const remove = h('button.danger', { type: 'button' }, 'Delete');
        remove.addEventListener('click', () => mount(area, deleteCamera(c, ctx, finish)));
        return h('tr',
          h('td', c.name, h('br'), h('small.muted', c.id)),
          h('td', h('code.wrap', c.source || '')),
          h('td', h('span.status', { dataset: { state: c.status?.state } }, c.status?.state), c.status?.last_error ? h('small.muted', h('br'), c.status.last_error) : null),
          h('td', toggle),
          h('td.actions', edit, remove));
      }))) : h('p.muted', 'No cameras yet.'));
  }
  async function finish(changed) {
    mount(area, addButton);
    if (changed) await reload().catch((e) => ctx.notify(e.message, 'error'));
  }
  const addButton = h('button.primary', { type: 'button', onclick: () => mount(area, cameraForm(null, ctx, finish)) }, 'Add a camera');
  await reload();
  mount(panel, listEl, area);
  mount(area, addButton);
}

function deleteCamera(c, { act }, done) {
  const keep = h('input', { type: 'radio', name: 'keep', value: 'true', checked: true, id: uid('k') });
  const drop = h('input', { type: 'radio', name: 'keep', value: 'false', id: uid('k') });
  const err = h('p.error', { role: 'alert' });
  const go = h('button.danger', { type: 'submit' }, `Delete ${c.name}`);
  return h('form.card.form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const r = await act(go, async () => { await del(`/api/cameras/${c.id}?keep_recordings=${keep.checked}`); return true; }, { errorEl: err, done: 'Camera deleted' });
      if (r) done(true);
    },
  },
  h('h3', `Delete ${c.name}?`),
  h('fieldset', h('legend', 'Its recordings'),
    h('div.field.check', keep, h('label', { for: keep.id }, 'Keep them (retention removes them later)')),
    h('div.field.check', drop, h('label', { for: drop.id }, 'Delete them now'))),
  err,
  h('div.buttons', go, h('button', { type: 'button', onclick: () => done(false) }, 'Cancel')));
}

// ---- Federation keys ----

async function copy(text, button, notify) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API on plain-HTTP pages: select the text and copy the old way.
    const ta = h('textarea.offscreen', { 'aria-hidden': 'true' }, text);
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    if (!ok) { notify('Copying failed: select the key and copy it by hand.', 'error'); return; }
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 2000);
}

async function keys(panel, { act, notify }) {
  const listEl = h('div');
  const shown = h('div', { 'aria-live': 'polite' });
  async function reload() {
    const ks = await get('/api/federation/keys');
    mount(listEl, ks.length ? h('table',
      h('caption', 'Keys this node has issued to other nodes'),
      h('thead', h('tr', ['Name', 'Created', 'Last used', ''].map((c) => h('th', { scope: 'col' }, c || h('span.sr', 'Actions'))))),
      h('tbody', ks.map((k) => {
        const revoke = h('button.danger', { type: 'button' }, 'Revoke');
        revoke.addEventListener('click', async () => {
          if (!confirm(`Revoke the key "${k.name}"? Nodes using it lose access at once.`)) return;
          const ok = await act(revoke, async () => { await del(`/api/federation/keys/${k.id}`); return true; }, { done: `Key "${k.name}" revoked` });
          if (ok) await reload();
        });
        return h('tr', { dataset: { key: k.name } }, h('td', k.name), h('td', ago(k.created)), h('td', k.last_used ? ago(k.last_used) : 'never'), h('td.actions', revoke));
      }))) : h('p.muted', 'No keys issued.'));
  }
  const name = h('input', { required: true, maxlength: 64, placeholder: 'e.g. garage box' });
  const err = h('p.error', { role: 'alert' });
  const create = h('button.primary', { type: 'submit' }, 'Create key');
  const form = h('form.card.form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const k = await act(create, () => post('/api/federation/keys', { name: name.value.trim() }), { errorEl: err });
      if (!k) return;
      name.value = '';
      const out = h('input.key', { readonly: true, value: k.key, id: 'new-key', 'aria-label': `Key for ${k.name}` });
      const cp = h('button', { type: 'button' }, 'Copy');
      cp.addEventListener('click', () => copy(k.key, cp, notify));
      mount(shown, h('div.card.once',
        h('h3', `Key for "${k.name}"`),
        h('p', 'Shown this once: copy it now and enter it on the node that will read this one. Only its hash is kept here.'),
        h('div.row', out, cp),
        h('button.link', { type: 'button', onclick: () => mount(shown) }, 'Done, hide it')));
      out.select();
      await reload();
    },
  },
  h('h3', 'Issue a key'),
  h('p.muted', 'A key lets another node read this one (cameras, health, recordings) and nothing else.'),
  field('Name', name)[0], err, h('div.buttons', create));
  await reload();
  mount(panel, shown, listEl, form);
}

// ---- Remote nodes ----

/** The add/edit form of a remote node; `prefill` ({label, url, kind}) fills in a new one. */
function nodeForm(n, { act }, done, prefill = {}) {
  const label = h('input', { maxlength: 64, value: n?.label || prefill.label || '', placeholder: 'e.g. Garage' });
  const url = h('input', { required: true, type: 'url', value: n?.url || prefill.url || '', placeholder: 'http://192.0.2.8:8080', spellcheck: false });
  const key = h('input', { type: 'password', autocomplete: 'off', required: !n, placeholder: n?.has_key ? 'unchanged (enter it again to test)' : 'the key issued on that node' });
  const kind = h('select', h('option', { value: 'eyrie' }, 'Eyrie'), h('option', { value: 'cartanvr' }, 'CartaNVR'));
  kind.value = n?.kind || prefill.kind || 'eyrie';
  const mode = h('select', h('option', { value: 'direct' }, 'Direct (browsers fetch from that node)'), h('option', { value: 'relay' }, 'Relay (through this node)'));
  mode.value = n?.media_mode || 'direct';
  const pin = h('input', { value: n?.tls_pin || '', placeholder: 'filled in at first HTTPS contact', spellcheck: false });
  const enabled = h('input', { type: 'checkbox', checked: n ? n.enabled : true, id: uid('ne') });
  const result = h('p.result', { 'aria-live': 'polite' });
  const err = h('p.error', { role: 'alert' });
  const test = h('button', { type: 'button' }, 'Test');
  const save = h('button.primary', { type: 'submit' }, n ? 'Save' : 'Add node');
  test.addEventListener('click', async () => {
    result.textContent = 'Testing…';
    result.dataset.ok = '';
    const body = { url: url.value.trim(), kind: kind.value };
    if (key.value) body.key = key.value;
    if (pin.value.trim()) body.tls_pin = pin.value.trim();
    const r = await act(test, () => post('/api/system/nodes/test', body), { errorEl: err });
    if (!r) { result.textContent = ''; return; }
    result.dataset.ok = String(r.ok);
    result.textContent = `${r.ok ? 'OK' : 'Problem'}: ${r.message}${r.latency_ms !== null && r.latency_ms !== undefined ? ` (${r.latency_ms} ms)` : ''}`;
    if (r.tls_fingerprint) result.append(h('br'), `Certificate to trust: `, h('code.wrap', r.tls_fingerprint));
  });
  return h('form.card.form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { url: url.value.trim(), kind: kind.value, media_mode: mode.value, enabled: enabled.checked, tls_pin: pin.value.trim() };
      if (label.value.trim()) body.label = label.value.trim();
      if (key.value) body.key = key.value;
      const r = await act(save, () => (n ? put(`/api/system/nodes/${n.id}`, body) : post('/api/system/nodes', body)),
        { errorEl: err, done: n ? 'Node saved' : 'Node added' });
      if (r) done(true);
    },
  },
  h('h3', n ? `Edit ${n.label}` : 'Add a remote node'),
  h('div.row', field('Label', label)[0], field('URL', url)[0]),
  field('Federation key', key, 'Issued on that node under Settings → Federation keys. Never shown again here.')[0],
  h('div.row', field('Kind', kind)[0], field('Media', mode)[0]),
  field('TLS certificate pin (SHA-256)', pin)[0],
  h('div.field.check', enabled, h('label', { for: enabled.id }, 'Enabled')),
  result, err,
  h('div.buttons', test, save, h('button', { type: 'button', onclick: () => done(false) }, 'Cancel')));
}

async function nodes(panel, ctx) {
  const { act } = ctx;
  const area = h('div.below');
  const listEl = h('div', { id: 'nodes-list' });
  let pairing = null;
  let known = null; // which nodes, at which URLs, are which peers: what `linked` depends on
  async function reload() {
    const ns = await get('/api/system/nodes');
    const now = JSON.stringify(ns.map((n) => [n.id, n.url, n.status?.node_id]));
    if (known !== null && now !== known) pairing?.nodesChanged();
    known = now;
    mount(listEl, ns.length ? h('table',
      h('caption', 'Nodes this one reads'),
      h('thead', h('tr', ['Node', 'Status', 'Media', ''].map((c) => h('th', { scope: 'col' }, c || h('span.sr', 'Actions'))))),
      h('tbody', ns.map((n) => {
        const st = n.status || {};
        const state = !n.enabled ? 'disabled' : st.online ? (st.stale ? 'stale' : 'recording') : 'offline';
        const edit = h('button', { type: 'button', onclick: () => mount(area, nodeForm(n, ctx, finish)) }, 'Edit');
        // Poll now, rather than wait for the backoff of a node that was unreachable.
        const check = h('button', { type: 'button' }, 'Check now');
        check.addEventListener('click', async () => {
          const ok = await act(check, async () => { await post(`/api/system/nodes/${n.id}/check`); return true; });
          if (ok) await reload();
        });
        const remove = h('button.danger', { type: 'button' }, 'Delete');
        remove.addEventListener('click', async () => {
          if (!confirm(`Stop reading "${n.label}"? Its cameras disappear from this node's pages.`)) return;
          const ok = await act(remove, async () => { await del(`/api/system/nodes/${n.id}`); return true; }, { done: `${n.label} deleted` });
          if (ok) await reload();
        });
        return h('tr', { dataset: { node: n.label } },
          h('td', h('strong', n.label), h('br'), h('small.muted', n.url), n.kind === 'cartanvr' ? h('small', ' (CartaNVR)') : null),
          h('td', h('span.status', { dataset: { state } }, !n.enabled ? 'disabled' : st.online ? `online, ${st.latency_ms ?? '–'} ms` : 'offline'),
            h('br'), h('small.muted', `last seen ${ago(st.last_seen)}, ${st.cameras ?? 0} camera(s)`),
            st.last_error ? [h('br'), h('small.error', st.last_error)] : null),
          h('td', n.media_mode),
          h('td.actions', n.enabled ? check : null, edit, remove));
      }))) : h('p.muted', 'No remote nodes yet.'));
  }
  async function finish(changed) {
    mount(area, addButton);
    if (changed) await reload().catch((e) => ctx.notify(e.message, 'error'));
  }
  const addButton = h('button.primary', { type: 'button', onclick: () => mount(area, nodeForm(null, ctx, finish)) }, 'Add a remote node');
  await reload();
  pairing = pairingSections(ctx, {
    // A discovered node added by hand: the form filled in with what it advertises.
    addManually: (seen) => {
      const form = nodeForm(null, ctx, finish, { label: seen.label, url: seen.url || '', kind: seen.kind });
      mount(area, form);
      form.scrollIntoView({ block: 'nearest' });
      form.querySelector('input[type=password]').focus();
    },
    linked: () => reload().catch((e) => ctx.notify(e.message, 'error')),
  });
  mount(panel, h('section', { 'aria-label': 'Registered nodes' }, listEl, area), pairing.sections);
  mount(area, addButton);
  const t = setInterval(() => { if (!area.querySelector('form')) reload().catch(() => {}); }, 5000);
  return () => { clearInterval(t); pairing.stop(); };
}

// ---- Account ----

async function account(panel, { act, session }) {
  const cur = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const err = h('p.error', { role: 'alert' });
  const save = h('button.primary', { type: 'submit' }, 'Change password');
  mount(panel, h('form.card.form.narrow', {
    onsubmit: async (e) => {
      e.preventDefault();
      if (next.value !== again.value) { err.textContent = 'The new passwords differ.'; return; }
      const ok = await act(save, async () => { await put('/api/account/password', { current_password: cur.value, new_password: next.value }); return true; },
        { errorEl: err, done: 'Password changed; other sessions were logged out' });
      if (ok) { cur.value = ''; next.value = ''; again.value = ''; }
    },
  },
  h('h2', `Account: ${session.user}`),
  field('Current password', cur)[0],
  field('New password (8 characters or more)', next)[0],
  field('New password again', again)[0],
  err, h('div.buttons', save)));
}
