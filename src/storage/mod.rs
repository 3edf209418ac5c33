//! Storage owns what is on disk: the redb index (cameras, segments, events, settings, node identity), the
//! directory layout of segment files, the disk budget and retention. It knows nothing of MP4: the
//! media module writes files through the paths handed out here and reports them to the index.

mod index;
mod layout;
pub mod retention;

pub use index::{
    CameraOnvif, CameraRecord, DEFAULT_ROLL_S, EventRecord, FederationKeyRecord, Index, MediaMode,
    NewSegment, NodeKind, NodeRecord, Origin, Segment, SegmentFinish, SegmentState, StorageError,
    Transport, UserRecord, clip_span,
};
pub use layout::{Layout, valid_camera_id};
