//! H.264 pictures for motion: only key frames, each decoded on its own by OpenH264 (the
//! `openh264` crate, which builds Cisco's decoder from its vendored source), reduced to the luma
//! grid, with a small colour copy kept for the event's thumbnail.
//!
//! What reaches the decoder is bounded first (docs/security.md): the parameter sets are the
//! stream's own (`avcC`), each SPS read (h264-reader) and refused above [`MAX_SIDE`] pixels a
//! side, [`MAX_AREA`] pixels in all, or pictures the decoder would keep (its reference frames
//! and two more) above [`MAX_PICTURE_BYTES`]; of the frame only its slices are passed (its in-band
//! SPS/PPS are already the stream's parameters), and a frame above [`MAX_FRAME`] bytes is
//! refused. How often one is decoded is the watcher's sampling (at most one per
//! [`super::SAMPLE_MS`]). A picture the decoder refuses is an error, and the next one is decoded
//! by a new decoder.

use std::sync::Arc;

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, decode_nal};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::{CELLS, grid};
use crate::video::VideoParams;

/// Largest picture side decoded, in pixels.
pub const MAX_SIDE: u64 = 8192;
/// Largest picture decoded, in pixels: H.264 level 5.1's largest frame (36,864 macroblocks,
/// 4096x2304), more than 4K.
pub const MAX_AREA: u64 = 36_864 * 256;
/// Largest memory the decoder's pictures may take, as the SPS says: 4:2:0 pictures of its
/// size, its reference frames and two more. 128 MiB: a 1080p stream with 16 reference frames,
/// or 4096x2304 with 8.
pub const MAX_PICTURE_BYTES: u64 = 128 << 20;
/// Largest key frame decoded, in bytes.
pub const MAX_FRAME: usize = 8 << 20;
/// Widest thumbnail: larger pictures are reduced by a whole factor.
const THUMB_WIDTH: usize = 640;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct H264Error(pub String);

fn err(s: impl Into<String>) -> H264Error {
    H264Error(s.into())
}

/// A decoded key frame: its grid, and a reduced colour copy for a thumbnail.
pub struct KeyPicture {
    pub grid: [u8; CELLS],
    thumb: Small,
}

impl KeyPicture {
    /// The picture as a JPEG of at most [`THUMB_WIDTH`] pixels across.
    pub fn thumbnail(&self) -> Option<Bytes> {
        let s = &self.thumb;
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 75)
            .encode(
                &s.ycbcr,
                u16::try_from(s.width).ok()?,
                u16::try_from(s.height).ok()?,
                jpeg_encoder::ColorType::Ycbcr,
            )
            .ok()?;
        Some(out.into())
    }
}

/// Interleaved Y, Cb, Cr, one byte each a pixel.
struct Small {
    width: usize,
    height: usize,
    ycbcr: Vec<u8>,
}

/// The stream's parameter sets in Annex B form, checked, for the parameters they came from.
struct Headers {
    params: Arc<VideoParams>,
    annex_b: Vec<u8>,
    length_size: usize,
}

/// Decodes one camera's key frames (one watcher's).
#[derive(Default)]
pub struct KeyFrames {
    decoder: Option<Decoder>,
    headers: Option<Headers>,
    buf: Vec<u8>,
}

