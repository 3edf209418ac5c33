//! Fragmented MP4 as Eyrie writes and reads it, on top of `mp4-atom` for the boxes.
//!
//! A file is `ftyp moov (moof mdat)*`: one video track, 90 kHz timescale, each fragment one
//! `traf` with `tfdt` (64-bit) and one `trun` listing every sample's duration, size and flags;
//! `default-base-is-moof`, so a fragment can be copied anywhere without touching its offsets.

use std::io::{Read, Seek, SeekFrom};

use bytes::Bytes;
use mp4_atom::{
    Dinf, Dref, Encode, FourCC, Ftyp, Hdlr, Mdhd, Mdia, Mehd, Mfhd, Minf, Moof, Moov, Mvex, Mvhd,
    Stbl, Stco, Stsc, Stsd, Stsz, Stts, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun, TrunEntry, Vmhd,
};

pub use crate::video::TIMESCALE;
use crate::video::{Codec, VideoParams};

const TRACK_ID: u32 = 1;
const FLAGS_KEY: u32 = 0x0200_0000; // sample_depends_on = 2 (an I-frame)
const FLAGS_DELTA: u32 = 0x0101_0000; // depends_on = 1, is_non_sync_sample

#[derive(Debug, thiserror::Error)]
pub enum Mp4Error {
    #[error("mp4: {0}")]
    Atom(#[from] mp4_atom::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(#[from] Malformed),
}

/// What makes bytes not an fMP4 file as Eyrie writes them.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("fragment is not one traf with one trun")]
    NotOneTrun,
    #[error(
        "{} box of {len} bytes at {at} is too large",
        String::from_utf8_lossy(kind)
    )]
    TooLarge { kind: [u8; 4], len: u64, at: u64 },
    #[error("mdat at {0} without a moof")]
    MdatWithoutMoof(u64),
    #[error("no moov box")]
    NoMoov,
    #[error("box {} has size {size}", String::from_utf8_lossy(kind))]
    BoxSize { kind: [u8; 4], size: u64 },
    #[error("fragment at {offset}: samples need {need} bytes, mdat holds {holds}")]
    SampleBytes { offset: u64, need: u64, holds: u64 },
    #[error("no video track")]
    NoVideo,
    #[error(transparent)]
    Params(#[from] crate::video::ParamsError),
}

pub type Result<T> = std::result::Result<T, Mp4Error>;

