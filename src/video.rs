//! The types every stage shares: which codec, the video parameters (as an MP4 sample entry, the
//! form both RTSP depacketizing and MP4 files produce), and one encoded frame.

use std::sync::Arc;

use bytes::Bytes;
use mp4_atom::{Codec as Entry, Decode, Encode};
use serde::{Deserialize, Serialize};

/// Media clock of every frame and fragment Eyrie handles.
pub const TIMESCALE: u32 = 90_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    H264,
    H265,
    /// Motion JPEG: every frame a whole JPEG picture (a key frame), stored as the `jpeg` sample
    /// entry, which ffmpeg and VLC play from (fragmented) MP4; browsers do not decode it.
    Mjpeg,
}

/// A video stream's parameters: the `avc1`/`hvc1` sample entry with its `avcC`/`hvcC`, or for
/// MJPEG the `jpeg` entry (mp4-atom has no type for it: `Unknown(jpeg)`, written by
/// [`crate::media::fmp4`]). Its entry always encodes, and reads back ([`Self::from_entry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoParams {
    pub entry: Entry,
    pub codec: Codec,
    pub width: u16,
    pub height: u16,
    /// RFC 6381 codec string for Media Source Extensions, e.g. `avc1.64001e`.
    pub rfc6381: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParamsError(pub String);

/// Decodes an MP4 box from bytes that came from outside (a camera's parameters, an MP4 file, a
/// segment on the card), after checking what mp4-atom 0.15 does not: the entry count of a
/// sample group description (`sgpd`). mp4-atom pushes one entry per count, and an entry of any
/// grouping type but `refs` takes all the bytes left, so the entries after it take none: 135
/// bytes asked for tens of millions of entries, gigabytes (found by fuzzing,
/// docs/security.md). See [`check_sample_groups`] for the bound.
pub fn decode_outside<T: Decode>(bytes: &[u8]) -> Result<T, mp4_atom::Error> {
    check_sample_groups(bytes)?;
    T::decode(&mut &bytes[..])
}

/// Most entries of a sample group description whose entries mp4-atom reads as opaque bytes.
/// Real files have a handful (one `roll` for AAC audio); the entries after the first are empty.
const MAX_OPAQUE_GROUP_ENTRIES: u32 = 1024;

/// Refuses an `sgpd` box whose entry count is more than mp4-atom can read without building
/// entries out of nothing: a `refs` entry takes at least 5 bytes, an entry with its own length
/// field 4, any other at most [`MAX_OPAQUE_GROUP_ENTRIES`] and no more than the bytes left.
/// Every `sgpd` is found wherever it is nested (the bytes are searched for its type); a match
/// whose header cannot be a box mp4-atom would read (its size past the bytes, an unknown
/// version) is skipped, as mp4-atom refuses it before reading a count.
fn check_sample_groups(bytes: &[u8]) -> Result<(), mp4_atom::Error> {
    let be32 = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut from = 0;
    while let Some(found) = bytes[from..].windows(4).position(|w| w == b"sgpd") {
        let kind_at = from + found;
        from = kind_at + 4;
        let Some(start) = kind_at.checked_sub(4) else {
            continue;
        };
        let Some(size) = be32(start) else { continue };
        // The box's end: its 32-bit size, its 64-bit size (size 1), or the end (size 0).
        let (end, mut at) = match size {
            0 => (bytes.len(), kind_at + 4),
            1 => {
                let (Some(hi), Some(lo)) = (be32(kind_at + 4), be32(kind_at + 8)) else {
                    continue;
                };
                let large = (u64::from(hi) << 32) | u64::from(lo);
                match usize::try_from(large)
                    .ok()
                    .and_then(|l| start.checked_add(l))
                {
                    Some(end) if end <= bytes.len() => (end, kind_at + 12),
                    _ => continue,
                }
            }
            n => match start.checked_add(n as usize) {
                Some(end) if end <= bytes.len() => (end, kind_at + 4),
                _ => continue,
            },
        };
        // Version and flags, grouping type, then the default length (version 1 and up) and
        // default description index (version 2 and up), then the entry count.
        let Some(&version) = bytes.get(at) else {
            continue;
        };
        if version > 3 {
            continue;
        }
        let Some(grouping) = bytes.get(at + 4..at + 8) else {
            continue;
        };
        at += 8;
        let mut own_lengths = false;
        if version >= 1 {
            let Some(default_length) = be32(at) else {
                continue;
            };
            own_lengths = default_length == 0;
            at += 4;
        }
        if version >= 2 {
            at += 4;
        }
        let Some(count) = be32(at) else { continue };
        let left = end.saturating_sub(at + 4);
        let most = if grouping == b"refs" {
            left / 5
        } else if own_lengths {
            left / 4
        } else {
            left.min(MAX_OPAQUE_GROUP_ENTRIES as usize)
        };
        if count as usize > most {
            return Err(mp4_atom::Error::TooLarge(mp4_atom::FourCC::new(b"sgpd")));
        }
    }
    Ok(())
}

