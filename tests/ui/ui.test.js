// Eyrie's web UI in Debian's Chromium, against two real Eyrie nodes federated on loopback
// (started by tests/ui.rs, which passes their addresses in the environment): logging in, the
// dashboard with both nodes' cameras and a remote camera's live video played from the peer's
// own origin, health of both nodes, a remote recording played and seeked, events (user marks on
// House, Eyrie's motion detection on a camera of Shop) on the timeline and in the list, filtered,
// jumped to, played from the node that holds them and kept, the camera form's motion detection
// (zones on a still, the API's error beside its field), Remote nodes added,
// tested and deleted, pairing by address (code compared, approved, rejected, linked back) between
// two browsers logged into the two nodes, a federation key shown once, MJPEG live and recorded
// (replay.mjpeg, frame.jpg) in an <img>, the camera-add form's USB/CSI finder, and its ONVIF scan
// against a node on a private namespace LAN with real ONVIF test devices (tests/ui.rs), Settings →
// System on a node running as an appliance (a real squashfs uploaded to a file slot with progress,
// a bad file refused, Restart now and the wait for the appliance) and on one that is not;
// screenshots at 375 px and desktop width of
// every page; axe-core on every page, light and dark (serious or critical violations fail).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run these tests through tests/ui.rs (cargo test --test ui)`);
  return v;
};
const A = env('EYRIE_A_URL');
const B = env('EYRIE_B_URL');
const USER = env('EYRIE_USER');
const PASSWORD = env('EYRIE_PASSWORD');
const ARTIFACTS = env('EYRIE_UI_ARTIFACTS');
mkdirSync(ARTIFACTS, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const SIZES = { desktop: { width: 1280, height: 800 }, mobile: { width: 375, height: 740 } };

let browser;
const ctx = {};
const problems = []; // console errors, CSP violations, uncaught exceptions

async function open(name, size) {
  const context = await browser.newContext({ viewport: SIZES[size], colorScheme: size === 'mobile' ? 'dark' : 'light' });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Uncaught/.test(m.text())) problems.push(`${name}: ${m.text()}`);
  });
  return { context, page };
}

async function login(page, base = A) {
  await page.goto(`${base}/`);
  await page.getByLabel('User name').fill(USER);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Pages' }).waitFor();
}

/** Screenshots of both pages; the 375 px one (dark) also gets an axe pass, for dark colours. */
async function shot(name) {
  for (const size of Object.keys(SIZES)) {
    await ctx[size].page.screenshot({ path: join(ARTIFACTS, `${name}-${size}.png`), fullPage: true });
  }
  await axe(ctx.mobile.page, `${name} at 375 px, dark`);
}

/** Both pages to `hash`, waiting for `ready` (a selector) on each. */
async function both(hash, ready) {
  for (const size of Object.keys(SIZES)) {
    const { page } = ctx[size];
    await page.goto(`${A}/#/${hash}`);
    await page.locator(ready).first().waitFor({ timeout: 20000 });
  }
}

async function axe(page, what) {
  const result = await page.evaluate(`${axeSource}; axe.run(document, { resultTypes: ['violations'] })`);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`), [], `axe on ${what}`);
}

async function advancing(video) {
  const t0 = await video.evaluate((v) => v.currentTime);
  await video.page().waitForTimeout(2500);
  const t1 = await video.evaluate((v) => v.currentTime);
  return [t0, t1];
}

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  for (const size of Object.keys(SIZES)) ctx[size] = await open(size, size);
});

after(async () => {
  await browser?.close();
});

test('the login page asks for a password and refuses a wrong one', async () => {
  const { page } = ctx.desktop;
  await page.goto(`${A}/`);
  await ctx.mobile.page.goto(`${A}/`);
  await page.getByLabel('User name').fill(USER);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor();
  await axe(page, 'login');
  await shot('login');
  await login(page);
  await login(ctx.mobile.page);
});

test('the dashboard shows both nodes and plays a remote camera from its own node', async () => {
  const { page } = ctx.desktop;
  const liveFetches = [];
  page.on('request', (r) => { if (r.url().includes('/live')) liveFetches.push(r.url()); });
  await both('', 'article.cam');
  // The first stream from the peer fails: the player must reconnect by itself.
  let failed = 0;
  const failOnce = async (route) => {
    if (failed++) return route.continue();
    await route.abort('connectionreset');
    await page.unroute(`${B}/api/cameras/*/live*`, failOnce);
  };
  await page.route(`${B}/api/cameras/*/live*`, failOnce);
  await page.reload();
  for (const label of ['House', 'Shop']) {
    await page.locator(`article.cam[data-node="${label}"]`).waitFor({ timeout: 20000 });
    assert.equal(await page.locator(`article.cam[data-node="${label}"] .badge`).innerText(), label);
  }
  const remote = page.locator('article.cam[data-node="Shop"] video');
  await page.locator('article.cam[data-node="Shop"][data-live="playing"]').waitFor({ timeout: 30000 });
  assert.ok(failed >= 1, 'the first live request of the remote camera was cut');
  const [t0, t1] = await advancing(remote);
  assert.ok(t1 > t0 + 0.5, `remote live video advances: ${t0} → ${t1}`);
  assert.ok(liveFetches.some((u) => u.startsWith(`${B}/api/cameras/demo/live?token=`)),
    `live video fetched from the peer's origin: ${liveFetches.join(', ')}`);
  const local = page.locator('article.cam[data-node="House"] video');
  await page.locator('article.cam[data-node="House"][data-live="playing"]').waitFor({ timeout: 30000 });
  const [l0, l1] = await advancing(local);
  assert.ok(l1 > l0 + 0.5, `local live video advances: ${l0} → ${l1}`);

  // Layouts and the node filter.
  await page.getByRole('button', { name: '1', exact: true }).click();
  assert.equal(await page.locator('article.cam').count(), 1);
  await page.getByRole('button', { name: '2×2' }).click();
  assert.equal(await page.locator('article.cam').count(), 2);
  await page.getByLabel('Node').selectOption('Shop');
  assert.deepEqual(await page.locator('article.cam').evaluateAll((e) => e.map((x) => x.dataset.node)), ['Shop']);
  await page.getByLabel('Node').selectOption('');
  // Enlarge with the keyboard.
  await page.locator('article.cam[data-node="Shop"] button.name').focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog');
  await dialog.locator('[data-live="playing"]').waitFor({ timeout: 30000 });
  await axe(page, 'dashboard, enlarged');
  await page.keyboard.press('Escape');
  await ctx.mobile.page.locator('article.cam[data-node="Shop"][data-live="playing"]').waitFor({ timeout: 30000 });
  await axe(page, 'dashboard');
  await shot('dashboard');
});

test('health shows both nodes', async () => {
  await both('health', 'article.node[data-node="Shop"]');
  const { page } = ctx.desktop;
  for (const label of ['House', 'Shop']) {
    const card = page.locator(`article.node[data-node="${label}"]`);
    assert.match(await card.innerText(), /Cameras recording\s+1 of 1/);
    assert.equal(await card.getByRole('meter', { name: 'Disk' }).count(), 1);
  }
  assert.match(await page.locator('article.node[data-node="Shop"]').innerText(), /reachable/);
  await axe(page, 'health');
  await shot('health');
});

