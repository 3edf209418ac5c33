// The node's change notices (GET /api/events, Server-Sent Events), the one way a page follows
// them: pairing's views (`discover`, `pair_requests`, `pairings`) and the node's events
// (`event_start`, `event_end`). Pages poll while the stream is down.

const RETRY_MS = 30000;

/**
 * Calls handlers[name](data) with the parsed data of each notice named in `handlers`.
 * `onDown()` runs when the stream fails (the browser reconnects by itself unless it was refused:
 * 503 past 8 listeners, 401; then it is tried again after RETRY_MS), `onUp()` when it is open
 * again. Without EventSource, `onDown()` runs once and nothing else happens. Returns the
 * function that stops it.
 */
export function follow(handlers, { onDown = () => {}, onUp = () => {} } = {}) {
  let es = null;
  let retry = null;
  let stopped = false;
  function connect() {
    retry = null;
    if (stopped) return;
    if (typeof EventSource === 'undefined') { onDown(); return; }
    es = new EventSource('/api/events');
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (ev) => {
        let v = null;
        try { v = JSON.parse(ev.data); } catch { /* ignored: the next notice or poll brings it */ }
        if (v !== null && !stopped) fn(v);
      });
    }
    es.addEventListener('open', () => { if (!stopped) onUp(); });
    es.addEventListener('error', () => {
      if (stopped) return;
      onDown();
      if (es?.readyState === EventSource.CLOSED) {
        es = null;
        retry = setTimeout(connect, RETRY_MS);
      }
    });
  }
  connect();
  return () => {
    stopped = true;
    es?.close();
    clearTimeout(retry);
  };
}
