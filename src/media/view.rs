//! Recordings as HTTP bodies: a "virtual file" is a list of parts, each either bytes in memory
//! (an init segment, a rewritten `moof`) or a byte range of a segment file on disk. Any byte
//! range of it can be streamed without a temporary file, which is how views and single
//! segments both support HTTP Range requests.
//!
//! A view of `[start, end)` is the init segment (with the total duration), a `sidx` listing
//! every fragment, then the chosen fragments of every segment in time order, renumbered onto
//! one continuous timeline: gaps between runs are closed up, never padded.
//!
//! Memory: a view keeps a table of its fragments (where each `moof` and `mdat` is, about 100
//! bytes a fragment, at most [`MAX_VIEW_FRAGMENTS`]) and its `sidx`; each `moof` is read and
//! renumbered as the body is sent, so a long view costs a few MiB, never its fragments' headers.

use std::hash::{Hash, Hasher};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use mp4_atom::{Encode, SegmentReference, Sidx};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::fmp4::{self, FragmentInfo};
use super::segmenter::OpenSegments;
use crate::storage::{Index, Layout, Segment, SegmentState};
use crate::video::{Codec, TIMESCALE};

/// Longest time range one view may span.
pub const MAX_VIEW_MS: i64 = 6 * 3600 * 1000;
const CHUNK: usize = 64 * 1024;

/// Most fragments one view holds: its table is about 100 bytes a fragment, so a view costs at
/// most a few MiB however long it is (and every view gets a `sidx`, whose count is 16 bits).
pub const MAX_VIEW_FRAGMENTS: usize = u16::MAX as usize;

