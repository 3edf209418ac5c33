// The shell: who is logged in, the login and first-start pages, navigation between pages
// (hash routes, so the server serves one page), and the notices every action reports to.

import { api, get, post, del, setCsrf, whenLoggedOut } from './api.js';
import { h, mount, field } from './dom.js';
import * as dashboard from './dashboard.js';
import * as health from './health.js';
import * as recordings from './recordings.js';
import * as settings from './settings.js';

const app = document.getElementById('app');
let session = null;
let cleanup = null;
let generation = 0; // of route(): a page that finishes loading after another was asked for stops

/** Shows the dashboard (once: a hash change routes by itself). */
function home() {
  if (location.hash !== '#/') location.hash = '#/';
  else route();
}

const pages = [
  { path: '', title: 'Dashboard', mod: dashboard },
  { path: 'recordings', title: 'Recordings', mod: recordings },
  { path: 'health', title: 'Health', mod: health },
  { path: 'settings', title: 'Settings', mod: settings },
];

// ---- notices: progress and errors of every action ----

const notices = h('div.notices', { role: 'status', 'aria-live': 'polite' });

/** Shows a message; errors stay until dismissed, others fade. */
export function notify(text, kind = 'info') {
  const close = h('button.link', { type: 'button', 'aria-label': 'Dismiss', onclick: () => n.remove() }, '×');
  const n = h(`div.notice.${kind}`, { role: kind === 'error' ? 'alert' : null }, h('span', text), close);
  notices.append(n);
  if (kind !== 'error') setTimeout(() => n.remove(), 4000);
  return n;
}

/**
 * Runs `fn` for a button: disables it and shows progress while running; shows the API's error
 * (in `errorEl` when given, else as a notice) if it fails. Returns fn's result or undefined.
 */
export async function act(button, fn, { errorEl, done } = {}) {
  const label = button?.textContent;
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = `${label}…`;
  }
  if (errorEl) errorEl.textContent = '';
  try {
    const r = await fn();
    if (done) notify(done, 'ok');
    return r;
  } catch (e) {
    const msg = e?.message || String(e);
    if (errorEl) {
      errorEl.textContent = msg;
    } else {
      notify(msg, 'error');
    }
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = label;
    }
  }
}

// ---- login, first start ----

function loginPage(setupToken) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, value: setupToken ? 'admin' : '' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: setupToken ? 'new-password' : 'current-password', required: true, minlength: setupToken ? 8 : null });
  const err = h('p.error', { role: 'alert' });
  const submit = h('button.primary', { type: 'submit' }, setupToken ? 'Create account' : 'Log in');
  const form = h('form.card.narrow', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { username: user.value.trim(), password: pass.value };
      const r = await act(submit, () => (setupToken
        ? post('/api/setup', { token: setupToken, ...body })
        : post('/api/session', body)), { errorEl: err });
      if (r) {
        session = r;
        setCsrf(r.csrf);
        home();
      }
    },
  },
  h('h1', setupToken ? 'Create the admin account' : 'Log in to Eyrie'),
  setupToken ? h('p', 'This link works once. Choose the name and password of the first account (8 characters or more).') : null,
  field('User name', user)[0],
  field('Password', pass)[0],
  err,
  submit);
  mount(app, h('main.login', { id: 'main' }, form), notices);
  user.focus();
}

// ---- the shell ----

function shell(active) {
  const nav = h('nav', { 'aria-label': 'Pages' },
    pages.map((p) => h('a', {
      href: `#/${p.path}`,
      'aria-current': p === active ? 'page' : null,
    }, p.title)));
  const logout = h('button.link', { type: 'button' }, 'Log out');
  logout.addEventListener('click', () => act(logout, async () => {
    // An already ended session (401) is as good as logged out.
    await del('/api/session').catch((e) => { if (e.status !== 401) throw e; });
    session = null;
    setCsrf(null);
    home();
  }));
  const main = h('main', { id: 'main', tabindex: '-1' });
  mount(app,
    h('a.skip', { href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('header.top',
      h('a.brand', { href: '#/' }, 'Eyrie', h('span.node', session.node_label || '')),
      nav,
      h('span.user', session.user, ' ', logout)),
    main,
    notices);
  return main;
}

async function route() {
  cleanup?.();
  cleanup = null;
  const mine = ++generation;
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  if (parts[0] === 'setup' && parts[1]) {
    return loginPage(parts[1]);
  }
  if (!session?.user) {
    try {
      const s = await get('/api/session');
      if (s.user) {
        session = s;
        setCsrf(s.csrf);
      } else {
        return loginPage(null);
      }
    } catch (e) {
      mount(app, h('main.login', { id: 'main' }, h('p.error', { role: 'alert' }, `Cannot reach this node: ${e.message}`)), notices);
      return;
    }
  }
  if (mine !== generation) return;
  const page = pages.find((p) => p.path === parts[0]) || pages[0];
  document.title = `${page.title} · Eyrie`;
  const main = shell(page);
  mount(main, h('p.muted', 'Loading…'));
  try {
    const done = await page.mod.render(main, { notify, act, args: parts.slice(1), session });
    if (mine === generation) cleanup = done;
    else done?.();
  } catch (e) {
    mount(main, h('p.error', { role: 'alert' }, e.message));
  }
}

whenLoggedOut(() => {
  if (session) {
    session = null;
    setCsrf(null);
    notify('Your session ended; please log in again.', 'error');
    route();
  }
});

window.addEventListener('hashchange', route);
route();

export { api };
