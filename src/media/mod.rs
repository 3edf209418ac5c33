//! Media owns the MP4 bytes: writing camera frames as fragmented-MP4 segment files (the
//! segmenter), live fragments for browsers, assembling recordings into playable files for any
//! time range, and repairing files after a crash. Frames come in from capture; rows go out to
//! the storage index.

pub mod fmp4;
pub mod live;
pub mod recover;
pub mod segmenter;
pub mod view;
