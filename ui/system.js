// Settings → System: the appliance's A/B root slots in plain words, installing an update (the
// root image uploaded with progress to the slot that is not running) and restarting into it,
// waiting for the appliance to come back. On a node that is not an appliance it says so and
// offers no upload. The wire is docs/update.md.

import { get, post, upload } from './api.js';
import { h, mount, bytes, uid } from './dom.js';

/** How long a restart may take before the page stops waiting for the appliance. */
const RESTART_LIMIT_MS = 5 * 60 * 1000;
/** Between two polls of /api/health while the appliance restarts. */
const RESTART_POLL_MS = 2000;

const letter = (s) => (s ? s.toUpperCase() : '');

/**
 * The slot state in sentences: `st` is GET /api/system/update's answer (appliance). Returns
 * [sentence, kind] pairs; kind "warn" for what went wrong.
 */
function describe(st) {
  const out = [[`Running slot ${letter(st.slot)}, version ${st.version}.`, 'info']];
  if (st.updating) out.push(['An update is being written now.', 'info']);
  if (st.trial && st.trial === st.slot) {
    out.push([`This is the first start of the update in slot ${letter(st.slot)}; it is kept once Eyrie has come up on it.`, 'info']);
  } else if (st.trial) {
    out.push([`Slot ${letter(st.trial)} is on trial.`, 'info']);
  }
  if (st.failed) {
    out.push([`The last update did not start; the appliance went back to slot ${letter(st.active)}.`, 'warn']);
  }
  if (st.next) {
    out.push([`An update is written to slot ${letter(st.next)} and runs after a restart.`, 'info']);
  } else if (!st.updating && !st.trial) {
    out.push(['No update is waiting.', 'info']);
  }
  if (st.active !== st.slot && !st.trial) {
    out.push([`Slot ${letter(st.active)} is the one that last started well.`, 'info']);
  }
  return out;
}

/** Hex SHA-256 of a file, or null where the browser offers no WebCrypto (plain http:// to a
 * name other than localhost is not a secure context): the header is optional. */
