//! Live video for browsers: one hub per camera, fed by the recorder, shared by every viewer.
//! Each frame becomes its own small fragment (low latency); a new viewer gets the init segment
//! and the frames since the latest key frame, then follows along. A viewer that falls more than
//! [`QUEUE_FRAMES`] behind is dropped, never buffered for.
//!
//! MJPEG, which browsers do not decode from MP4, goes out as `multipart/x-mixed-replace`
//! instead (what an `<img>` plays): no init segment, each frame one part, a new viewer starts
//! with the latest picture.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast;

use super::fmp4::{self, SampleMeta};
use super::segmenter::TimedFrame;
use crate::video::{Codec, VideoParams};

/// Separates the parts of a live MJPEG stream (long and unlike anything in a JPEG).
pub const MJPEG_BOUNDARY: &str = "eyrie-mjpeg-7c1f0d2a9b3e";

/// Frames queued per viewer before it is dropped (about 4 s at 15 fps).
pub const QUEUE_FRAMES: usize = 64;
/// The GOP kept for new viewers is capped; past it, new viewers wait for the next key frame.
const MAX_GOP_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub enum LiveMsg {
    /// One frame as a fragment, and whether it is a key frame.
    Fragment(Bytes, bool),
    /// The stream ended or changed parameters; viewers must reconnect.
    End,
}

#[derive(Default)]
struct Inner {
    init: Option<Bytes>,
    codec: String,
    mjpeg: bool,
    /// The frames since the latest key frame (cheap: shared buffers), each with its sequence
    /// number, turned into fragments only when a viewer subscribes.
    gop: Vec<(u32, TimedFrame)>,
    gop_bytes: usize,
    seq: u32,
}

pub struct LiveHub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<LiveMsg>,
}

/// What a new viewer starts from.
pub struct Subscription {
    /// Empty for MJPEG.
    pub init: Bytes,
    pub codec: String,
    /// The response's `Content-Type`.
    pub content_type: String,
    pub backlog: Vec<Bytes>,
    pub rx: broadcast::Receiver<LiveMsg>,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            tx: broadcast::channel(QUEUE_FRAMES).0,
        }
    }
}