test('a recording of the remote node plays from that node and seeks', async () => {
  const { page } = ctx.desktop;
  await page.goto(`${A}/#/recordings`);
  const camera = page.locator('#rec-camera');
  await camera.waitFor();
  const value = await camera.locator('option', { hasText: '(Shop)' }).getAttribute('value');
  await camera.selectOption(value);
  await page.getByRole('button', { name: 'Show' }).click();
  await page.locator('.runs tbody tr').first().waitFor({ timeout: 20000 });
  assert.ok(await page.locator('.timeline .run').count() >= 1, 'the timeline shows runs');
  await page.locator('.runs tbody tr').first().getByRole('button', { name: /^Play/ }).click();
  const video = page.locator('#playback');
  await page.waitForFunction(() => document.querySelector('#playback').currentTime > 0.5, null, { timeout: 20000 });
  assert.ok((await video.evaluate((v) => v.currentSrc)).startsWith(`${B}/api/recordings/demo/view.mp4?`), 'played from the peer');
  const seeked = await video.evaluate(async (v) => {
    const target = Math.min(v.duration - 1, 4);
    await new Promise((resolve, reject) => {
      v.addEventListener('seeked', resolve, { once: true });
      v.addEventListener('error', () => reject(new Error('video error')), { once: true });
      v.currentTime = target;
    });
    return { target, now: v.currentTime };
  });
  assert.ok(Math.abs(seeked.now - seeked.target) < 1, JSON.stringify(seeked));
  const [s0, s1] = await advancing(video);
  assert.ok(s1 > s0, `keeps playing after the seek: ${s0} → ${s1}`);

  // Clicking the timeline plays from that instant.
  const lanes = page.locator('.timeline .lanes');
  const run = await page.locator('.timeline .run').first().boundingBox();
  const before = await video.evaluate((v) => v.currentSrc);
  await page.mouse.click(run.x + run.width / 2, run.y + run.height / 2);
  await page.waitForFunction((b) => document.querySelector('#playback').currentSrc !== b, before);
  assert.ok((await video.evaluate((v) => v.currentSrc)).startsWith(`${B}/`));
  // The playhead and the clock follow what is on screen.
  await page.locator('.timeline .playhead').waitFor();
  await page.getByText(/^On screen: /).waitFor();

  // Select mode: a drag over the middle of the run selects it; Play selection plays up to the
  // end of the selection (not to the end of the run); the download is named by node, camera
  // and time.
  await page.getByRole('button', { name: 'Select a range' }).click();
  await page.mouse.move(run.x + run.width * 0.3, run.y + 10);
  await page.mouse.down();
  await page.mouse.move(run.x + run.width * 0.6, run.y + 10, { steps: 5 });
  await page.mouse.up();
  await page.getByRole('button', { name: 'Play selection' }).click();
  await page.waitForFunction(() => /view\.mp4/.test(document.querySelector('#playback').currentSrc)
    && document.querySelector('#playback').duration > 0, null, { timeout: 20000 });
  const played = await video.evaluate((v) => {
    const u = new URL(v.currentSrc);
    return { start: Number(u.searchParams.get('start')), end: Number(u.searchParams.get('end')), duration: v.duration };
  });
  const [, listing] = await call(page, 'GET', `/api/recordings?camera=${encodeURIComponent(value)}&segments=0`);
  assert.deepEqual(listing.segments, [], 'segments=0 lists runs only');
  const whole = listing.runs.find((r) => r.start_ms <= played.start && r.end_ms >= played.start);
  assert.ok(whole, JSON.stringify({ played, runs: listing.runs }));
  const length = played.end - played.start;
  assert.ok(length > 1000 && played.end < whole.end_ms - length / 2, `the selection's end is kept: ${JSON.stringify({ played, whole })}`);
  assert.ok(Math.abs(played.duration * 1000 - length) < 3000, `plays the selection's length: ${JSON.stringify(played)}`);
  const download = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Download selection as MP4' }).click();
  const file = await download;
  assert.match(file.url(), /download=1/);
  assert.ok(file.url().startsWith(`${B}/`), file.url());
  assert.match(file.suggestedFilename(), /^Shop-demo-\d{4}-\d\d-\d\dT\d{6}Z\.mp4$/);
  await axe(page, 'recordings');

  // Zoom with the buttons, the keyboard and the wheel; a drag pans.
  const range = page.locator('.tl-bar .range');
  const spanOf = async () => (await range.innerText()).match(/\(([^)]+)\)$/)[1];
  const first = await spanOf();
  await page.getByRole('button', { name: 'Zoom out' }).click();
  await page.waitForFunction((f) => !document.querySelector('.tl-bar .range').textContent.endsWith(`(${f})`), first);
  const zoomedOut = await spanOf();
  await page.locator('#timeline').focus();
  await page.keyboard.press('+');
  assert.equal(await spanOf(), first, 'plus zooms back in');
  for (let i = 0; i < 12; i++) await page.keyboard.press('+');
  assert.equal(await spanOf(), '60 s', 'a minute at most');
  for (let i = 0; i < 16; i++) await page.keyboard.press('-');
  assert.equal(await spanOf(), '7 days', 'a week at least');
  const box = await lanes.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 10);
  for (let i = 0; i < 10; i++) await page.mouse.wheel(0, -300);
  assert.notEqual(await spanOf(), '7 days', 'the wheel zooms in');
  const at = await range.innerText();
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 200, box.y + 10, { steps: 4 });
  await page.mouse.up();
  assert.notEqual(await range.innerText(), at, 'a drag pans');
  assert.notEqual(zoomedOut, first);
  // The calendar shows the month of the view's middle: a minute wide ending now, so this month
  // (after a drag the view may sit in last month, for the first days of a month).
  await page.locator('#timeline').focus();
  for (let i = 0; i < 16; i++) await page.keyboard.press('+');
  assert.equal(await spanOf(), '60 s');
  await page.getByRole('button', { name: 'Now', exact: true }).click();
  // The calendar marks today as recorded; choosing it shows the day.
  const today = page.locator(`.calendar button.day[data-rec="1"][data-day="${new Date().toLocaleDateString('sv')}"]`);
  await today.waitFor({ timeout: 20000 });
  await today.click();
  await page.waitForFunction(() => document.querySelector('.tl-bar .range').textContent.endsWith('(24 h)'));
  await page.locator('.timeline .run').first().waitFor();
  // The arrow keys jump from the playhead to the previous or next event (here, with no events,
  // the start of a recording).
  await page.locator('#timeline').focus();
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction((s) => new URL(document.querySelector('#playback').currentSrc).searchParams.get('start') === String(s),
    whole.start_ms, { timeout: 10000 });

  // Every node at once: one lane per camera, stacked.
  await page.locator('#rec-camera').selectOption('all');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.locator('.runs tbody tr .badge', { hasText: 'Shop' }).first().waitFor({ timeout: 20000 });
  await page.locator('.runs tbody tr .badge', { hasText: 'House' }).first().waitFor();
  const labels = await page.locator('.timeline .lane-label').allInnerTexts();
  assert.ok(labels.some((l) => l.endsWith('(Shop)')) && labels.some((l) => l.endsWith('(House)')), labels.join(', '));
  await ctx.mobile.page.goto(`${A}/#/recordings/${value}`);
  await ctx.mobile.page.locator('.runs tbody tr').first().waitFor({ timeout: 20000 });
  await ctx.mobile.page.locator('.timeline .run').first().waitFor();
  await ctx.mobile.page.getByRole('button', { name: 'Zoom in' }).click();
  const width = await ctx.mobile.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `nothing wider than the phone: ${width}`);
  await page.locator('#rec-camera').selectOption(value);
  await page.getByRole('button', { name: 'Show' }).click();
  await page.locator('.timeline .run').first().waitFor();
  await shot('recordings');
});

/**
 * A media URL as what it plays: origin, path, range, and whether it carries a media token
 * (each listing issues fresh ones), whatever the order of its parameters.
 */
const clipKey = (url, path = (p) => p) => {
  const u = new URL(url, A);
  const q = u.searchParams;
  return `${u.origin}${path(u.pathname)}?start=${q.get('start')}&end=${q.get('end')}&token=${q.has('token') ? 'yes' : 'no'}`;
};
/** Waits until the player `selector` plays `key` (a clipKey); says what it plays otherwise. */
const srcIs = async (page, selector, key) => {
  const src = () => page.evaluate((s) => {
    const el = document.querySelector(s);
    return el?.currentSrc || el?.getAttribute('src') || '';
  }, selector);
  for (let i = 0; i < 40; i++) {
    const now = await src();
    if (now && clipKey(now) === key) return;
    await page.waitForTimeout(250);
  }
  assert.equal(clipKey(await src()), key, `${selector} plays the clip`);
};