impl VideoParams {
    /// From an encoded sample entry box (what retina builds).
    pub fn from_sample_entry(bytes: &[u8]) -> Result<Self, ParamsError> {
        let entry = decode_outside::<Entry>(bytes)
            .map_err(|e| ParamsError(format!("bad sample entry: {e}")))?;
        Self::from_entry(entry)
    }

    /// Motion JPEG at this picture size.
    pub fn mjpeg(width: u16, height: u16) -> Self {
        Self {
            entry: Entry::Unknown(mp4_atom::FourCC::new(b"jpeg")),
            codec: Codec::Mjpeg,
            width,
            height,
            rfc6381: "jpeg".into(),
        }
    }

    /// From a video track's first sample entry. mp4-atom does not keep a `jpeg` entry's own
    /// fields; the track header has the same picture size.
    pub fn from_track(trak: &mp4_atom::Trak) -> Result<Self, ParamsError> {
        let entry = trak
            .mdia
            .minf
            .stbl
            .stsd
            .codecs
            .first()
            .cloned()
            .ok_or_else(|| ParamsError("no sample entry".into()))?;
        if entry == Entry::Unknown(mp4_atom::FourCC::new(b"jpeg")) {
            let (w, h) = (trak.tkhd.width.integer(), trak.tkhd.height.integer());
            return Ok(Self::mjpeg(w, h));
        }
        Self::from_entry(entry)
    }

    pub fn from_entry(entry: Entry) -> Result<Self, ParamsError> {
        let (codec, visual, rfc6381) = match &entry {
            Entry::Avc1(a) => (Codec::H264, &a.visual, avc_string("avc1", &a.avcc)),
            Entry::Hvc1(h) => (Codec::H265, &h.visual, hevc_string("hvc1", &h.hvcc)),
            Entry::Hev1(h) => (Codec::H265, &h.visual, hevc_string("hev1", &h.hvcc)),
            other => {
                let mut v = Vec::new();
                let _ = other.encode(&mut v);
                let name = v.get(4..8).map(String::from_utf8_lossy).unwrap_or_default();
                return Err(ParamsError(format!(
                    "unsupported video codec '{name}': Eyrie records H.264, H.265 and MJPEG"
                )));
            }
        };
        // What a stream is recorded with must write and read back (`fmp4::init_segment` relies
        // on it): mp4-atom reads entries it cannot write (boxes whose sizes disagree, a
        // parameter set longer than 64 KiB), and these come from cameras and files.
        let mut bytes = Vec::new();
        entry
            .encode(&mut bytes)
            .map_err(|e| ParamsError(format!("the stream's parameters cannot be recorded: {e}")))
            .and_then(|()| {
                decode_outside::<Entry>(&bytes).map_err(|e| {
                    ParamsError(format!("the stream's parameters do not read back: {e}"))
                })
            })?;
        Ok(Self {
            width: visual.width,
            height: visual.height,
            entry,
            codec,
            rfc6381,
        })
    }
}

fn avc_string(prefix: &str, c: &mp4_atom::Avcc) -> String {
    format!(
        "{prefix}.{:02x}{:02x}{:02x}",
        c.avc_profile_indication, c.profile_compatibility, c.avc_level_indication
    )
}

/// ISO/IEC 14496-15 Annex E: profile space and idc, the compatibility flags bit-reversed, tier and
/// level, then the constraint bytes without trailing zero bytes.
fn hevc_string(prefix: &str, c: &mp4_atom::Hvcc) -> String {
    let space = ["", "A", "B", "C"][(c.general_profile_space & 3) as usize];
    let compat = u32::from_be_bytes(c.general_profile_compatibility_flags).reverse_bits();
    let tier = if c.general_tier_flag { 'H' } else { 'L' };
    let mut s = format!(
        "{prefix}.{space}{}.{compat:x}.{tier}{}",
        c.general_profile_idc, c.general_level_idc
    );
    let cons = &c.general_constraint_indicator_flags;
    let keep = cons.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    for b in &cons[..keep] {
        s.push_str(&format!(".{b:x}"));
    }
    s
}

/// One encoded frame: AVC/HEVC NAL units with 4-byte length prefixes (MP4 sample format).
#[derive(Debug, Clone)]
pub struct Frame {
    pub data: Bytes,
    /// Presentation time in [`TIMESCALE`] units since the stream was opened; never decreases.
    pub pts: i64,
    pub key: bool,
    /// Wall-clock time the frame arrived (receive clock).
    pub received: jiff::Timestamp,
    /// Set when the stream's parameters changed at this frame (always a key frame).
    pub new_params: Option<Arc<VideoParams>>,
}

