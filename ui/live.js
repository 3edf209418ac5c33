// Live video: fetch() the live endpoint (one long fMP4 response), append its bytes to a
// SourceBuffer as they arrive (ManagedMediaSource where it exists, i.e. iOS Safari; else
// MediaSource), stay near the live edge, drop old buffer, and reconnect with backoff when the
// stream ends or fails. Remote cameras are fetched from the peer's own origin with the media
// token in their URL and no credentials; relayed ones from this node. An MJPEG camera answers
// multipart/x-mixed-replace instead: its pictures are shown by an <img> in the video's place.

const MS = window.ManagedMediaSource || window.MediaSource;
/** A stream that brings nothing for this long is given up and opened again (a node that went
 * down keeps its connection open without sending: the last picture would look live). */
export const STALL_MS = 8000;

export function liveSupported() { return !!MS; }

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {() => Promise<string|null>} getUrl a fresh live URL (tokens expire), or null
   * @param {(state: string, detail?: string) => void} onState
   */
  constructor(video, getUrl, onState) {
    this.video = video;
    this.getUrl = getUrl;
    this.onState = onState;
    this.stopped = true;
    this.retry = 0;
    this.timer = null;
    this.ctl = null;
    video.muted = true;
    video.playsInline = true;
    video.disableRemotePlayback = true; // ManagedMediaSource needs it
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ctl?.abort();
    this.ctl = null;
    this.detach();
  }

  /** Shows an MJPEG camera's picture stream in an <img> where the video was. */
  pictures(url) {
    const img = this.img || (this.img = document.createElement('img'));
    img.className = this.video.className;
    img.alt = this.video.getAttribute('aria-label') || 'Live pictures';
    if (!img.isConnected) this.video.after(img);
    this.video.hidden = true;
    img.hidden = false;
    img.onload = () => { img.onload = null; this.retry = 0; this.onState('playing'); };
    img.onerror = () => { this.hidePictures(); this.schedule('the picture stream ended'); };
    img.src = url;
  }

  hidePictures() {
    if (!this.img) return;
    this.img.onload = null;
    this.img.onerror = null;
    this.img.removeAttribute('src'); // closes the stream
    this.img.hidden = true;
    this.video.hidden = false;
  }

  detach() {
    this.hidePictures();
    if (this.objectUrl) {
      this.video.removeAttribute('src');
      this.video.load();
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
  }

  schedule(reason) {
    if (this.stopped) return;
    this.ctl?.abort();
    const wait = Math.min(10000, 1000 * 2 ** this.retry++);
    this.onState('reconnecting', `${reason}; retrying in ${Math.round(wait / 1000)} s`);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  async connect() {
    if (this.stopped) return;
    if (!MS) {
      this.onState('error', 'this browser has no Media Source Extensions');
      return;
    }
    this.onState('connecting');
    let url;
    try {
      url = await this.getUrl();
    } catch (e) {
      return this.schedule(e.message);
    }
    if (!url) return this.schedule('no live stream offered (node offline?)');
    const ctl = new AbortController();
    this.ctl = ctl;
    let res;
    // A node that hangs accepts the connection and never answers: not waited for past STALL_MS.
    let late = false;
    const deadline = setTimeout(() => { late = true; ctl.abort(); }, STALL_MS);
    try {
      const sameOrigin = new URL(url, location.href).origin === location.origin;
      res = await fetch(url, { signal: ctl.signal, credentials: sameOrigin ? 'same-origin' : 'omit', cache: 'no-store' });
    } catch (e) {
      if (late && this.ctl === ctl) return this.schedule(`the node did not answer in ${STALL_MS / 1000} s`);
      if (ctl.signal.aborted) return;
      return this.schedule(`cannot reach the stream (${e.message})`);
    } finally {
      clearTimeout(deadline);
    }
    if (!res.ok) {
      let msg = `${res.status}`;
      try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
      return this.schedule(msg);
    }
    if ((res.headers.get('content-type') || '').startsWith('multipart/x-mixed-replace')) {
      ctl.abort(); // the <img> opens its own stream
      this.pictures(url);
      return;
    }
    const codec = res.headers.get('x-codec');
    const mime = `video/mp4; codecs="${codec}"`;
    if (!codec || !MS.isTypeSupported(mime)) {
      ctl.abort();
      this.onState('error', `this browser cannot play ${codec || 'this stream'}`);
      return;
    }
    try {
      await this.play(res.body.getReader(), mime, ctl);
      if (!ctl.signal.aborted) this.schedule('the stream ended');
    } catch (e) {
      if (!ctl.signal.aborted) this.schedule(e.message || String(e));
    }
  }

  async play(reader, mime, ctl) {
    this.detach();
    const ms = new MS();
    this.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.objectUrl;
    await new Promise((resolve, reject) => {
      ms.addEventListener('sourceopen', resolve, { once: true });
      ctl.signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true });
    });
    const sb = ms.addSourceBuffer(mime);
    sb.mode = 'segments';
    const appended = () => new Promise((resolve, reject) => {
      sb.addEventListener('updateend', resolve, { once: true });
      sb.addEventListener('error', () => reject(new Error('the browser could not decode the stream')), { once: true });
    });
    let started = false;
    let lastTrim = 0;
    let stall = null;
    const quiet = () => {
      clearTimeout(stall);
      stall = setTimeout(() => this.schedule(`nothing came for ${STALL_MS / 1000} s`), STALL_MS);
    };
    ctl.signal.addEventListener('abort', () => clearTimeout(stall), { once: true });
    for (;;) {
      quiet();
      const { value, done } = await reader.read();
      if (done || ctl.signal.aborted) {
        clearTimeout(stall);
        return;
      }
      try {
        sb.appendBuffer(value);
      } catch (e) {
        if (e.name !== 'QuotaExceededError') throw e;
        await this.trim(sb, appended, 2);
        sb.appendBuffer(value);
      }
      await appended();
      const b = sb.buffered;
      if (!b.length) continue;
      const end = b.end(b.length - 1);
      if (!started) {
        started = true;
        this.retry = 0;
        this.video.currentTime = b.start(b.length - 1);
        this.video.play().catch(() => { /* autoplay of muted video may still be refused */ });
        this.onState('playing');
      } else if (end - this.video.currentTime > 4) {
        this.video.currentTime = end - 0.5; // fell behind: back to the live edge
      }
      if (end - lastTrim > 15) {
        lastTrim = end;
        await this.trim(sb, appended, 10);
      }
    }
  }

  async trim(sb, appended, keep) {
    const b = sb.buffered;
    if (!b.length) return;
    const cut = this.video.currentTime - keep;
    if (cut > b.start(0)) {
      sb.remove(b.start(0), cut);
      await appended();
    }
  }
}