test('events: on the timeline and in the list, filtered, jumped to, played (also from another node) and kept', async () => {
  const { page } = ctx.desktop;
  // Real events of the event log: two marks on House's demo camera (H.264), and Eyrie's motion
  // detection on an MJPEG camera of Shop (its events have thumbnails, served by Shop).
  const now = Date.now();
  // Inside what House has recorded, with room for the clips' 5 s of pre- and post-roll.
  let recorded = null;
  for (let i = 0; !recorded; i++) {
    assert.ok(i < 60, 'House records 25 s of its demo camera');
    const [, r] = await call(page, 'GET', `/api/recordings?camera=demo&start=${now - 3600000}&end=${now + 60000}&segments=0`);
    recorded = r.runs.find((x) => x.end_ms - x.start_ms >= 25000 && x.end_ms > now - 60000);
    if (!recorded) await page.waitForTimeout(500);
  }
  const marks = [];
  for (const [note, back] of [['parcel', 18000], ['gate', 9000]]) {
    const start = recorded.end_ms - back;
    const [s, ev] = await call(page, 'POST', '/api/recordings/events', { camera: 'demo', start, end: start + 2000, note });
    assert.equal(s, 201, JSON.stringify(ev));
    marks.push(ev);
  }
  const { context: shopContext, page: shop } = await open('shop-events', 'desktop');
  await login(shop, B);
  const [made, yard] = await call(shop, 'POST', '/api/cameras', {
    id: 'yard', name: 'Yard', source: env('EYRIE_MOTION_SOURCE'), motion: { enabled: true, min_duration_ms: 500 },
  });
  assert.equal(made, 201, JSON.stringify(yard));
  // House lists Shop's new camera, and Shop's first motion event has ended (7 s into the clip).
  let yardId;
  let motion;
  for (let i = 0; !yardId || !motion; i++) {
    assert.ok(i < 40, `House lists Yard (${yardId}) and Shop's motion event (${JSON.stringify(motion)})`);
    await page.waitForTimeout(500);
    const [, cams] = await call(page, 'GET', '/api/cameras');
    yardId = cams.find((c) => c.remote && c.name === 'Yard')?.id;
    const [, listed] = yardId ? await call(page, 'GET', `/api/recordings/events?camera=${yardId}&start=${now - 60000}&end=${Date.now() + 60000}`) : [];
    motion = listed?.events?.find((e) => e.kind === 'motion' && e.end_ms && e.thumbnail_url);
  }
  assert.ok(motion.clip_url.startsWith(`${B}/api/recordings/yard/view.mp4?`) && /[?&]token=/.test(motion.clip_url), motion.clip_url);
  assert.ok(motion.thumbnail_url.startsWith(`${B}/api/recordings/events/`), motion.thumbnail_url);

  // Every camera: the markers and the motion as markers on their lanes and as rows.
  await page.goto(`${A}/#/recordings`);
  await page.locator('#rec-camera').selectOption('all');
  await page.getByRole('button', { name: 'Show' }).click();
  const rows = page.locator('.events tbody tr');
  const motionRow = rows.filter({ hasText: 'Yard' }).first();
  await motionRow.waitFor({ timeout: 20000 });
  await rows.filter({ hasText: 'marker' }).nth(1).waitFor();
  assert.ok(await page.locator('.timeline .lane[data-camera="demo"] .ev').count() >= 1, 'House\'s marks on the timeline');
  assert.ok(await page.locator(`.timeline .lane[data-camera="${yardId}"] .ev[data-kind="motion"]`).count() >= 1, 'Shop\'s motion on the timeline');
  assert.match(await motionRow.innerText(), /Shop[\s\S]*motion/);
  // Peers only read: Shop's event is kept on Shop, whose recordings page opens at the event.
  const keepThere = motionRow.getByRole('link', { name: /Keep on Shop|Kept on Shop/ });
  assert.match(await keepThere.getAttribute('href'), new RegExp(`^${B}/#/recordings/yard/\\d+$`));
  // The thumbnail of Shop's event comes from Shop.
  await motionRow.scrollIntoViewIfNeeded();
  const thumb = motionRow.locator('img');
  assert.ok((await thumb.getAttribute('src')).startsWith(`${B}/api/recordings/events/`));
  await page.waitForFunction((el) => el.complete && el.naturalWidth === 640, await thumb.elementHandle(), { timeout: 10000 });
  // Filters by kind and by node.
  const column = (i) => rows.evaluateAll((trs, i) => trs.map((tr) => tr.cells[i].textContent), i);
  await page.locator('#events-kind').selectOption('motion');
  assert.deepEqual([...new Set(await column(3))], ['motion']);
  await page.locator('#events-kind').selectOption('');
  await page.locator('#events-node').selectOption('House');
  assert.deepEqual([...new Set(await column(2))], ['House']);
  assert.deepEqual([...new Set(await column(3))], ['marker']);
  await page.locator('#events-node').selectOption('Shop');
  assert.deepEqual([...new Set(await column(2))], ['Shop']);
  // Playing Shop's event: its clip, as pictures (MJPEG), from Shop with the listing's token.
  const remoteRow = rows.first();
  await remoteRow.getByRole('button', { name: /^Play/ }).click();
  const [, all] = await call(page, 'GET', `/api/recordings/events?camera=all&start=${now - 3600000}&end=${Date.now() + 60000}`);
  const firstShop = all.events.find((e) => e.camera === yardId);
  await srcIs(page, '#playback-pictures', clipKey(firstShop.clip_url, (p) => p.replace(/view\.mp4$/, 'replay.mjpeg')));
  assert.ok((await page.locator('#playback-pictures').getAttribute('src')).startsWith(`${B}/api/recordings/yard/replay.mjpeg?`));
  await page.waitForFunction(() => document.querySelector('#playback-pictures').naturalWidth === 640, null, { timeout: 10000 });
  // Its pixels are Shop's (a canvas cannot read them here): screenshots of the picture differ.
  const pictures = page.locator('#playback-pictures');
  const before = await pictures.screenshot();
  await page.waitForTimeout(800);
  assert.notEqual(Buffer.compare(before, await pictures.screenshot()), 0, 'Shop\'s event plays');
  await page.locator('#events-node').selectOption('');
  await axe(page, 'recordings: events of every node');
  await page.screenshot({ path: join(ARTIFACTS, 'recordings-events-desktop.png'), fullPage: true });

  // One camera of this node: play a mark's clip, then the next and previous ones by the
  // buttons and the arrow keys.
  const [, mine] = await call(page, 'GET', `/api/recordings/events?camera=demo&start=${now - 3600000}&end=${Date.now() + 60000}`);
  const [parcel, gate] = marks.map((m) => mine.events.find((e) => e.id === m.id));
  await page.locator('#rec-camera').selectOption('demo');
  await page.getByRole('button', { name: 'Show' }).click();
  await rows.filter({ hasText: 'marker' }).nth(1).waitFor({ timeout: 20000 });
  const video = page.locator('#playback');
  await rows.first().getByRole('button', { name: /^Play/ }).click();
  await srcIs(page, '#playback', clipKey(parcel.clip_url));
  await page.waitForFunction(() => document.querySelector('#playback').currentTime > 0.5, null, { timeout: 20000 });
  assert.match(await page.locator('#on-screen').innerText(), /^On screen: /);
  await page.getByRole('button', { name: 'Next event' }).click();
  await srcIs(page, '#playback', clipKey(gate.clip_url));
  await page.locator('#timeline').focus();
  await page.keyboard.press('ArrowLeft');
  await srcIs(page, '#playback', clipKey(parcel.clip_url));
  await page.keyboard.press('ArrowRight');
  await srcIs(page, '#playback', clipKey(gate.clip_url));
  await page.getByRole('button', { name: 'Previous event' }).click();
  await srcIs(page, '#playback', clipKey(parcel.clip_url));
  const [p0, p1] = await advancing(video);
  assert.ok(p1 > p0, `the mark's clip plays: ${p0} → ${p1}`);
  // Keep: the API then says the event is protected; a second press lets it go.
  const keep = rows.first().getByRole('button', { name: 'Keep' });
  await keep.click();
  const kept = rows.first().getByRole('button', { name: 'Kept' });
  await kept.waitFor();
  assert.equal(await kept.getAttribute('aria-pressed'), 'true');
  const protectedNow = async () => {
    const [, r] = await call(page, 'GET', `/api/recordings/events?camera=demo&start=${now - 3600000}&end=${Date.now() + 60000}`);
    return r.events.find((e) => e.id === parcel.id).protected;
  };
  assert.equal(await protectedNow(), true);
  await kept.click();
  await rows.first().getByRole('button', { name: 'Keep' }).waitFor();
  assert.equal(await protectedNow(), false);

  // Live, on the page already open: a moment marked now comes on the event stream as a marker
  // and one row within seconds, first ongoing (event_start), then with its length (event_end);
  // never a second row. The stream is the only way "ongoing" can show: the mark has ended
  // before any listing could hold it.
  await page.evaluate(() => {
    const seen = [];
    window.liveSeen = seen;
    const box = document.querySelector('.events');
    new MutationObserver(() => {
      for (const tr of box.querySelectorAll('tbody tr')) seen.push([tr.dataset.id, tr.cells[5]?.textContent]);
    }).observe(box, { childList: true, subtree: true });
  });
  const liveStart = Date.now() - 1000;
  const [liveMade, live] = await call(page, 'POST', '/api/recordings/events', { camera: 'demo', start: liveStart, end: liveStart + 2000, note: 'live' });
  assert.equal(liveMade, 201, JSON.stringify(live));
  const liveRow = page.locator(`.events tbody tr[data-id="${live.id}"]`);
  await liveRow.filter({ hasText: '2 s' }).waitFor({ timeout: 5000 });
  await page.locator(`.timeline .lane[data-camera="demo"] .ev[data-id="${live.id}"]`).waitFor({ timeout: 5000 });
  assert.equal(await liveRow.count(), 1, 'one row per event');
  const lengths = (await page.evaluate(() => window.liveSeen)).filter(([id]) => id === live.id).map(([, l]) => l);
  assert.equal(lengths[0], 'ongoing', `the row came ongoing, then ended: ${lengths.join(', ')}`);
  assert.equal(lengths[lengths.length - 1], '2 s');
  // The view includes now, so it follows the clock: the range shown moves on by itself.
  const range = await page.locator('.tl-bar .range').innerText();
  await page.waitForFunction((was) => document.querySelector('.tl-bar .range').textContent !== was, range, { timeout: 5000 });

  // At 375 px: every camera's events, filtered to Shop's motion, one played, all in the phone.
  const small = ctx.mobile.page;
  await small.goto(`${A}/#/recordings`);
  await small.locator('#rec-camera').selectOption('all');
  await small.getByRole('button', { name: 'Show' }).click();
  const smallRows = small.locator('.events tbody tr');
  await smallRows.filter({ hasText: 'Yard' }).first().waitFor({ timeout: 20000 });
  await small.locator('#events-node').selectOption('Shop');
  await small.locator('#events-kind').selectOption('motion');
  const seen = await smallRows.evaluateAll((trs) => trs.map((tr) => `${tr.cells[2].textContent} ${tr.cells[3].textContent}`));
  assert.ok(seen.length >= 1 && seen.every((t) => t === 'Shop motion'), seen.join(', '));
  const smallRow = smallRows.first();
  await smallRow.getByRole('button', { name: /^Play/ }).click();
  await small.waitForFunction(() => document.querySelector('#playback-pictures').naturalWidth === 640, null, { timeout: 10000 });
  assert.ok((await small.locator('#playback-pictures').getAttribute('src')).startsWith(`${B}/`));
  const width = await small.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `nothing wider than the phone: ${width}`);
  await axe(small, 'recordings: events at 375 px, dark');
  await small.screenshot({ path: join(ARTIFACTS, 'recordings-events-mobile.png'), fullPage: true });
  await small.goto(`${A}/#/`);
  await page.goto(`${A}/#/`);

  const [deleted] = await call(shop, 'DELETE', '/api/cameras/yard?keep_recordings=false');
  assert.equal(deleted, 204);
  await shopContext.close();
});

