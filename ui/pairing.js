// Settings → Remote nodes, the pairing half (docs/federation.md, "Pairing"): the nodes seen on
// the network over mDNS (Pair / Add manually), pairing by address, the pairings this node
// started (the code to type on the other node, and their state as it changes), and the requests other nodes
// made to this one (approve by typing the code, or reject). Kept current by the server's change
// notices (GET /api/events), polling while those fail.

import { get, post } from './api.js';
import { h, mount, field, ago, duration, uid } from './dom.js';
import { follow as followNotices } from './notices.js';

const POLL_MS = 5000;

const VIEWS = {
  discover: '/api/system/discover',
  pair_requests: '/api/federation/pair/requests',
  pairings: '/api/system/pairings',
};

/**
 * Calls on[view](state) with each new state of the three views: from the event stream, or by
 * polling while the stream is down (ui/notices.js tries a refused or closed one again later). Returns
 * the function that stops everything.
 */
function follow(on, notify) {
  let poll = null;
  let stopped = false;
  let warned = false;
  async function pollOnce() {
    try {
      for (const [view, path] of Object.entries(VIEWS)) {
        const v = await get(path);
        if (stopped) return;
        on[view](v);
      }
      warned = false;
    } catch (e) {
      // Report a failure once, not every 5 seconds.
      if (!warned && !stopped) notify(`Updating the pairing lists failed: ${e.message}`, 'error');
      warned = true;
    }
  }
  const startPolling = () => {
    if (poll || stopped) return;
    poll = setInterval(pollOnce, POLL_MS);
    pollOnce();
  };
  const stopPolling = () => { clearInterval(poll); poll = null; };
  const stopEvents = followNotices(
    Object.fromEntries(Object.keys(VIEWS).map((view) => [view, (v) => { stopPolling(); on[view](v); }])),
    { onDown: startPolling },
  );
  return () => {
    stopped = true;
    stopEvents();
    stopPolling();
  };
}

/**
 * Brings `list`'s children in line with `items`, keeping the element of an item whose content
 * (`sig`) did not change, so updates never take away focus or a half-typed code. `update` runs
 * on every item's element, kept or new (for counters such as time left).
 */
function reconcile(list, items, { key, sig, build, update }) {
  const old = new Map([...list.children].map((c) => [c.dataset.key, c]));
  const wanted = items.map((it) => {
    const k = key(it);
    const s = sig(it);
    let el = old.get(k);
    if (!el || el.dataset.sig !== s) {
      el = build(it);
      el.dataset.key = k;
      el.dataset.sig = s;
    }
    update?.(el, it);
    return el;
  });
  wanted.forEach((el, i) => {
    const at = list.children[i];
    if (at !== el) list.insertBefore(el, at || null);
  });
  // What is left after the wanted ones: items gone, or elements rebuilt.
  while (list.children.length > wanted.length) list.lastElementChild.remove();
}

/** A certificate fingerprint: its ends shown, the whole of it on hover or keyboard focus. */
function fingerprint(fp) {
  if (!fp) return 'none (plain HTTP)';
  return h('span.fp', { tabindex: '0', title: fp },
    h('code.short', { 'aria-hidden': 'true' }, `${fp.slice(0, 8)}…${fp.slice(-8)}`),
    h('code.full', fp));
}

function kv(rows) {
  return h('dl', rows.filter(Boolean).map(([k, v]) => [h('dt', k), h('dd', v)]));
}

const PAIRING_STATE = {
  asking: ['connecting', 'Sending the request…'],
  waiting: ['connecting', 'Waiting for approval'],
  linked: ['recording', 'Approved: linked'],
  rejected: ['error', 'Rejected'],
  expired: ['disabled', 'Expired'],
  failed: ['error', 'Failed'],
};

