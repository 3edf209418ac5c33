//! Turns a camera's timed frames into segment files and index rows. Runs on its own thread per
//! camera, so a slow SD card never stalls the network side.
//!
//! * A fragment (`moof`+`mdat`) is written at each key frame, or once it holds `fragment_max` of
//!   video when key frames are far apart. A segment file is cut at the first key frame after the
//!   target length. Both are written whole with one `write`, so a file is always valid up to its
//!   last complete fragment, which is what readers and crash recovery rely on.
//! * Durability (docs/storage.md): the open file is `fdatasync`ed every `sync_interval`; a
//!   closing file is fully synced before its row is marked closed.
//! * Wall-clock times (docs/time.md): a run is anchored at its first frame's receive time and
//!   advanced by RTP durations; at each segment cut the anchor slews toward the receive clock by
//!   at most [`MAX_SLEW_PPM`] of the elapsed media time.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fmp4::{self, SampleMeta};
use crate::storage::retention::DiskGuard;
use crate::storage::{self, Index, Layout, NewSegment, SegmentFinish, SegmentState};
use crate::video::{Frame, TIMESCALE, VideoParams};

pub const MAX_SLEW_PPM: f64 = 500.0;

/// A frame with its duration, known once the next frame arrived.
#[derive(Debug, Clone)]
pub struct TimedFrame {
    pub frame: Frame,
    pub duration: u32,
}

pub enum WriterMsg {
    /// A new connection: a run with its id and parameters. Ends any previous run.
    StartRun {
        run_id: u64,
        params: Arc<VideoParams>,
    },
    /// Parameters changed mid-run; the next frame is a key frame.
    Params(Arc<VideoParams>),
    /// Frames in order. The recorder sends them in batches that end at a key frame or after
    /// about a second, so the writer thread wakes once per fragment, not once per frame.
    Frames(Vec<TimedFrame>),
    /// The connection ended: close the open segment.
    EndRun,
}

/// How long segments are, shared by every camera's writer so that a change (the admin's, in
/// `PUT /api/system/settings`) applies from each camera's next cut.
#[derive(Debug, Clone)]
pub struct SegmentTarget(Arc<std::sync::atomic::AtomicU64>);

impl SegmentTarget {
    pub fn new(d: Duration) -> Self {
        Self(Arc::new(std::sync::atomic::AtomicU64::new(
            d.as_millis() as u64
        )))
    }
    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
    pub fn set(&self, d: Duration) {
        self.0
            .store(d.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    pub segment_target: SegmentTarget,
    pub fragment_max: Duration,
    pub sync_interval: Duration,
}

/// What readers may use of a segment still being written.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenInfo {
    /// Bytes of complete fragments; the file may hold a torn one past this.
    pub committed: u64,
    pub media_ticks: u64,
    pub frames: u32,
    pub end_ms: i64,
}

/// Open segments by id, shared with readers.
pub type OpenSegments = Arc<Mutex<HashMap<u64, OpenInfo>>>;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("index: {0}")]
    Index(#[from] storage::StorageError),
}

struct Fragment {
    samples: Vec<SampleMeta>,
    data: Vec<Bytes>,
    ticks: u64,
}

struct OpenSegment {
    id: u64,
    start_ms: i64,
    path: PathBuf,
    file: File,
    bytes: u64,
    frames: u32,
    key_frames: u32,
    ticks: u64,
    seq: u32,
    last_sync: Instant,
}

struct Run {
    run_id: u64,
    params: Arc<VideoParams>,
    /// Wall-clock ms of run media time 0, after slewing.
    anchor_ms: f64,
    /// Run media time (90 kHz) written so far.
    ticks: u64,
}

pub struct Segmenter {
    camera: String,
    index: Arc<Index>,
    layout: Layout,
    cfg: SegmenterConfig,
    open: OpenSegments,
    guard: Arc<dyn DiskGuard>,
    run: Option<Run>,
    seg: Option<OpenSegment>,
    frag: Fragment,
}

fn ticks_to_ms(t: u64) -> f64 {
    t as f64 * 1000.0 / TIMESCALE as f64
}

impl Segmenter {
    pub fn new(
        camera: String,
        index: Arc<Index>,
        layout: Layout,
        cfg: SegmenterConfig,
        open: OpenSegments,
        guard: Arc<dyn DiskGuard>,
    ) -> Self {
        Self {
            camera,
            index,
            layout,
            cfg,
            open,
            guard,
            run: None,
            seg: None,
            frag: Fragment {
                samples: Vec::new(),
                data: Vec::new(),
                ticks: 0,
            },
        }
    }