test('camera settings: motion detection, zones drawn on a still, event retention and rolls are saved and shown again; a bad value shows the API\'s error beside its field', async () => {
  const { page } = ctx.desktop;
  const edit = async (p) => {
    await p.goto(`${A}/#/settings/cameras`);
    await p.locator('#settings-panel tr', { hasText: 'Demo camera' }).getByRole('button', { name: 'Edit' }).click();
    // The still: the camera's live picture, drawn once (H.264 here, decoded by the browser).
    await p.waitForFunction(() => document.querySelector('canvas.still')?.dataset.still === 'live', null, { timeout: 15000 });
    return p.getByRole('application', { name: /Zones to ignore/ });
  };
  const grid = await edit(page);
  const lit = await page.locator('canvas.still').evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) n++;
    return n;
  });
  assert.ok(lit > 10000, `the still shows a picture (${lit} lit pixels)`);
  await page.getByLabel('Detect motion').check();
  await page.getByLabel('Sensitivity').fill('0');
  await page.getByLabel('Motion must last').fill('500');
  await page.getByLabel('Keep event recordings').fill('30');
  await page.getByLabel('Before an event').fill('3');
  await page.getByLabel('After an event').fill('7');
  // Cells: one clicked, four dragged over, one toggled from the keyboard.
  const box = await grid.boundingBox();
  const at = (x, y) => [box.x + ((x + 0.5) * box.width) / 32, box.y + ((y + 0.5) * box.height) / 18];
  await page.mouse.click(...at(0, 0));
  await page.mouse.move(...at(2, 1));
  await page.mouse.down();
  await page.mouse.move(...at(5, 1), { steps: 6 });
  await page.mouse.up();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press(' ');
  assert.equal(await grid.getAttribute('data-ignored'), '6');
  const ignore = Array.from({ length: 18 }, (_, y) => Array.from({ length: 32 }, (_, x) => (
    (x === 0 && y === 0) || (y === 1 && x >= 2 && x <= 5) || (x === 5 && y === 2) ? 'x' : '.')).join(''));
  // A bad value: the API's error beside the field, nothing saved.
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  const bad = page.locator('.field-error[data-key="motion.sensitivity"]');
  await bad.waitFor();
  assert.match(await bad.innerText(), /motion\.sensitivity: 0 is outside 1 to 100/);
  assert.equal(await page.getByLabel('Sensitivity').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.closest('.field').contains(document.querySelector('.field-error'))), true, 'focus on the field');
  const [, unchanged] = await call(page, 'GET', '/api/cameras/demo');
  assert.equal(unchanged.motion.enabled, false);
  await axe(page, 'settings: camera with an error beside a field');
  await page.getByLabel('Sensitivity').fill('70');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await page.getByText('Camera saved').waitFor();
  const [, saved] = await call(page, 'GET', '/api/cameras/demo');
  assert.deepEqual(saved.motion, { enabled: true, sensitivity: 70, min_duration_ms: 500, ignore });
  assert.deepEqual([saved.event_retention_days, saved.pre_roll_s, saved.post_roll_s], [30, 3, 7]);
  // Shown again, on a new page.
  await page.reload();
  const again = await edit(page);
  assert.equal(await again.getAttribute('data-ignored'), '6');
  assert.equal(await page.getByLabel('Detect motion').isChecked(), true);
  assert.deepEqual(await Promise.all(['Sensitivity', 'Motion must last', 'Keep event recordings', 'Before an event', 'After an event']
    .map((l) => page.getByLabel(l).inputValue())), ['70', '500', '30', '3', '7']);
  await page.getByRole('button', { name: 'Watch everything' }).click();
  assert.equal(await again.getAttribute('data-ignored'), '0');
  await axe(page, 'settings: camera motion');
  // At 375 px in dark colours: the form and its grid fit the phone.
  const small = ctx.mobile.page;
  await edit(small);
  const width = await small.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `nothing wider than the phone: ${width}`);
  await axe(small, 'settings: camera motion at 375 px, dark');
  await page.screenshot({ path: join(ARTIFACTS, 'settings-camera-motion-desktop.png'), fullPage: true });
  await small.screenshot({ path: join(ARTIFACTS, 'settings-camera-motion-mobile.png'), fullPage: true });
  await small.getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('button', { name: 'Cancel' }).click();
  // As it was, for the tests after this one.
  const [restored, r] = await call(page, 'PUT', '/api/cameras/demo', { motion: { enabled: false }, event_retention_days: 0, pre_roll_s: 5, post_roll_s: 5 });
  assert.equal(restored, 200, JSON.stringify(r));
});