const REQUEST_STATE = {
  pending: ['connecting', 'Waiting for your decision'],
  approved: ['recording', 'Approved: waiting for it to collect its key'],
  collected: ['recording', 'Linked: it collected its key'],
  rejected: ['error', 'Rejected'],
  expired: ['disabled', 'Expired'],
};

function statusBadge([state, text]) {
  return h('span.status', { dataset: { state } }, text);
}

/**
 * The pairing sections of the Remote nodes tab. `addManually(seen)` opens the add-node form
 * filled in for a discovered node; `linked()` runs when a pairing has just linked a node.
 * Returns { sections, stop }.
 */
export function pairingSections(ctx, { addManually, linked }) {
  const { act, notify } = ctx;
  const discoverNote = h('p.muted');
  const discovered = h('ul.cards', { id: 'discovered', 'aria-label': 'Nodes discovered on this network' });
  const discoveredEmpty = h('p.empty', { id: 'discovered-empty' }, 'Looking for nodes…');
  const pairings = h('ul.cards', { id: 'pairings', 'aria-label': 'Pairings started here', 'aria-live': 'polite' });
  const pairingsEmpty = h('p.empty', 'None yet. Pair with a discovered node or by address.');
  const requests = h('ul.cards', { id: 'pair-requests', 'aria-label': 'Requests to pair with this node', 'aria-live': 'polite' });
  const requestsEmpty = h('p.empty', { id: 'pair-requests-empty' }, 'No requests. When another node asks to pair with this one, it appears here.');

  async function startPairing(button, body, errorEl) {
    const p = await act(button, () => post('/api/system/pairings', body), { errorEl });
    if (p) {
      // The change notices may have brought it (and its next state) before this answer.
      if (!lastPairings.some((x) => x.id === p.id)) showPairings([p, ...lastPairings]);
      pairings.querySelector(`[data-key="${p.id}"]`)?.focus();
    }
    return p;
  }

  // ---- discovered nodes ----

  function seenCard(n) {
    const err = h('p.error', { role: 'alert' });
    let actions;
    if (n.linked) {
      actions = h('p', statusBadge(['recording', 'Linked']), ' ', h('small.muted', 'already a remote node here'));
    } else {
      const pair = n.kind === 'eyrie' && n.node_id && n.url
        ? h('button.primary', { type: 'button', 'aria-label': `Pair with ${n.label}` }, 'Pair')
        : null;
      pair?.addEventListener('click', () => startPairing(pair, { node_id: n.node_id }, err));
      const manual = h('button', { type: 'button', 'aria-label': `Add manually: ${n.label}`, onclick: () => addManually(n) }, 'Add manually');
      actions = h('div.buttons', pair, manual);
    }
    return h('li.card.peer', { dataset: { node: n.label, kind: n.kind } },
      h('h4', n.label, n.kind === 'cartanvr' ? h('span.badge', 'CartaNVR') : null),
      kv([
        ['URL', n.url ? h('code.wrap', n.url) : 'no address usable in a URL'],
        ['Version', n.version || (n.kind === 'cartanvr' ? 'not advertised' : 'unknown')],
        ['TLS certificate', fingerprint(n.tls_fingerprint)],
        ['Last seen', h('span', { dataset: { since: n.last_seen } }, ago(n.last_seen))],
      ]),
      n.kind === 'cartanvr' ? h('p.muted', 'CartaNVR cannot pair: add it with the key from its own settings.') : null,
      actions, err);
  }

  function showDiscover(d) {
    discoverNote.textContent = d.enabled
      ? (d.advertised_as ? `This node is announced as "${d.advertised_as}". Other Eyries on this network appear here by themselves.` : 'Other Eyries on this network appear here by themselves.')
      : '';
    discoveredEmpty.textContent = d.enabled
      ? 'No Eyrie found on this network yet. A node that starts on this network appears here within seconds; pair with one elsewhere by its address.'
      : 'Discovery is off on this node ([discovery] enabled = false in eyrie.toml), so it looks for no other nodes. Pair with one by its address.';
    const nodes = d.nodes || [];
    discoveredEmpty.hidden = nodes.length > 0;
    reconcile(discovered, nodes, {
      key: (n) => `${n.instance}|${n.node_id || ''}`,
      // Everything but the time it was last heard, which the clock below keeps current.
      sig: (n) => JSON.stringify({ ...n, last_seen: null, last_seen_ms: null }),
      build: seenCard,
      update: (el, n) => {
        const since = el.querySelector('[data-since]');
        since.dataset.since = n.last_seen;
        since.textContent = ago(n.last_seen);
      },
    });
  }

  // ---- pairings this node started ----

  let lastPairings = [];
  let linkedSeen = null; // ids of pairings known linked (null before the first list)

  function pairingCard(p) {
    const name = p.label || p.url;
    const open = p.state === 'asking' || p.state === 'waiting';
    return h('li.card.pairing', { tabindex: '-1', dataset: { state: p.state, node: name }, 'aria-label': `Pairing with ${name}` },
      h('h4', name),
      p.label ? h('p.muted', h('code.wrap', p.url)) : null,
      // Big while someone compares it; small once the pairing is over.
      h('p.codebox', { dataset: { open: String(open) } }, h('span.code-label', 'Code'), h('span.code', p.code)),
      open ? h('p.compare', `Type this code on ${name}'s page to approve (Settings → Remote nodes there).`) : null,
      h('p.state', statusBadge(PAIRING_STATE[p.state] || ['unknown', p.state])),
      h('p.message', p.message),
      p.state === 'linked' ? h('p', `${name} is now in the list of nodes this one reads, above.`) : null);
  }

  function showPairings(list) {
    lastPairings = list;
    const sorted = [...list].sort((a, b) => b.created_ms - a.created_ms);
    pairingsEmpty.hidden = sorted.length > 0;
    reconcile(pairings, sorted, { key: (p) => p.id, sig: (p) => JSON.stringify(p), build: pairingCard });
    const now = new Set(list.filter((p) => p.state === 'linked').map((p) => p.id));
    if (linkedSeen && [...now].some((id) => !linkedSeen.has(id))) linked();
    linkedSeen = now;
  }

  // ---- requests made to this node ----

  function requestCard(r) {
    const pending = r.state === 'pending';
    const children = [
      h('h4', r.label),
      kv([
        ['URL', h('code.wrap', r.url)],
        ['Asked from', h('code', r.from)],
        ['Node id', h('code.wrap', r.node_id)],
      ]),
      h('p.state', statusBadge(REQUEST_STATE[r.state] || ['unknown', r.state]),
        pending ? [' ', h('small.left', { dataset: { deadline: '' } })] : null),
    ];
    if (pending) {
      const code = h('input', {
        inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{6}', maxlength: 6, required: true,
        spellcheck: false, placeholder: '6 digits',
      });
      const back = h('input', { type: 'checkbox', id: uid('lb') });
      const err = h('p.error', { role: 'alert' });
      const approve = h('button.primary', { type: 'submit' }, 'Approve');
      const reject = h('button.danger', { type: 'button' }, 'Reject');
      reject.addEventListener('click', () => act(reject,
        () => post(`/api/federation/pair/requests/${r.id}/reject`), { errorEl: err, done: `Request from ${r.label} rejected` }));
      children.push(h('form.approve', {
        onsubmit: async (e) => {
          e.preventDefault();
          const res = await act(approve, () => post(`/api/federation/pair/requests/${r.id}/approve`,
            { code: code.value.trim(), link_back: back.checked }), { errorEl: err });
          if (!res) return;
          if (res.link_back_error) {
            notify(`Approved: ${r.label} collects its key now. Linking back failed: ${res.link_back_error}`, 'error');
            return;
          }
          notify(res.link_back
            ? `Approved. This node now asks ${r.label} to pair back: approve code ${res.link_back.code} there.`
            : `Approved: ${r.label} collects its key now.`, 'ok');
        },
      },
      field(`Type the code ${r.label} shows`, code,
        `Read it on ${r.label}'s own page (Settings → Remote nodes). This node never shows it: typing it proves the request came from there, not from another device using that name. A wrong code three times rejects the request.`)[0],
      h('div.field.check', back, h('label', { for: back.id }, `Also link back: this node reads ${r.label} too, at ${r.url} (its admin approves that the same way)`)),
      err,
      h('div.buttons', approve, reject)));
    } else if (r.state === 'collected') {
      children.push(h('p.muted', `Its key is "paired: ${r.label}" under Federation keys; revoke it there to end the link.`));
    }
    return h('li.card.request', { dataset: { node: r.label, state: r.state } }, children);
  }

  function showRequests(list) {
    const sorted = [...list].sort((a, b) => (b.state === 'pending') - (a.state === 'pending') || b.created_ms - a.created_ms);
    requestsEmpty.hidden = sorted.length > 0;
    reconcile(requests, sorted, {
      key: (r) => r.id,
      sig: (r) => JSON.stringify({ ...r, expires_in_s: null }),
      build: requestCard,
      update: (el, r) => {
        const left = el.querySelector('[data-deadline]');
        if (!left) return;
        left.dataset.deadline = String(Date.now() + r.expires_in_s * 1000);
        tick(left);
      },
    });
  }

  function tick(el) {
    const s = Math.max(0, (Number(el.dataset.deadline) - Date.now()) / 1000);
    el.textContent = s > 0 ? `expires in ${duration(s)}` : 'expired';
  }

  // ---- the sections ----

  const address = h('input', { type: 'url', required: true, placeholder: 'http://192.0.2.8:8080', spellcheck: false });
  const addressErr = h('p.error', { role: 'alert' });
  const addressGo = h('button.primary', { type: 'submit' }, 'Pair');
  const byAddress = h('form.card.form', {
    onsubmit: async (e) => {
      e.preventDefault();
      if (await startPairing(addressGo, { url: address.value.trim() }, addressErr)) address.value = '';
    },
  },
  h('h3', 'Pair by address'),
  h('p.muted', 'For a node this one does not discover (on another network, or with discovery off). Its admin approves the request on its own page.'),
  field('Address of the other node', address, 'Its http:// or https:// address and port, as in your browser.')[0],
  addressErr,
  h('div.buttons', addressGo));

  const sections = [
    h('section.pair', { 'aria-labelledby': 'pair-head' },
      h('h2', { id: 'pair-head' }, 'Pair with another node'),
      h('p.muted', 'Pairing gets this node a key to read the other one: this page shows a code, which the other node\'s admin types there to approve.'),
      h('h3', 'Discovered on this network'),
      discoverNote, discoveredEmpty, discovered,
      byAddress,
      h('h3.gap', 'Pairings started here'),
      pairingsEmpty, pairings),
    h('section.pair', { 'aria-labelledby': 'requests-head' },
      h('h2', { id: 'requests-head' }, 'Requests to pair with this node'),
      h('p.muted', 'Another node asks for a key to read this one. To approve, type the code its page shows.'),
      requestsEmpty, requests),
  ];

  const stopFollowing = follow({ discover: showDiscover, pair_requests: showRequests, pairings: showPairings }, notify);
  const clock = setInterval(() => {
    for (const el of sections[1].querySelectorAll('[data-deadline]')) tick(el);
    for (const el of discovered.querySelectorAll('[data-since]')) el.textContent = ago(el.dataset.since);
  }, 1000);
  return {
    sections,
    // Whether a discovered node is linked changes with the remote nodes, which send no
    // discover notice: the page asks again when it sees them change.
    nodesChanged: () => get(VIEWS.discover).then(showDiscover).catch(() => {}),
    stop: () => { stopFollowing(); clearInterval(clock); },
  };
}