/// `ftyp` + `moov` for one video track. `duration` (90 kHz) goes into `mehd` when the total is
/// known (a recorded view); live streams and segments being written leave it out.
pub fn init_segment(p: &VideoParams, duration: Option<u64>) -> Bytes {
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"isom"),
        minor_version: 0x200,
        compatible_brands: vec![
            FourCC::new(b"isom"),
            FourCC::new(b"iso6"),
            FourCC::new(b"mp41"),
        ],
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale: TIMESCALE,
            duration: duration.unwrap_or(0),
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id: TRACK_ID,
                duration: duration.unwrap_or(0),
                enabled: true,
                in_movie: true,
                width: p.width.into(),
                height: p.height.into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale: TIMESCALE,
                    duration: duration.unwrap_or(0),
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: FourCC::new(b"vide"),
                    name: "Eyrie video".into(),
                },
                minf: Minf {
                    vmhd: Some(Vmhd::default()),
                    dinf: Dinf {
                        dref: Dref {
                            urls: vec![mp4_atom::Url {
                                location: String::new(),
                            }],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![p.entry.clone()],
                        },
                        stts: Stts::default(),
                        stsc: Stsc::default(),
                        stsz: Stsz::default(),
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        mvex: Some(Mvex {
            mehd: duration.map(|d| Mehd {
                fragment_duration: d,
            }),
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out).expect("ftyp encodes");
    let moov_at = out.len();
    moov.encode(&mut out).expect("moov encodes");
    if p.codec == Codec::Mjpeg {
        put_jpeg_entry(&mut out, moov_at, p);
    }
    Bytes::from(out)
}

/// mp4-atom has no `jpeg` sample entry: it writes `Unknown(jpeg)` as the bare four bytes, which
/// this replaces with the whole entry (a plain VisualSampleEntry, ISO/IEC 14496-12 12.1.3, the
/// QuickTime "Photo - JPEG" code ffmpeg and VLC map to MJPEG), growing each enclosing box.
fn put_jpeg_entry(out: &mut Vec<u8>, moov_at: usize, p: &VideoParams) {
    let mut entry = Vec::with_capacity(86);
    entry.extend_from_slice(&[0, 0, 0, 0]);
    entry.extend_from_slice(b"jpeg");
    mp4_atom::Visual {
        data_reference_index: 1,
        width: p.width,
        height: p.height,
        compressor: "Photo - JPEG".into(),
        ..Default::default()
    }
    .encode(&mut entry)
    .expect("visual fields encode");
    let len = entry.len() as u32;
    entry[..4].copy_from_slice(&len.to_be_bytes());

    let u32_at = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let mut boxes = vec![moov_at];
    for kind in [b"trak", b"mdia", b"minf", b"stbl", b"stsd"] {
        let parent = *boxes.last().unwrap();
        let end = parent + u32_at(out, parent) as usize;
        let mut at = parent + 8;
        while &out[at + 4..at + 8] != kind {
            at += u32_at(out, at) as usize;
            assert!(
                at < end,
                "init segment has no {}",
                String::from_utf8_lossy(kind)
            );
        }
        boxes.push(at);
    }
    // stsd: header, version and flags, entry count, then the entry.
    let at = boxes.last().unwrap() + 16;
    assert_eq!(&out[at..at + 4], b"jpeg");
    out.splice(at..at + 4, entry);
    for b in boxes {
        let size = u32_at(out, b) + len - 4;
        out[b..b + 4].copy_from_slice(&size.to_be_bytes());
    }
}

/// One sample as a fragment lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleMeta {
    pub duration: u32,
    pub size: u32,
    pub key: bool,
}

fn encode_moof(moof: &mut Moof) -> Vec<u8> {
    // The data offset counts from the moof's first byte to the first sample, past the mdat header;
    // its own width is fixed, so one trial encode gives the size.
    moof.traf[0].trun[0].data_offset = Some(0);
    let mut out = Vec::with_capacity(64 + 12 * moof.traf[0].trun[0].entries.len());
    moof.encode(&mut out).expect("moof encodes");
    let offset = out.len() as i32 + 8;
    moof.traf[0].trun[0].data_offset = Some(offset);
    out.clear();
    moof.encode(&mut out).expect("moof encodes");
    out
}

/// `moof` + the `mdat` header for a fragment whose sample data (in order) follows it.
pub fn fragment_header(seq: u32, decode_time: u64, samples: &[SampleMeta]) -> Vec<u8> {
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: seq,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                entries: samples
                    .iter()
                    .map(|s| TrunEntry {
                        duration: Some(s.duration),
                        size: Some(s.size),
                        flags: Some(if s.key { FLAGS_KEY } else { FLAGS_DELTA }),
                        cts: None,
                    })
                    .collect(),
            }],
            ..Default::default()
        }],
    };
    let mut out = encode_moof(&mut moof);
    let data_len: u64 = samples.iter().map(|s| s.size as u64).sum();
    out.extend_from_slice(&((data_len + 8) as u32).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out
}

/// Re-encodes a fragment's `moof` with a new sequence number and decode time (for views that
/// stitch fragments of several files into one timeline).
pub fn rewrite_moof(moof: &[u8], seq: u32, decode_time: u64) -> Result<Vec<u8>> {
    let mut m: Moof = crate::video::decode_outside(moof)?;
    m.mfhd.sequence_number = seq;
    let traf = single_traf(&mut m)?;
    traf.tfdt = Some(Tfdt {
        base_media_decode_time: decode_time,
    });
    Ok(encode_moof(&mut m))
}

fn single_traf(m: &mut Moof) -> Result<&mut Traf> {
    match m.traf.as_mut_slice() {
        [t] if t.trun.len() == 1 => Ok(t),
        _ => Err(Malformed::NotOneTrun.into()),
    }
}

/// A fragment found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentInfo {
    pub offset: u64,
    /// The `moof` box itself, kept so a view can rewrite it without reading it again.
    pub moof: Bytes,
    pub moof_len: u64,
    /// The whole `mdat` box, header included.
    pub mdat_len: u64,
    pub decode_time: u64,
    pub duration: u64,
    pub samples: u32,
    pub key_samples: u32,
    pub starts_with_key: bool,
}

impl FragmentInfo {
    pub fn end(&self) -> u64 {
        self.offset + self.moof_len + self.mdat_len
    }
}

/// What [`scan`] found: the init segment and each complete fragment. `valid_len` is where the
/// last complete fragment ends; anything after it is a torn write.
#[derive(Debug, Clone)]
pub struct Scan {
    pub init: Bytes,
    pub params: VideoParams,
    pub fragments: Vec<FragmentInfo>,
    pub valid_len: u64,
}