test('remote nodes are added, tested, deleted and edited (relay mode plays through this node)', async () => {
  const { page } = ctx.desktop;
  // A key for this UI test, issued on B with the API (what an admin does on B's own page).
  const res = await fetch(`${B}/api/federation/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${btoa(`${USER}:${PASSWORD}`)}` },
    body: JSON.stringify({ name: 'ui test' }),
  });
  assert.equal(res.status, 201);
  const { key } = await res.json();
  await both('settings/nodes', '#nodes-list table');
  assert.match(await page.locator('#nodes-list').innerText(), /Shop/);
  await page.getByRole('button', { name: 'Add a remote node' }).click();
  await page.getByLabel('Label').fill('Shop again');
  await page.getByLabel('URL').fill(B);
  await page.getByLabel('Federation key').fill('wrong-key');
  await page.getByRole('button', { name: 'Test' }).click();
  await page.locator('.result[data-ok="false"]').waitFor();
  assert.match(await page.locator('.result').innerText(), /Problem/);
  await page.getByLabel('Federation key').fill(key);
  await page.getByRole('button', { name: 'Test' }).click();
  await page.locator('.result[data-ok="true"]').waitFor();
  assert.match(await page.locator('.result').innerText(), /1 camera/);
  await axe(page, 'settings: add node');
  await ctx.mobile.page.getByRole('button', { name: 'Add a remote node' }).click();
  await shot('settings-nodes-form');
  await ctx.mobile.page.getByRole('button', { name: 'Cancel' }).click();
  // The same node cannot be added twice: the form says which node it is already.
  await page.getByRole('button', { name: 'Add node' }).click();
  await page.getByRole('alert').filter({ hasText: 'already remote node "Shop"' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  // Deleted, it can be added again (with this key), and comes online.
  const row = page.locator('tr[data-node="Shop"]');
  page.once('dialog', (d) => d.accept());
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Add a remote node' }).click();
  await page.getByLabel('Label').fill('Shop');
  await page.getByLabel('URL').fill(B);
  await page.getByLabel('Federation key').fill(key);
  await page.getByRole('button', { name: 'Add node' }).click();
  await row.waitFor();
  await page.locator('tr[data-node="Shop"] .status', { hasText: 'online' }).waitFor({ timeout: 20000 });
  await shot('settings-nodes');
  // Check now polls it at once and the row shows the fresh status.
  await row.getByRole('button', { name: 'Check now' }).click();
  await page.locator('tr[data-node="Shop"] .status', { hasText: 'online' }).waitFor();
  // A bad URL is refused with the API's message.
  await page.getByRole('button', { name: 'Add a remote node' }).click();
  await page.getByLabel('URL').fill('ftp://example.invalid');
  await page.getByLabel('Federation key').fill('k');
  await page.getByRole('button', { name: 'Add node' }).click();
  await page.getByRole('alert').filter({ hasText: 'only http:// and https://' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();

  // Edit: Shop to relay mode; its camera then plays through this node.
  await page.locator('tr[data-node="Shop"]').getByRole('button', { name: 'Edit' }).click();
  await page.getByLabel('Media').selectOption('relay');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Node saved').waitFor();
  const relayed = [];
  page.on('request', (r) => { if (r.url().includes('/media/cameras/')) relayed.push(r.url()); });
  await page.goto(`${A}/#/`);
  await page.locator('article.cam[data-node="Shop"][data-live="playing"]').waitFor({ timeout: 30000 });
  const [r0, r1] = await advancing(page.locator('article.cam[data-node="Shop"] video'));
  assert.ok(r1 > r0 + 0.5, `relayed live video advances: ${r0} → ${r1}`);
  assert.ok(relayed.some((u) => u.startsWith(`${A}/api/system/nodes/`)), `through this node: ${relayed.join(', ')}`);
});

/** On a page at Settings → Remote nodes: pairs by address and returns the code it shows. */
async function pairByAddress(page, url, other) {
  await page.getByLabel('Address of the other node').fill(url);
  await page.getByRole('button', { name: 'Pair', exact: true }).click();
  const card = page.locator(`#pairings li[data-node="${other}"][data-state="waiting"]`);
  await card.waitFor({ timeout: 10000 });
  const code = await card.locator('.code').innerText();
  assert.match(code, /^\d{6}$/);
  assert.match(await card.innerText(), new RegExp(`Type this code on ${other}'s page`));
  assert.match(await card.innerText(), /Waiting for approval/);
  return code;
}

test('pairing by address: the code is compared, rejected once, then approved and linked back', async () => {
  // Shop asks House (House reads Shop already, by a key copied by hand; Shop reads nothing).
  const house = ctx.desktop.page;
  const { context: shopContext, page: shop } = await open('shop', 'desktop');
  await login(shop, B);
  await shop.goto(`${B}/#/settings/nodes`);
  await house.goto(`${A}/#/settings/nodes`);
  // House's small page gets no event stream: it must keep its lists current by polling.
  const noEvents = (route) => route.abort('connectionrefused');
  await ctx.mobile.page.route(`${A}/api/events`, noEvents);
  const polled = [];
  const onPoll = (r) => { if (r.url().endsWith('/api/federation/pair/requests')) polled.push(r.url()); };
  ctx.mobile.page.on('request', onPoll);
  await ctx.mobile.page.goto(`${A}/#/settings/nodes`);
  await ctx.mobile.page.reload(); // it may have been on that tab already, showing older lists

  // Discovered nodes: the list is what GET /api/system/discover says (mDNS is off for nodes on
  // the host, so it is empty), and the empty state says why.
  const seen = await shop.evaluate(() => fetch('/api/system/discover').then((r) => r.json()));
  const empty = seen.enabled ? 'No Eyrie found on this network yet' : 'Discovery is off on this node';
  await shop.locator('#discovered-empty', { hasText: empty }).waitFor();
  assert.equal(await shop.locator('#discovered li').count(), seen.nodes.length);
  await house.locator('#pair-requests-empty', { hasText: 'No requests' }).waitFor();

  // Wrong addresses: the API's refusal, and a node that is not there.
  await shop.getByLabel('Address of the other node').fill('ftp://example.invalid');
  await shop.getByRole('button', { name: 'Pair', exact: true }).click();
  await shop.getByRole('alert').filter({ hasText: 'only http:// and https://' }).waitFor();
  await shop.getByLabel('Address of the other node').fill('http://127.0.0.1:9');
  await shop.getByRole('button', { name: 'Pair', exact: true }).click();
  const failed = shop.locator('#pairings li[data-state="failed"]');
  await failed.waitFor({ timeout: 10000 });
  assert.match(await failed.innerText(), /cannot reach the other node/);

  // Asked once: House lists the request with the time left but never the code (its admin
  // types what Shop shows); rejected.
  const first = await pairByAddress(shop, A, 'House');
  const asked = house.locator('#pair-requests li[data-node="Shop"][data-state="pending"]');
  await asked.waitFor({ timeout: 10000 });
  assert.equal(await asked.locator('.code').count(), 0);
  assert.ok(!(await asked.innerText()).includes(first), 'the asked node never shows the code');
  assert.match(await asked.innerText(), /expires in (9|10) min/);
  await ctx.mobile.page.locator('#pair-requests li[data-state="pending"]').waitFor({ timeout: 10000 });
  await ctx.mobile.page.unroute(`${A}/api/events`, noEvents);
  ctx.mobile.page.off('request', onPoll);
  assert.ok(polled.length >= 2, `the page without events polled: ${polled.length} time(s)`);
  for (const [page, name] of [[shop, 'asking'], [house, 'asked']]) {
    await axe(page, `settings: pairing, ${name} node`);
  }
  await house.screenshot({ path: join(ARTIFACTS, 'settings-pair-request-desktop.png'), fullPage: true });
  await ctx.mobile.page.screenshot({ path: join(ARTIFACTS, 'settings-pair-request-mobile.png'), fullPage: true });
  await axe(ctx.mobile.page, 'settings: pair request at 375 px, dark');
  await shop.screenshot({ path: join(ARTIFACTS, 'settings-pairing-desktop.png'), fullPage: true });
  await shop.setViewportSize(SIZES.mobile);
  await shop.emulateMedia({ colorScheme: 'dark' });
  await shop.screenshot({ path: join(ARTIFACTS, 'settings-pairing-mobile.png'), fullPage: true });
  await axe(shop, 'settings: pairing at 375 px, dark');
  await shop.setViewportSize(SIZES.desktop);
  await shop.emulateMedia({ colorScheme: 'light' });
  // The code field is reachable by keyboard and asks phones for digits.
  await asked.getByLabel('Type the code Shop shows').focus();
  assert.equal(await house.evaluate(() => document.activeElement.getAttribute('inputmode')), 'numeric');
  await asked.getByRole('button', { name: 'Reject' }).click();
  await house.locator('#pair-requests li[data-node="Shop"][data-state="rejected"]').waitFor();
  const rejected = shop.locator('#pairings li[data-node="House"][data-state="rejected"]');
  await rejected.waitFor({ timeout: 15000 });
  assert.match(await rejected.innerText(), /House rejected the request/);

  // Asked again: a wrong code is refused with the API's message; the right one approves, with
  // a link back.
  const second = await pairByAddress(shop, A, 'House');
  assert.notEqual(second, '');
  const again = house.locator('#pair-requests li[data-node="Shop"][data-state="pending"]');
  await again.waitFor({ timeout: 10000 });
  assert.equal(await again.locator('.code').count(), 0);
  await again.getByLabel('Type the code Shop shows').fill(second === '000000' ? '000001' : '000000');
  await again.getByRole('button', { name: 'Approve' }).click();
  await again.getByRole('alert').filter({ hasText: 'wrong code' }).waitFor();
  await again.getByLabel('Type the code Shop shows').fill(second);
  await again.getByLabel(/Also link back/).check();
  await again.getByRole('button', { name: 'Approve' }).click();
  const linked = shop.locator('#pairings li[data-node="House"][data-state="linked"]');
  await linked.waitFor({ timeout: 15000 });
  assert.match(await linked.innerText(), /House is now a remote node/);
  await shop.locator('#nodes-list tr[data-node="House"]').waitFor({ timeout: 10000 });
  await house.locator('#pair-requests li[data-node="Shop"][data-state="collected"]').waitFor({ timeout: 10000 });

  // The link back: House asks Shop with a code of its own; Shop's admin approves it.
  const back = house.locator('#pairings li[data-node="Shop"][data-state="waiting"]');
  await back.waitFor({ timeout: 10000 });
  const third = await back.locator('.code').innerText();
  const backRequest = shop.locator('#pair-requests li[data-node="House"][data-state="pending"]');
  await backRequest.waitFor({ timeout: 10000 });
  assert.equal(await backRequest.locator('.code').count(), 0);
  // By keyboard: Enter in the code field approves.
  await backRequest.getByLabel('Type the code House shows').fill(third);
  await shop.keyboard.press('Enter');
  await house.locator('#pairings li[data-node="Shop"][data-state="linked"]').waitFor({ timeout: 15000 });
  // House's node for Shop got the new key; it is still one node.
  assert.equal(await house.locator('#nodes-list tr[data-node="Shop"]').count(), 1);

  // Leaving the tab closes its event stream: more visits than the node's 8 listeners each get one.
  for (let i = 1; i <= 9; i++) {
    await shop.goto(`${B}/#/settings/general`);
    await shop.locator('#settings-panel dl').waitFor();
    const events = shop.waitForResponse((r) => r.url() === `${B}/api/events`);
    await shop.goto(`${B}/#/settings/nodes`);
    assert.equal((await events).status(), 200, `event stream of visit ${i}`);
  }
  await shopContext.close();
});

test('a federation key is shown once', async () => {
  const { page } = ctx.desktop;
  await both('settings/keys', 'form');
  await page.getByLabel('Name', { exact: true }).fill('garage box');
  await page.getByRole('button', { name: 'Create key' }).click();
  const shown = page.locator('#new-key');
  await shown.waitFor();
  const key = await shown.inputValue();
  assert.match(key, /^[0-9a-f]{64}$/);
  await page.getByRole('button', { name: 'Copy' }).click();
  await page.getByRole('button', { name: 'Copied' }).waitFor();
  await page.locator('tr[data-key="garage box"]').waitFor();
  await axe(page, 'settings: keys');
  await shot('settings-keys');
  await page.reload();
  await page.locator('tr[data-key="garage box"]').waitFor();
  assert.ok(!(await page.content()).includes(key), 'the key is not shown again');
  page.once('dialog', (d) => d.accept());
  await page.locator('tr[data-key="garage box"]').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('tr[data-key="garage box"]').waitFor({ state: 'detached' });
});

test('the other settings tabs', async () => {
  for (const [tab, ready] of [['general', 'dl'], ['cameras', 'table'], ['account', 'form']]) {
    await both(`settings/${tab}`, `#settings-panel ${ready}`);
    await axe(ctx.desktop.page, `settings: ${tab}`);
    await shot(`settings-${tab}`);
  }
  // A camera source is tested before saving; the API's error is shown.
  const { page } = ctx.desktop;
  await page.goto(`${A}/#/settings/cameras`);
  await page.getByRole('button', { name: 'Add a camera' }).click();
  await page.getByLabel('Name', { exact: true }).fill('Nowhere');
  await page.getByLabel('Source URL').fill('http://127.0.0.1/x');
  await page.getByRole('button', { name: 'Test source' }).click();
  await page.getByRole('alert').filter({ hasText: 'source:' }).waitFor();
  await page.getByLabel('Source URL').fill('rtsp://127.0.0.1:9/none');
  await page.getByRole('button', { name: 'Test source' }).click();
  await page.locator('.result[data-ok="false"]').waitFor({ timeout: 20000 });
  // A working source: tested, saved, disabled, deleted.
  await page.getByLabel('Name', { exact: true }).fill('Porch');
  await page.getByLabel('Source URL').fill(`file://${env('EYRIE_DEMO_CLIP')}`);
  await page.getByRole('button', { name: 'Test source' }).click();
  await page.locator('.result[data-ok="true"]').waitFor({ timeout: 20000 });
  assert.match(await page.locator('.result').innerText(), /Works: received a key frame/);
  await page.getByRole('button', { name: 'Add camera' }).click();
  const row = page.locator('#settings-panel tr', { hasText: 'Porch' });
  await row.waitFor();
  await row.getByRole('checkbox', { name: 'Porch enabled' }).uncheck();
  await page.getByText('Porch disabled').waitFor();
  await row.getByRole('button', { name: 'Delete' }).click();
  await page.getByLabel('Delete them now').check();
  await page.getByRole('button', { name: 'Delete Porch' }).click();
  await row.waitFor({ state: 'detached' });
});

/** A JSON API call from `page`'s session: [status, body]. */
const call = (page, method, path, body) => page.evaluate(async ([method, path, body]) => {
  const { csrf } = await (await fetch('/api/session')).json();
  const r = await fetch(path, { method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: body && JSON.stringify(body) });
  const text = await r.text();
  return [r.status, text ? JSON.parse(text) : null];
}, [method, path, body]);

/** Whether the picture an <img> shows changes within `ms` (drawn to a canvas twice). */
const picturesChange = (img, ms) => img.evaluate(async (el, ms) => {
  const snap = () => {
    const c = document.createElement('canvas');
    c.width = el.naturalWidth;
    c.height = el.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(el, 0, 0);
    return g.getImageData(0, 0, c.width, c.height).data;
  };
  const a = snap();
  await new Promise((r) => setTimeout(r, ms));
  const b = snap();
  let diff = 0;
  for (let i = 0; i < a.length; i += 4) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) diff++;
  return diff;
}, ms);

test('an MJPEG camera plays live as a picture stream, and its recording as pictures', async () => {
  const { page } = ctx.desktop;
  await page.goto(`${A}/#/`);
  await page.locator('article.cam').first().waitFor();
  const [created] = await call(page, 'POST', '/api/cameras', { id: 'porch-mjpeg', name: 'Porch MJPEG', source: env('EYRIE_MJPEG_SOURCE') });
  assert.equal(created, 201);
  await page.reload();
  const card = page.locator('article.cam[data-camera="porch-mjpeg"]');
  await card.locator('img').waitFor({ timeout: 20000 });
  await page.locator('article.cam[data-camera="porch-mjpeg"][data-live="playing"]').waitFor({ timeout: 20000 });
  assert.ok(await card.locator('img').evaluate((img) => img.naturalWidth === 640), 'a 640 px picture is shown');
  assert.equal(await card.locator('video').isVisible(), false);
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-mjpeg-desktop.png') });

  // Recorded: a few seconds of it, replayed in an <img> at the recorded pace.
  const recorded = async () => {
    const [, r] = await call(page, 'GET', `/api/recordings?camera=porch-mjpeg&start=${Date.now() - 600000}&end=${Date.now() + 60000}`);
    return Math.max(0, ...(r?.runs || []).map((x) => x.end_ms - x.start_ms));
  };
  for (let i = 0; (await recorded()) < 6000; i++) {
    assert.ok(i < 60, 'records 6 s of MJPEG');
    await page.waitForTimeout(500);
  }
  await page.goto(`${A}/#/recordings/porch-mjpeg`);
  await page.locator('.runs tbody tr').first().waitFor({ timeout: 20000 });
  assert.match(await page.locator('.runs tbody tr').first().innerText(), /640×360 mjpeg/);
  await page.locator('.runs tbody tr').first().getByRole('button', { name: /^Play/ }).click();
  const pictures = page.locator('#playback-pictures');
  await pictures.waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.querySelector('#playback-pictures').naturalWidth === 640, null, { timeout: 20000 });
  assert.match(await pictures.getAttribute('src'), /^\/api\/recordings\/porch-mjpeg\/replay\.mjpeg\?start=\d+&end=\d+$/);
  assert.equal(await page.locator('#playback').isVisible(), false, 'no <video> for MJPEG');
  assert.match(await pictures.getAttribute('alt'), /Recording of Porch MJPEG/);
  const changed = await picturesChange(pictures, 1000);
  assert.ok(changed > 100, `the replayed picture changes (${changed} pixels in 1 s)`);
  await axe(page, 'recordings: MJPEG replay');
  await page.screenshot({ path: join(ARTIFACTS, 'recordings-mjpeg-desktop.png') });
  // Stop leaves a still picture of that moment (frame.jpg).
  await page.getByRole('button', { name: 'Stop' }).click();
  await page.waitForFunction(() => /\/frame\.jpg\?at=\d+$/.test(document.querySelector('#playback-pictures').getAttribute('src'))
    && document.querySelector('#playback-pictures').complete && document.querySelector('#playback-pictures').naturalWidth === 640, null, { timeout: 10000 });
  await page.getByText(/^Stopped at/).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Stop' }).isVisible(), false);
  // Pointing at the run on the timeline shows the picture recorded there, for scrubbing.
  const run = await page.locator('.timeline .run').first().boundingBox();
  await page.mouse.move(run.x + run.width / 2, run.y + run.height / 2);
  const preview = page.locator('.timeline .preview');
  await preview.waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const p = document.querySelector('.timeline .preview');
    return /\/frame\.jpg\?at=\d+$/.test(p.getAttribute('src')) && p.complete && p.naturalWidth === 640;
  }, null, { timeout: 10000 });
  await page.mouse.move(run.x + run.width / 2, run.y - 40);
  await preview.waitFor({ state: 'hidden' });
  const [deleted] = await call(page, 'DELETE', '/api/cameras/porch-mjpeg?keep_recordings=false');
  assert.equal(deleted, 204);
});

