//! Eyrie: network video recorder firmware for small ARM boards. Data flows one way:
//! capture (cameras) → media (fMP4 segments, live, views) → storage (redb index, retention),
//! with the recorder running cameras, federation deciding whom to trust among appliances,
//! discovery finding and pairing appliances on the LAN, accounts holding users and sessions,
//! and http serving the API. See README.md and docs/.
//!
//! Dependencies point one way: `base` (helpers that know nothing of cameras) ← the domain
//! modules (capture, media, storage, events, motion, recorder, federation, discovery, onvif,
//! system, accounts, config) ← `http` ← `main`. Nothing but `main` and its subcommands imports
//! `crate::http` (checked by the tests in `src/layers.rs`), and `fuzzing`, the fuzz targets'
//! entry points (`fuzz/`), which is not part of the interface.
//!
//! Locks are taken with `lock().unwrap()` (and `read()`/`write()`) everywhere, on purpose. A
//! std lock is poisoned only when a thread panicked while holding it, and release builds use
//! `panic = "abort"` (Cargo.toml): that panic has already ended the process, so no caller ever
//! meets a poisoned lock. In debug builds and tests such a panic is a bug, and the unwrap makes
//! it loud.

pub mod accounts;
pub mod base;
pub mod capture;
pub mod config;
pub mod discovery;
pub mod events;
pub mod federation;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod media;
pub mod motion;
pub mod onvif;
pub mod recorder;
pub mod storage;
pub mod system;
pub mod video;

#[cfg(test)]
mod layers;