/// Totals over a file's fragments saturate: a damaged or crafted file's numbers are not
/// trusted to stay in range.
impl Scan {
    pub fn media_ticks(&self) -> u64 {
        self.fragments
            .iter()
            .fold(0, |n, f| n.saturating_add(f.duration))
    }
    pub fn frames(&self) -> u32 {
        self.fragments
            .iter()
            .fold(0, |n, f| n.saturating_add(f.samples))
    }
    pub fn key_frames(&self) -> u32 {
        self.fragments
            .iter()
            .fold(0, |n, f| n.saturating_add(f.key_samples))
    }
}

/// Largest box header plus body Eyrie reads into memory while scanning (init or moof).
const MAX_META_BOX: u64 = 4 << 20;

/// Reads a segment file's structure up to `limit` bytes, without reading sample data. A file
/// cut short in the middle of a fragment ends the scan at the last complete one.
pub fn scan<R: Read + Seek>(r: &mut R, limit: u64) -> Result<Scan> {
    let mut pos = 0u64;
    let mut init = Vec::new();
    let mut params = None;
    let mut fragments = Vec::new();
    let mut pending_moof: Option<(u64, Vec<u8>)> = None;
    while pos < limit {
        r.seek(SeekFrom::Start(pos))?;
        let Some((kind, header_len, box_len)) = read_box_header(r, limit - pos)? else {
            break;
        };
        // Checked: a 64-bit box size from the file could wrap the position back to the start.
        let Some(box_end) = pos.checked_add(box_len).filter(|end| *end <= limit) else {
            break; // torn
        };
        let needs_body = matches!(&kind, b"ftyp" | b"moov" | b"moof");
        if needs_body && box_len > MAX_META_BOX {
            return Err(Malformed::TooLarge {
                kind,
                len: box_len,
                at: pos,
            }
            .into());
        }
        match &kind {
            b"ftyp" | b"moov" if fragments.is_empty() && pending_moof.is_none() => {
                let mut body = vec![0u8; box_len as usize];
                r.seek(SeekFrom::Start(pos))?;
                r.read_exact(&mut body)?;
                if &kind == b"moov" {
                    let moov: Moov = crate::video::decode_outside(&body)?;
                    params = Some(params_of(&moov)?);
                }
                init.extend_from_slice(&body);
            }
            b"moof" => {
                let mut body = vec![0u8; box_len as usize];
                r.seek(SeekFrom::Start(pos))?;
                r.read_exact(&mut body)?;
                pending_moof = Some((pos, body));
            }
            b"mdat" => {
                let Some((moof_pos, moof)) = pending_moof.take() else {
                    return Err(Malformed::MdatWithoutMoof(pos).into());
                };
                fragments.push(fragment_info(moof_pos, &moof, box_len, header_len)?);
            }
            _ => {}
        }
        pos = box_end;
    }
    let params = params.ok_or(Malformed::NoMoov)?;
    let valid_len = fragments
        .last()
        .map(FragmentInfo::end)
        .unwrap_or(init.len() as u64);
    Ok(Scan {
        init: Bytes::from(init),
        params,
        fragments,
        valid_len,
    })
}

/// `(kind, header length, box length)`; `None` at a clean or torn end.
fn read_box_header<R: Read>(r: &mut R, remaining: u64) -> Result<Option<([u8; 4], u64, u64)>> {
    if remaining < 8 {
        return Ok(None);
    }
    let mut h = [0u8; 16];
    r.read_exact(&mut h[..8])?;
    let size32 = u32::from_be_bytes(h[0..4].try_into().unwrap()) as u64;
    let kind: [u8; 4] = h[4..8].try_into().unwrap();
    let (header_len, size) = match size32 {
        1 => {
            if remaining < 16 {
                return Ok(None);
            }
            r.read_exact(&mut h[8..16])?;
            (16, u64::from_be_bytes(h[8..16].try_into().unwrap()))
        }
        0 => (8, remaining), // to end of file: only ever the last box
        n => (8, n),
    };
    if size < header_len {
        return Err(Malformed::BoxSize { kind, size }.into());
    }
    Ok(Some((kind, header_len, size)))
}