test('the camera-add form lists this node\'s USB/CSI cameras (none here)', async () => {
  const { page } = ctx.desktop;
  await page.goto(`${A}/#/settings/cameras`);
  await page.getByRole('button', { name: 'Add a camera' }).click();
  const usb = page.getByRole('button', { name: 'USB / CSI camera' });
  assert.equal(await usb.getAttribute('aria-expanded'), 'false');
  await usb.click();
  assert.equal(await usb.getAttribute('aria-expanded'), 'true');
  const [, listed] = await call(page, 'GET', '/api/system/devices');
  if (listed.devices.length === 0) {
    await page.locator('#no-devices', { hasText: 'No USB or CSI camera is connected to this node' }).waitFor();
  } else {
    // A host with cameras: each is offered.
    await page.getByLabel('Device').waitFor();
    assert.equal(await page.getByLabel('Device').locator('option').count(), listed.devices.length);
  }
  await page.getByRole('button', { name: 'Look again' }).click();
  await page.getByRole('button', { name: 'Look again' }).waitFor();
  await axe(page, 'settings: cameras, USB/CSI');
  // The source the finder builds from a chosen mode is one the node reads: testing it for a
  // device that is not here fails on the device, not on the URL.
  const built = await page.evaluate(async () => {
    const base = document.querySelector('script[type=module]').src.replace(/app\.js$/, '');
    const { v4l2Source } = await import(`${base}finder.js`);
    return v4l2Source('/dev/video7', { fourcc: 'MJPG', width: 1280, height: 720, fps: 29.97 });
  });
  assert.equal(built, 'v4l2:///dev/video7?width=1280&height=720&fps=30&format=MJPG');
  const [tested, answer] = await call(page, 'POST', '/api/cameras/test', { source: built });
  assert.equal(tested, 200, JSON.stringify(answer));
  assert.equal(answer.ok, false);
  assert.match(answer.message, /\/dev\/video7/);
  // The same at 375 px in dark colours.
  const small = ctx.mobile.page;
  await small.goto(`${A}/#/settings/cameras`);
  await small.getByRole('button', { name: 'Add a camera' }).click();
  await small.getByRole('button', { name: 'USB / CSI camera' }).click();
  await small.getByRole('button', { name: 'Look again' }).waitFor();
  await axe(small, 'settings: cameras, USB/CSI at 375 px, dark');
  await small.screenshot({ path: join(ARTIFACTS, 'settings-camera-finder-mobile.png'), fullPage: true });
  await usb.click();
  assert.equal(await usb.getAttribute('aria-expanded'), 'false');
  assert.equal(await page.locator('.finder-panel').innerText(), '');
  await page.getByRole('button', { name: 'Cancel' }).click();
});

const ONVIF = process.env.EYRIE_ONVIF_URL;
test('an ONVIF scan without credentials, then the picked camera with them, fills in the camera-add form, and the camera records', {
  skip: !ONVIF && 'no network namespaces here (tests/ui.rs said why)',
}, async () => {
  const { context, page } = await open('onvif', 'desktop');
  await login(page, ONVIF);
  await page.goto(`${ONVIF}/#/settings/cameras`);
  await page.getByRole('button', { name: 'Add a camera' }).click();
  await page.getByRole('button', { name: 'Scan network (ONVIF)' }).click();
  // Sending credentials to every device is a choice kept folded away; this scan sends none.
  const toAll = page.locator('details.sign-all');
  assert.equal(await toAll.getAttribute('open'), null);
  assert.match(await toAll.innerText(), /every camera that answers/);
  const scanBodies = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/system/onvif/scan')) scanBodies.push(r.postDataJSON()); });
  await page.getByLabel('Wait for answers (seconds)').fill('2');
  // Enter in the scan's fields scans (and does not submit the camera form around them).
  await page.getByLabel('Wait for answers (seconds)').press('Enter');
  const scan = page.getByRole('button', { name: /^Scan/ }).last();
  await page.locator('button[aria-busy="true"]', { hasText: 'Scan' }).waitFor();
  assert.equal(await scan.isDisabled(), true, 'busy while scanning');
  assert.equal(await page.locator('.scan-results').getAttribute('aria-busy'), 'true');
  await page.getByRole('status').filter({ hasText: 'Found 2 cameras' }).waitFor({ timeout: 30000 });
  assert.equal(await page.locator('.scan-results').getAttribute('aria-busy'), null);
  assert.deepEqual(scanBodies, [{ seconds: 2 }], 'the scan carried no credentials');
  const good = page.getByRole('article', { name: 'Test good' });
  // The camera wants its password: no streams yet, no error, a sign-in for it alone.
  assert.match(await good.innerText(), /needs its user name and password/);
  assert.equal(await good.locator('.device-error').count(), 0);
  assert.equal(await good.locator('tr[data-role="Main stream"]').count(), 0);
  // The device that answers garbage says so, beside the one that works, and is not offered one.
  const garbage = page.getByRole('article', { name: 'Test garbage' });
  assert.match(await garbage.locator('.device-error').innerText(), /Could not read this camera: .*not valid SOAP/);
  assert.equal(await garbage.getByLabel('Camera password').count(), 0);
  await axe(page, 'settings: cameras, ONVIF scan without credentials');
  // A wrong password: the camera's clear error, the sign-in stays.
  await good.getByLabel('Camera user name').fill('admin');
  await good.getByLabel('Camera password').fill('wrong');
  await good.getByRole('button', { name: 'Read streams' }).click();
  await good.locator('.device-error', { hasText: 'refused the username or password' }).waitFor();
  await good.getByLabel('Camera user name').fill('admin');
  await good.getByLabel('Camera password').fill(env('EYRIE_ONVIF_PASSWORD'));
  await good.getByLabel('Camera password').press('Enter');
  const main = good.locator('tr[data-role="Main stream"]');
  await main.waitFor();
  assert.match(await good.innerText(), /Eyrie Test Optics NVT-1 & Co/);
  assert.match(await main.innerText(), /640×360 H264 15 fps/);
  assert.match(await main.innerText(), new RegExp(env('EYRIE_ONVIF_MAIN').replace(/[.?]/g, '\\$&')));
  assert.match(await good.locator('tr[data-role="Sub stream"]').innerText(), /320×180 H265/);
  assert.equal(await good.locator('.device-error').count(), 0);
  await axe(page, 'settings: cameras, ONVIF scan');
  await page.screenshot({ path: join(ARTIFACTS, 'settings-onvif-desktop.png'), fullPage: true });

  await good.getByRole('button', { name: 'Use main stream of Test good' }).click();
  const name = page.getByLabel('Name', { exact: true });
  assert.equal(await name.evaluate((el) => el === document.activeElement), true, 'focus moves to the filled-in form');
  assert.equal(await name.inputValue(), 'Test good');
  assert.equal(await page.getByLabel('Source URL').inputValue(), env('EYRIE_ONVIF_MAIN'));
  assert.equal(await page.getByLabel('User name', { exact: true }).inputValue(), 'admin');
  assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), env('EYRIE_ONVIF_PASSWORD'));
  assert.match(await page.getByLabel('ONVIF address').inputValue(), /^http:\/\/.*\/onvif\/device_service$/);
  await page.getByLabel('Record its events (motion, tamper, line crossing…)').check();
  await page.getByText('Filled in from Test good: main stream, 640×360 H264 15 fps.').waitFor();
  await page.getByRole('button', { name: 'Add camera' }).click();
  const row = page.locator('#settings-panel tr', { hasText: 'Test good' });
  await row.waitFor();
  // It records: the camera streams and its recording is listed.
  const [, cams] = await call(page, 'GET', '/api/cameras?scope=local');
  const cam = cams.find((c) => c.name === 'Test good');
  assert.equal(cam.has_credentials, true);
  assert.equal(cam.source, env('EYRIE_ONVIF_MAIN'));
  assert.equal(cam.onvif.events, true);
  assert.equal(cam.onvif.quiet_seconds, 30);
  assert.match(cam.onvif.xaddr, /\/onvif\/device_service$/);
  for (let i = 0; ; i++) {
    const [, rec] = await call(page, 'GET', `/api/recordings?camera=${cam.id}`);
    const [, now] = await call(page, 'GET', `/api/cameras/${cam.id}`);
    if (rec.runs.length && now.status.state === 'recording' && now.status.frames > 30) break;
    assert.ok(i < 90, `records: ${JSON.stringify(now.status)}`);
    await page.waitForTimeout(500);
  }
  await context.close();
});