/// Stream parameters for the tests of any module.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A real 640x360 High-profile SPS/PPS pair, as x264 writes it.
    pub fn h264_params() -> VideoParams {
        let sps = [
            0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00,
            0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x1e, 0x0f, 0x16, 0x2d, 0x96,
        ];
        let pps = [0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
        let entry = Entry::Avc1(mp4_atom::Avc1 {
            visual: mp4_atom::Visual {
                width: 640,
                height: 360,
                ..Default::default()
            },
            avcc: mp4_atom::Avcc::new(&sps, &pps).unwrap(),
            ..Default::default()
        });
        VideoParams::from_entry(entry).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::h264_params;
    use super::*;

    /// An `sgpd` box of `version` whose entry count is `count`, followed by `entries` bytes.
    fn sgpd(version: u8, count: u32, entries: usize) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 0];
        body.extend_from_slice(b"zzzz");
        if version >= 1 {
            body.extend_from_slice(&1u32.to_be_bytes());
        }
        if version >= 2 {
            body.extend_from_slice(&0u32.to_be_bytes());
        }
        body.extend_from_slice(&count.to_be_bytes());
        body.extend(std::iter::repeat_n(7u8, entries));
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(b"sgpd");
        b.extend_from_slice(&body);
        b
    }

    #[test]
    fn sample_group_counts_beyond_their_bytes_are_refused() {
        for version in 0..=2 {
            assert!(
                check_sample_groups(&sgpd(version, 1, 8)).is_ok(),
                "v{version}"
            );
            assert!(
                check_sample_groups(&sgpd(version, 0, 0)).is_ok(),
                "v{version}"
            );
            // Opaque entries: at most the bytes left.
            assert!(
                check_sample_groups(&sgpd(version, 9, 8)).is_err(),
                "v{version}"
            );
            let bad = sgpd(version, 2000, 4000);
            assert!(check_sample_groups(&bad).is_err(), "v{version}");
            // Nested anywhere, and in a box that runs to the end (size 0).
            let mut nested = vec![0, 0, 0, 0];
            nested.extend_from_slice(b"ipco");
            nested.extend_from_slice(&bad);
            assert!(check_sample_groups(&nested).is_err(), "v{version}");
        }
        // What fuzzing found: 135 bytes that asked mp4-atom for 33 million entries.
        let found = include_bytes!("../fuzz/corpus/rtsp/crash-oom-sgpd-entries");
        assert!(VideoParams::from_sample_entry(found).is_err());
        // Not a box mp4-atom would read: too short, a size past the bytes, an unknown version.
        assert!(check_sample_groups(b"sgpd").is_ok());
        assert!(check_sample_groups(b"\0\0\0\x10sgpd\0").is_ok());
        let mut past = sgpd(0, 9, 8);
        past[3] += 1;
        assert!(check_sample_groups(&past).is_ok());
        let mut version = sgpd(0, 9, 8);
        version[8] = 4;
        assert!(check_sample_groups(&version).is_ok());
        // The name of an encoder that spells `sgpd` (fuzzing found Eyrie refusing to read back
        // such a sample entry it had written).
        assert!(check_sample_groups(b"\0\0\0\x01sgpdc59.37.100 libx264\0\0").is_ok());
    }

    #[test]
    fn codec_strings() {
        assert_eq!(h264_params().rfc6381, "avc1.64001e");
        let hvcc = mp4_atom::Hvcc {
            general_profile_idc: 1,
            general_profile_compatibility_flags: [0x60, 0, 0, 0],
            general_constraint_indicator_flags: [0x90, 0, 0, 0, 0, 0],
            general_level_idc: 93,
            ..Default::default()
        };
        assert_eq!(hevc_string("hvc1", &hvcc), "hvc1.1.6.L93.90");
    }

    #[test]
    fn sample_entry_round_trip() {
        let p = h264_params();
        let mut bytes = Vec::new();
        p.entry.encode(&mut bytes).unwrap();
        assert_eq!(VideoParams::from_sample_entry(&bytes).unwrap(), p);
        assert!(VideoParams::from_sample_entry(&bytes[..10]).is_err());
    }

    /// Found by fuzzing (`rtsp`): parameters mp4-atom reads but cannot write made the recorder
    /// panic writing the init segment, and some it writes wrong (a length past 16 bits wraps)
    /// made recordings that do not read back. Both are refused where they enter.
    #[test]
    fn parameters_that_cannot_be_written_are_refused() {
        let mut sps = vec![0x67, 0x64, 0x00, 0x1e];
        sps.resize(70_000, 0x11); // longer than the avcC's 16-bit length: written wrapped
        let entry = Entry::Avc1(mp4_atom::Avc1 {
            visual: mp4_atom::Visual {
                width: 640,
                height: 360,
                ..Default::default()
            },
            avcc: mp4_atom::Avcc::new(&sps, &[0x68, 0xeb, 0xe3, 0xcb]).unwrap(),
            ..Default::default()
        });
        let e = VideoParams::from_entry(entry).unwrap_err();
        assert!(e.0.contains("do not read back"), "{e}");
        // The fuzzer's input: an hvc1 entry whose boxes' sizes disagree.
        let crash = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/corpus/rtsp/crash-hvc1-sizes-disagree"),
        )
        .unwrap();
        assert!(VideoParams::from_sample_entry(&crash).is_err());
    }
}
