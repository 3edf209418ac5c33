//! Startup reconciliation of segment files and index rows, run before any camera starts, so
//! that after `kill -9` or a power cut the index again describes exactly what is on disk:
//!
//! * a row still marked open: its file is cut back to the last complete fragment, synced, and the
//!   row gets the numbers read from the file, marked recovered (no complete fragment: both go);
//! * a row whose file is missing is dropped;
//! * a file with no row (the row's insert was lost) is indexed as recovered when it is a valid
//!   segment under a valid name, and removed otherwise.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::fmp4;
use crate::storage::{Index, Layout, NewSegment, SegmentFinish, SegmentState, StorageError};
use crate::video::TIMESCALE;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub recovered: usize,
    pub dropped_rows: usize,
    pub indexed_strays: usize,
    pub removed_files: usize,
    pub truncated_bytes: u64,
}

/// Scans `path`, cuts it back to its last complete fragment and syncs it.
fn repair(path: &Path) -> std::io::Result<Option<(fmp4::Scan, u64)>> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let scan = match fmp4::scan(&mut f, len) {
        Ok(s) if !s.fragments.is_empty() => s,
        Ok(_) | Err(fmp4::Mp4Error::Invalid(_)) | Err(fmp4::Mp4Error::Atom(_)) => return Ok(None),
        Err(fmp4::Mp4Error::Io(e)) => return Err(e),
    };
    let cut = len - scan.valid_len;
    if cut > 0 {
        f.set_len(scan.valid_len)?;
    }
    f.sync_all()?;
    Ok(Some((scan, cut)))
}

pub(crate) fn finish_of(start_ms: i64, scan: &fmp4::Scan) -> SegmentFinish {
    SegmentFinish {
        end_ms: start_ms.saturating_add(
            i64::try_from(scan.media_ticks().saturating_mul(1000) / TIMESCALE as u64)
                .unwrap_or(i64::MAX),
        ),
        media_ticks: scan.media_ticks(),
        bytes: scan.valid_len,
        frames: scan.frames(),
        key_frames: scan.key_frames(),
        state: SegmentState::Recovered,
    }
}

pub fn reconcile(index: &Index, layout: &Layout) -> Result<Report, StorageError> {
    let mut report = Report::default();
    let mut known = HashSet::new();
    for seg in index.all_segments()? {
        let Some(path) = layout.segment_path(&seg.camera, seg.start_ms) else {
            index.remove_segment(&seg.camera, seg.start_ms)?;
            report.dropped_rows += 1;
            continue;
        };
        if !path.exists() {
            index.remove_segment(&seg.camera, seg.start_ms)?;
            report.dropped_rows += 1;
            continue;
        }
        if seg.row.state == SegmentState::Open {
            match repair(&path) {
                Ok(Some((scan, cut))) => {
                    index.finish_segment(
                        &seg.camera,
                        seg.start_ms,
                        &finish_of(seg.start_ms, &scan),
                    )?;
                    report.recovered += 1;
                    report.truncated_bytes += cut;
                }
                Ok(None) => {
                    let _ = std::fs::remove_file(&path);
                    index.remove_segment(&seg.camera, seg.start_ms)?;
                    report.dropped_rows += 1;
                    report.removed_files += 1;
                    continue;
                }
                Err(e) => {
                    tracing::error!(
                        "recovering {}: {e}; leaving it for the next start",
                        path.display()
                    );
                }
            }
        }
        known.insert(path);
    }
    let mut strays = Vec::new();
    for path in segment_files(&layout.recordings_dir()) {
        // Thumbnails live beside the segments; the event log settles them.
        if known.contains(&path) || layout.parse_thumbnail_path(&path).is_some() {
            continue;
        }
        let parsed = layout.parse_segment_path(&path);
        let repaired = match &parsed {
            Some(_) => repair(&path).unwrap_or(None),
            None => None,
        };
        match (parsed, repaired) {
            (Some((camera, start_ms)), Some((scan, cut))) => {
                report.truncated_bytes += cut;
                strays.push((camera, start_ms, scan));
            }
            _ => {
                tracing::warn!("removing stray file {}", path.display());
                let _ = std::fs::remove_file(&path);
                report.removed_files += 1;
            }
        }
    }
    if !strays.is_empty() {
        // Each stray file is a run of its own: nothing says it joined its neighbours.
        let mut rows = Vec::with_capacity(strays.len());
        for (camera, start_ms, scan) in &strays {
            rows.push((
                NewSegment {
                    camera,
                    start_ms: *start_ms,
                    run_id: index.next_run_id()?,
                    codec: scan.params.codec,
                    width: scan.params.width,
                    height: scan.params.height,
                },
                finish_of(*start_ms, scan),
            ));
        }
        index.insert_finished(&rows)?;
        report.indexed_strays += strays.len();
    }
    remove_empty_dirs(&layout.recordings_dir());
    Ok(report)
}