fn fragment_info(
    offset: u64,
    moof: &[u8],
    mdat_len: u64,
    mdat_header: u64,
) -> Result<FragmentInfo> {
    let mut m: Moof = crate::video::decode_outside(moof)?;
    let moof_len = moof.len() as u64;
    let traf = single_traf(&mut m)?;
    let default_duration = traf.tfhd.default_sample_duration;
    let default_size = traf.tfhd.default_sample_size;
    let trun = &traf.trun[0];
    let mut duration = 0u64;
    let mut size = 0u64;
    let mut keys = 0u32;
    for e in &trun.entries {
        duration += e.duration.or(default_duration).unwrap_or(0) as u64;
        size += e.size.or(default_size).unwrap_or(0) as u64;
        if e.flags.unwrap_or(FLAGS_DELTA) & 0x0001_0000 == 0 {
            keys += 1;
        }
    }
    if size + mdat_header != mdat_len {
        return Err(Malformed::SampleBytes {
            offset,
            need: size,
            holds: mdat_len - mdat_header,
        }
        .into());
    }
    let starts_with_key = trun
        .entries
        .first()
        .is_some_and(|e| e.flags.unwrap_or(FLAGS_DELTA) & 0x0001_0000 == 0);
    Ok(FragmentInfo {
        offset,
        moof: Bytes::copy_from_slice(moof),
        moof_len,
        mdat_len,
        decode_time: traf.tfdt.as_ref().map_or(0, |t| t.base_media_decode_time),
        duration,
        samples: trun.entries.len() as u32,
        key_samples: keys,
        starts_with_key,
    })
}

fn params_of(moov: &Moov) -> Result<VideoParams> {
    let trak = moov
        .trak
        .iter()
        .find(|t| t.mdia.hdlr.handler == FourCC::new(b"vide"))
        .ok_or(Malformed::NoVideo)?;
    Ok(VideoParams::from_track(trak).map_err(Malformed::from)?)
}

