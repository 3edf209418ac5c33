//! Retention keeps the disk from filling: a byte budget for all recordings, a floor of free space
//! on the data filesystem, and optional maximum ages per camera (one for segments that overlap
//! an event's clip, one for the others). Oldest segments go first, those overlapping no event
//! before those that do; a segment overlapping a protected event's clip is never deleted
//! (protected clips are bounded by [`Retention::protected_allowance`] when they are protected).
//! An event none of whose recording is left goes too, with its thumbnail. A file is unlinked
//! before its row is removed, so a crash in between leaves a row without a file, which startup
//! reconciliation drops; never a file nobody knows about.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::{HashMap, HashSet};

use super::index::{CameraRecord, EventRecord, Index, Result, Segment, clip_span};
use super::layout::Layout;

/// What a segment is to retention, in the order it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Overlaps no event's clip: goes first.
    Plain,
    /// Overlaps an event's clip: kept for `event_retention_days`, and goes after every plain
    /// one when the budget is short.
    Event,
    /// Overlaps a protected event's clip: never deleted by retention.
    Protected,
}

/// Segments read at once while walking a camera's recordings.
const WALK_BATCH: usize = 256;

/// One camera's event clips (each event with its camera's pre- and post-roll; an ongoing one
/// lasts until now), read once per pass, so classifying a segment costs no query.
struct Clips {
    /// `(from, to)` of every clip, sorted by `from`, and the largest `to` up to each.
    all: Vec<(i64, i64)>,
    all_to: Vec<i64>,
    /// The same for protected events' clips.
    kept: Vec<(i64, i64)>,
    kept_to: Vec<i64>,
}

impl Clips {
    fn load(index: &Index, camera: &str, cams: &HashMap<String, CameraRecord>) -> Result<Self> {
        let rolls = cams.get(camera).map(|c| (c.pre_roll_s, c.post_roll_s));
        let now = jiff::Timestamp::now().as_millisecond();
        let mut all = Vec::new();
        let mut kept = Vec::new();
        for e in index.events(camera, i64::MIN, i64::MAX, usize::MAX)? {
            let span = clip_span(e.start_ms, e.end_ms.unwrap_or(now), rolls);
            all.push(span);
            if e.protected {
                kept.push(span);
            }
        }
        let prefix_max = |spans: &mut Vec<(i64, i64)>| {
            spans.sort_unstable();
            spans
                .iter()
                .scan(i64::MIN, |m, s| {
                    *m = (*m).max(s.1);
                    Some(*m)
                })
                .collect::<Vec<i64>>()
        };
        let all_to = prefix_max(&mut all);
        let kept_to = prefix_max(&mut kept);
        Ok(Self {
            all,
            all_to,
            kept,
            kept_to,
        })
    }

    /// Whether a clip of `spans` overlaps `[start, end)` (one that ends where it starts
    /// counts): those beginning before `end` are a prefix, and one of them reaches `start`
    /// exactly when the largest end among them does.
    fn hit(spans: &[(i64, i64)], to: &[i64], start: i64, end: i64) -> bool {
        let k = spans.partition_point(|(from, _)| *from < end);
        k > 0 && to[k - 1] >= start
    }

    /// What `seg` is to retention.
    fn class(&self, seg: &Segment) -> Class {
        let end = seg.row.end_ms.max(seg.start_ms + 1);
        if Self::hit(&self.kept, &self.kept_to, seg.start_ms, end) {
            Class::Protected
        } else if Self::hit(&self.all, &self.all_to, seg.start_ms, end) {
            Class::Event
        } else {
            Class::Plain
        }
    }
}

/// One camera's segments walked oldest first for the next one of a class.
struct Walk {
    camera: String,
    after: i64,
    done: bool,
    next: Option<Segment>,
    /// Read at the first step.
    clips: Option<Clips>,
}

impl Walk {
    fn new(camera: String) -> Self {
        Self {
            camera,
            after: i64::MIN,
            done: false,
            next: None,
            clips: None,
        }
    }

