//! Retention keeps the disk from filling: a byte budget for all recordings, a floor of free space
//! on the data filesystem, and an optional maximum age per camera. Oldest segments go first. A
//! file is unlinked before its row is removed, so a crash in between leaves a row without a file,
//! which startup reconciliation drops; never a file nobody knows about.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::index::{Index, Result, Segment};
use super::layout::Layout;

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

    fn oldest(&self) -> Result<Option<Segment>> {
        let mut best: Option<Segment> = None;
        for cam in self.index.cameras_with_segments()? {
            if let Some(s) = self.index.oldest_segment(&cam)? {
                if best.as_ref().is_none_or(|b| s.start_ms < b.start_ms) {
                    best = Some(s);
                }
            }
        }
        Ok(best)
    }

    fn delete(&self, seg: &Segment) -> Result<()> {
        if let Some(path) = self.layout.segment_path(&seg.camera, seg.start_ms) {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(day) = path.parent() {
                        let _ = std::fs::remove_dir(day); // only when empty
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("retention: removing {}: {e}", path.display()),
            }
        }
        if let Some(row) = self.index.remove_segment(&seg.camera, seg.start_ms)? {
            self.used
                .fetch_sub(row.bytes.min(self.used()), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes every closed segment of a camera (the camera is deleted without its recordings).
    pub fn delete_camera(&self, camera: &str) -> Result<usize> {
        let _one = self.deleting.lock().unwrap();
        let mut deleted = 0;
        while let Some(s) = self.index.oldest_segment(camera)? {
            self.delete(&s)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// One pass: per-camera maximum age, then oldest-first until within budget and floor.
    /// Returns how many segments were deleted.
    pub fn enforce(&self) -> Result<usize> {
        let _one = self.deleting.lock().unwrap();
        let mut deleted = 0;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        for cam in self.index.cameras()? {
            let Some(days) = cam.retention_days else {
                continue;
            };
            let cutoff = now_ms - days as i64 * 86_400_000;
            while let Some(s) = self.index.oldest_segment(&cam.id)? {
                if s.row.end_ms > cutoff {
                    break;
                }
                self.delete(&s)?;
                deleted += 1;
            }
        }
        while self.over_limits() {
            let Some(s) = self.oldest()? else { break };
            self.delete(&s)?;
            deleted += 1;
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
        let mut freed = false;
        // Free some headroom at once rather than one segment per failed write, but no more:
        // on a small card a fixed count of segments could be every recording there is.
        loop {
            let enough = disk_stats(self.layout.root())
                .is_ok_and(|d| d.free >= EMERGENCY_HEADROOM.min(d.total / 20));
            if freed && enough {
                break;
            }
            match self.oldest() {
                Ok(Some(s)) => match self.delete(&s) {
                    Ok(()) => freed = true,
                    Err(e) => {
                        tracing::error!("emergency deletion: {e}");
                        break;
                    }
                },
                _ => break,
            }
        }
        freed
    }

    fn segment_closed(&self) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{NewSegment, SegmentFinish, SegmentState};
    use crate::video::Codec;

    fn add(index: &Index, layout: &Layout, cam: &str, start: i64, bytes: u64) {
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
                    end_ms: s + 1000,
                    media_ticks: 90_000,
                    bytes,
                    frames: 1,
                    key_frames: 1,
                    state: SegmentState::Closed,
                },
            )
            .unwrap();
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
}