    pub fn handle(&mut self, msg: WriterMsg) -> Result<(), WriteError> {
        match msg {
            WriterMsg::StartRun { run_id, params } => {
                self.end_run()?;
                self.run = Some(Run {
                    run_id,
                    params,
                    anchor_ms: f64::NAN,
                    ticks: 0,
                });
            }
            WriterMsg::Params(params) => {
                self.close_segment(SegmentState::Closed)?;
                if let Some(run) = &mut self.run {
                    run.params = params;
                }
            }
            WriterMsg::Frames(frames) => {
                for tf in frames {
                    self.frame(tf)?;
                }
            }
            WriterMsg::EndRun => self.end_run()?,
        }
        Ok(())
    }

    /// Closes whatever is open (shutdown, or the stream ended).
    pub fn end_run(&mut self) -> Result<(), WriteError> {
        let r = self.close_segment(SegmentState::Closed);
        self.run = None;
        r
    }

    fn frame(&mut self, tf: TimedFrame) -> Result<(), WriteError> {
        let Some(run) = &mut self.run else {
            return Ok(()); // frames outside a run are a sender bug; nothing to attach them to
        };
        let received_ms = tf.frame.received.as_millisecond() as f64;
        if run.anchor_ms.is_nan() {
            if !tf.frame.key {
                return Ok(()); // a run's media starts with a key frame; wait for one
            }
            run.anchor_ms = received_ms;
        }
        if tf.frame.key {
            self.flush_fragment()?;
            let too_long = self.seg.as_ref().is_some_and(|s| {
                Duration::from_millis(ticks_to_ms(s.ticks) as u64) >= self.cfg.segment_target.get()
            });
            if too_long {
                self.slew(received_ms);
                self.close_segment(SegmentState::Closed)?;
            }
        }
        if self.seg.is_none() {
            if !tf.frame.key {
                return Ok(()); // a segment starts with a key frame; wait for one
            }
            self.open_segment()?;
        }
        self.frag.samples.push(SampleMeta {
            duration: tf.duration,
            size: tf.frame.data.len() as u32,
            key: tf.frame.key,
        });
        self.frag.ticks += tf.duration as u64;
        self.frag.data.push(tf.frame.data);
        if Duration::from_millis(ticks_to_ms(self.frag.ticks) as u64) >= self.cfg.fragment_max {
            self.flush_fragment()?;
        }
        Ok(())
    }

    /// Moves the run's anchor toward the receive clock, by at most MAX_SLEW_PPM of the media time
    /// since the segment began.
    fn slew(&mut self, received_ms: f64) {
        let (Some(run), Some(seg)) = (&mut self.run, &self.seg) else {
            return;
        };
        let media_now = run.anchor_ms + ticks_to_ms(run.ticks);
        let drift = received_ms - media_now;
        let limit = ticks_to_ms(seg.ticks) * MAX_SLEW_PPM / 1e6;
        run.anchor_ms += drift.clamp(-limit, limit);
    }

    fn open_segment(&mut self) -> Result<(), WriteError> {
        let run = self.run.as_ref().expect("called within a run");
        let start_ms = (run.anchor_ms + ticks_to_ms(run.ticks)).round() as i64;
        let (id, start_ms) = self.index.begin_segment(&NewSegment {
            camera: &self.camera,
            start_ms,
            run_id: run.run_id,
            codec: run.params.codec,
            width: run.params.width,
            height: run.params.height,
        })?;
        let path = self
            .layout
            .segment_path(&self.camera, start_ms)
            .expect("camera ids are validated before recording");
        let io_err = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let file = File::create(&path).map_err(io_err)?;
        let init = fmp4::init_segment(&run.params, None);
        let mut seg = OpenSegment {
            id,
            start_ms,
            path,
            file,
            bytes: 0,
            frames: 0,
            key_frames: 0,
            ticks: 0,
            seq: 0,
            last_sync: Instant::now(),
        };
        let written = write_with_retry(&mut seg, &[&init], self.guard.as_ref());
        self.seg = Some(seg);
        written?;
        self.publish();
        Ok(())
    }