/// One frame as a self-contained fragment (`moof` + `mdat`), or for MJPEG one part.
fn fragment(mjpeg: bool, seq: u32, tf: &TimedFrame) -> Bytes {
    if mjpeg {
        let jpeg = &tf.frame.data;
        let head = format!(
            "--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        );
        let mut buf = BytesMut::with_capacity(head.len() + jpeg.len() + 2);
        buf.extend_from_slice(head.as_bytes());
        buf.extend_from_slice(jpeg);
        buf.extend_from_slice(b"\r\n");
        return buf.freeze();
    }
    let header = fmp4::fragment_header(
        seq,
        tf.frame.pts.max(0) as u64,
        &[SampleMeta {
            duration: tf.duration,
            size: tf.frame.data.len() as u32,
            key: tf.frame.key,
        }],
    );
    let mut buf = BytesMut::with_capacity(header.len() + tf.frame.data.len());
    buf.extend_from_slice(&header);
    buf.extend_from_slice(&tf.frame.data);
    buf.freeze()
}

impl LiveHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A new run or new parameters: current viewers are ended, new ones get this init.
    pub fn start(&self, params: &VideoParams) {
        let mut g = self.inner.lock().unwrap();
        g.mjpeg = params.codec == Codec::Mjpeg;
        g.init = Some(if g.mjpeg {
            Bytes::new()
        } else {
            fmp4::init_segment(params, None)
        });
        g.codec = params.rfc6381.clone();
        g.gop.clear();
        g.gop_bytes = 0;
        let _ = self.tx.send(LiveMsg::End);
    }

    pub fn stop(&self) {
        let mut g = self.inner.lock().unwrap();
        g.init = None;
        g.gop.clear();
        g.gop_bytes = 0;
        let _ = self.tx.send(LiveMsg::End);
    }

    /// Called for every frame; costs a fragment encode only while someone watches.
    pub fn push(&self, tf: &TimedFrame) {
        let mut g = self.inner.lock().unwrap();
        if g.init.is_none() {
            return;
        }
        g.seq = g.seq.wrapping_add(1);
        let seq = g.seq;
        let size = tf.frame.data.len();
        if tf.frame.key {
            g.gop.clear();
            g.gop_bytes = 0;
        }
        if g.gop_bytes + size <= MAX_GOP_BYTES && (tf.frame.key || !g.gop.is_empty()) {
            g.gop_bytes += size;
            g.gop.push((seq, tf.clone()));
        }
        if self.tx.receiver_count() > 0 {
            let _ = self
                .tx
                .send(LiveMsg::Fragment(fragment(g.mjpeg, seq, tf), tf.frame.key));
        }
    }

    /// `None` while the camera is not streaming. Taken under the lock so the backlog and the
    /// receiver neither overlap nor leave a gap. With no key frame seen yet the backlog is
    /// empty and the viewer starts at the next one.
    pub fn subscribe(&self) -> Option<Subscription> {
        let g = self.inner.lock().unwrap();
        let init = g.init.clone()?;
        Some(Subscription {
            init,
            codec: g.codec.clone(),
            content_type: if g.mjpeg {
                format!("multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
            } else {
                "video/mp4".into()
            },
            backlog: (g.gop.iter())
                .map(|(seq, tf)| fragment(g.mjpeg, *seq, tf))
                .collect(),
            rx: self.tx.subscribe(),
        })
    }

    pub fn viewers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::{Frame, testing::h264_params};

    fn tf(pts: i64, key: bool) -> TimedFrame {
        TimedFrame {
            frame: Frame {
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
                pts,
                key,
                received: jiff::Timestamp::now(),
                new_params: None,
            },
            duration: 6000,
        }
    }

    #[test]
    fn new_viewer_starts_at_latest_key_frame() {
        let hub = LiveHub::new();
        assert!(hub.subscribe().is_none());
        hub.start(&h264_params());
        hub.push(&tf(0, false)); // no key frame yet: not kept
        for i in 1..5 {
            hub.push(&tf(i * 6000, i == 2));
        }
        let sub = hub.subscribe().unwrap();
        assert_eq!(sub.backlog.len(), 3);
        assert_eq!(sub.codec, "avc1.64001e");
        hub.stop();
        assert!(hub.subscribe().is_none());
    }

    #[test]
    fn slow_viewer_lags_out() {
        let hub = LiveHub::new();
        hub.start(&h264_params());
        let mut sub = hub.subscribe().unwrap();
        for i in 0..(QUEUE_FRAMES as i64 + 10) {
            hub.push(&tf(i * 6000, i % 15 == 0));
        }
        assert!(matches!(
            sub.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn mjpeg_goes_out_as_parts_from_the_latest_picture() {
        let hub = LiveHub::new();
        hub.start(&VideoParams::mjpeg(320, 240));
        let mut pic = tf(0, true);
        pic.frame.data = Bytes::from_static(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9]);
        hub.push(&pic);
        hub.push(&pic);
        let mut sub = hub.subscribe().unwrap();
        assert!(sub.init.is_empty());
        assert_eq!(
            sub.content_type,
            format!("multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
        );
        let want =
            format!("--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: 6\r\n\r\n");
        let mut part = want.into_bytes();
        part.extend_from_slice(&[0xFF, 0xD8, 1, 2, 0xFF, 0xD9, b'\r', b'\n']);
        assert_eq!(sub.backlog, vec![Bytes::from(part.clone())]);
        hub.push(&pic);
        match sub.rx.try_recv().unwrap() {
            LiveMsg::Fragment(b, key) => assert!(key && b == part),
            LiveMsg::End => panic!("ended"),
        }
    }
}