#[derive(Debug, Clone)]
enum Part {
    Mem(Bytes),
    File {
        path: Arc<Path>,
        offset: u64,
        len: u64,
    },
    /// A fragment's `moof`, read from its file and renumbered as the body is sent (so a view
    /// keeps no `moof` in memory); [`build_view`] checked that the rewrite keeps its length.
    Moof {
        path: Arc<Path>,
        offset: u64,
        len: u32,
        seq: u32,
        decode_time: u64,
    },
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Mem(b) => b.len() as u64,
            Part::File { len, .. } => *len,
            Part::Moof { len, .. } => u64::from(*len),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VirtualFile {
    parts: Vec<Part>,
    len: u64,
    etag: String,
}

/// Why a view or picture cannot be served. [`ViewError::is_bad_request`] tells the asker's
/// mistakes (a range or a camera that cannot be viewed so) from this node's faults.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("no recordings in that time range")]
    Empty,
    #[error("end must be after start")]
    Backwards,
    #[error("a view spans at most {} hours; ask for a shorter range", MAX_VIEW_MS / 3_600_000)]
    TooLong,
    #[error("that range holds more than {MAX_VIEW_FRAGMENTS} fragments; ask for a shorter range")]
    TooManyFragments,
    #[error("pictures are served for MJPEG recordings; play this camera's view.mp4")]
    NotMjpeg,
    #[error("bad camera id in index")]
    BadCameraId,
    #[error(transparent)]
    Index(#[from] crate::storage::StorageError),
    /// A segment file that does not scan.
    #[error("{}: {source}", path.display())]
    Segment {
        path: PathBuf,
        source: fmp4::Mp4Error,
    },
    #[error(transparent)]
    Mp4(#[from] fmp4::Mp4Error),
    #[error(transparent)]
    Atom(#[from] mp4_atom::Error),
    /// A fragment whose samples cannot be pictures.
    #[error("{0}")]
    Fragment(&'static str),
    /// The blocking task building it failed.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

impl ViewError {
    /// Whether the request asked for what cannot be served (400), not a fault here.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Self::Backwards | Self::TooLong | Self::TooManyFragments | Self::NotMjpeg
        )
    }
}

impl VirtualFile {
    /// A file held in memory.
    pub fn in_memory(bytes: Bytes, etag: String) -> Self {
        Self {
            len: bytes.len() as u64,
            parts: vec![Part::Mem(bytes)],
            etag,
        }
    }

    /// Size in bytes of the whole file.
    pub fn size(&self) -> u64 {
        self.len
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Streams bytes `[start, end)`.
    pub fn body(&self, start: u64, end: u64) -> BoxStream<'static, std::io::Result<Bytes>> {
        let mut pieces = Vec::new();
        let mut pos = 0u64;
        for part in &self.parts {
            let (p_start, p_end) = (pos, pos + part.len());
            pos = p_end;
            if p_end <= start || p_start >= end {
                continue;
            }
            let from = start.max(p_start) - p_start;
            let to = end.min(p_end) - p_start;
            pieces.push(match part {
                Part::Mem(b) => (Part::Mem(b.slice(from as usize..to as usize)), 0..0),
                Part::File { path, offset, .. } => (
                    Part::File {
                        path: path.clone(),
                        offset: offset + from,
                        len: to - from,
                    },
                    0..0,
                ),
                Part::Moof { .. } => (part.clone(), from as usize..to as usize),
            });
        }
        futures::stream::iter(pieces)
            .flat_map(|(p, slice)| match p {
                Part::Mem(b) => futures::stream::once(async move { Ok(b) }).boxed(),
                Part::File { path, offset, len } => file_range(path, offset, len),
                Part::Moof {
                    path,
                    offset,
                    len,
                    seq,
                    decode_time,
                } => futures::stream::once(async move {
                    let moof = read_moof(&path, offset, len, seq, decode_time).await?;
                    Ok(moof.slice(slice))
                })
                .boxed(),
            })
            .boxed()
    }
}

/// The `moof` of `len` bytes at `offset` of `path`, renumbered to `seq` at `decode_time`.
async fn read_moof(
    path: &Path,
    offset: u64,
    len: u32,
    seq: u32,
    decode_time: u64,
) -> std::io::Result<Bytes> {
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(SeekFrom::Start(offset)).await?;
    let mut moof = vec![0u8; len as usize];
    f.read_exact(&mut moof).await?;
    let moof = fmp4::rewrite_moof(&moof, seq, decode_time).map_err(std::io::Error::other)?;
    if moof.len() != len as usize {
        // The file changed since the view was built.
        return Err(std::io::Error::other("fragment changed size"));
    }
    Ok(Bytes::from(moof))
}

fn file_range(
    path: Arc<Path>,
    offset: u64,
    len: u64,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    struct St {
        path: Arc<Path>,
        file: Option<tokio::fs::File>,
        pos: u64,
        left: u64,
    }
    futures::stream::try_unfold(
        St {
            path,
            file: None,
            pos: offset,
            left: len,
        },
        |mut st| async move {
            if st.left == 0 {
                return Ok(None);
            }
            if st.file.is_none() {
                let mut f = tokio::fs::File::open(&st.path).await?;
                f.seek(SeekFrom::Start(st.pos)).await?;
                st.file = Some(f);
            }
            let n = st.left.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            st.file.as_mut().unwrap().read_exact(&mut buf).await?;
            st.pos += n as u64;
            st.left -= n as u64;
            Ok(Some((Bytes::from(buf), st)))
        },
    )
    .boxed()
}

/// How many bytes of a segment's file are valid to serve.
fn servable_len(seg: &Segment, open: &OpenSegments) -> Option<u64> {
    match seg.row.state {
        SegmentState::Open => open.lock().unwrap().get(&seg.row.id).map(|o| o.committed),
        _ => Some(seg.row.bytes),
    }
}

/// One stored segment file, served as it is.
pub fn segment_file(
    layout: &Layout,
    open: &OpenSegments,
    seg: &Segment,
) -> Result<VirtualFile, ViewError> {
    let path = layout
        .segment_path(&seg.camera, seg.start_ms)
        .ok_or(ViewError::BadCameraId)?;
    let len = servable_len(seg, open).ok_or(ViewError::Empty)?;
    let mut h = std::hash::DefaultHasher::new();
    (seg.row.id, len).hash(&mut h);
    Ok(VirtualFile {
        parts: vec![Part::File {
            path: path.into(),
            offset: 0,
            len,
        }],
        len,
        etag: format!("\"s{:016x}\"", h.finish()),
    })
}

/// One MP4 for `camera` over `[start_ms, end_ms)`. Blocking: reads each segment's fragment
/// headers (a few hundred bytes per second of video); call it from a blocking task.
pub fn build_view(
    index: &Index,
    layout: &Layout,
    open: &OpenSegments,
    camera: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<VirtualFile, ViewError> {
    if end_ms <= start_ms {
        return Err(ViewError::Backwards);
    }
    // Checked: the difference of two far-apart i64 times wraps in a release build.
    if end_ms
        .checked_sub(start_ms)
        .is_none_or(|span| span > MAX_VIEW_MS)
    {
        return Err(ViewError::TooLong);
    }
    let segs = index.segments(camera, start_ms, end_ms)?;
    let mut init: Option<Bytes> = None;
    let mut params = None;
    // The fragments' parts (each `moof` and `mdat`), their `sidx` references, and the media
    // time so far: about 100 bytes a fragment, nothing of the fragments themselves.
    let mut body: Vec<Part> = Vec::new();
    let mut refs: Vec<SegmentReference> = Vec::new();
    let mut t = 0u64;
    let mut ids = Vec::new();
    for seg in &segs {
        let Some(len) = servable_len(seg, open) else {
            continue;
        };
        let path = layout
            .segment_path(&seg.camera, seg.start_ms)
            .ok_or(ViewError::BadCameraId)?;
        let scan = match std::fs::File::open(&path)
            .map_err(fmp4::Mp4Error::from)
            .and_then(|mut f| fmp4::scan(&mut f, len))
        {
            Ok(s) => s,
            Err(e) => {
                // Deleted by retention a moment ago, or damaged: leave it out.
                tracing::warn!("view of {camera}: skipping {}: {e}", path.display());
                continue;
            }
        };
        match &init {
            None => {
                init = Some(scan.init.clone());
                params = Some(scan.params.clone());
            }
            // Parameters changed: the view ends where they did (the runs list splits there).
            Some(i) if *i != scan.init => break,
            Some(_) => {}
        }
        ids.push((seg.row.id, len));
        // Each fragment's wall-clock span, from the segment's start and its media time.
        let first_ticks = scan.fragments.first().map_or(0, |f| f.decode_time);
        let ms = |ticks: u64| (ticks.saturating_mul(1000) / TIMESCALE as u64) as i64;
        let overlaps = |f: &FragmentInfo| {
            let f_start = seg
                .start_ms
                .saturating_add(ms(f.decode_time.saturating_sub(first_ticks)));
            f_start < end_ms && f_start.saturating_add(ms(f.duration)) > start_ms
        };
        let Some(first) = scan.fragments.iter().position(overlaps) else {
            continue;
        };
        let last = scan.fragments.iter().rposition(overlaps).unwrap_or(first);
        // Playback must begin on a key frame: back up to the fragment that starts the GOP.
        let begin = scan.fragments[..=first]
            .iter()
            .rposition(|f| f.starts_with_key)
            .unwrap_or(0);
        if refs.len() + (last + 1 - begin) > MAX_VIEW_FRAGMENTS {
            return Err(ViewError::TooManyFragments);
        }
        let path: Arc<Path> = path.into();
        for f in &scan.fragments[begin..=last] {
            let seq = refs.len() as u32 + 1;
            // Renumbered here once to check it keeps its length; sent renumbered again.
            let moof = fmp4::rewrite_moof(&f.moof, seq, t)?;
            let moof_len = u32::try_from(f.moof_len)
                .ok()
                .filter(|n| *n as usize == moof.len())
                .ok_or(ViewError::Fragment("a fragment changes size renumbered"))?;
            body.push(Part::Moof {
                path: path.clone(),
                offset: f.offset,
                len: moof_len,
                seq,
                decode_time: t,
            });
            body.push(Part::File {
                path: path.clone(),
                offset: f.offset + f.moof_len,
                len: f.mdat_len,
            });
            refs.push(SegmentReference {
                reference_type: false,
                referenced_size: (f.moof_len + f.mdat_len) as u32,
                subsegment_duration: f.duration as u32,
                starts_with_sap: f.starts_with_key,
                sap_type: if f.starts_with_key { 1 } else { 0 },
                sap_delta_time: 0,
            });
            t += f.duration;
        }
    }
    let (Some(_), Some(params)) = (init, params) else {
        return Err(ViewError::Empty);
    };
    if refs.is_empty() {
        return Err(ViewError::Empty);
    }
    let sidx = Sidx {
        reference_id: 1,
        timescale: TIMESCALE,
        earliest_presentation_time: 0,
        first_offset: 0,
        references: refs,
    };
    let mut b = Vec::new();
    sidx.encode(&mut b)?;
    let mut parts = Vec::with_capacity(body.len() + 2);
    parts.push(Part::Mem(fmp4::init_segment(&params, Some(t))));
    parts.push(Part::Mem(Bytes::from(b)));
    parts.append(&mut body);
    let len = parts.iter().map(Part::len).sum();
    let mut h = std::hash::DefaultHasher::new();
    (camera, start_ms, end_ms, &ids).hash(&mut h);
    Ok(VirtualFile {
        parts,
        len,
        etag: format!("\"v{:016x}\"", h.finish()),
    })
}

/// Largest picture [`mjpeg_frame`] hands out.
pub const MAX_FRAME_BYTES: u64 = 8 << 20;

/// One recorded MJPEG picture: where its JPEG is in the segment file, and when it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub offset: u64,
    pub len: u64,
    /// Wall-clock time it starts showing (the segment's start plus its media time).
    pub at_ms: i64,
    /// How long it shows, in media ticks ([`TIMESCALE`]).
    pub ticks: u64,
}

/// A segment's MJPEG pictures in order, with its file and init segment (two segments whose
/// init segments differ have different stream formats). Blocking.
pub fn mjpeg_pictures(
    layout: &Layout,
    open: &OpenSegments,
    seg: &Segment,
) -> Result<(PathBuf, Bytes, Vec<Picture>), ViewError> {
    let len = servable_len(seg, open).ok_or(ViewError::Empty)?;
    let path = layout
        .segment_path(&seg.camera, seg.start_ms)
        .ok_or(ViewError::BadCameraId)?;
    let scan = std::fs::File::open(&path)
        .map_err(fmp4::Mp4Error::from)
        .and_then(|mut f| fmp4::scan(&mut f, len))
        .map_err(|source| ViewError::Segment {
            path: path.clone(),
            source,
        })?;
    let pictures = pictures_of(&scan, seg.start_ms)?;
    Ok((path, scan.init, pictures))
}

/// The MJPEG pictures of a scanned segment that starts at `start_ms`.
pub fn pictures_of(scan: &fmp4::Scan, start_ms: i64) -> Result<Vec<Picture>, ViewError> {
    if scan.params.codec != Codec::Mjpeg {
        return Err(ViewError::NotMjpeg);
    }
    let first_ticks = scan.fragments.first().map_or(0, |f| f.decode_time);
    let mut out = Vec::new();
    for frag in &scan.fragments {
        let moof: mp4_atom::Moof = crate::video::decode_outside(&frag.moof)?;
        let trun = moof
            .traf
            .first()
            .and_then(|t| t.trun.first())
            .ok_or_else(|| ViewError::Fragment("fragment without samples"))?;
        let mut offset = frag.offset + trun.data_offset.unwrap_or(0).max(0) as u64;
        let mut t = frag.decode_time;
        for e in &trun.entries {
            let size = e.size.unwrap_or(0) as u64;
            let ticks = e.duration.unwrap_or(0) as u64;
            if size == 0 || size > MAX_FRAME_BYTES || offset + size > frag.end() {
                return Err(ViewError::Fragment("bad sample in fragment"));
            }
            // Saturating: the file's times are not trusted to stay in range.
            let media_ms = t.saturating_sub(first_ticks).saturating_mul(1000) / TIMESCALE as u64;
            out.push(Picture {
                offset,
                len: size,
                at_ms: start_ms.saturating_add(i64::try_from(media_ms).unwrap_or(i64::MAX)),
                ticks,
            });
            offset += size;
            t = t.saturating_add(ticks);
        }
    }
    Ok(out)
}

/// Where the recorded MJPEG picture showing at `at_ms` is: its segment file and byte range.
/// Browsers do not decode MJPEG in MP4, so this is how a page shows recorded MJPEG. Blocking.
pub fn mjpeg_frame(
    index: &Index,
    layout: &Layout,
    open: &OpenSegments,
    camera: &str,
    at_ms: i64,
) -> Result<(PathBuf, u64, u64), ViewError> {
    let segs = index.segments(camera, at_ms, at_ms.saturating_add(1))?;
    let seg = segs.first().ok_or(ViewError::Empty)?;
    let (path, _, pictures) = mjpeg_pictures(layout, open, seg)?;
    // The picture whose span holds `at`, or the last one before it.
    let pic = pictures
        .iter()
        .rev()
        .find(|p| p.at_ms <= at_ms)
        .or(pictures.first())
        .ok_or(ViewError::Empty)?;
    Ok((path, pic.offset, pic.len))
}