    fn flush_fragment(&mut self) -> Result<(), WriteError> {
        let Some(seg) = &mut self.seg else {
            return Ok(());
        };
        if self.frag.samples.is_empty() {
            return Ok(());
        }
        seg.seq += 1;
        let header = fmp4::fragment_header(seg.seq, seg.ticks, &self.frag.samples);
        let mut bufs: Vec<&[u8]> = Vec::with_capacity(1 + self.frag.data.len());
        bufs.push(&header);
        bufs.extend(self.frag.data.iter().map(|b| &b[..]));
        let r = write_with_retry(seg, &bufs, self.guard.as_ref());
        let frames = self.frag.samples.len() as u32;
        let keys = self.frag.samples.iter().filter(|s| s.key).count() as u32;
        let ticks = self.frag.ticks;
        self.frag.samples.clear();
        self.frag.data.clear();
        self.frag.ticks = 0;
        r?;
        seg.frames += frames;
        seg.key_frames += keys;
        seg.ticks += ticks;
        if let Some(run) = &mut self.run {
            run.ticks += ticks;
        }
        if seg.last_sync.elapsed() >= self.cfg.sync_interval {
            seg.file.sync_data().map_err(|source| WriteError::Io {
                path: seg.path.clone(),
                source,
            })?;
            seg.last_sync = Instant::now();
        }
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        if let (Some(seg), Some(run)) = (&self.seg, &self.run) {
            let end_ms = (run.anchor_ms + ticks_to_ms(run.ticks)).round() as i64;
            self.open.lock().unwrap().insert(
                seg.id,
                OpenInfo {
                    committed: seg.bytes,
                    media_ticks: seg.ticks,
                    frames: seg.frames,
                    end_ms,
                },
            );
        }
    }

    fn close_segment(&mut self, state: SegmentState) -> Result<(), WriteError> {
        let flushed = self.flush_fragment();
        let Some(seg) = self.seg.take() else {
            return flushed;
        };
        let end_ms = self
            .run
            .as_ref()
            .map(|r| (r.anchor_ms + ticks_to_ms(r.ticks)).round() as i64)
            .unwrap_or(seg.start_ms)
            .max(seg.start_ms);
        let synced = seg.file.sync_all().map_err(|source| WriteError::Io {
            path: seg.path.clone(),
            source,
        });
        let result = if seg.frames == 0 {
            // Nothing but an init segment (the stream died at once): not worth a row.
            drop(seg.file);
            let _ = std::fs::remove_file(&seg.path);
            self.index
                .remove_segment(&self.camera, seg.start_ms)
                .map(|_| ())
                .map_err(WriteError::from)
        } else {
            self.index
                .finish_segment(
                    &self.camera,
                    seg.start_ms,
                    &SegmentFinish {
                        end_ms,
                        media_ticks: seg.ticks,
                        bytes: seg.bytes,
                        frames: seg.frames,
                        key_frames: seg.key_frames,
                        state,
                    },
                )
                .map_err(WriteError::from)
        };
        self.open.lock().unwrap().remove(&seg.id);
        self.guard.segment_closed();
        flushed.and(synced).and(result)
    }
}

impl Drop for Segmenter {
    fn drop(&mut self) {
        if let Err(e) = self.end_run() {
            tracing::warn!(camera = %self.camera, "closing segment: {e}");
        }
    }
}

fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Writes all of `bufs` with as few `writev` calls as the kernel allows (usually one a
/// fragment, rather than one per sample).
fn write_all_vectored(out: &mut impl Write, bufs: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice> = bufs.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends `bufs` as one unit. On a full disk it asks for emergency deletion and tries once
/// more; on any failure it cuts the file back so it ends at a complete fragment.
fn write_with_retry(
    seg: &mut OpenSegment,
    bufs: &[&[u8]],
    guard: &dyn DiskGuard,
) -> Result<(), WriteError> {
    let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
    let mut attempt = 0;
    loop {
        let r = write_all_vectored(&mut seg.file, bufs);
        match r {
            Ok(()) => {
                seg.bytes += total;
                guard.wrote(total);
                return Ok(());
            }
            Err(e) => {
                let _ = seg.file.set_len(seg.bytes);
                use std::io::Seek;
                let _ = seg.file.seek(std::io::SeekFrom::Start(seg.bytes));
                if attempt == 0 && is_disk_full(&e) && guard.emergency_free() {
                    attempt += 1;
                    continue;
                }
                return Err(WriteError::Io {
                    path: seg.path.clone(),
                    source: e,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::testing::h264_params;

    struct NoGuard;
    impl DiskGuard for NoGuard {
        fn wrote(&self, _: u64) {}
        fn emergency_free(&self) -> bool {
            false
        }
        fn segment_closed(&self) {}
    }

    fn frame(pts: i64, key: bool, received_ms: i64) -> TimedFrame {
        TimedFrame {
            frame: Frame {
                data: Bytes::from(vec![0u8; 500]),
                pts,
                key,
                received: jiff::Timestamp::from_millisecond(received_ms).unwrap(),
                new_params: None,
            },
            duration: 6000,
        }
    }

    #[test]
    fn vectored_writes_survive_short_writes() {
        /// Takes at most 3 bytes a call, across buffer boundaries.
        struct Dribble(Vec<u8>);
        impl Write for Dribble {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn write_vectored(&mut self, bufs: &[std::io::IoSlice]) -> std::io::Result<usize> {
                let mut n = 0;
                for b in bufs {
                    let take = b.len().min(3 - n);
                    self.0.extend_from_slice(&b[..take]);
                    n += take;
                    if n == 3 {
                        break;
                    }
                }
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = Dribble(Vec::new());
        write_all_vectored(&mut out, &[b"moof", b"", b"m", b"dat-1234567"]).unwrap();
        assert_eq!(out.0, b"moofmdat-1234567");
    }

    #[test]
    fn cuts_segments_at_key_frames_after_target() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        let open: OpenSegments = Default::default();
        let mut s = Segmenter::new(
            "cam".into(),
            index.clone(),
            layout.clone(),
            SegmenterConfig {
                segment_target: SegmentTarget::new(Duration::from_secs(10)),
                fragment_max: Duration::from_secs(1),
                sync_interval: Duration::from_secs(10),
            },
            open.clone(),
            Arc::new(NoGuard),
        );
        s.handle(WriterMsg::StartRun {
            run_id: 1,
            params: Arc::new(h264_params()),
        })
        .unwrap();
        // 25 s at 15 fps, a key frame every 2 s (30 frames): fragments every 1 s, segments
        // cut at the first key frame at or after 10 s: 0-10 s, 10-20 s, 20-25 s.
        let t0 = 1_700_000_000_000i64;
        for i in 0..375i64 {
            s.handle(WriterMsg::Frames(vec![frame(
                i * 6000,
                i % 30 == 0,
                t0 + i * 1000 / 15,
            )]))
            .unwrap();
        }
        assert_eq!(open.lock().unwrap().len(), 1);
        s.handle(WriterMsg::EndRun).unwrap();
        assert!(open.lock().unwrap().is_empty());
        let segs = index.segments("cam", t0, t0 + 60_000).unwrap();
        let starts: Vec<i64> = segs.iter().map(|s| s.start_ms - t0).collect();
        assert_eq!(starts, vec![0, 10_000, 20_000]);
        let frames: Vec<u32> = segs.iter().map(|s| s.row.frames).collect();
        assert_eq!(frames, vec![150, 150, 75]);
        assert!(segs.iter().all(|s| s.row.state == SegmentState::Closed));
        assert_eq!(segs[0].row.end_ms, segs[1].start_ms);
        let path = layout.segment_path("cam", segs[0].start_ms).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, segs[0].row.bytes);
        let scan = fmp4::scan(&mut File::open(&path).unwrap(), len).unwrap();
        assert_eq!(scan.fragments.len(), 10);
        assert_eq!(scan.frames(), 150);
        assert_eq!(scan.media_ticks(), 150 * 6000);
    }

    #[test]
    fn waits_for_a_key_frame_and_slews_slowly() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        let mut s = Segmenter::new(
            "cam".into(),
            index.clone(),
            layout,
            SegmenterConfig {
                segment_target: SegmentTarget::new(Duration::from_secs(10)),
                fragment_max: Duration::from_secs(1),
                sync_interval: Duration::from_secs(10),
            },
            Default::default(),
            Arc::new(NoGuard),
        );
        s.handle(WriterMsg::StartRun {
            run_id: 1,
            params: Arc::new(h264_params()),
        })
        .unwrap();
        s.handle(WriterMsg::Frames(vec![frame(0, false, 0)]))
            .unwrap();
        assert!(index.all_segments().unwrap().is_empty());
        // The camera's clock runs 1% fast: 15 frames of media per 990 ms of receive time.
        let t0 = 1_000_000i64;
        for i in 0..450i64 {
            s.handle(WriterMsg::Frames(vec![frame(
                i * 6000,
                i % 15 == 0,
                t0 + i * 66,
            )]))
            .unwrap();
        }
        s.handle(WriterMsg::EndRun).unwrap();
        let segs = index.all_segments().unwrap();
        assert_eq!(segs.len(), 3);
        // The second segment starts 10 s of media in, pulled back by at most 500 ppm of 10 s.
        assert_eq!(segs[1].start_ms - t0, 10_000 - 5);
    }
}
