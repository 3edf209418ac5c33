//! A local MP4 file played as a live camera: its video samples are sent at real-time pace, and
//! when the file ends it starts again with timestamps that keep counting. This is the `--demo`
//! camera and a handy way to test without hardware.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use mp4_atom::{FourCC, Moov};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{CaptureError, Opened, Source};
use crate::video::{Frame, TIMESCALE, VideoParams};

/// Largest `moov` read into memory, and the most samples a looped file may have.
const MAX_MOOV: u64 = 32 << 20;
const MAX_SAMPLES: usize = 2_000_000;
const MAX_SAMPLE: u32 = 16 << 20;

pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    offset: u64,
    size: u32,
    /// In the track's own timescale.
    duration: u32,
    key: bool,
}

struct Track {
    params: Arc<VideoParams>,
    timescale: u32,
    samples: Vec<Sample>,
}

fn bad(msg: impl Into<String>) -> CaptureError {
    CaptureError::Unsupported(msg.into())
}

async fn read_moov(file: &mut tokio::fs::File, len: u64) -> Result<Moov, CaptureError> {
    let mut pos = 0u64;
    while pos + 8 <= len {
        file.seek(SeekFrom::Start(pos)).await.map_err(io)?;
        let mut h = [0u8; 16];
        file.read_exact(&mut h[..8]).await.map_err(io)?;
        let mut size = u32::from_be_bytes(h[..4].try_into().unwrap()) as u64;
        if size == 1 {
            file.read_exact(&mut h[8..]).await.map_err(io)?;
            size = u64::from_be_bytes(h[8..].try_into().unwrap());
        } else if size == 0 {
            size = len - pos;
        }
        // Checked: a 64-bit box size from the file could wrap the position.
        if size < 8 || pos.checked_add(size).is_none_or(|end| end > len) {
            return Err(bad("file is truncated or not an MP4 file"));
        }
        if &h[4..8] == b"moov" {
            if size > MAX_MOOV {
                return Err(bad("moov box too large"));
            }
            let mut body = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(pos)).await.map_err(io)?;
            file.read_exact(&mut body).await.map_err(io)?;
            return crate::video::decode_outside::<Moov>(&body)
                .map_err(|e| bad(format!("bad moov: {e}")));
        }
        pos += size;
    }
    Err(bad(
        "no moov box (not an MP4 file, or a fragmented one, which is not supported)",
    ))
}

fn io(e: std::io::Error) -> CaptureError {
    CaptureError::Connect(e.to_string())
}

