//! Events: what happened on a camera and when (motion, the camera's own events, a user's
//! marker), stored in the index (`storage::index`, tables `events*`), with a small JPEG
//! thumbnail beside the segments (`Layout::thumbnail_path`), and announced to listeners as
//! [`Notice`]s. Producers (Eyrie's motion detector, a camera's ONVIF events) call only
//! [`EventLog::begin`], [`EventLog::end`] and [`EventLog::set_thumbnail`]; the API lists, reads
//! and protects. Retention (`storage::retention`) keeps the segments of events longer, never
//! deletes a protected event's, and removes an event with its thumbnail once none of its
//! recording is left.
//!
//! Invariants: everything a producer hands in is checked here before it is stored (camera id,
//! kind, times within [`TIMES`], score, zone, thumbnail size and magic); an event's end is never
//! before its start; events left open by a crash are closed when the log opens, before any
//! producer starts; at most [`MAX_OPEN`] events are open at once (a producer that loses its
//! "stop"s cannot grow the open set without bound); a thumbnail file exists only while its
//! event's row says so, give or take a crash between the two (a file written but not recorded
//! is overwritten by the next thumbnail of that event, or removed with its day directory).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::base::notices::{Hub, Subscription};
use crate::storage::retention::Retention;
use crate::storage::{Index, Layout, StorageError, valid_camera_id};

pub use crate::storage::{EventRecord, Origin};

/// Times an event may carry, in epoch ms: 1970 up to, not including, 2200 (as the API's).
pub const TIMES: std::ops::Range<i64> = 0..7_258_118_400_000;
/// Longest kind name.
pub const MAX_KIND: usize = 32;
/// Longest zone name, in characters.
pub const MAX_ZONE: usize = 64;
/// Largest thumbnail.
pub const MAX_THUMBNAIL: usize = 256 << 10;
/// Most events open at once on this node.
pub const MAX_OPEN: usize = 1024;
/// Most protected events on this node.
pub const MAX_PROTECTED: usize = 1000;

/// An event's id on this node (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId(pub u64);

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// What the caller handed in is not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    #[error("no event {0}")]
    NotFound(u64),
    /// Protecting this clip would pass the protected share of the disk.
    #[error("{0}")]
    ProtectedFull(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("thumbnail: {0}")]
    Io(#[from] std::io::Error),
}

/// What happened to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Start,
    End,
}

/// An event began or ended: sent to listeners of [`EventLog::subscribe`].
#[derive(Debug, Clone)]
pub struct Notice {
    pub change: Change,
    pub event: EventRecord,
}

impl Notice {
    /// The SSE event name (`event_start`, `event_end`).
    pub fn name(&self) -> &'static str {
        match self.change {
            Change::Start => "event_start",
            Change::End => "event_end",
        }
    }
}

/// The node's events. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    index: Arc<Index>,
    layout: Layout,
    retention: Arc<Retention>,
    hub: Arc<Hub<Notice>>,
    /// Protecting checks the share and then marks: one at a time.
    protecting: Mutex<()>,
}

fn invalid(msg: impl Into<String>) -> EventError {
    EventError::Invalid(msg.into())
}

fn check_time(name: &str, ms: i64) -> Result<(), EventError> {
    if TIMES.contains(&ms) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name} {ms} is outside 1970-01-01..2200-01-01"
        )))
    }
}

/// Kinds are lower-case ASCII letters, digits, `_` and `-`, 1 to [`MAX_KIND`] long.
pub fn valid_kind(kind: &str) -> bool {
    (1..=MAX_KIND).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Where a producer's events go: the node's [`EventLog`], or what a producer's unit test keeps.
/// Every producer (Eyrie's motion detector, a camera's ONVIF events) writes through this one
/// trait. The log's calls write to the index and may block on the disk: call them from a thread
/// of one's own or `spawn_blocking`, never straight from an async task.
pub trait EventSink: Send + Sync + 'static {
    /// See [`EventLog::begin`].
    fn begin(
        &self,
        camera: &str,
        kind: &str,
        origin: Origin,
        start_ms: i64,
        score: Option<f32>,
        zone: Option<String>,
    ) -> Result<EventId, EventError>;
    /// See [`EventLog::end`].
    fn end(&self, id: EventId, end_ms: i64) -> Result<(), EventError>;
    /// See [`EventLog::set_thumbnail`].
    fn set_thumbnail(&self, id: EventId, jpeg: &[u8]) -> Result<(), EventError>;
}