async function sha256(file) {
  if (!globalThis.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function system(panel, { act }) {
  const [hl, st] = await Promise.all([get('/api/health'), get('/api/system/update')]);
  if (!hl.system || !st.appliance) {
    mount(panel,
      h('h2', 'System'),
      h('div.card.narrow-text',
        h('p', `This node runs Eyrie ${st.version} but not as an appliance, so it cannot update itself from this page.`),
        h('p', 'Updates from the browser need the appliance image (the SD-card image with two root slots, A and B): see ',
          h('code', 'docs/image.md'), ' and ', h('code', 'docs/update.md'), ' in Eyrie\'s source. Here, update Eyrie the way it was installed.')));
    return undefined;
  }

  const state = h('div', { id: 'system-state' });
  const live = h('p.status-text', { id: 'system-status', role: 'status', 'aria-live': 'polite', tabindex: '-1' });
  const err = h('p.error', { role: 'alert', id: 'system-error' });

  function showState(s, configError) {
    mount(state,
      h('ul.plain', describe(s).map(([t, kind]) => h('li', { dataset: { kind } }, t))),
      configError ? h('div.card.warn-box', { role: 'note' },
        h('h3', 'The boot partition\'s eyrie.toml was not applied'),
        h('p', h('code.msg', configError)),
        h('p.muted', 'The appliance runs on its last good settings. Fix the file on the SD card\'s boot partition (any PC opens it) and restart.')) : null);
  }
  async function refresh() {
    const [h2, s2] = await Promise.all([get('/api/health'), get('/api/system/update')]);
    showState(s2, h2.system?.boot_config_error);
    return s2;
  }
  showState(st, hl.system.boot_config_error);

  // ---- install an update ----
  const file = h('input', { type: 'file', accept: '.squashfs,application/octet-stream', required: true });
  const progress = h('progress', { max: 100, value: 0, id: uid('p'), hidden: true });
  const progressLabel = h('label', { for: progress.id, hidden: true }, 'Upload');
  const progressText = h('span.muted', { 'aria-hidden': 'true' });
  const install = h('button.primary', { type: 'submit' }, 'Install update');
  const cancel = h('button', { type: 'button', hidden: true }, 'Cancel upload');
  const restart = h('button.danger', { type: 'button' }, 'Restart now');
  let ctl = null;
  let announced = -1;

  const leaving = (e) => { e.preventDefault(); e.returnValue = ''; };
  function busy(on) {
    install.disabled = on;
    file.disabled = on;
    restart.disabled = on;
    install.toggleAttribute('aria-busy', on);
    if (on) window.addEventListener('beforeunload', leaving);
    else window.removeEventListener('beforeunload', leaving);
  }
  function showProgress(sent, total) {
    const pct = total ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
    progress.value = pct;
    progress.setAttribute('aria-valuetext', `${pct} percent, ${bytes(sent)} of ${bytes(total)}`);
    progressText.textContent = `${pct} % (${bytes(sent)} of ${bytes(total)})`;
    // The live region speaks every 10 %, not at every event.
    const step = Math.floor(pct / 10);
    if (step !== announced) {
      announced = step;
      live.textContent = `Uploading: ${pct} %`;
    }
  }

  cancel.addEventListener('click', () => ctl?.abort());
  const form = h('form.card.form', {
    onsubmit: async (e) => {
      e.preventDefault();
      const f = file.files[0];
      if (!f) { err.textContent = 'Choose the root image first (eyrie-<board>-root.squashfs).'; file.focus(); return; }
      err.textContent = '';
      busy(true);
      ctl = new AbortController();
      announced = -1;
      progress.hidden = false;
      progressLabel.hidden = false;
      progress.removeAttribute('value'); // indeterminate while the checksum is computed
      progress.removeAttribute('aria-valuetext');
      progressText.textContent = '';
      live.textContent = `Computing the checksum of ${f.name}…`;
      try {
        const headers = {};
        const sum = await sha256(f).catch(() => null);
        if (sum) headers['x-eyrie-sha256'] = sum;
        cancel.hidden = false;
        showProgress(0, f.size);
        const r = await upload('/api/system/update', f, {
          headers,
          signal: ctl.signal,
          onProgress: showProgress,
          onSent: () => {
            cancel.hidden = true;
            progress.value = 100;
            live.textContent = 'Uploaded. The appliance is checking what it wrote…';
          },
        });
        progress.value = 100;
        progressText.textContent = `${bytes(r.bytes)} written`;
        live.textContent = `Installed: slot ${letter(r.slot)} holds the new image (${bytes(r.bytes)}${sum ? ', checksum verified' : ''}). It runs after a restart.`;
        file.value = '';
      } catch (e2) {
        progress.hidden = true;
        progressLabel.hidden = true;
        progress.removeAttribute('aria-valuetext');
        progressText.textContent = '';
        live.textContent = '';
        const why = { 400: 'This file cannot be installed', 409: 'Not now', 413: 'Too large for the slot' }[e2.status];
        const msg = e2.message.charAt(0).toUpperCase() + e2.message.slice(1);
        err.textContent = `Not installed. ${why ? `${why}: ${e2.message}` : msg}`;
      } finally {
        cancel.hidden = true;
        ctl = null;
        busy(false);
      }
      await refresh().catch(() => {});
      live.focus();
    },
  },
  h('h3', 'Install an update'),
  h('p.muted', 'The new root image goes to the slot that is not running; the running one is not touched. It starts at the next restart, and if it does not come up the appliance goes back to this one by itself.'),
  h('div.field', h('label', { for: file.id || (file.id = uid('f')) }, 'Root image'), file,
    h('small.hint', { id: `${file.id}-hint` }, 'The file eyrie-<board>-root.squashfs built beside the SD-card image.')),
  h('div.upload', progressLabel, progress, progressText),
  err,
  h('div.buttons', install, cancel));
  file.setAttribute('aria-describedby', `${file.id}-hint`);

  // ---- restart ----
  restart.addEventListener('click', async () => {
    const s = await get('/api/system/update').catch(() => st);
    const into = s.next ? ` and starts the update in slot ${letter(s.next)}` : '';
    if (!confirm(`Restart the appliance now? Recording stops for about a minute${into}.`)) return;
    const before = await get('/api/health').catch(() => null);
    const ok = await act(restart, async () => { await post('/api/system/reboot'); return true; }, { errorEl: err });
    if (!ok) return;
    busy(true);
    live.textContent = 'Restarting… waiting for the appliance to come back (usually about a minute).';
    const back = await waitForRestart(before?.uptime_s);
    if (back) {
      live.textContent = 'The appliance is back; reloading the page…';
      window.removeEventListener('beforeunload', leaving);
      location.reload();
      return;
    }
    busy(false);
    live.textContent = '';
    err.textContent = 'The appliance has not come back after 5 minutes. Check its power and network, then reload this page.';
  });

  mount(panel,
    h('h2', 'System'),
    state,
    live,
    form,
    h('section.card.form', { 'aria-labelledby': 'restart-h' },
      h('h3', { id: 'restart-h' }, 'Restart'),
      h('p.muted', 'Restarts the appliance; an update written above starts then. The page waits for it and reloads.'),
      h('div.buttons', restart)));
  // Leaving the tab does not stop an upload or the wait for a restart: both finish (the
  // browser warns before the page itself is closed while an upload runs).
  return undefined;
}

/**
 * Polls /api/health until the appliance has restarted: it stopped answering and answers
 * again, or it answers with a shorter uptime than before (a restart faster than a poll).
 * Resolves true when back, false after RESTART_LIMIT_MS. Uses fetch directly: after a restart
 * the session may be gone (a 401 is an answer too), and the page is reloaded anyway.
 */
async function waitForRestart(uptimeBefore) {
  const until = Date.now() + RESTART_LIMIT_MS;
  let wentAway = false;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, RESTART_POLL_MS));
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), RESTART_POLL_MS * 2);
    try {
      const res = await fetch('/api/health', { credentials: 'same-origin', cache: 'no-store', signal: ctl.signal });
      if (wentAway) return true;
      const hl = res.ok ? await res.json().catch(() => null) : null;
      if (hl && uptimeBefore !== undefined && hl.uptime_s < uptimeBefore) return true;
    } catch {
      wentAway = true;
    } finally {
      clearTimeout(timer);
    }
  }
  return false;
}
