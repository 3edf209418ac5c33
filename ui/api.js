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

/**
 * Sends `file` as the raw body of a POST with XMLHttpRequest (fetch reports no upload
 * progress), with the CSRF token like every other change. `onProgress(sent, total)` follows
 * the upload; `onSent()` is called once the body is out (the server may still be working).
 * Resolves to the JSON answer, rejects with an ApiError carrying the API's own message.
 */
export function upload(path, file, { headers = {}, onProgress, onSent, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.withCredentials = true;
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (csrf) xhr.setRequestHeader('x-csrf-token', csrf);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.upload.addEventListener('load', () => onSent?.());
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(data); return; }
      if (xhr.status === 401) onLoggedOut();
      reject(new ApiError(xhr.status, data?.error || `${xhr.status} ${xhr.statusText || 'error'}`));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, `POST ${path}: the connection failed during the upload (is the node reachable?)`)));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'the upload was cancelled')));
    signal?.addEventListener('abort', () => xhr.abort());
    xhr.send(file);
  });
}