/// Every regular file two levels below `recordings/{camera}/{day}/`.
fn segment_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(cams) = std::fs::read_dir(root) else {
        return out;
    };
    for cam in cams.flatten() {
        let Ok(days) = std::fs::read_dir(cam.path()) else {
            continue;
        };
        for day in days.flatten() {
            let Ok(files) = std::fs::read_dir(day.path()) else {
                continue;
            };
            for f in files.flatten() {
                if f.file_type().is_ok_and(|t| t.is_file()) {
                    out.push(f.path());
                }
            }
        }
    }
    out
}

pub(crate) fn remove_empty_dirs(root: &Path) {
    let Ok(cams) = std::fs::read_dir(root) else {
        return;
    };
    for cam in cams.flatten() {
        if let Ok(days) = std::fs::read_dir(cam.path()) {
            for day in days.flatten() {
                let _ = std::fs::remove_dir(day.path()); // fails unless empty
            }
        }
        let _ = std::fs::remove_dir(cam.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::SampleMeta;
    use crate::media::fmp4::testing::write_file;
    use crate::video::testing::h264_params;

    fn gop() -> Vec<SampleMeta> {
        (0..15)
            .map(|i| SampleMeta {
                duration: 6000,
                size: 200,
                key: i == 0,
            })
            .collect()
    }

    #[test]
    fn reconciles_open_missing_and_stray() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let index = Index::open(&layout.db_path()).unwrap();
        let p = h264_params();
        let new = |start| NewSegment {
            camera: "cam",
            start_ms: start,
            run_id: 1,
            codec: p.codec,
            width: 640,
            height: 360,
        };
        let write = |start: i64, bytes: &[u8]| {
            let path = layout.segment_path("cam", start).unwrap();
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let file = write_file(&p, &[gop(), gop(), gop()]);
        // 1: open row, file torn in its third fragment.
        index.begin_segment(&new(1_000_000)).unwrap();
        let torn = write(1_000_000, &file[..file.len() - 100]);
        // 2: open row, only an init segment on disk.
        index.begin_segment(&new(2_000_000)).unwrap();
        let empty = write(2_000_000, &fmp4::init_segment(&p, None));
        // 3: closed row with no file.
        index.begin_segment(&new(3_000_000)).unwrap();
        // 4: a valid file without a row, and 5: junk.
        write(4_000_000, &file);
        let junk = layout.recordings_dir().join("cam/1970-01-01/notes.txt");
        std::fs::write(&junk, b"x").unwrap();

        let r = reconcile(&index, &layout).unwrap();
        assert_eq!(r.recovered, 1);
        assert_eq!(r.dropped_rows, 2);
        assert_eq!(r.indexed_strays, 1);
        assert_eq!(r.removed_files, 2);
        assert!(!empty.exists() && !junk.exists());
        let segs = index.all_segments().unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].row.state, SegmentState::Recovered);
        assert_eq!(segs[0].row.frames, 30);
        assert_eq!(segs[0].row.end_ms, 1_000_000 + 2000);
        assert_eq!(std::fs::metadata(&torn).unwrap().len(), segs[0].row.bytes);
        assert_eq!(segs[1].start_ms, 4_000_000);
        assert_eq!(segs[1].row.frames, 45);
        // A second pass finds nothing to do.
        assert_eq!(reconcile(&index, &layout).unwrap(), Report::default());
    }
}