impl EventSink for EventLog {
    fn begin(
        &self,
        camera: &str,
        kind: &str,
        origin: Origin,
        start_ms: i64,
        score: Option<f32>,
        zone: Option<String>,
    ) -> Result<EventId, EventError> {
        EventLog::begin(self, camera, kind, origin, start_ms, score, zone)
    }

    fn end(&self, id: EventId, end_ms: i64) -> Result<(), EventError> {
        EventLog::end(self, id, end_ms)
    }

    fn set_thumbnail(&self, id: EventId, jpeg: &[u8]) -> Result<(), EventError> {
        EventLog::set_thumbnail(self, id, jpeg)
    }
}

impl EventLog {
    /// The log of `index`, after startup reconciliation: events a crash left open are closed at
    /// their camera's last recorded time (or their start, if that is earlier).
    pub fn open(
        index: Arc<Index>,
        layout: Layout,
        retention: Arc<Retention>,
    ) -> Result<Self, EventError> {
        for e in index.open_events()? {
            let last = index
                .newest_segment(&e.camera)?
                .map_or(e.start_ms, |s| s.row.end_ms);
            index.update_event(e.id, |e| {
                e.end_ms = Some(last.max(e.start_ms));
                true
            })?;
            tracing::info!(event = e.id, camera = %e.camera, "closed an event left open");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                index,
                layout,
                retention,
                hub: Arc::new(Hub::default()),
                protecting: Mutex::new(()),
            }),
        })
    }

    /// Opens an event (end open while ongoing). `kind`: "motion", "tamper", "line",
    /// "intrusion", "person", ... ([`valid_kind`]). A score is clamped to 0..=1; a zone is cut
    /// to [`MAX_ZONE`] characters without control characters.
    pub fn begin(
        &self,
        camera: &str,
        kind: &str,
        origin: Origin,
        start_ms: i64,
        score: Option<f32>,
        zone: Option<String>,
    ) -> Result<EventId, EventError> {
        if !valid_camera_id(camera) {
            return Err(invalid(format!("no camera '{}'", camera.escape_debug())));
        }
        if !valid_kind(kind) {
            return Err(invalid(format!(
                "kind '{}': lower-case letters, digits, '_' and '-', 1 to {MAX_KIND}",
                crate::base::text::clean(kind, 40)
            )));
        }
        check_time("start", start_ms)?;
        let score = match score {
            Some(s) if !s.is_finite() => return Err(invalid("score must be a number")),
            s => s.map(|s| s.clamp(0.0, 1.0)),
        };
        let zone = zone
            .map(|z| crate::base::text::clean(&z, MAX_ZONE))
            .filter(|z| !z.is_empty());
        if self.inner.index.open_events()?.len() >= MAX_OPEN {
            return Err(invalid(format!(
                "{MAX_OPEN} events are open already; end some first"
            )));
        }
        let e = self.inner.index.insert_event(&EventRecord {
            id: 0,
            camera: camera.to_string(),
            kind: kind.to_string(),
            origin,
            start_ms,
            end_ms: None,
            score,
            zone,
            protected: false,
            thumbnail: false,
        })?;
        let id = EventId(e.id);
        self.inner.hub.publish(Notice {
            change: Change::Start,
            event: e,
        });
        Ok(id)
    }

    /// Closes it (idempotent: a closed event keeps its end; the end is clamped to at least the
    /// start).
    pub fn end(&self, id: EventId, end_ms: i64) -> Result<(), EventError> {
        check_time("end", end_ms)?;
        let mut changed = false;
        let e = self
            .inner
            .index
            .update_event(id.0, |e| {
                changed = e.end_ms.is_none();
                if changed {
                    e.end_ms = Some(end_ms.max(e.start_ms));
                }
                changed
            })?
            .ok_or(EventError::NotFound(id.0))?;
        if changed {
            self.inner.hub.publish(Notice {
                change: Change::End,
                event: e,
            });
        }
        Ok(())
    }

    /// Stores a small JPEG (at most [`MAX_THUMBNAIL`]) as the event's thumbnail, beside the
    /// segments; a later one replaces it.
    pub fn set_thumbnail(&self, id: EventId, jpeg: &[u8]) -> Result<(), EventError> {
        if jpeg.len() > MAX_THUMBNAIL {
            return Err(invalid(format!(
                "a thumbnail is at most {} KiB",
                MAX_THUMBNAIL >> 10
            )));
        }
        if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Err(invalid("a thumbnail must be a JPEG picture"));
        }
        let e = self
            .inner
            .index
            .event(id.0)?
            .ok_or(EventError::NotFound(id.0))?;
        let path = self.thumbnail_path(&e)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Written beside and renamed over, so a reader never sees half a picture.
        let tmp = path.with_extension("jpg.tmp");
        std::fs::write(&tmp, jpeg)?;
        std::fs::rename(&tmp, &path)?;
        let updated = self.inner.index.update_event(id.0, |e| {
            let was = e.thumbnail;
            e.thumbnail = true;
            !was
        })?;
        if updated.is_none() {
            // Retention removed the event meanwhile.
            let _ = std::fs::remove_file(&path);
            return Err(EventError::NotFound(id.0));
        }
        Ok(())
    }

    fn thumbnail_path(&self, e: &EventRecord) -> Result<PathBuf, EventError> {
        self.inner
            .layout
            .thumbnail_path(&e.camera, e.start_ms, e.id)
            .ok_or_else(|| invalid(format!("no camera '{}'", e.camera.escape_debug())))
    }

    /// The event and its thumbnail file, when it has one.
    pub fn thumbnail(&self, id: EventId) -> Result<Option<(EventRecord, PathBuf)>, EventError> {
        let Some(e) = self.inner.index.event(id.0)? else {
            return Ok(None);
        };
        if !e.thumbnail {
            return Ok(None);
        }
        let path = self.thumbnail_path(&e)?;
        Ok(Some((e, path)))
    }

    /// Keeps (or lets go) the event's clip. Protecting checks that every protected clip
    /// together stays within the protected share of the disk
    /// ([`Retention::protected_allowance`]) and at most [`MAX_PROTECTED`] events.
    pub fn set_protected(&self, id: EventId, on: bool) -> Result<EventRecord, EventError> {
        let _one = self.inner.protecting.lock().unwrap();
        let e = self
            .inner
            .index
            .event(id.0)?
            .ok_or(EventError::NotFound(id.0))?;
        if on && !e.protected {
            let count = self.inner.index.protected_events()?.len();
            if count >= MAX_PROTECTED {
                return Err(EventError::ProtectedFull(format!(
                    "{count} clips are kept already, the most there may be; stop keeping some first"
                )));
            }
            let used = self.inner.retention.protected_bytes(Some(&e))?;
            let allowed = self.inner.retention.protected_allowance();
            if used > allowed {
                return Err(EventError::ProtectedFull(format!(
                    "kept clips would use {} MiB, more than the {} MiB they may use \
                     (storage.protected_share); stop keeping older clips first",
                    used.div_ceil(1 << 20),
                    allowed >> 20
                )));
            }
        }
        self.inner
            .index
            .update_event(id.0, |e| {
                let changed = e.protected != on;
                e.protected = on;
                changed
            })?
            .ok_or(EventError::NotFound(id.0))
    }

    pub fn get(&self, id: EventId) -> Result<Option<EventRecord>, EventError> {
        Ok(self.inner.index.event(id.0)?)
    }

    /// `camera`'s events overlapping `[start_ms, end_ms)`, in start order, at most `limit`.
    pub fn list(
        &self,
        camera: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, EventError> {
        Ok(self.inner.index.events(camera, start_ms, end_ms, limit)?)
    }

    /// Cameras that have events (deleted ones with kept recordings included).
    pub fn cameras(&self) -> Result<Vec<String>, EventError> {
        Ok(self.inner.index.cameras_with_events()?)
    }

    /// A listener of event starts and ends, or None when too many listen already.
    pub fn subscribe(&self) -> Option<Subscription<Notice>> {
        self.inner.hub.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::retention::RetentionConfig;

    fn log(dir: &std::path::Path) -> (Arc<Index>, Layout, EventLog) {
        let layout = Layout::new(dir);
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        let retention = Retention::new(
            index.clone(),
            layout.clone(),
            RetentionConfig {
                budget: Some(10_000),
                min_free: 0,
                protected_share: 0.25,
            },
        )
        .unwrap();
        let log = EventLog::open(index.clone(), layout.clone(), retention).unwrap();
        (index, layout, log)
    }

    fn segment(index: &Index, cam: &str, start: i64, end: i64, bytes: u64) {
        crate::storage::retention::tests::closed_segment(index, cam, start, end - start, bytes);
    }

    #[test]
    fn events_begin_end_and_list_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, log) = log(dir.path());
        let mut sub = log.subscribe().unwrap();
        let a = log
            .begin("cam", "motion", Origin::Eyrie, 10_000, Some(7.0), None)
            .unwrap();
        let b = log
            .begin(
                "cam",
                "tamper",
                Origin::Camera,
                5_000,
                None,
                Some("door\u{7}".into()),
            )
            .unwrap();
        log.begin("other", "motion", Origin::Eyrie, 6_000, None, None)
            .unwrap();
        log.end(a, 20_000).unwrap();
        log.end(a, 99_000).unwrap(); // idempotent: the first end stays
        log.end(b, 1_000).unwrap(); // clamped to the start
        let got = log.list("cam", 0, 100_000, 100).unwrap();
        assert_eq!(
            got.iter()
                .map(|e| (e.id, e.start_ms, e.end_ms))
                .collect::<Vec<_>>(),
            vec![(b.0, 5_000, Some(5_000)), (a.0, 10_000, Some(20_000))]
        );
        assert_eq!(got[1].score, Some(1.0));
        assert_eq!(got[0].zone.as_deref(), Some("door"));
        // Overlap: an event that began before the range and ends in it is listed.
        assert_eq!(log.list("cam", 15_000, 16_000, 100).unwrap().len(), 1);
        assert!(log.list("cam", 20_000, 30_000, 100).unwrap().is_empty());
        // An open event lasts until it ends.
        let c = log
            .begin("cam", "line", Origin::Camera, 30_000, None, None)
            .unwrap();
        assert_eq!(log.list("cam", 90_000, 95_000, 100).unwrap()[0].id, c.0);
        assert_eq!(log.list("cam", 0, 100_000, 2).unwrap().len(), 2);
        assert_eq!(log.cameras().unwrap(), vec!["cam", "other"]);
        let names: Vec<&str> = std::iter::from_fn(|| sub.rx.try_recv().ok())
            .map(|n| n.name())
            .collect();
        assert_eq!(
            names,
            [
                "event_start",
                "event_start",
                "event_start",
                "event_end",
                "event_end",
                "event_start"
            ]
        );
    }

    #[test]
    fn bad_input_is_refused_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, log) = log(dir.path());
        let bad = |r: Result<EventId, EventError>| match r {
            Err(EventError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad(log.begin("../x", "motion", Origin::Eyrie, 0, None, None)).contains("camera"));
        assert!(bad(log.begin("c", "Motion", Origin::Eyrie, 0, None, None)).contains("kind"));
        assert!(
            bad(log.begin("c", &"x".repeat(33), Origin::Eyrie, 0, None, None)).contains("kind")
        );
        assert!(bad(log.begin("c", "m", Origin::Eyrie, -1, None, None)).contains("1970"));
        assert!(bad(log.begin("c", "m", Origin::Eyrie, 0, Some(f32::NAN), None)).contains("score"));
        assert!(matches!(
            log.end(EventId(99), 1),
            Err(EventError::NotFound(99))
        ));
        let id = log.begin("c", "m", Origin::Eyrie, 0, None, None).unwrap();
        assert!(matches!(log.end(id, i64::MAX), Err(EventError::Invalid(_))));
        assert!(matches!(
            log.set_thumbnail(id, b"GIF89a"),
            Err(EventError::Invalid(_))
        ));
        let mut big = vec![0xFF, 0xD8, 0xFF];
        big.resize(MAX_THUMBNAIL + 1, 0);
        assert!(matches!(
            log.set_thumbnail(id, &big),
            Err(EventError::Invalid(_))
        ));
        assert!(log.thumbnail(id).unwrap().is_none());
    }

    #[test]
    fn thumbnails_live_beside_the_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (_, layout, log) = log(dir.path());
        let id = log
            .begin(
                "cam",
                "motion",
                Origin::Eyrie,
                1_700_000_000_000,
                None,
                None,
            )
            .unwrap();
        log.set_thumbnail(id, &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2])
            .unwrap();
        let (e, path) = log.thumbnail(id).unwrap().unwrap();
        assert!(e.thumbnail);
        assert_eq!(
            path,
            layout.thumbnail_path("cam", e.start_ms, id.0).unwrap()
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [0xFF, 0xD8, 0xFF, 0xE0, 1, 2]
        );
        assert!(path.starts_with(layout.recordings_dir().join("cam")));
    }

    #[test]
    fn a_crash_leaves_no_event_open() {
        let dir = tempfile::tempdir().unwrap();
        let (index, layout, log) = log(dir.path());
        segment(&index, "cam", 1_000, 61_000, 10);
        let a = log
            .begin("cam", "motion", Origin::Eyrie, 30_000, None, None)
            .unwrap();
        let b = log
            .begin("cam", "motion", Origin::Eyrie, 90_000, None, None)
            .unwrap();
        let c = log
            .begin("gone", "motion", Origin::Eyrie, 5_000, None, None)
            .unwrap();
        drop(log);
        let retention = Retention::new(
            index.clone(),
            layout.clone(),
            RetentionConfig {
                budget: None,
                min_free: 0,
                protected_share: 0.25,
            },
        )
        .unwrap();
        let log = EventLog::open(index.clone(), layout, retention).unwrap();
        let end = |id: EventId| log.get(id).unwrap().unwrap().end_ms;
        assert_eq!(end(a), Some(61_000)); // the camera's last recorded time
        assert_eq!(end(b), Some(90_000)); // recorded nothing after it began: its start
        assert_eq!(end(c), Some(5_000));
        assert!(index.open_events().unwrap().is_empty());
    }

    #[test]
    fn protection_is_bounded_by_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _, log) = log(dir.path());
        // Budget 10 000 bytes, share 0.25: 2 500 bytes of kept clips.
        segment(&index, "cam", 0, 60_000, 2_000);
        segment(&index, "cam", 60_000, 120_000, 2_000);
        let a = log
            .begin("cam", "motion", Origin::Eyrie, 10_000, None, None)
            .unwrap();
        log.end(a, 20_000).unwrap();
        let b = log
            .begin("cam", "motion", Origin::Eyrie, 70_000, None, None)
            .unwrap();
        log.end(b, 80_000).unwrap();
        assert!(log.set_protected(a, true).unwrap().protected);
        // Again: already counted, no change.
        assert!(log.set_protected(a, true).unwrap().protected);
        match log.set_protected(b, true) {
            Err(EventError::ProtectedFull(m)) => assert!(m.contains("protected_share"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!log.set_protected(a, false).unwrap().protected);
        assert!(log.set_protected(b, true).unwrap().protected);
        assert_eq!(index.protected_events().unwrap().len(), 1);
        assert!(matches!(
            log.set_protected(EventId(77), true),
            Err(EventError::NotFound(77))
        ));
    }
}