impl KeyFrames {
    /// Decodes `frame` (length-prefixed NAL units, as recorded) of a stream of `params`.
    pub fn decode(
        &mut self,
        params: &Arc<VideoParams>,
        frame: &[u8],
    ) -> Result<KeyPicture, H264Error> {
        if frame.len() > MAX_FRAME {
            return Err(err(format!(
                "a key frame of {} bytes, above the {MAX_FRAME} decoded",
                frame.len()
            )));
        }
        if !self
            .headers
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(&h.params, params))
        {
            self.headers = None;
            self.decoder = None;
            self.headers = Some(headers(params)?);
        }
        let h = self.headers.as_ref().expect("set above");
        self.buf.clear();
        self.buf.extend_from_slice(&h.annex_b);
        let mut slices = 0;
        let mut rest = frame;
        while !rest.is_empty() {
            let (len, tail) = rest
                .split_at_checked(h.length_size)
                .ok_or_else(|| err("a NAL unit's length is cut short"))?;
            let len = len.iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            let (nal, tail) = tail
                .split_at_checked(len)
                .ok_or_else(|| err(format!("a NAL unit of {len} bytes runs past the frame")))?;
            rest = tail;
            // Slices only (1 non-IDR, 5 IDR): parameter sets are the stream's, checked.
            if matches!(nal.first().map(|b| b & 0x1f), Some(1 | 5)) {
                self.buf.extend_from_slice(&[0, 0, 0, 1]);
                self.buf.extend_from_slice(nal);
                slices += 1;
            }
        }
        if slices == 0 {
            return Err(err("a key frame without slices"));
        }
        let decoder = match &mut self.decoder {
            Some(d) => d,
            None => self
                .decoder
                .insert(Decoder::new().map_err(|e| err(format!("cannot start the decoder: {e}")))?),
        };
        let picture = match decoder.decode(&self.buf) {
            Ok(Some(yuv)) => reduce(&yuv),
            Ok(None) => Err(err("the decoder gave no picture for a key frame")),
            Err(e) => Err(err(format!("the decoder refused a key frame: {e}"))),
        };
        if picture.is_err() {
            // Each key frame on its own: whatever state the damage left goes with the decoder.
            self.decoder = None;
        }
        picture
    }
}

/// The parameter sets of `params`, each SPS checked against the bounds.
fn headers(params: &Arc<VideoParams>) -> Result<Headers, H264Error> {
    let mp4_atom::Codec::Avc1(avc1) = &params.entry else {
        return Err(err("not an H.264 stream"));
    };
    let avcc = &avc1.avcc;
    let length_size = usize::from(avcc.length_size);
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(err(format!("NAL length size {length_size}")));
    }
    if avcc.sequence_parameter_sets.is_empty() || avcc.picture_parameter_sets.is_empty() {
        return Err(err("the stream has no SPS or no PPS"));
    }
    let mut annex_b = Vec::new();
    for sps in &avcc.sequence_parameter_sets {
        let (w, h, refs) = coded_size(sps)?;
        if w > MAX_SIDE || h > MAX_SIDE || w * h > MAX_AREA {
            return Err(err(format!(
                "pictures of {w}x{h}, above the {MAX_SIDE} pixels a side or {MAX_AREA} in all \
                 decoded"
            )));
        }
        let bytes = w * h * 3 / 2 * (refs + 2);
        if bytes > MAX_PICTURE_BYTES {
            return Err(err(format!(
                "{w}x{h} pictures with {refs} reference frames need {} MiB, above the {} MiB \
                 decoded",
                bytes >> 20,
                MAX_PICTURE_BYTES >> 20
            )));
        }
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(sps);
    }
    for pps in &avcc.picture_parameter_sets {
        annex_b.extend_from_slice(&[0, 0, 0, 1]);
        annex_b.extend_from_slice(pps);
    }
    Ok(Headers {
        params: params.clone(),
        annex_b,
        length_size,
    })
}

/// The coded picture size an SPS gives (before cropping), in pixels, and its reference frames.
fn coded_size(sps: &[u8]) -> Result<(u64, u64, u64), H264Error> {
    if sps.first().map(|b| b & 0x1f) != Some(7) {
        return Err(err("an SPS that is not one"));
    }
    let rbsp = decode_nal(sps).map_err(|e| err(format!("an unreadable SPS: {e}")))?;
    let s = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
        .map_err(|e| err(format!("an unreadable SPS: {e:?}")))?;
    let w = (u64::from(s.pic_width_in_mbs_minus1) + 1) * 16;
    let map_units = u64::from(s.pic_height_in_map_units_minus1) + 1;
    let h = match s.frame_mbs_flags {
        h264_reader::nal::sps::FrameMbsFlags::Frames => map_units * 16,
        h264_reader::nal::sps::FrameMbsFlags::Fields { .. } => map_units * 32,
    };
    Ok((w, h, u64::from(s.max_num_ref_frames)))
}

