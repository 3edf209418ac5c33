//! Everything the integration tests share, used by each test binary as `mod support;`: the node
//! harness (real `eyrie` processes on loopback), the one check of needed tools, the RTSP and
//! ONVIF test servers, ffmpeg/ffprobe checks, a fake HTTP peer, private LANs of network
//! namespaces and a fake appliance. The Python and shell helpers these start live beside them.

// Each test binary compiles this whole tree and uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod appliance;
pub mod media;
pub mod netns;
pub mod node;
pub mod onvif;
pub mod peer;
pub mod process;
pub mod rtsp;
pub mod tools;
pub mod web;

pub use media::{assert_decodes, mjpeg_clip, probe};
pub use node::{ADMIN_PASSWORD, ADMIN_USER, Eyrie};
pub use peer::{FakePeer, Reply};
pub use rtsp::RtspServer;
pub use web::{free_port, json_request, read_all};
