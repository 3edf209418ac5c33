// Calls to this node's API. Every failure becomes an Error whose message is the API's own
// `{"error": ...}` text (or what went wrong on the way), so pages can always show it.

let csrf = null;
let onLoggedOut = () => {};

export function setCsrf(token) { csrf = token; }
export function whenLoggedOut(fn) { onLoggedOut = fn; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(method, path, body, { signal, timeout = 20000 } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['x-csrf-token'] = csrf;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new Error('no answer in time')), timeout);
  signal?.addEventListener('abort', () => ctl.abort(signal.reason));
  let res;
  try {
    res = await fetch(path, {
      method, headers, signal: ctl.signal, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `${method} ${path}: ${e?.message || 'network error'} (is the node reachable?)`);
  } finally {
    clearTimeout(timer);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const msg = data?.error || `${res.status} ${res.statusText || 'error'}`;
    if (res.status === 401 && !path.startsWith('/api/session')) onLoggedOut();
    throw new ApiError(res.status, msg);
  }
  return data;
}

export const get = (p, o) => api('GET', p, undefined, o);
export const post = (p, b, o) => api('POST', p, b ?? {}, o);
export const put = (p, b, o) => api('PUT', p, b ?? {}, o);
export const del = (p, o) => api('DELETE', p, undefined, o);
