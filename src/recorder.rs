//! The recorder owns the running cameras: for each enabled camera a capture task (connect,
//! reconnect with capped exponential backoff, frame timing) feeding a writer thread (the
//! segmenter) and the live hub, plus the status that `/api/health` reports. A camera with
//! motion detection on hands a few of its MJPEG pictures or H.264 key frames a second to its
//! motion watcher (crate::motion), which never holds capture up; a raw local camera is given
//! the watcher's tap instead and hands it grids from its pictures before encoding.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::capture::{self, PROBE_EVERY, Source};
use crate::events::EventSink;
use crate::media::live::LiveHub;
use crate::media::segmenter::{OpenSegments, Segmenter, SegmenterConfig, TimedFrame, WriterMsg};
use crate::motion::Watcher;
use crate::storage::{CameraRecord, Index, Layout, retention::Retention};
use crate::video::TIMESCALE;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Batches queued for the writer thread; beyond this the disk is too slow and frames are dropped
/// up to the next key frame (the gap shows as a new run).
const WRITER_QUEUE: usize = 32;
/// Most frames in one batch to the writer; with [`WRITER_QUEUE`] this bounds what waits in
/// memory for a slow disk to about 1000 frames.
const MAX_BATCH: usize = 32;
/// A batch ends after this much stream time even without a key frame (one fragment's worth).
const BATCH_SPAN: i64 = TIMESCALE as i64;
/// Frame durations outside (0, 10 s] are replaced by the previous one.
const MAX_FRAME_TICKS: i64 = 10 * TIMESCALE as i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraState {
    Connecting,
    Recording,
    Error,
    Disabled,
}

#[derive(Debug)]
struct StatusInner {
    state: CameraState,
    last_error: Option<String>,
    last_frame: Option<Instant>,
    /// (time, bytes) of recent frames, for the bitrate over the last few seconds.
    recent: VecDeque<(Instant, usize)>,
    recent_bytes: usize,
    frames: u64,
    dropped_frames: u64,
    reconnects: u64,
    codec: Option<crate::video::Codec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    pub state: CameraState,
    /// The codec of the current or last stream.
    pub codec: Option<crate::video::Codec>,
    pub last_error: Option<String>,
    /// Seconds since the last frame arrived.
    pub last_frame_age_s: Option<f64>,
    pub bitrate_bps: u64,
    pub frames: u64,
    pub dropped_frames: u64,
    pub reconnects: u64,
    pub viewers: usize,
    /// Local devices: which encoder makes the video and the frames it left out.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<capture::Encoding>,
    /// With motion detection on: the pictures it compared, dropped and could not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motion: Option<crate::motion::MotionStatus>,
}

const BITRATE_WINDOW: Duration = Duration::from_secs(5);

pub struct Status(Mutex<StatusInner>);

impl Status {
    fn new(state: CameraState) -> Self {
        Self(Mutex::new(StatusInner {
            state,
            last_error: None,
            last_frame: None,
            recent: VecDeque::new(),
            recent_bytes: 0,
            frames: 0,
            dropped_frames: 0,
            reconnects: 0,
            codec: None,
        }))
    }

    fn set(&self, state: CameraState, error: Option<String>) {
        let mut g = self.0.lock().unwrap();
        g.state = state;
        if error.is_some() {
            g.last_error = error;
        }
    }

    fn frame(&self, bytes: usize) {
        let now = Instant::now();
        let mut g = self.0.lock().unwrap();
        g.last_frame = Some(now);
        g.frames += 1;
        g.recent.push_back((now, bytes));
        g.recent_bytes += bytes;
        while let Some(&(t, b)) = g.recent.front() {
            if now.duration_since(t) <= BITRATE_WINDOW {
                break;
            }
            g.recent.pop_front();
            g.recent_bytes -= b;
        }
    }

    pub fn snapshot(&self, viewers: usize) -> CameraStatus {
        let g = self.0.lock().unwrap();
        let fresh = g.last_frame.is_some_and(|t| t.elapsed() <= BITRATE_WINDOW);
        CameraStatus {
            state: g.state,
            codec: g.codec,
            last_error: g.last_error.clone(),
            last_frame_age_s: g.last_frame.map(|t| t.elapsed().as_secs_f64()),
            bitrate_bps: if fresh {
                (g.recent_bytes as u64 * 8) / BITRATE_WINDOW.as_secs()
            } else {
                0
            },
            frames: g.frames,
            dropped_frames: g.dropped_frames,
            reconnects: g.reconnects,
            viewers: 0,
            encoding: None,
            motion: None,
        }
        .with_viewers(viewers)
    }
}