/// The decoded picture reduced to the grid and to a thumbnail-sized colour copy.
fn reduce(yuv: &impl YUVSource) -> Result<KeyPicture, H264Error> {
    let (w, h) = yuv.dimensions();
    let (ys, us, vs) = yuv.strides();
    let (y, u, v) = (yuv.y(), yuv.u(), yuv.v());
    let fits = |plane: &[u8], stride: usize, pw: usize, ph: usize| {
        ph == 0 || stride >= pw && plane.len() >= (ph - 1) * stride + pw
    };
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    if w == 0 || h == 0 || !fits(y, ys, w, h) || !fits(u, us, cw, ch) || !fits(v, vs, cw, ch) {
        return Err(err(format!(
            "the decoder gave a {w}x{h} picture it does not hold"
        )));
    }
    let grid = grid(y, w, h, ys, 1).ok_or_else(|| err("an empty picture"))?;
    let k = w.div_ceil(THUMB_WIDTH).max(1);
    let (tw, th) = ((w / k).max(1), (h / k).max(1));
    let mut ycbcr = Vec::with_capacity(tw * th * 3);
    for r in 0..th {
        let (sy, sc) = (r * k, r * k / 2);
        for c in 0..tw {
            let (sx, cx) = (c * k, c * k / 2);
            ycbcr.extend_from_slice(&[y[sy * ys + sx], u[sc * us + cx], v[sc * vs + cx]]);
        }
    }
    Ok(KeyPicture {
        grid,
        thumb: Small {
            width: tw,
            height: th,
            ycbcr,
        },
    })
}