fn track_of(moov: &Moov) -> Result<Track, CaptureError> {
    let trak = moov
        .trak
        .iter()
        .find(|t| t.mdia.hdlr.handler == FourCC::new(b"vide"))
        .ok_or_else(|| bad("no video track"))?;
    let stbl = &trak.mdia.minf.stbl;
    let params = Arc::new(VideoParams::from_track(trak).map_err(|e| bad(e.0))?);
    let timescale = trak.mdia.mdhd.timescale;
    if timescale == 0 {
        return Err(bad("track timescale is 0"));
    }
    if let Some(ctts) = &stbl.ctts {
        if ctts.entries.iter().any(|e| e.sample_offset != 0) {
            return Err(bad(
                "the file has B-frames (composition offsets); re-encode it with B-frames off (ffmpeg -bf 0)",
            ));
        }
    }
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        mp4_atom::StszSamples::Identical { count, size } => {
            if *count as usize > MAX_SAMPLES {
                return Err(bad("too many samples"));
            }
            vec![*size; *count as usize]
        }
        mp4_atom::StszSamples::Different { sizes } => sizes.clone(),
    };
    if sizes.is_empty() || sizes.len() > MAX_SAMPLES {
        return Err(bad(format!(
            "{} samples: need 1 to {MAX_SAMPLES}",
            sizes.len()
        )));
    }
    let chunks: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(s), _) => s.entries.iter().map(|&o| o as u64).collect(),
        (None, Some(c)) => c.entries.clone(),
        (None, None) => return Err(bad("no chunk offsets")),
    };
    // Expand stsc (runs of chunks with the same samples-per-chunk) into per-sample offsets.
    let mut offsets = Vec::with_capacity(sizes.len());
    let stsc = &stbl.stsc.entries;
    for (ci, &chunk_off) in chunks.iter().enumerate() {
        let chunk_no = ci as u32 + 1;
        let per = stsc
            .iter()
            .rev()
            .find(|e| e.first_chunk <= chunk_no)
            .map(|e| e.samples_per_chunk)
            .ok_or_else(|| bad("bad stsc"))?;
        let mut off = chunk_off;
        for _ in 0..per {
            let Some(&size) = sizes.get(offsets.len()) else {
                break;
            };
            offsets.push(off);
            off += size as u64;
        }
    }
    if offsets.len() != sizes.len() {
        return Err(bad("sample table is inconsistent (stsc/stco/stsz)"));
    }
    let mut durations = Vec::with_capacity(sizes.len());
    for e in &stbl.stts.entries {
        for _ in 0..e.sample_count {
            if durations.len() == sizes.len() {
                break;
            }
            durations.push(e.sample_delta);
        }
    }
    if durations.len() != sizes.len() {
        return Err(bad("sample table is inconsistent (stts)"));
    }
    let keys: Option<std::collections::HashSet<u32>> = stbl
        .stss
        .as_ref()
        .map(|s| s.entries.iter().copied().collect());
    let samples: Vec<Sample> = (0..sizes.len())
        .map(|i| Sample {
            offset: offsets[i],
            size: sizes[i],
            duration: durations[i],
            key: keys.as_ref().is_none_or(|k| k.contains(&(i as u32 + 1))),
        })
        .collect();
    if !samples[0].key {
        return Err(bad("the first video sample is not a key frame"));
    }
    if samples.iter().any(|s| s.size > MAX_SAMPLE) {
        return Err(bad("a sample is larger than 16 MiB"));
    }
    if samples.iter().map(|s| s.duration as u64).sum::<u64>() == 0 {
        return Err(bad("the video track has no duration"));
    }
    Ok(Track {
        params,
        timescale,
        samples,
    })
}

struct Player {
    file: tokio::fs::File,
    track: Track,
    next: usize,
    /// Track time of the next sample, across loops.
    elapsed: u64,
    start: tokio::time::Instant,
}

impl Player {
    async fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        if self.next == self.track.samples.len() {
            self.next = 0;
        }
        let s = self.track.samples[self.next];
        let pts = (self.elapsed as i128 * TIMESCALE as i128 / self.track.timescale as i128) as i64;
        let due = self.start
            + std::time::Duration::from_nanos(
                (self.elapsed as u128 * 1_000_000_000 / self.track.timescale as u128) as u64,
            );
        tokio::time::sleep_until(due).await;
        self.file
            .seek(SeekFrom::Start(s.offset))
            .await
            .map_err(|e| CaptureError::Stream(e.to_string()))?;
        let mut data = vec![0u8; s.size as usize];
        self.file
            .read_exact(&mut data)
            .await
            .map_err(|e| CaptureError::Stream(format!("reading sample: {e}")))?;
        self.next += 1;
        self.elapsed += s.duration as u64;
        Ok(Frame {
            data: Bytes::from(data),
            pts,
            key: s.key,
            received: jiff::Timestamp::now(),
            new_params: None,
        })
    }
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file://{}", self.path.display())
    }

    fn open(&self) -> BoxFuture<'static, Result<Opened, CaptureError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| CaptureError::Connect(format!("{}: {e}", path.display())))?;
            let len = file.metadata().await.map_err(io)?.len();
            let moov = read_moov(&mut file, len).await?;
            let track = track_of(&moov)?;
            if track.samples.iter().any(|s| s.offset + s.size as u64 > len) {
                return Err(bad("sample data lies past the end of the file"));
            }
            let params = track.params.clone();
            let player = Player {
                file,
                track,
                next: 0,
                elapsed: 0,
                start: tokio::time::Instant::now(),
            };
            let frames = futures::stream::unfold(player, |mut p| async move {
                let r = p.next_frame().await;
                Some((r, p))
            })
            .boxed();
            Ok(Opened { params, frames })
        })
    }
}
