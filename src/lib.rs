//! Eyrie: network video recorder firmware for small ARM boards. Data flows one way:
//! capture (cameras) → media (fMP4 segments, live, views) → storage (redb index, retention),
//! with the recorder running cameras, federation deciding whom to trust among appliances,
//! discovery finding and pairing appliances on the LAN, and http serving the API. See README.md
//! and docs/.
//!
//! Locks are taken with `lock().unwrap()` (and `read()`/`write()`) everywhere, on purpose. A
//! std lock is poisoned only when a thread panicked while holding it, and release builds use
//! `panic = "abort"` (Cargo.toml): that panic has already ended the process, so no caller ever
//! meets a poisoned lock. In debug builds and tests such a panic is a bug, and the unwrap makes
//! it loud.

pub mod capture;
pub mod config;
pub mod discovery;
pub mod federation;
pub mod http;
pub mod media;
pub mod onvif;
pub mod recorder;
pub mod storage;
pub mod system;
pub mod video;