/// Files and pictures for the tests of any module that reads or writes fMP4.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// An fMP4 file of `params` with one fragment per entry of `frags` (samples of 0xAB bytes).
    pub fn write_file(params: &VideoParams, frags: &[Vec<SampleMeta>]) -> Vec<u8> {
        let mut f = init_segment(params, None).to_vec();
        let mut t = 0;
        for (i, samples) in frags.iter().enumerate() {
            f.extend(fragment_header(i as u32 + 1, t, samples));
            for s in samples {
                f.extend(std::iter::repeat_n(0xAB, s.size as usize));
                t += s.duration as u64;
            }
        }
        f
    }

    /// `n` real JPEG pictures, `w`x`h`, as ffmpeg encodes them (distinct test-pattern frames).
    pub fn ffmpeg_jpegs(n: usize, w: u16, h: u16) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size={w}x{h}:rate=10"))
            .args(["-frames:v", &n.to_string(), "-c:v", "mjpeg", "-q:v", "5"])
            .arg(dir.path().join("f%03d.jpg"))
            .status()
            .expect("ffmpeg runs");
        assert!(st.success());
        (1..=n)
            .map(|i| std::fs::read(dir.path().join(format!("f{i:03}.jpg"))).unwrap())
            .collect()
    }

    /// What ffprobe says of the file's video stream: codec name and frames decoded.
    pub fn ffprobe(path: &std::path::Path) -> (String, u64) {
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args([
                "-show_entries",
                "stream=codec_name,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (codec, n) = text.trim().split_once(',').expect("codec,frames");
        (codec.to_string(), n.parse().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ffmpeg_jpegs, ffprobe, write_file};
    use super::*;
    use crate::base::testing::have;
    use crate::video::testing::h264_params;
    use std::io::Cursor;

    fn gop(n: usize) -> Vec<SampleMeta> {
        (0..n)
            .map(|i| SampleMeta {
                duration: 6000,
                size: 100 + i as u32,
                key: i == 0,
            })
            .collect()
    }

    /// A box whose 64-bit size reaches past the end of the position space used to wrap the
    /// scan's position back to the start: a panic in debug builds, a scan that never ends in
    /// release ones (startup recovery hung on such a file). It is a torn end now.
    #[test]
    fn a_box_size_that_would_wrap_ends_the_scan() {
        let p = h264_params();
        let mut file = write_file(&p, &[gop(3)]);
        let end = file.len() as u64;
        file.extend_from_slice(&1u32.to_be_bytes());
        file.extend_from_slice(b"free");
        file.extend_from_slice(&(u64::MAX - end + 1).to_be_bytes());
        file.extend_from_slice(&[0; 16]);
        let s = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert_eq!((s.fragments.len(), s.valid_len), (1, end));
    }

    /// Times and counts from a file saturate instead of overflowing (found by reading the
    /// `segment` fuzz target's paths): a fragment decoding at the end of time.
    #[test]
    fn totals_and_picture_times_saturate() {
        let p = VideoParams::mjpeg(16, 16);
        let mut file = init_segment(&p, None).to_vec();
        for (i, t) in [0, u64::MAX - 5].into_iter().enumerate() {
            let sample = SampleMeta {
                duration: u32::MAX,
                size: 4,
                key: true,
            };
            file.extend(fragment_header(i as u32 + 1, t, &[sample, sample]));
            file.extend_from_slice(&[0xAB; 8]);
        }
        let s = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert_eq!(s.fragments.len(), 2);
        let pictures = crate::media::view::pictures_of(&s, i64::MAX - 1000).unwrap();
        assert_eq!(pictures.len(), 4);
        assert_eq!(pictures[3].at_ms, i64::MAX);
        let finish = crate::media::recover::finish_of(i64::MAX - 1000, &s);
        assert_eq!(finish.end_ms, i64::MAX);
    }

    #[test]
    fn write_then_scan() {
        let p = h264_params();
        let file = write_file(&p, &[gop(15), gop(15), gop(7)]);
        let s = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert_eq!(s.params, p);
        assert_eq!(s.fragments.len(), 3);
        assert_eq!(s.valid_len, file.len() as u64);
        assert_eq!(s.frames(), 37);
        assert_eq!(s.key_frames(), 3);
        assert_eq!(s.media_ticks(), 37 * 6000);
        assert_eq!(s.fragments[1].decode_time, 15 * 6000);
        assert!(s.fragments.iter().all(|f| f.starts_with_key));
    }

    #[test]
    fn torn_file_scans_to_last_complete_fragment() {
        let p = h264_params();
        let file = write_file(&p, &[gop(15), gop(15)]);
        let whole = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        for cut in [
            file.len() - 1,
            file.len() - 200,
            whole.fragments[1].offset as usize + 3,
        ] {
            let s = scan(&mut Cursor::new(&file[..cut]), cut as u64).unwrap();
            assert_eq!(s.fragments.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, whole.fragments[0].end());
        }
        let init_only = whole.init.len();
        let s = scan(
            &mut Cursor::new(&file[..init_only + 5]),
            init_only as u64 + 5,
        )
        .unwrap();
        assert!(s.fragments.is_empty());
        assert!(scan(&mut Cursor::new(&file[..20]), 20).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            vec![0u8; 64],
            vec![0xFF; 64],
            b"\0\0\0\x08moof\0\0\0\x09mdatx".to_vec(),
        ] {
            let _ = scan(&mut Cursor::new(&junk), junk.len() as u64);
        }
    }

    #[test]
    fn rewrite_keeps_offsets_valid() {
        let p = h264_params();
        let file = write_file(&p, &[gop(5)]);
        let s = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        let f = &s.fragments[0];
        let moof = &file[f.offset as usize..(f.offset + f.moof_len) as usize];
        let new = rewrite_moof(moof, 42, 1 << 40).unwrap();
        let mut out = s.init.to_vec();
        out.extend(&new);
        out.extend(&file[(f.offset + f.moof_len) as usize..]);
        let s2 = scan(&mut Cursor::new(&out), out.len() as u64).unwrap();
        assert_eq!(s2.fragments[0].decode_time, 1 << 40);
        assert_eq!(s2.fragments[0].samples, 5);
    }

    #[test]
    fn mjpeg_file_plays_in_ffmpeg() {
        if !have("ffmpeg") || !have("ffprobe") {
            return;
        }
        let p = VideoParams::mjpeg(320, 240);
        let jpegs = ffmpeg_jpegs(12, 320, 240);
        let mut file = init_segment(&p, None).to_vec();
        let mut t = 0;
        for (i, chunk) in jpegs.chunks(5).enumerate() {
            let metas: Vec<_> = chunk
                .iter()
                .map(|j| SampleMeta {
                    duration: 9000,
                    size: j.len() as u32,
                    key: true,
                })
                .collect();
            file.extend(fragment_header(i as u32 + 1, t, &metas));
            for j in chunk {
                file.extend_from_slice(j);
            }
            t += 9000 * chunk.len() as u64;
        }
        let s = scan(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert_eq!(s.params, p);
        assert_eq!((s.frames(), s.key_frames()), (12, 12));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.mp4");
        std::fs::write(&path, &file).unwrap();
        assert_eq!(ffprobe(&path), ("mjpeg".to_string(), 12));
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    }
}