test('general settings are saved and apply at once', async () => {
  const { page } = ctx.desktop;
  await page.goto(`${A}/#/settings/general`);
  const label = page.getByLabel('Node label');
  await label.waitFor();
  const before = await page.evaluate(async () => (await fetch('/api/system/settings')).json());
  // A size the API cannot read: its message, nothing saved.
  await page.getByLabel('Recordings may use').fill('lots');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('alert').filter({ hasText: "'lots' is not a size" }).waitFor();
  // Good values: saved, and the header shows the new label at once.
  await label.fill('House upstairs');
  await page.getByLabel('Segment length (seconds)').fill('30');
  await page.getByLabel('Recordings may use').fill('50 GiB');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.brand .node', { hasText: 'House upstairs' }).waitFor();
  const after = await page.evaluate(async () => (await fetch('/api/system/settings')).json());
  assert.deepEqual(after, { ...before, label: 'House upstairs', segment_seconds: 30, budget_bytes: 50 * 2 ** 30 });
  assert.equal(await page.getByLabel('Recordings may use').inputValue(), '50 GiB');
  await axe(page, 'settings: general, edited');
  // Back as it was, for the other tests.
  await label.fill(before.label);
  await page.getByLabel('Segment length (seconds)').fill(String(before.segment_seconds));
  await page.getByLabel('Recordings may use').fill('');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('.brand .node', { hasText: before.label }).waitFor();
  const restored = await page.evaluate(async () => (await fetch('/api/system/settings')).json());
  assert.deepEqual(restored, before);
});

test('the one-time setup link creates the first account', async () => {
  const { context, page } = await open('setup', 'desktop');
  await page.goto(env('EYRIE_SETUP_URL'));
  await page.getByRole('heading', { name: 'Create the admin account' }).waitFor();
  await axe(page, 'setup');
  await page.screenshot({ path: join(ARTIFACTS, 'setup-desktop.png'), fullPage: true });
  await page.getByLabel('User name').fill('owner');
  await page.getByLabel('Password').fill('first-password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('navigation', { name: 'Pages' }).waitFor();
  assert.match(await page.locator('header .user').innerText(), /owner/);
  // The link works once.
  const again = await page.evaluate(async (url) => {
    const token = url.split('/#/setup/')[1];
    const r = await fetch('/api/setup', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, username: 'x', password: 'longenough' }) });
    return r.status;
  }, env('EYRIE_SETUP_URL'));
  assert.equal(again, 403);
  await context.close();
});

test('Settings → System on a node that is not an appliance explains, with no upload', async () => {
  const { context, page } = await open('not-appliance', 'desktop');
  await login(page, A);
  await page.goto(`${A}/#/settings/system`);
  await page.getByRole('tab', { name: 'System', selected: true }).waitFor();
  await page.getByText('not as an appliance').waitFor();
  await page.getByText('docs/update.md').waitFor();
  assert.equal(await page.locator('input[type=file]').count(), 0, 'no upload control');
  assert.equal(await page.getByRole('button', { name: 'Restart now' }).count(), 0);
  await axe(page, 'settings: system, not an appliance');
  await page.screenshot({ path: join(ARTIFACTS, 'settings-system-plain-desktop.png'), fullPage: true });
  await context.close();
});

const SHED = process.env.EYRIE_APPLIANCE_URL;
test('Settings → System on an appliance: an update is uploaded with progress, a bad file refused, and Restart now waits for it to come back', {
  skip: SHED ? false : 'no appliance node: squashfs-tools is missing (tests/run installs it)',
}, async () => {
  const dir = env('EYRIE_APPLIANCE_DIR');
  const slot = (s) => readFileSync(join(dir, `slot_${s}`));
  const ab = () => (existsSync(join(dir, 'boot/ab.txt')) ? readFileSync(join(dir, 'boot/ab.txt'), 'utf8') : '');
  const imagePath = env('EYRIE_APPLIANCE_IMAGE');
  const image = readFileSync(imagePath);
  const slotSize = Number(env('EYRIE_APPLIANCE_SLOT_SIZE'));
  const small = await open('appliance at 375 px', 'mobile');
  await login(small.page, SHED);
  const { context, page } = await open('appliance', 'desktop');
  await login(page, SHED);
  await page.goto(`${SHED}/#/settings/system`);
  const state = page.locator('#system-state');
  await state.getByText('Running slot A, version').waitFor();
  await state.getByText('No update is waiting.').waitFor();
  await axe(page, 'settings: system, appliance');
  const [a0, b0, ab0] = [slot('a'), slot('b'), ab()];
  const status = page.locator('#system-status');
  const error = page.locator('#system-error');
  const chooser = page.getByLabel('Root image');
  const install = page.getByRole('button', { name: 'Install update' });

  // Not a squashfs: the server's message, nothing changed.
  await chooser.setInputFiles({ name: 'holiday.jpg', mimeType: 'image/jpeg', buffer: Buffer.alloc(8192, 0x7f) });
  await install.click();
  await error.filter({ hasText: 'hsqs' }).waitFor();
  assert.match(await error.innerText(), /^Not installed\. This file cannot be installed: /);
  assert.ok(slot('b').equals(b0) && slot('a').equals(a0), 'no slot changed');
  assert.equal(ab(), ab0);
  await axe(page, 'settings: system, refused file');
  // Larger than the slot: refused at once by its size (413).
  await chooser.setInputFiles({ name: 'huge.squashfs', mimeType: 'application/octet-stream', buffer: Buffer.alloc(slotSize + 1, 0x68) });
  await install.click();
  await error.filter({ hasText: 'larger than slot' }).waitFor({ timeout: 30000 });
  assert.match(await error.innerText(), /Too large for the slot: /);
  assert.ok(slot('b').equals(b0) && slot('a').equals(a0), 'no slot changed');
  assert.equal(ab(), ab0);

  // The real root image: progress shown as it goes, then slot B holds it byte for byte.
  await page.evaluate(() => {
    window.seen = [];
    const bar = document.querySelector('.upload progress');
    new MutationObserver(() => window.seen.push([bar.hidden, bar.getAttribute('aria-valuetext')]))
      .observe(bar, { attributes: true, attributeFilter: ['aria-valuetext', 'hidden'] });
  });
  // Loopback is too fast to see an upload go: the browser's own network throttling makes
  // this one take a few seconds.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  // Cancelled part way: nothing will boot it, the running slot untouched.
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 256 << 10 });
  await chooser.setInputFiles(imagePath);
  await install.click();
  await status.filter({ hasText: /Uploading: [1-9]/ }).waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Cancel upload' }).click();
  await error.filter({ hasText: 'Not installed. The upload was cancelled' }).waitFor();
  const updating = async () => (await call(page, 'GET', '/api/system/update'))[1].updating;
  for (let i = 0; i < 50 && await updating(); i++) await page.waitForTimeout(200);
  assert.equal(await updating(), false, 'the server let go of the cut upload');
  assert.equal(ab(), ab0);
  assert.ok(slot('a').equals(a0), 'the running slot is untouched');
  await page.evaluate(() => { window.seen.length = 0; });
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 << 20 });
  const sums = [];
  page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/system/update')) sums.push(r.headers()['x-eyrie-sha256']); });
  await chooser.setInputFiles(imagePath);
  // From the keyboard this time.
  await install.focus();
  await page.keyboard.press('Enter');
  await status.filter({ hasText: 'Installed: slot B holds the new image' }).waitFor({ timeout: 60000 });
  assert.deepEqual(sums, [createHash('sha256').update(image).digest('hex')], 'the checksum header is the file\'s SHA-256');
  assert.match(await status.innerText(), /checksum verified\)\. It runs after a restart\./);
  const seen = await page.evaluate(() => window.seen);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  const total = ` of ${(image.length / 1e6).toFixed(1)} MB`; // as the page writes sizes
  const shown = seen.filter(([hidden, text]) => !hidden && text?.endsWith(total)).map(([, text]) => Number(text.split(' ')[0]));
  assert.ok(shown.some((p) => p > 0 && p < 100), `progress shown as the upload went: ${JSON.stringify(seen)}`);
  assert.equal(shown.at(-1), 100, `progress reached 100 %: ${JSON.stringify(seen)}`);
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'system-status', 'focus on the result');
  const b1 = slot('b');
  assert.ok(b1.subarray(0, image.length).equals(image), 'slot B holds the image byte for byte');
  assert.ok(b1.subarray(image.length).every((x) => x === 0x42), 'nothing written past it');
  assert.ok(slot('a').equals(a0), 'the running slot is untouched');
  assert.equal(ab(), 'active=a\nnext=b\ntrial=\nfailed=\n');
  await state.getByText('An update is written to slot B and runs after a restart.').waitFor();
  assert.equal(await error.innerText(), '');
  await axe(page, 'settings: system, update written');
  await page.screenshot({ path: join(ARTIFACTS, 'settings-system-desktop.png'), fullPage: true });
  await small.page.goto(`${SHED}/#/settings/system`);
  await small.page.locator('#system-state').getByText('An update is written to slot B and runs after a restart.').waitFor();
  await axe(small.page, 'settings: system at 375 px, dark');
  await small.page.screenshot({ path: join(ARTIFACTS, 'settings-system-mobile.png'), fullPage: true });

  // Restart now: a cancelled confirmation sends nothing.
  const reboots = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/system/reboot')) reboots.push(r.method()); });
  const restart = page.getByRole('button', { name: 'Restart now' });
  page.once('dialog', (d) => d.dismiss());
  await restart.click();
  await page.waitForTimeout(500);
  assert.deepEqual(reboots, []);
  // Confirmed: the appliance runs its reboot command, and the page waits for it to come back.
  let question = '';
  page.once('dialog', (d) => { question = d.message(); d.accept(); });
  await restart.click();
  await status.filter({ hasText: 'waiting for the appliance to come back' }).waitFor();
  assert.match(question, /starts the update in slot B/);
  assert.deepEqual(reboots, ['POST']);
  for (let i = 0; i < 50 && !existsSync(join(dir, 'rebooted')); i++) await page.waitForTimeout(200);
  assert.equal(readFileSync(join(dir, 'rebooted'), 'utf8'), 'now\n', 'the reboot command ran');
  assert.ok(await restart.isDisabled() && await install.isDisabled(), 'nothing to press while it restarts');
  // The marker script leaves this Eyrie running: the browser sees it go away (its health
  // requests fail) and come back, then the page reloads by itself.
  let failed = 0;
  const away = (route) => { failed += 1; return route.abort('connectionrefused'); };
  await page.route('**/api/health', away);
  while (failed < 2) await page.waitForTimeout(200);
  const reloaded = page.waitForEvent('load', { timeout: 20000 });
  await page.unroute('**/api/health', away);
  await reloaded;
  await page.locator('#system-state').getByText('An update is written to slot B').waitFor();

  // What the initramfs leaves after an update that never came up, and a boot-partition
  // eyrie.toml that apply-boot-config refused: both said in plain words.
  writeFileSync(join(dir, 'boot/ab.txt'), 'active=a\nnext=\ntrial=\nfailed=b\n');
  const refused = "/boot/eyrie.toml: wifi.psk: a WPA passphrase has 8 to 63 characters";
  writeFileSync(join(dir, 'state/boot-config-error'), `${refused}\n`);
  for (const p of [page, small.page]) {
    await p.goto(`${SHED}/#/settings/system`);
    await p.reload();
    await p.locator('#system-state').getByText('The last update did not start; the appliance went back to slot A.').waitFor();
    await p.locator('#system-state').getByText('No update is waiting.').waitFor();
    await p.getByRole('note').getByText(refused).waitFor();
  }
  await axe(page, 'settings: system, a failed update and a refused boot file');
  await axe(small.page, 'settings: system, a failed update and a refused boot file, at 375 px, dark');
  await small.page.screenshot({ path: join(ARTIFACTS, 'settings-system-failed-mobile.png'), fullPage: true });
  await small.context.close();
  await context.close();
});

