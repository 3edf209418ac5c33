//! Where files live under the data directory. Every path built from an identifier goes through
//! [`valid_camera_id`], so no request can steer a path outside the data directory.

use std::path::{Path, PathBuf};

/// Camera ids are short slugs: lowercase ASCII letters, digits and `-`, 1 to 32 characters, not
/// starting with `-`. They never contain `/`, `.`, or `_` (CartaNVR peers split ids on `_`).
pub fn valid_camera_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("eyrie.redb")
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.root.join("recordings")
    }

    /// `recordings/{camera}/{YYYY-MM-DD}/{start_ms}.mp4`, the date in UTC. Panics never: an invalid
    /// id is a programming error caught by the callers' validation, and returns `None` here.
    pub fn segment_path(&self, camera: &str, start_ms: i64) -> Option<PathBuf> {
        if !valid_camera_id(camera) {
            return None;
        }
        let day = jiff::Timestamp::from_millisecond(start_ms)
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        Some(
            self.recordings_dir()
                .join(camera)
                .join(day.to_string())
                .join(format!("{start_ms}.mp4")),
        )
    }

    /// `recordings/{camera}/{YYYY-MM-DD}/{start_ms}-event-{id}.jpg`: an event's thumbnail, in
    /// the day directory of the segments it shows (by the event's start, UTC), so it lives and
    /// goes with them. `None` for an invalid camera id.
    pub fn thumbnail_path(&self, camera: &str, start_ms: i64, id: u64) -> Option<PathBuf> {
        let seg = self.segment_path(camera, start_ms)?;
        Some(seg.with_file_name(format!("{start_ms}-event-{id}.jpg")))
    }

    /// Whether `path` is a thumbnail [`Layout::thumbnail_path`] could have built (recovery keeps
    /// those; the event log removes a thumbnail whose event is gone).
    pub fn parse_thumbnail_path(&self, path: &Path) -> Option<(String, i64, u64)> {
        let rel = path.strip_prefix(self.recordings_dir()).ok()?;
        let camera = rel.iter().next()?.to_str()?;
        let file = path.file_name()?.to_str()?;
        let (start, id) = file.strip_suffix(".jpg")?.split_once("-event-")?;
        let (start_ms, id): (i64, u64) = (start.parse().ok()?, id.parse().ok()?);
        (self.thumbnail_path(camera, start_ms, id)?.as_path() == path)
            .then(|| (camera.to_string(), start_ms, id))
    }

    /// The inverse of [`Layout::segment_path`]: `(camera, start_ms)` for a file found on disk.
    pub fn parse_segment_path(&self, path: &Path) -> Option<(String, i64)> {
        let rel = path.strip_prefix(self.recordings_dir()).ok()?;
        let mut parts = rel.iter();
        let camera = parts.next()?.to_str()?;
        let _day = parts.next()?;
        let file = parts.next()?.to_str()?;
        if parts.next().is_some() || !valid_camera_id(camera) {
            return None;
        }
        let start_ms: i64 = file.strip_suffix(".mp4")?.parse().ok()?;
        (self.segment_path(camera, start_ms)?.as_path() == path)
            .then(|| (camera.to_string(), start_ms))
    }

    pub fn demo_clip_path(&self) -> PathBuf {
        self.root.join("demo.mp4")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_ids() {
        for ok in ["a", "front-door", "cam1", "0", &"x".repeat(32)] {
            assert!(valid_camera_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a_b",
            "a/b",
            "..",
            "a.b",
            "ä",
            &"x".repeat(33),
            "a b",
        ] {
            assert!(!valid_camera_id(bad), "{bad}");
        }
    }

    #[test]
    fn segment_paths_round_trip() {
        let l = Layout::new("/data");
        let p = l.segment_path("cam1", 1_700_000_000_123).unwrap();
        assert_eq!(
            p,
            Path::new("/data/recordings/cam1/2023-11-14/1700000000123.mp4")
        );
        assert_eq!(
            l.parse_segment_path(&p),
            Some(("cam1".to_string(), 1_700_000_000_123))
        );
        assert_eq!(l.segment_path("../x", 0), None);
        assert_eq!(
            l.parse_segment_path(Path::new(
                "/data/recordings/cam1/2023-11-15/1700000000123.mp4"
            )),
            None
        );
        assert_eq!(
            l.parse_segment_path(Path::new("/data/recordings/cam1/2023-11-14/x.mp4")),
            None
        );
        let t = l.thumbnail_path("cam1", 1_700_000_000_123, 17).unwrap();
        assert_eq!(
            t,
            Path::new("/data/recordings/cam1/2023-11-14/1700000000123-event-17.jpg")
        );
        assert_eq!(
            l.parse_thumbnail_path(&t),
            Some(("cam1".to_string(), 1_700_000_000_123, 17))
        );
        assert_eq!(l.parse_segment_path(&t), None);
        assert_eq!(l.parse_thumbnail_path(&p), None);
        assert_eq!(l.thumbnail_path("../x", 0, 1), None);
    }
}