    /// Finds the camera's next segment of class `want`, unless one is waiting already.
    fn fill(
        &mut self,
        r: &Retention,
        want: Class,
        cams: &HashMap<String, CameraRecord>,
    ) -> Result<()> {
        while self.next.is_none() && !self.done {
            let clips = match self.clips.take() {
                Some(c) => c,
                None => Clips::load(&r.index, &self.camera, cams)?,
            };
            let clips = self.clips.insert(clips);
            let batch = r
                .index
                .segments_after(&self.camera, self.after, WALK_BATCH)?;
            self.done = batch.is_empty();
            for s in batch {
                self.after = s.start_ms;
                if clips.class(&s) == want {
                    self.next = Some(s);
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Removes a file, and its day directory once empty.
fn remove_file_and_day(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(day) = path.parent() {
                let _ = std::fs::remove_dir(day); // only when empty
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("retention: removing {}: {e}", path.display()),
    }
}

/// What the segmenter tells retention, and asks of it.
pub trait DiskGuard: Send + Sync {
    fn wrote(&self, bytes: u64);
    /// The disk is full: delete old recordings now. Returns whether anything was freed.
    fn emergency_free(&self) -> bool;
    fn segment_closed(&self);
}

/// Free space a full disk's emergency deletion makes (or 5 % of the filesystem, if less).
const EMERGENCY_HEADROOM: u64 = 64 << 20;

#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    /// Bytes all recordings together may use. `None`: only the free-space floor applies.
    pub budget: Option<u64>,
    /// Free bytes to keep on the data filesystem.
    pub min_free: u64,
    /// Share of the budget (or of the filesystem without one) protected clips may use.
    pub protected_share: f32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DiskStats {
    pub total: u64,
    pub free: u64,
}

pub fn disk_stats(path: &Path) -> std::io::Result<DiskStats> {
    let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(DiskStats {
        total: s.f_blocks * s.f_frsize,
        free: s.f_bavail * s.f_frsize,
    })
}

pub struct Retention {
    index: Arc<Index>,
    layout: Layout,
    /// Changed at run time by the admin (`PUT /api/system/settings`).
    cfg: Mutex<RetentionConfig>,
    used: AtomicU64,
    wake: tokio::sync::Notify,
    /// One deleter at a time (the background pass and an emergency from a writer thread).
    deleting: Mutex<()>,
}

impl Retention {
    /// Call after startup reconciliation, so the byte count matches the disk.
    pub fn new(index: Arc<Index>, layout: Layout, cfg: RetentionConfig) -> Result<Arc<Self>> {
        let used = index.all_segments()?.iter().map(|s| s.row.bytes).sum();
        Ok(Arc::new(Self {
            index,
            layout,
            cfg: Mutex::new(cfg),
            used: AtomicU64::new(used),
            wake: tokio::sync::Notify::new(),
            deleting: Mutex::new(()),
        }))
    }

    pub fn config(&self) -> RetentionConfig {
        *self.cfg.lock().unwrap()
    }

    /// New limits, enforced at once by the background pass.
    pub fn set_config(&self, cfg: RetentionConfig) {
        *self.cfg.lock().unwrap() = cfg;
        self.wake.notify_one();
    }

    /// Bytes of recordings on disk, open segments included.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn over_limits(&self) -> bool {
        let cfg = self.config();
        if cfg.budget.is_some_and(|b| self.used() > b) {
            return true;
        }
        disk_stats(self.layout.root()).is_ok_and(|d| d.free < cfg.min_free)
    }

    /// The camera records by id (for their limits and rolls).
    fn camera_records(&self) -> Result<HashMap<String, CameraRecord>> {
        Ok(self
            .index
            .cameras()?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect())
    }

    fn delete(&self, seg: &Segment) -> Result<()> {
        if let Some(path) = self.layout.segment_path(&seg.camera, seg.start_ms) {
            remove_file_and_day(&path);
        }
        if let Some(row) = self.index.remove_segment(&seg.camera, seg.start_ms)? {
            self.used
                .fetch_sub(row.bytes.min(self.used()), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the events of `camera` none of whose recording is left (with their thumbnails),
    /// unless protected. Only events older than the camera's first segment are looked at:
    /// segments go oldest first within their class, and an event's own segments are all of the
    /// event class, so an event after the first segment still has its recording.
    fn prune_events(&self, camera: &str) -> Result<usize> {
        let first = [
            self.index.oldest_segment(camera)?,
            self.index.newest_segment(camera)?,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.start_ms)
        .min();
        let before = match first {
            Some(t) => t,
            // No recording at all: only a deleted camera's events go.
            None if self.index.camera(camera)?.is_none() => i64::MAX,
            None => return Ok(0),
        };
        let mut pruned = 0;
        for e in self.index.events(camera, i64::MIN, before, usize::MAX)? {
            if e.protected || e.start_ms >= before {
                continue;
            }
            let end = e.end_ms.unwrap_or(i64::MAX).max(e.start_ms + 1);
            if !self.index.segments(camera, e.start_ms, end)?.is_empty() {
                continue;
            }
            if let Some(gone) = self.index.remove_event(e.id)? {
                if gone.thumbnail {
                    if let Some(p) = self.layout.thumbnail_path(camera, gone.start_ms, gone.id) {
                        remove_file_and_day(&p);
                    }
                }
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Deletes every closed segment of a camera (the camera is deleted without its recordings),
    /// protected ones too (the camera's owner asked), and then its events.
    pub fn delete_camera(&self, camera: &str) -> Result<usize> {
        let _one = self.deleting.lock().unwrap();
        let mut deleted = 0;
        while let Some(s) = self.index.oldest_segment(camera)? {
            self.delete(&s)?;
            deleted += 1;
        }
        for e in self.index.events(camera, i64::MIN, i64::MAX, usize::MAX)? {
            if e.protected {
                self.index.update_event(e.id, |e| {
                    e.protected = false;
                    true
                })?;
            }
        }
        self.prune_events(camera)?;
        Ok(deleted)
    }

    /// Deletes segments oldest first, plain ones before event ones, never protected ones,
    /// until `enough(deleted so far)`. Returns how many it deleted and which cameras lost any.
    fn delete_oldest_until(
        &self,
        cams: &HashMap<String, CameraRecord>,
        mut enough: impl FnMut(usize) -> bool,
    ) -> Result<(usize, HashSet<String>)> {
        let mut deleted = 0;
        let mut touched = HashSet::new();
        for want in [Class::Plain, Class::Event] {
            let mut walks: Vec<Walk> = self
                .index
                .cameras_with_segments()?
                .into_iter()
                .map(Walk::new)
                .collect();
            loop {
                if enough(deleted) {
                    return Ok((deleted, touched));
                }
                for w in &mut walks {
                    w.fill(self, want, cams)?;
                }
                let Some(w) = walks
                    .iter_mut()
                    .filter(|w| w.next.is_some())
                    .min_by_key(|w| w.next.as_ref().map(|s| s.start_ms))
                else {
                    break;
                };
                let seg = w.next.take().expect("filtered on next");
                self.delete(&seg)?;
                touched.insert(seg.camera);
                deleted += 1;
            }
        }
        Ok((deleted, touched))
    }

    /// One pass: per-camera maximum ages (`retention_days` for plain segments,
    /// `event_retention_days` for those overlapping an event's clip), then oldest first until
    /// within budget and floor (plain segments before event ones); protected clips stay.
    /// Events with no recording left go with their thumbnails. Returns how many segments were
    /// deleted.
    pub fn enforce(&self) -> Result<usize> {
        let _one = self.deleting.lock().unwrap();
        let mut deleted = 0;
        let mut touched = HashSet::new();
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let cams = self.camera_records()?;
        let cutoff =
            |days: Option<u32>| days.map_or(i64::MIN, |d| now_ms - i64::from(d) * 86_400_000);
        for cam in cams.values() {
            let plain = cutoff(cam.retention_days);
            let event = cutoff(cam.event_retention_days.or(cam.retention_days));
            let last = plain.max(event);
            if last == i64::MIN {
                continue;
            }
            let clips = Clips::load(&self.index, &cam.id, &cams)?;
            let mut after = i64::MIN;
            'walk: loop {
                let batch = self.index.segments_after(&cam.id, after, WALK_BATCH)?;
                if batch.is_empty() {
                    break;
                }
                for s in batch {
                    after = s.start_ms;
                    if s.row.end_ms > last {
                        break 'walk;
                    }
                    let old = match clips.class(&s) {
                        Class::Plain => s.row.end_ms <= plain,
                        Class::Event => s.row.end_ms <= event,
                        Class::Protected => false,
                    };
                    if old {
                        self.delete(&s)?;
                        touched.insert(s.camera);
                        deleted += 1;
                    }
                }
            }
        }
        let (n, t) = self.delete_oldest_until(&cams, |_| !self.over_limits())?;
        deleted += n;
        touched.extend(t);
        for cam in self.index.cameras_with_events()? {
            if touched.contains(&cam) || !cams.contains_key(&cam) {
                self.prune_events(&cam)?;
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                used = self.used(),
                "retention removed old segments"
            );
        }
        Ok(deleted)
    }

    /// Bytes protected clips may use: `protected_share` of the budget, or of the data
    /// filesystem less the free-space floor when there is no budget.
    pub fn protected_allowance(&self) -> u64 {
        let cfg = self.config();
        let room = match cfg.budget {
            Some(b) => b,
            None => disk_stats(self.layout.root())
                .map(|d| d.total.saturating_sub(cfg.min_free))
                .unwrap_or(0),
        };
        (room as f64 * f64::from(cfg.protected_share)) as u64
    }

    /// Bytes of the segments overlapping the clips of every protected event, and of `extra`'s
    /// too (each segment counted once).
    pub fn protected_bytes(&self, extra: Option<&EventRecord>) -> Result<u64> {
        let cams = self.camera_records()?;
        let mut seen = HashSet::new();
        let mut total = 0u64;
        let events = self.index.protected_events()?;
        for e in events.iter().chain(extra) {
            let rolls = cams.get(&e.camera).map(|c| (c.pre_roll_s, c.post_roll_s));
            let now = jiff::Timestamp::now().as_millisecond();
            let (from, to) = clip_span(e.start_ms, e.end_ms.unwrap_or(now), rolls);
            for s in self.index.segments(&e.camera, from, to.max(from + 1))? {
                if seen.insert(s.row.id) {
                    total = total.saturating_add(s.row.bytes);
                }
            }
        }
        Ok(total)
    }

    /// Runs [`Retention::enforce`] after segments close and every `interval`, until dropped.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        loop {
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.enforce()).await {
                Ok(Err(e)) => tracing::error!("retention: {e}"),
                Err(e) => tracing::error!("retention task: {e}"),
                Ok(Ok(_)) => {}
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl DiskGuard for Retention {
    fn wrote(&self, bytes: u64) {
        let total = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.config().budget.is_some_and(|b| total > b) {
            self.wake.notify_one();
        }
    }

    fn emergency_free(&self) -> bool {
        let _one = self.deleting.lock().unwrap();
        tracing::warn!("disk full: deleting the oldest recordings now");
        // Free some headroom at once rather than one segment per failed write, but no more:
        // on a small card a fixed count of segments could be every recording there is.
        let enough = |deleted: usize| {
            deleted > 0
                && disk_stats(self.layout.root())
                    .is_ok_and(|d| d.free >= EMERGENCY_HEADROOM.min(d.total / 20))
        };
        let deleted = self
            .camera_records()
            .and_then(|cams| self.delete_oldest_until(&cams, enough));
        match deleted {
            Ok((n, _)) => n > 0,
            Err(e) => {
                tracing::error!("emergency deletion: {e}");
                false
            }
        }
    }

    fn segment_closed(&self) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::{NewSegment, SegmentFinish, SegmentState};
    use crate::video::Codec;

    /// Records a closed segment of `cam` from `start`, `len_ms` long, of `bytes`, in the index
    /// only; its start as the index took it. Shared with the event log's tests.
    pub(crate) fn closed_segment(
        index: &Index,
        cam: &str,
        start: i64,
        len_ms: i64,
        bytes: u64,
    ) -> i64 {
        let (_, s) = index
            .begin_segment(&NewSegment {
                camera: cam,
                start_ms: start,
                run_id: 1,
                codec: Codec::H264,
                width: 1,
                height: 1,
            })
            .unwrap();
        index
            .finish_segment(
                cam,
                s,
                &SegmentFinish {
                    end_ms: s + len_ms,
                    media_ticks: u64::try_from(len_ms).unwrap_or(0) * 90,
                    bytes,
                    frames: 1,
                    key_frames: 1,
                    state: SegmentState::Closed,
                },
            )
            .unwrap();
        s
    }

    /// A closed one-second segment, in the index and on disk.
    fn add(index: &Index, layout: &Layout, cam: &str, start: i64, bytes: u64) {
        let s = closed_segment(index, cam, start, 1000, bytes);
        let p = layout.segment_path(cam, s).unwrap();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![0u8; bytes as usize]).unwrap();
    }

    #[test]
    fn deletes_oldest_across_cameras_until_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        let base = jiff::Timestamp::now().as_millisecond() - 3_600_000;
        add(&index, &layout, "a", base, 1000);
        add(&index, &layout, "b", base + 1000, 1000);
        add(&index, &layout, "a", base + 2000, 1000);
        add(&index, &layout, "b", base + 3000, 1000);
        let r = Retention::new(
            index.clone(),
            layout.clone(),
            RetentionConfig {
                budget: Some(2500),
                min_free: 0,
                protected_share: 0.25,
            },
        )
        .unwrap();
        assert_eq!(r.used(), 4000);
        assert_eq!(r.enforce().unwrap(), 2);
        assert_eq!(r.used(), 2000);
        let left: Vec<(String, i64)> = index
            .all_segments()
            .unwrap()
            .into_iter()
            .map(|s| (s.camera, s.start_ms - base))
            .collect();
        assert_eq!(left, vec![("a".into(), 2000), ("b".into(), 3000)]);
        assert!(!layout.segment_path("a", base).unwrap().exists());
        assert!(layout.segment_path("a", base + 2000).unwrap().exists());
        // This disk has room: an emergency deletes the oldest segment, not every one.
        assert!(r.emergency_free());
        assert_eq!(r.used(), 1000);
        assert!(r.emergency_free());
        assert_eq!(r.used(), 0);
        assert!(!r.emergency_free());
    }

    fn camera(index: &Index, id: &str, days: Option<u32>, event_days: Option<u32>) {
        index
            .put_camera(
                &CameraRecord {
                    id: id.into(),
                    name: id.into(),
                    source: "rtsp://x/".into(),
                    username: None,
                    password: None,
                    transport: crate::storage::Transport::Tcp,
                    enabled: true,
                    retention_days: days,
                    event_retention_days: event_days,
                    pre_roll_s: 0,
                    post_roll_s: 0,
                    created_ms: 0,
                    onvif: None,
                    motion: Default::default(),
                },
                false,
            )
            .unwrap();
    }

    fn event(index: &Index, cam: &str, start: i64, end: i64, protected: bool) -> u64 {
        index
            .insert_event(&EventRecord {
                id: 0,
                camera: cam.into(),
                kind: "motion".into(),
                origin: crate::storage::Origin::Eyrie,
                start_ms: start,
                end_ms: Some(end),
                score: None,
                zone: None,
                protected,
                thumbnail: false,
            })
            .unwrap()
            .id
    }

    fn starts(index: &Index, base: i64) -> Vec<i64> {
        index
            .all_segments()
            .unwrap()
            .into_iter()
            .map(|s| s.start_ms - base)
            .collect()
    }

    #[test]
    fn the_budget_takes_plain_segments_first_and_never_protected_ones() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        camera(&index, "a", None, None);
        let base = jiff::Timestamp::now().as_millisecond() - 3_600_000;
        for i in 0..5 {
            add(&index, &layout, "a", base + i * 1000, 1000);
        }
        let kept = event(&index, "a", base + 1200, base + 1500, false);
        let protected = event(&index, "a", base + 2200, base + 2300, true);
        let r = Retention::new(
            index.clone(),
            layout.clone(),
            RetentionConfig {
                budget: Some(2500),
                min_free: 0,
                protected_share: 0.5,
            },
        )
        .unwrap();
        // Plain ones first (0, 3000, 4000), though the event segment at 1000 is older.
        assert_eq!(r.enforce().unwrap(), 3);
        assert_eq!(starts(&index, base), vec![1000, 2000]);
        assert!(index.event(kept).unwrap().is_some());
        // Then event segments; the protected one stays even over budget.
        r.set_config(RetentionConfig {
            budget: Some(100),
            min_free: 0,
            protected_share: 0.5,
        });
        assert_eq!(r.enforce().unwrap(), 1);
        assert_eq!(starts(&index, base), vec![2000]);
        // The event with no recording left is gone, the protected one stays.
        assert!(index.event(kept).unwrap().is_none());
        assert!(index.event(protected).unwrap().is_some());
        assert!(!r.emergency_free());
        assert_eq!(starts(&index, base), vec![2000]);
        assert_eq!(r.protected_bytes(None).unwrap(), 1000);
        assert_eq!(r.protected_allowance(), 50);
    }

    #[test]
    fn event_segments_are_kept_for_their_own_days() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        camera(&index, "a", Some(1), Some(3));
        let base = jiff::Timestamp::now().as_millisecond() - 2 * 86_400_000;
        for i in 0..3 {
            add(&index, &layout, "a", base + i * 1000, 10);
        }
        add(&index, &layout, "a", base - 2 * 86_400_000, 10); // 4 days old
        event(
            &index,
            "a",
            base - 2 * 86_400_000,
            base - 2 * 86_400_000 + 10,
            false,
        );
        event(&index, "a", base + 1000, base + 1001, false);
        let r = Retention::new(
            index.clone(),
            layout.clone(),
            RetentionConfig {
                budget: None,
                min_free: 0,
                protected_share: 0.25,
            },
        )
        .unwrap();
        // 2 days old: plain ones go (1 day), the event one stays (3 days); 4 days old goes.
        assert_eq!(r.enforce().unwrap(), 3);
        assert_eq!(starts(&index, base), vec![1000]);
        assert_eq!(
            index.events("a", i64::MIN, i64::MAX, 10).unwrap().len(),
            1,
            "the 4-day-old event went with its segment"
        );
    }
}