/// Real H.264 for the tests: pictures encoded by OpenH264's encoder, as a camera's stream.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use openh264::encoder::Encoder;
    use openh264::formats::YUVBuffer;

    /// An encoder of `w`x`h` grey pictures.
    pub struct Camera {
        encoder: Encoder,
        w: usize,
        h: usize,
        pub params: Option<Arc<VideoParams>>,
    }

    impl Camera {
        pub fn new(w: usize, h: usize) -> Self {
            Self {
                encoder: Encoder::new().unwrap(),
                w,
                h,
                params: None,
            }
        }

        /// The next picture (`luma`, `w`x`h`) as a key frame in recorded form (length-prefixed
        /// slices); the stream's parameters are set from its SPS/PPS.
        pub fn key_frame(&mut self, luma: &[u8]) -> Bytes {
            let mut yuv = vec![128u8; self.w * self.h * 3 / 2];
            yuv[..self.w * self.h].copy_from_slice(luma);
            let src = YUVBuffer::from_vec(yuv, self.w, self.h);
            self.encoder.force_intra_frame();
            let stream = self.encoder.encode(&src).unwrap().to_vec();
            let (mut sps, mut pps, mut frame) = (None, None, Vec::new());
            for nal in openh264::nal_units(&stream) {
                let start = nal.iter().position(|&b| b == 1).unwrap() + 1;
                let nal = &nal[start..];
                match nal[0] & 0x1f {
                    7 => sps = Some(nal.to_vec()),
                    8 => pps = Some(nal.to_vec()),
                    _ => {
                        frame.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        frame.extend_from_slice(nal);
                    }
                }
            }
            if let (Some(sps), Some(pps)) = (sps, pps) {
                self.params = Some(Arc::new(params(&sps, &pps, self.w, self.h)));
            }
            frame.into()
        }
    }

    /// The parameters of a stream with this SPS and PPS.
    pub fn params(sps: &[u8], pps: &[u8], w: usize, h: usize) -> VideoParams {
        let entry = mp4_atom::Codec::Avc1(mp4_atom::Avc1 {
            visual: mp4_atom::Visual {
                width: w as u16,
                height: h as u16,
                ..Default::default()
            },
            avcc: mp4_atom::Avcc::new(sps, pps).unwrap(),
            ..Default::default()
        });
        VideoParams::from_entry(entry).unwrap()
    }

    /// A `w`x`h` grey picture with a bright 60x60 box at `box_at` (left edge).
    pub fn picture(w: usize, h: usize, box_at: Option<usize>) -> Vec<u8> {
        let mut px = vec![90u8; w * h];
        if let Some(x0) = box_at {
            for y in 40..100 {
                px[y * w + x0..y * w + x0 + 60].fill(250);
            }
        }
        px
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Camera, picture};
    use super::*;
    use crate::motion::GRID_W;

    #[test]
    fn key_frames_reduce_to_the_grid() {
        let (w, h) = (320, 176);
        let mut cam = Camera::new(w, h);
        let mut k = KeyFrames::default();
        let still = cam.key_frame(&picture(w, h, None));
        let p = cam.params.clone().unwrap();
        let a = k.decode(&p, &still).unwrap();
        assert!(a.grid.iter().all(|&v| v.abs_diff(90) < 8), "{:?}", a.grid);
        // The box covers columns 160..220 of 320: grid cells 16..22, rows 40..100 of 176.
        let boxed = cam.key_frame(&picture(w, h, Some(160)));
        let b = k.decode(&p, &boxed).unwrap();
        let row = 5 * GRID_W;
        assert!(b.grid[row + 18] > 200, "{:?}", &b.grid[row..row + GRID_W]);
        assert!(b.grid[row + 2].abs_diff(90) < 8);
        // The thumbnail is a JPEG of the whole picture.
        let jpeg = b.thumbnail().unwrap();
        let l = crate::motion::jpeg::luma_dc(&jpeg).unwrap();
        assert_eq!((l.width, l.height), (w / 8, h / 8));
    }

    /// Damage is an error naming what is wrong; the next good key frame decodes.
    #[test]
    fn garbage_is_refused_and_decoding_goes_on() {
        let (w, h) = (160, 112);
        let mut cam = Camera::new(w, h);
        let mut k = KeyFrames::default();
        let good = cam.key_frame(&picture(w, h, Some(40)));
        let p = cam.params.clone().unwrap();
        let msg = |r: Result<KeyPicture, H264Error>| r.err().expect("refused").to_string();
        // A length past the end, a cut length, no slices.
        assert!(msg(k.decode(&p, &[0, 0, 1, 0, 0x65, 1])).contains("runs past"));
        assert!(msg(k.decode(&p, &[0, 0])).contains("cut short"));
        assert!(msg(k.decode(&p, &[0, 0, 0, 2, 0x06, 5])).contains("without slices"));
        // Slices of noise, and the real frame with its slice data overwritten.
        let mut seed = 0x2545_f491_u32;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect()
        };
        for _ in 0..20 {
            let mut f = vec![0, 0, 0x10, 0x01, 0x65];
            f.extend(noise(0x1000));
            let _ = k.decode(&p, &f);
            let mut damaged = good.to_vec();
            let len = damaged.len();
            damaged[12..len].copy_from_slice(&noise(len - 12));
            if let Err(e) = k.decode(&p, &damaged) {
                assert!(e.to_string().contains("key frame"), "{e}");
            }
            assert!(k.decode(&p, &good).is_ok());
        }
        let fine = k.decode(&p, &good).unwrap();
        assert!(fine.grid[8 * GRID_W + 10] > 200, "{:?}", fine.grid);
        // Parameters that are not H.264, or an SPS of a picture too large, are refused.
        let mjpeg = Arc::new(VideoParams::mjpeg(640, 360));
        assert!(msg(k.decode(&mjpeg, &good)).contains("not an H.264"));
        // 16384x16 (1024 macroblocks across): a side too long.
        let wide = [0x67, 0x42, 0x00, 0x1e, 0xda, 0x00, 0x10, 0x03, 0x90];
        // The parameters of a stream with this SPS (and a fixed PPS).
        let with_sps = |sps: &[u8]| {
            let avc = mp4_atom::Codec::Avc1(mp4_atom::Avc1 {
                avcc: mp4_atom::Avcc::new(sps, &[0x68, 0xce, 0x38, 0x80]).unwrap(),
                ..Default::default()
            });
            Arc::new(VideoParams::from_entry(avc).unwrap())
        };
        let too_big = with_sps(&wide);
        let e = msg(k.decode(&too_big, &good));
        assert!(e.contains("16384x16"), "{e}");
        // 4096x2304 (allowed) with 16 reference frames: 253 MiB of pictures.
        let many = [
            0x67, 0x42, 0x00, 0x33, 0xd8, 0x44, 0x01, 0x00, 0x01, 0x21, 0x90,
        ];
        let too_many = with_sps(&many);
        let e = msg(k.decode(&too_many, &good));
        assert!(e.contains("4096x2304 pictures with 16 reference"), "{e}");
        // And after all of it, the camera's frames still decode.
        assert!(k.decode(&p, &good).is_ok());
    }
}