impl CameraStatus {
    fn with_viewers(mut self, viewers: usize) -> Self {
        self.viewers = viewers;
        self
    }
}

struct Running {
    cancel: CancellationToken,
    status: Arc<Status>,
    source: Option<Arc<dyn capture::Source>>,
    live: Arc<LiveHub>,
    motion: Option<Arc<crate::motion::Counters>>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Recorder {
    index: Arc<Index>,
    layout: Layout,
    cfg: SegmenterConfig,
    open: OpenSegments,
    retention: Arc<Retention>,
    /// Where cameras' motion events go.
    events: Arc<dyn EventSink>,
    /// Cameras' own events over ONVIF, to the same sink.
    onvif: crate::onvif::events::Watchers,
    cameras: Mutex<HashMap<String, Running>>,
}

impl Recorder {
    /// The segment length every camera's writer cuts at.
    pub fn segment_target(&self) -> &crate::media::segmenter::SegmentTarget {
        &self.cfg.segment_target
    }

    pub fn new(
        index: Arc<Index>,
        layout: Layout,
        cfg: SegmenterConfig,
        retention: Arc<Retention>,
        events: Arc<dyn EventSink>,
    ) -> Arc<Self> {
        Arc::new(Self {
            index,
            layout,
            cfg,
            open: OpenSegments::default(),
            retention,
            onvif: crate::onvif::events::Watchers::new(events.clone()),
            events,
            cameras: Mutex::new(HashMap::new()),
        })
    }

    pub fn open_segments(&self) -> &OpenSegments {
        &self.open
    }

    /// Cameras' ONVIF event watches: where pushed notifications are delivered, which transport
    /// each uses, and (at start) where cameras reach this node.
    pub fn onvif_events(&self) -> &crate::onvif::events::Watchers {
        &self.onvif
    }

    /// Starts recording `cam` (stopping a previous instance first), and watching its ONVIF events
    /// if it asks for them (a watch whose settings did not change goes on). Disabled cameras only
    /// stop.
    pub async fn apply(&self, cam: &CameraRecord) {
        self.onvif.apply(&cam.id, Some(cam));
        self.stop_recording(&cam.id).await;
        if !cam.enabled {
            return;
        }
        let status = Arc::new(Status::new(CameraState::Connecting));
        let live = LiveHub::new();
        let cancel = CancellationToken::new();
        let source = capture::SourceSpec::parse(&cam.source).map(|spec| {
            capture::open(&spec.with_login(capture::Login {
                username: cam.username.clone(),
                password: cam.password.clone(),
                udp: cam.transport == crate::storage::Transport::Udp,
            }))
        });
        let source = match source {
            Ok(s) => s,
            Err(e) => {
                status.set(CameraState::Error, Some(e.0));
                self.cameras.lock().unwrap().insert(
                    cam.id.clone(),
                    Running {
                        cancel,
                        status,
                        source: None,
                        live,
                        motion: None,
                        task: tokio::spawn(async {}),
                    },
                );
                return;
            }
        };
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let segmenter = Segmenter::new(
            cam.id.clone(),
            self.index.clone(),
            self.layout.clone(),
            self.cfg.clone(),
            self.open.clone(),
            self.retention.clone(),
        );
        let writer = spawn_writer(cam.id.clone(), segmenter, rx, status.clone());
        let watcher = if cam.motion.enabled {
            Watcher::start(cam.id.clone(), &cam.motion, self.events.clone())
                .map_err(|e| tracing::error!(camera = %cam.id, "starting motion detection: {e}"))
                .ok()
        } else {
            None
        };
        if let Some(w) = &watcher {
            // A raw local camera reduces its pictures to the grid itself (motion::Tap).
            source.tap_motion(w.tap());
        }
        let motion = watcher.as_ref().map(|w| w.counters().clone());
        let task = tokio::spawn(capture_loop(
            cam.id.clone(),
            source.clone(),
            watcher,
            self.index.clone(),
            tx,
            live.clone(),
            status.clone(),
            cancel.clone(),
            writer,
        ));
        self.cameras.lock().unwrap().insert(
            cam.id.clone(),
            Running {
                cancel,
                status,
                source: Some(source),
                live,
                motion,
                task,
            },
        );
    }

    /// Stops a camera and waits until its open segment is closed.
    /// Stops everything of camera `id` (it is gone): its recording and its event watch.
    pub async fn stop(&self, id: &str) {
        self.onvif.apply(id, None);
        self.stop_recording(id).await;
    }

    async fn stop_recording(&self, id: &str) {
        let running = self.cameras.lock().unwrap().remove(id);
        if let Some(r) = running {
            r.cancel.cancel();
            r.live.stop();
            let _ = r.task.await;
        }
    }

