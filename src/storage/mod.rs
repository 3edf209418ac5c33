//! Storage owns what is on disk: the redb index (cameras, segments, settings, node identity), the
//! directory layout of segment files, the disk budget and retention. It knows nothing of MP4: the
//! media module writes files through the paths handed out here and reports them to the index.

mod index;
mod layout;
pub mod retention;

pub use index::{
    CameraOnvif, CameraRecord, FederationKeyRecord, Index, MediaMode, NewSegment, NodeKind,
    NodeRecord, Segment, SegmentFinish, SegmentState, StorageError, Transport, UserRecord,
};
pub use layout::{Layout, valid_camera_id};