test('Settings → System over plain http:// to a host name (no WebCrypto) installs without the checksum header', {
  skip: SHED ? false : 'no appliance node: squashfs-tools is missing (tests/run installs it)',
}, async () => {
  // A name, not 127.0.0.1, is not a secure context: as eyrie-xxxx.local is on a LAN. The
  // name is mapped to loopback inside this browser only.
  const port = new URL(SHED).port;
  const other = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      '--host-resolver-rules=MAP eyrie-shed.test 127.0.0.1'],
  });
  try {
    const page = await (await other.newContext({ viewport: SIZES.desktop })).newPage();
    page.on('pageerror', (e) => problems.push(`plain http: ${e.message}`));
    const base = `http://eyrie-shed.test:${port}`;
    await login(page, base);
    assert.deepEqual(await page.evaluate(() => [window.isSecureContext, Boolean(globalThis.crypto?.subtle)]), [false, false]);
    const dir = env('EYRIE_APPLIANCE_DIR');
    const image = readFileSync(env('EYRIE_APPLIANCE_IMAGE'));
    writeFileSync(join(dir, 'slot_b'), Buffer.alloc(Number(env('EYRIE_APPLIANCE_SLOT_SIZE')), 0x42));
    const sums = [];
    page.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/api/system/update')) sums.push(r.headers()['x-eyrie-sha256']); });
    await page.goto(`${base}/#/settings/system`);
    await page.getByLabel('Root image').setInputFiles(env('EYRIE_APPLIANCE_IMAGE'));
    await page.getByRole('button', { name: 'Install update' }).click();
    const status = page.locator('#system-status');
    await status.filter({ hasText: 'Installed: slot B holds the new image' }).waitFor({ timeout: 60000 });
    assert.doesNotMatch(await status.innerText(), /checksum/);
    assert.deepEqual(sums, [undefined], 'no checksum header without WebCrypto');
    assert.ok(readFileSync(join(dir, 'slot_b')).subarray(0, image.length).equals(image), 'slot B holds the image');
    await page.locator('#system-state').getByText('An update is written to slot B and runs after a restart.').waitFor();
  } finally {
    await other.close();
  }
});

const C = process.env.EYRIE_C_URL;
test('a node that goes down: its live picture is marked not live, its recording says so after a deadline, and choosing its camera clears the last one', {
  skip: C ? false : 'EYRIE_C_URL is not set (tests/ui.rs sets it)',
}, async () => {
  const pid = Number(env('EYRIE_C_PID'));
  const res = await fetch(`${C}/api/federation/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${btoa(`${USER}:${PASSWORD}`)}` },
    body: JSON.stringify({ name: 'House' }),
  });
  assert.equal(res.status, 201);
  const { key } = await res.json();
  // A laptop's window: the whole 2×2 grid fits 1440×900.
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`barn: ${e.message}`));
  await login(page);
  const [added, node] = await call(page, 'POST', '/api/system/nodes', { label: 'Barn', url: C, key });
  assert.equal(added, 201, JSON.stringify(node));
  let barnCam = null;
  for (let i = 0; !barnCam; i++) {
    assert.ok(i < 60, 'House lists Barn\'s camera');
    const [, cams] = await call(page, 'GET', '/api/cameras');
    barnCam = cams.find((c) => c.node_label === 'Barn' && c.live_url);
    if (!barnCam) await page.waitForTimeout(500);
  }
  const stopped = { value: false };
  try {
    await page.goto(`${A}/#/`);
    await page.getByRole('button', { name: '2×2' }).click();
    const barnCard = page.locator('article.cam[data-node="Barn"]');
    await page.locator('article.cam[data-node="Barn"][data-live="playing"]').waitFor({ timeout: 30000 });
    const rows = await page.locator('article.cam').count();
    assert.ok(rows >= 3, `two rows of cards: ${rows}`);
    const grid = await page.locator('#camera-grid').boundingBox();
    assert.ok(grid.y + grid.height <= 900, `the 2×2 grid fits 1440×900: ${JSON.stringify(grid)}`);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1440x900.png') });
    // The recording of Barn's camera, listed while Barn is up.
    const rec = await context.newPage();
    rec.on('pageerror', (e) => problems.push(`barn recordings: ${e.message}`));
    await rec.goto(`${A}/#/recordings/${barnCam.id}`);
    await rec.locator('.timeline .run').first().waitFor({ timeout: 20000 });

    process.kill(pid, 'SIGSTOP');
    stopped.value = true;
    // The dashboard: the last picture is greyed out and says it is not live.
    await page.locator('article.cam[data-node="Barn"]:not([data-live="playing"])').waitFor({ timeout: 30000 });
    await barnCard.locator('.note', { hasText: /^Not live: the last picture came at / }).waitFor({ timeout: 10000 });
    assert.match(await barnCard.locator('video').evaluate((v) => getComputedStyle(v).filter), /grayscale/);
    await axe(page, 'dashboard, a node down');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-node-down.png') });

    // Its recording: played from Barn, which does not answer: said after the deadline.
    // (locator.click, which waits for the run and clicks its middle: the page redraws its runs
    // as the view follows the clock, so a box read first can be of one already gone.)
    await rec.locator('.timeline .run').first().click();
    await rec.getByText(/^Loading Demo camera \(Barn\)/).waitFor();
    await rec.locator('#play-error', { hasText: /nothing came from the node that holds this recording in 12 s/ }).waitFor({ timeout: 30000 });
    assert.doesNotMatch(await rec.locator('.player').innerText(), /Playing|Loading/);

    // Another camera, then Barn's again: House cannot list it; nothing of the camera before
    // stays on screen under Barn's name.
    await rec.locator('#rec-camera').selectOption('demo');
    await rec.locator('.timeline .run').first().waitFor({ timeout: 20000 });
    await rec.locator('#rec-camera').selectOption(barnCam.id);
    await rec.getByRole('alert').filter({ hasText: /^Cannot list the recordings of Demo camera \(Barn\): / }).waitFor({ timeout: 30000 });
    assert.equal(await rec.locator('.timeline .run').count(), 0, 'no runs of the camera before');
    assert.deepEqual(await rec.locator('.timeline .lane-label').allInnerTexts(), ['Demo camera (Barn)']);
    assert.match(await rec.locator('.runs').innerText(), /No recordings in view/);
    await axe(rec, 'recordings, a node down');
    await rec.screenshot({ path: join(ARTIFACTS, 'recordings-node-down.png'), fullPage: true });
  } finally {
    if (stopped.value) process.kill(pid, 'SIGCONT');
    await call(page, 'DELETE', `/api/system/nodes/${node.id}`);
    await context.close();
  }
});

test('no script errors or CSP violations on any page', () => {
  assert.deepEqual(problems, []);
});