    /// Stops every camera: event watches first (they unsubscribe and close their open events,
    /// within 3 s), then recordings.
    pub async fn stop_all(&self) {
        self.onvif.stop_all(Duration::from_secs(3)).await;
        let ids: Vec<String> = self.cameras.lock().unwrap().keys().cloned().collect();
        for id in ids {
            self.stop_recording(&id).await;
        }
    }

    pub fn status(&self, id: &str) -> CameraStatus {
        match self.cameras.lock().unwrap().get(id) {
            Some(r) => CameraStatus {
                encoding: r.source.as_ref().and_then(|s| s.encoding()),
                motion: r.motion.as_ref().map(|c| c.status()),
                ..r.status.snapshot(r.live.viewers())
            },
            None => Status::new(CameraState::Disabled).snapshot(0),
        }
    }

    pub fn live(&self, id: &str) -> Option<Arc<LiveHub>> {
        self.cameras.lock().unwrap().get(id).map(|r| r.live.clone())
    }
}

fn spawn_writer(
    camera: String,
    mut seg: Segmenter,
    mut rx: mpsc::Receiver<WriterMsg>,
    status: Arc<Status>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("writer-{camera}"))
        .spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                if let Err(e) = seg.handle(msg) {
                    tracing::error!(%camera, "recording: {e}");
                    status.set(CameraState::Error, Some(format!("recording: {e}")));
                    // Drop what is open; the next key frame starts a fresh segment.
                    let _ = seg.handle(WriterMsg::EndRun);
                }
            }
            if let Err(e) = seg.end_run() {
                tracing::error!(%camera, "closing segment: {e}");
            }
        })
        .expect("spawning a thread")
}

/// Forwards frames to the writer without ever blocking on it. Frames go in batches that end
/// with a key frame or after [`BATCH_SPAN`] (the writer only writes whole fragments, so this
/// delays nothing on disk and saves ~15 thread wake-ups a second per camera). When the queue
/// is full, frames are dropped until the next key frame, and recording resumes as a new run.
struct Forward {
    tx: mpsc::Sender<WriterMsg>,
    index: Arc<Index>,
    resync: bool,
    batch: Vec<TimedFrame>,
    dropped: u64,
}

impl Forward {
    /// Sends `msg` after any frames still batched, keeping their order.
    fn send(&mut self, msg: WriterMsg) -> bool {
        self.flush() && self.tx.try_send(msg).is_ok()
    }

    fn push(&mut self, tf: TimedFrame) {
        let flush = tf.frame.key
            || self.batch.len() + 1 >= MAX_BATCH
            || self
                .batch
                .first()
                .is_some_and(|f| tf.frame.pts - f.frame.pts >= BATCH_SPAN);
        self.batch.push(tf);
        if flush {
            self.flush();
        }
    }

    /// Hands the batch to the writer; false (and the frames counted as dropped) when its queue
    /// is full.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let frames = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH));
        let n = frames.len() as u64;
        if self.tx.try_send(WriterMsg::Frames(frames)).is_err() {
            self.dropped += n;
            self.resync = true;
            return false;
        }
        true
    }

    async fn start_run(&mut self, params: Arc<crate::video::VideoParams>) {
        let index = self.index.clone();
        let run_id = tokio::task::spawn_blocking(move || index.next_run_id())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        let ok = self.send(WriterMsg::StartRun { run_id, params });
        self.resync = !ok;
    }
}

#[allow(clippy::too_many_arguments)]
async fn capture_loop(
    camera: String,
    source: Arc<dyn Source>,
    mut watcher: Option<Watcher>,
    index: Arc<Index>,
    tx: mpsc::Sender<WriterMsg>,
    live: Arc<LiveHub>,
    status: Arc<Status>,
    cancel: CancellationToken,
    writer: std::thread::JoinHandle<()>,
) {
    let mut fwd = Forward {
        tx,
        index,
        resync: false,
        batch: Vec::with_capacity(MAX_BATCH),
        dropped: 0,
    };
    let mut backoff = BACKOFF_MIN;
    let desc = source.describe();
    // Frames the source itself lost (a local device's sequence gaps), already counted.
    let mut source_dropped = source.dropped_frames();
    'outer: while !cancel.is_cancelled() {
        status.set(CameraState::Connecting, None);
        let opened = tokio::select! {
            _ = cancel.cancelled() => break,
            r = source.open() => r,
        };
        let error = match opened {
            Err(e) => e.to_string(),
            Ok(mut opened) => {
                tracing::info!(%camera, source = %desc, "streaming");
                if watcher.is_some() && !Watcher::reads(opened.params.codec) {
                    tracing::warn!(
                        %camera,
                        "motion detection reads MJPEG and H.264 only; this camera sends {:?} \
                         (use the camera's own ONVIF events)",
                        opened.params.codec
                    );
                }
                let mut delivered = false;
                let mut params = opened.params.clone();
                fwd.start_run(params.clone()).await;
                live.start(&params);
                status.set(CameraState::Recording, None);
                status.0.lock().unwrap().codec = Some(params.codec);
                let mut pending: Option<crate::video::Frame> = None;
                let mut last_ticks: i64 = (TIMESCALE / 15) as i64;
                let error = loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => break None,
                        n = opened.frames.next() => n,
                    };
                    let frame = match next {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => break Some(e.to_string()),
                        None => break Some("stream ended".to_string()),
                    };
                    status.frame(frame.data.len());
                    delivered = true;
                    if let Some(w) = &mut watcher {
                        // MJPEG pictures (read at 1/8 scale) and H.264 key frames; `params`
                        // changes at `emit`, after this frame is offered.
                        w.offer_frame(frame.new_params.as_ref().unwrap_or(&params), &frame);
                    }
                    let lost = source.dropped_frames();
                    if lost > source_dropped {
                        status.0.lock().unwrap().dropped_frames += lost - source_dropped;
                        source_dropped = lost;
                    }
                    if let Some(prev) = pending.take() {
                        let d = frame.pts - prev.pts;
                        if d > 0 && d <= MAX_FRAME_TICKS {
                            last_ticks = d;
                        }
                        emit(
                            &mut fwd,
                            &live,
                            &status,
                            &mut params,
                            prev,
                            last_ticks as u32,
                        )
                        .await;
                    }
                    pending = Some(frame);
                };
                if let Some(prev) = pending.take() {
                    emit(
                        &mut fwd,
                        &live,
                        &status,
                        &mut params,
                        prev,
                        last_ticks as u32,
                    )
                    .await;
                }
                fwd.send(WriterMsg::EndRun);
                live.stop();
                // A run that delivered frames was a success, however short: a camera that
                // drops and comes back is reconnected at once, not after a grown backoff.
                if delivered {
                    backoff = BACKOFF_MIN;
                }
                match error {
                    None => break 'outer,
                    Some(e) => e,
                }
            }
        };
        tracing::warn!(%camera, source = %desc, "{error}; retrying in {backoff:?}");
        {
            let mut g = status.0.lock().unwrap();
            g.state = CameraState::Error;
            g.last_error = Some(error);
            g.reconnects += 1;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = back_off(&*source, backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    drop(fwd);
    // The writer closes its segment when the channel closes; wait for that (it fsyncs).
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
}

/// Waits out `backoff` before the next attempt, or less: a camera that did not answer at all
/// (its probe fails) is probed every [`PROBE_EVERY`] and tried again as soon as it answers. One
/// that answers but refused (wrong credentials, a bad path) waits the whole backoff.
async fn back_off(source: &dyn Source, backoff: Duration) {
    let deadline = tokio::time::Instant::now() + backoff;
    let down = match source.probe() {
        Some(p) => !p.await,
        None => false,
    };
    if down {
        while tokio::time::Instant::now() + PROBE_EVERY < deadline {
            tokio::time::sleep(PROBE_EVERY).await;
            let answers = match source.probe() {
                Some(p) => p.await,
                None => false,
            };
            if answers {
                return;
            }
        }
    }
    tokio::time::sleep_until(deadline).await;
}

async fn emit(
    fwd: &mut Forward,
    live: &LiveHub,
    status: &Status,
    params: &mut Arc<crate::video::VideoParams>,
    frame: crate::video::Frame,
    duration: u32,
) {
    if let Some(p) = &frame.new_params {
        *params = p.clone();
        live.start(p);
        if !fwd.send(WriterMsg::Params(p.clone())) {
            fwd.resync = true;
        }
    }
    let tf = TimedFrame { frame, duration };
    live.push(&tf);
    if fwd.resync {
        if !tf.frame.key {
            status.0.lock().unwrap().dropped_frames += 1;
            return;
        }
        // StartRun closes whatever the writer still has open.
        fwd.start_run(params.clone()).await;
        if fwd.resync {
            status.0.lock().unwrap().dropped_frames += 1;
            return;
        }
    }
    fwd.push(tf);
    if fwd.dropped > 0 {
        status.0.lock().unwrap().dropped_frames += std::mem::take(&mut fwd.dropped);
    }
}
