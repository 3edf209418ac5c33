//! The redb index: what is recorded where, and everything else the node keeps. docs/storage.md
//! describes the same tables for people; keep the two in step.
//!
//! Tables (key → value, what for):
//!
//! * `meta`: `&str` → bytes. The node's own facts: `schema_version` (u32 LE, [`SCHEMA_VERSION`]),
//!   `node_id` (16-byte UUID, made at first open), the counters `last_segment_id` and
//!   `last_run_id` (u64 LE), `longest_segment_ms` (u64 LE, the longest segment ever finished),
//!   and `secret.{name}` (32 random bytes each, made at first use: [`Index::node_secret`]).
//! * `cameras`: camera id → JSON [`CameraRecord`]. The cameras the recorder runs.
//! * `segments`: `(camera, start_ms)` → [`SegmentRow`] (54 bytes, layout beside its codec below).
//!   Keyed by camera then start, so "camera X between t0 and t1" is one range scan.
//! * `segment_ids`: segment id `u64` → `(camera, start_ms)`, the key of that segment's row, for
//!   `/api/segments/{id}.mp4`.
//! * `settings`: `&str` → bytes in the format of the key's owner. Node-wide settings changed at
//!   run time (`admin`: the web UI's settings, JSON `config::AdminSettings`).
//! * `federation_keys`: key id → JSON [`FederationKeyRecord`]. Keys this node issued to peers
//!   (only the SHA-256 of each secret).
//! * `nodes`: node id → JSON [`NodeRecord`]. The remote nodes this node reads.
//! * `users`: user name → JSON [`UserRecord`]. The accounts that may log in.
//! * `events` (since schema 2): event id `u64` → JSON [`EventRecord`]. What happened: motion,
//!   camera events, markers; `end_ms` null while ongoing.
//! * `event_starts` (since schema 2): `(camera, start_ms, id)` → `()`. Every `events` row once,
//!   so "camera X's events between t0 and t1" is one range scan.
//! * `events_open` (since schema 2): event id → `()`. The events still open (ongoing, or left
//!   open by a crash: `events::EventLog::open` closes those at start).
//! * `events_protected` (since schema 2): event id → `()`. The events whose clip the user keeps.
//!
//! `meta` also holds `last_event_id` and `longest_event_ms` (u64 LE, the longest closed event).
//!
//! Invariants, each kept within one write transaction:
//!
//! * Every `segments` row has exactly one `segment_ids` entry naming its key, and every
//!   `segment_ids` entry names an existing row ([`Index::begin_segment`],
//!   [`Index::insert_finished`] and [`Index::remove_segment`] change both or neither).
//! * Segment ids are never reused: `meta.last_segment_id` is at least every id handed out.
//! * `meta.longest_segment_ms` is at least `end_ms − start_ms` of every finished row, so a range
//!   scan starting that far (or [`OPEN_SEGMENT_LOOKBACK_MS`], if more) before t0 finds every
//!   segment overlapping t0. It only ever grows.
//! * A row in state open either has a writer or was left by a crash; startup reconciliation
//!   (`media::recover`) settles every such row before any camera starts.
//! * Every `events` row has exactly one `event_starts` entry, an `events_open` entry exactly
//!   while its `end_ms` is null, and an `events_protected` entry exactly while `protected`;
//!   event ids are never reused (`meta.last_event_id`), and `meta.longest_event_ms` is at least
//!   `end_ms − start_ms` of every closed event, so a range scan that far back finds every
//!   closed event overlapping t0 (open ones come from `events_open`).
//! * A JSON value that does not decode is reported as [`StorageError::Corrupt`], never skipped.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TypeName, Value};
use serde::{Deserialize, Serialize};

pub use crate::video::Codec;

/// 1: the first schema. 2: the event tables (`events`, `event_starts`, `events_open`,
/// `events_protected`); migrating from 1 creates them empty.
pub const SCHEMA_VERSION: u32 = 2;

/// How far back a range query looks for a segment still being written (see [`Index::segments`]).
/// The segmenter closes segments at 300 s at most plus one GOP, well inside this.
pub const OPEN_SEGMENT_LOOKBACK_MS: i64 = 15 * 60 * 1000;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CAMERAS: TableDefinition<&str, &[u8]> = TableDefinition::new("cameras");
const SEGMENTS: TableDefinition<(&str, i64), SegmentRow> = TableDefinition::new("segments");
const SEGMENT_IDS: TableDefinition<u64, (&str, i64)> = TableDefinition::new("segment_ids");
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const FEDERATION_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("federation_keys");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const EVENT_STARTS: TableDefinition<(&str, i64, u64), ()> = TableDefinition::new("event_starts");
const EVENTS_OPEN: TableDefinition<u64, ()> = TableDefinition::new("events_open");
const EVENTS_PROTECTED: TableDefinition<u64, ()> = TableDefinition::new("events_protected");

/// Why the index could not answer. redb's errors stay typed, one variant per stage, so a caller
/// can tell a database another process holds ([`StorageError::Open`]) from a failed disk
/// ([`StorageError::Io`]) or a write that did not commit ([`StorageError::Commit`]). They are
/// boxed because some are large (a transaction error can carry a whole transaction) and every
/// index call returns this type.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database file could not be opened or created (held by another process, not a redb
    /// file, unreadable).
    #[error("database: {0}")]
    Open(#[source] Box<redb::DatabaseError>),
    /// A read or write transaction could not begin.
    #[error("database: {0}")]
    Transaction(#[source] Box<redb::TransactionError>),
    /// A table could not be opened: what is stored does not match its definition here.
    #[error("database: {0}")]
    Table(#[source] Box<redb::TableError>),
    /// Reading or writing the database file failed, or redb found it damaged.
    #[error("database: {0}")]
    Io(#[source] Box<redb::StorageError>),
    /// A write transaction did not commit: nothing of it is stored.
    #[error("database: {0}")]
    Commit(#[source] Box<redb::CommitError>),
    #[error(
        "database schema version {found} is newer than this build understands ({SCHEMA_VERSION}); upgrade Eyrie"
    )]
    TooNew { found: u32 },
    #[error("corrupt {what} in the index: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

macro_rules! from_redb {
    ($($variant:ident($t:ty)),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::$variant(Box::new(e))
            }
        }
    )*};
}
from_redb!(
    Open(redb::DatabaseError),
    Transaction(redb::TransactionError),
    Table(redb::TableError),
    Io(redb::StorageError),
    Commit(redb::CommitError)
);

pub type Result<T> = std::result::Result<T, StorageError>;

/// A person who may log in to the web UI and API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// Argon2id PHC string (`$argon2id$v=19$...`); never sent in any answer.
    pub password_hash: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

/// A camera as stored. `source` never carries credentials: they live in `username`/`password`,
/// which are write-only through the API (the RTSP client needs them in clear to authenticate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraRecord {
    pub id: String,
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub transport: Transport,
    pub enabled: bool,
    /// Maximum age of this camera's recordings, in days. `None`: only the disk budget applies.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Maximum age of this camera's segments that overlap an event (with the rolls below).
    /// `None`: the same as `retention_days`.
    #[serde(default)]
    pub event_retention_days: Option<u32>,
    /// Seconds of recording before an event's start that belong to its clip.
    #[serde(default = "default_roll_s")]
    pub pre_roll_s: u32,
    /// Seconds of recording after an event's end that belong to its clip.
    #[serde(default = "default_roll_s")]
    pub post_roll_s: u32,
    pub created_ms: i64,
    /// The camera's ONVIF device service, for its own events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onvif: Option<CameraOnvif>,
    /// Eyrie's own motion detection for this camera (off in records written before it).
    #[serde(default)]
    pub motion: crate::motion::Settings,
}

/// A camera's ONVIF service (`src/onvif/events.rs` subscribes to its events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraOnvif {
    /// The device service address, `http://host[:port]/…` (checked by
    /// `onvif::device_address`).
    pub xaddr: String,
    /// Whether the camera's events are subscribed to.
    #[serde(default)]
    pub events: bool,
    /// An event the camera does not say is over is closed this long after its last "on".
    pub quiet_seconds: u32,
    /// ONVIF credentials when they are not the stream's (some cameras keep ONVIF users apart);
    /// write-only like the stream's.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Pre- and post-roll of a camera that has not set them.
pub const DEFAULT_ROLL_S: u32 = 5;

fn default_roll_s() -> u32 {
    DEFAULT_ROLL_S
}

/// An event's clip with the given rolls in seconds (the default ones when `None`), saturating.
pub fn clip_span(start_ms: i64, end_ms: i64, rolls: Option<(u32, u32)>) -> (i64, i64) {
    let (pre, post) = rolls.unwrap_or((DEFAULT_ROLL_S, DEFAULT_ROLL_S));
    (
        start_ms.saturating_sub(i64::from(pre) * 1000),
        end_ms.max(start_ms).saturating_add(i64::from(post) * 1000),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentState {
    /// Being written now, or the process died while writing it (recovery fixes those at start).
    Open,
    Closed,
    /// Was open when the process stopped; truncated to its last complete fragment at start.
    Recovered,
}

/// One segment's row. `end_ms` is wall-clock; `media_ticks` is the sum of its frame durations
/// in 90 kHz units (what a player sees).
///
/// Stored as [`ROW_LEN`] bytes, every number little-endian:
///
/// ```text
/// offset  size  field
///      0     8  id           u64, also the key of its `segment_ids` entry
///      8     8  end_ms       i64, wall-clock end (= start while nothing is written yet)
///     16     8  media_ticks  u64, sum of frame durations, 90 kHz
///     24     8  bytes        u64, size of the segment file
///     32     4  frames       u32
///     36     4  key_frames   u32
///     40     8  run_id       u64, one per (re)connection of the camera
///     48     2  width        u16, pixels
///     50     2  height       u16, pixels
///     52     1  codec        1 H.264, 2 H.265, 3 MJPEG (any other byte reads as H.264)
///     53     1  state        0 open, 1 closed, 2 recovered (any other byte reads as recovered)
/// ```
///
/// The width is fixed ([`Value::fixed_width`]): a new field needs a new schema version and a
/// migration in [`Index::open`], never a longer row in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRow {
    pub id: u64,
    pub end_ms: i64,
    pub media_ticks: u64,
    pub bytes: u64,
    pub frames: u32,
    pub key_frames: u32,
    pub run_id: u64,
    pub width: u16,
    pub height: u16,
    pub codec: Codec,
    pub state: SegmentState,
}

/// Bytes of an encoded [`SegmentRow`].
const ROW_LEN: usize = 54;

impl Value for SegmentRow {
    type SelfType<'a> = SegmentRow;
    type AsBytes<'a> = [u8; ROW_LEN];

    fn fixed_width() -> Option<usize> {
        Some(ROW_LEN)
    }

    fn from_bytes<'a>(d: &'a [u8]) -> SegmentRow
    where
        Self: 'a,
    {
        let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_le_bytes(d[o..o + 2].try_into().unwrap());
        SegmentRow {
            id: u64_at(0),
            end_ms: u64_at(8) as i64,
            media_ticks: u64_at(16),
            bytes: u64_at(24),
            frames: u32_at(32),
            key_frames: u32_at(36),
            run_id: u64_at(40),
            width: u16_at(48),
            height: u16_at(50),
            codec: match d[52] {
                2 => Codec::H265,
                3 => Codec::Mjpeg,
                _ => Codec::H264,
            },
            state: match d[53] {
                0 => SegmentState::Open,
                1 => SegmentState::Closed,
                _ => SegmentState::Recovered,
            },
        }
    }

    fn as_bytes<'a, 'b: 'a>(r: &'a SegmentRow) -> [u8; ROW_LEN]
    where
        Self: 'b,
    {
        let mut d = [0u8; ROW_LEN];
        d[0..8].copy_from_slice(&r.id.to_le_bytes());
        d[8..16].copy_from_slice(&r.end_ms.to_le_bytes());
        d[16..24].copy_from_slice(&r.media_ticks.to_le_bytes());
        d[24..32].copy_from_slice(&r.bytes.to_le_bytes());
        d[32..36].copy_from_slice(&r.frames.to_le_bytes());
        d[36..40].copy_from_slice(&r.key_frames.to_le_bytes());
        d[40..48].copy_from_slice(&r.run_id.to_le_bytes());
        d[48..50].copy_from_slice(&r.width.to_le_bytes());
        d[50..52].copy_from_slice(&r.height.to_le_bytes());
        d[52] = match r.codec {
            Codec::H264 => 1,
            Codec::H265 => 2,
            Codec::Mjpeg => 3,
        };
        d[53] = match r.state {
            SegmentState::Open => 0,
            SegmentState::Closed => 1,
            SegmentState::Recovered => 2,
        };
        d
    }

    fn type_name() -> TypeName {
        TypeName::new("eyrie::SegmentRow")
    }
}

/// A federation key this node issued: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationKeyRecord {
    pub id: String,
    pub name: String,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
    pub created_ms: i64,
    #[serde(default)]
    pub last_used_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Another Eyrie: its own protocol (docs/federation.md).
    #[default]
    Eyrie,
    /// A CartaNVR (Node.js) node, read with its API's calls.
    Cartanvr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Browsers fetch the peer's media from the peer itself.
    #[default]
    Direct,
    /// This node streams the peer's media through itself.
    Relay,
}

/// A remote node this node reads. `key` is the federation key the peer issued to us: it must be
/// presented in clear, so it is stored as given, and never returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: String,
    pub label: String,
    pub url: String,
    #[serde(default)]
    pub key: Option<String>,
    pub enabled: bool,
    #[serde(default)]
    pub kind: NodeKind,
    #[serde(default)]
    pub media_mode: MediaMode,
    /// SHA-256 fingerprint of the peer's TLS certificate, pinned (HTTPS peers).
    #[serde(default)]
    pub tls_pin: Option<String>,
    pub created_ms: i64,
}

/// Who noticed an event: the camera itself (ONVIF events) or Eyrie (its motion detector, a
/// user's marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Camera,
    Eyrie,
}

/// One event as stored. `end_ms` is `None` while it is ongoing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: u64,
    pub camera: String,
    pub kind: String,
    pub origin: Origin,
    pub start_ms: i64,
    #[serde(default)]
    pub end_ms: Option<i64>,
    #[serde(default)]
    pub score: Option<f32>,
    #[serde(default)]
    pub zone: Option<String>,
    /// The user keeps this event's clip: retention never deletes its segments.
    #[serde(default)]
    pub protected: bool,
    /// A thumbnail file exists (`Layout::thumbnail_path`).
    #[serde(default)]
    pub thumbnail: bool,
}

impl EventRecord {
    /// Whether it overlaps `[start_ms, end_ms)` (an open event lasts until now; an event of no
    /// length overlaps a range that holds its start).
    pub fn overlaps(&self, start_ms: i64, end_ms: i64) -> bool {
        self.start_ms < end_ms
            && (self.start_ms >= start_ms || self.end_ms.is_none_or(|e| e > start_ms))
    }
}

/// A segment with its key, as handed out to readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub camera: String,
    pub start_ms: i64,
    pub row: SegmentRow,
}

/// What the segmenter knows when it opens a segment file.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    pub camera: &'a str,
    pub start_ms: i64,
    pub run_id: u64,
    pub codec: Codec,
    pub width: u16,
    pub height: u16,
}

/// What the segmenter knows when it closes one.
#[derive(Debug, Clone, Copy)]
pub struct SegmentFinish {
    pub end_ms: i64,
    pub media_ticks: u64,
    pub bytes: u64,
    pub frames: u32,
    pub key_frames: u32,
    pub state: SegmentState,
}

pub struct Index {
    db: Database,
    node_id: uuid::Uuid,
}

fn meta_u64(t: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<u64> {
    Ok(match t.get(key)? {
        Some(v) => u64::from_le_bytes(v.value().try_into().map_err(|_| StorageError::Corrupt {
            what: "meta",
            detail: key.to_string(),
        })?),
        None => 0,
    })
}

impl Index {
    /// Opens or creates the database, creating every table and the node id on first start.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        let node_id;
        {
            let mut meta = tx.open_table(META)?;
            let version = match meta.get("schema_version")? {
                Some(v) => Some(u32::from_le_bytes(v.value().try_into().map_err(|_| {
                    StorageError::Corrupt {
                        what: "meta",
                        detail: "schema_version".into(),
                    }
                })?)),
                None => None,
            };
            match version {
                Some(found) if found > SCHEMA_VERSION => {
                    return Err(StorageError::TooNew { found });
                }
                // Each step migrates from the version before, inside this same transaction.
                // 1 → 2: the event tables, created empty by the `open_table` calls below.
                Some(found) if found < SCHEMA_VERSION => {
                    tracing::info!(from = found, to = SCHEMA_VERSION, "migrating the index");
                    meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                }
            }
            let existing = meta
                .get("node_id")?
                .map(|v| uuid::Uuid::from_slice(v.value()));
            node_id = match existing {
                Some(Ok(id)) => id,
                Some(Err(e)) => {
                    return Err(StorageError::Corrupt {
                        what: "meta",
                        detail: format!("node_id: {e}"),
                    });
                }
                None => {
                    let id = uuid::Uuid::new_v4();
                    meta.insert("node_id", id.as_bytes().as_slice())?;
                    id
                }
            };
            tx.open_table(CAMERAS)?;
            tx.open_table(SEGMENTS)?;
            tx.open_table(SEGMENT_IDS)?;
            tx.open_table(SETTINGS)?;
            tx.open_table(FEDERATION_KEYS)?;
            tx.open_table(NODES)?;
            tx.open_table(USERS)?;
            tx.open_table(EVENTS)?;
            tx.open_table(EVENT_STARTS)?;
            tx.open_table(EVENTS_OPEN)?;
            tx.open_table(EVENTS_PROTECTED)?;
        }
        tx.commit()?;
        Ok(Self { db, node_id })
    }

    pub fn node_id(&self) -> uuid::Uuid {
        self.node_id
    }

    // ---- cameras ----

    pub fn cameras(&self) -> Result<Vec<CameraRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CAMERAS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(decode_camera(v.value())?);
        }
        Ok(out)
    }

    pub fn camera(&self, id: &str) -> Result<Option<CameraRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CAMERAS)?;
        t.get(id)?.map(|v| decode_camera(v.value())).transpose()
    }

    /// Inserts or replaces a camera. Returns false (and writes nothing) when `create_only` and the
    /// id is taken.
    pub fn put_camera(&self, cam: &CameraRecord, create_only: bool) -> Result<bool> {
        let json = serde_json::to_vec(cam).expect("camera serializes");
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(CAMERAS)?;
            if create_only && t.get(cam.id.as_str())?.is_some() {
                return Ok(false);
            }
            t.insert(cam.id.as_str(), json.as_slice())?;
        }
        tx.commit()?;
        Ok(true)
    }

    pub fn delete_camera(&self, id: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(CAMERAS)?.remove(id)?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    // ---- federation keys ----

    pub fn federation_keys(&self) -> Result<Vec<FederationKeyRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(FEDERATION_KEYS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|e| StorageError::Corrupt {
                    what: "federation key",
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    pub fn put_federation_key(&self, k: &FederationKeyRecord) -> Result<()> {
        let json = serde_json::to_vec(k).expect("key serializes");
        let tx = self.db.begin_write()?;
        tx.open_table(FEDERATION_KEYS)?
            .insert(k.id.as_str(), json.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_federation_key(&self, id: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(FEDERATION_KEYS)?.remove(id)?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    // ---- remote nodes ----

    pub fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(NODES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|e| StorageError::Corrupt {
                    what: "node",
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    pub fn put_node(&self, n: &NodeRecord) -> Result<()> {
        let json = serde_json::to_vec(n).expect("node serializes");
        let tx = self.db.begin_write()?;
        tx.open_table(NODES)?
            .insert(n.id.as_str(), json.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_node(&self, id: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(NODES)?.remove(id)?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    // ---- user accounts ----

    pub fn users(&self) -> Result<Vec<UserRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(USERS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(
                serde_json::from_slice(v.value()).map_err(|e| StorageError::Corrupt {
                    what: "user",
                    detail: e.to_string(),
                })?,
            );
        }
        Ok(out)
    }

    /// Stores `u`; with `create_only`, returns false and changes nothing when the name exists.
    pub fn put_user(&self, u: &UserRecord, create_only: bool) -> Result<bool> {
        let json = serde_json::to_vec(u).expect("user serializes");
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(USERS)?;
            if create_only && t.get(u.name.as_str())?.is_some() {
                return Ok(false);
            }
            t.insert(u.name.as_str(), json.as_slice())?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// A random secret of this node's, made at first use (e.g. the media-token key).
    pub fn node_secret(&self, name: &str) -> Result<[u8; 32]> {
        let key = format!("secret.{name}");
        let tx = self.db.begin_write()?;
        let secret = {
            let mut meta = tx.open_table(META)?;
            let existing = meta
                .get(key.as_str())?
                .and_then(|v| <[u8; 32]>::try_from(v.value()).ok());
            match existing {
                Some(s) => s,
                None => {
                    let s = crate::base::secret::random_bytes::<32>();
                    meta.insert(key.as_str(), s.as_slice())?;
                    s
                }
            }
        };
        tx.commit()?;
        Ok(secret)
    }

    // ---- settings ----

    /// A setting the admin stored (raw bytes; its owner decides the format).
    pub fn setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SETTINGS)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Stores (`Some`) or removes (`None`) a setting.
    pub fn set_setting(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(SETTINGS)?;
            match value {
                Some(v) => {
                    t.insert(key, v)?;
                }
                None => {
                    t.remove(key)?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- segments ----

    fn bump_counter(meta: &mut redb::Table<&str, &[u8]>, key: &str) -> Result<u64> {
        let next = meta_u64(meta, key)? + 1;
        meta.insert(key, next.to_le_bytes().as_slice())?;
        Ok(next)
    }

    /// A new run id: every (re)connection of a camera starts a run, so gaps stay visible.
    pub fn next_run_id(&self) -> Result<u64> {
        let tx = self.db.begin_write()?;
        let id = Self::bump_counter(&mut tx.open_table(META)?, "last_run_id")?;
        tx.commit()?;
        Ok(id)
    }

    /// Inserts an open segment row. If `(camera, start_ms)` is taken (a clock step backwards), the
    /// start moves forward a millisecond at a time; the returned start is the one used.
    pub fn begin_segment(&self, s: &NewSegment) -> Result<(u64, i64)> {
        let tx = self.db.begin_write()?;
        let out;
        {
            let mut meta = tx.open_table(META)?;
            let id = Self::bump_counter(&mut meta, "last_segment_id")?;
            let mut segs = tx.open_table(SEGMENTS)?;
            let mut start = s.start_ms;
            while segs.get((s.camera, start))?.is_some() {
                start += 1;
            }
            let row = SegmentRow {
                id,
                end_ms: start,
                media_ticks: 0,
                bytes: 0,
                frames: 0,
                key_frames: 0,
                run_id: s.run_id,
                width: s.width,
                height: s.height,
                codec: s.codec,
                state: SegmentState::Open,
            };
            segs.insert((s.camera, start), row)?;
            tx.open_table(SEGMENT_IDS)?.insert(id, (s.camera, start))?;
            out = (id, start);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records a segment's final numbers (or its recovered ones).
    pub fn finish_segment(&self, camera: &str, start_ms: i64, f: &SegmentFinish) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut segs = tx.open_table(SEGMENTS)?;
            let mut row = match segs.get((camera, start_ms))? {
                Some(r) => r.value(),
                None => {
                    return Err(StorageError::Corrupt {
                        what: "segment",
                        detail: format!("{camera}/{start_ms} vanished while open"),
                    });
                }
            };
            row.end_ms = f.end_ms;
            row.media_ticks = f.media_ticks;
            row.bytes = f.bytes;
            row.frames = f.frames;
            row.key_frames = f.key_frames;
            row.state = f.state;
            segs.insert((camera, start_ms), row)?;
            let mut meta = tx.open_table(META)?;
            let longest = meta_u64(&meta, "longest_segment_ms")?;
            let len = (f.end_ms - start_ms).max(0) as u64;
            if len > longest {
                meta.insert("longest_segment_ms", len.to_le_bytes().as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Inserts finished segments in one transaction: files found on disk with no row (recovery),
    /// or many rows at once. Starts move forward past taken keys as in [`Index::begin_segment`].
    pub fn insert_finished(&self, rows: &[(NewSegment, SegmentFinish)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let mut segs = tx.open_table(SEGMENTS)?;
            let mut ids = tx.open_table(SEGMENT_IDS)?;
            let mut id = meta_u64(&meta, "last_segment_id")?;
            let mut longest = meta_u64(&meta, "longest_segment_ms")?;
            for (s, f) in rows {
                id += 1;
                let mut start = s.start_ms;
                while segs.get((s.camera, start))?.is_some() {
                    start += 1;
                }
                let row = SegmentRow {
                    id,
                    end_ms: f.end_ms,
                    media_ticks: f.media_ticks,
                    bytes: f.bytes,
                    frames: f.frames,
                    key_frames: f.key_frames,
                    run_id: s.run_id,
                    width: s.width,
                    height: s.height,
                    codec: s.codec,
                    state: f.state,
                };
                segs.insert((s.camera, start), row)?;
                ids.insert(id, (s.camera, start))?;
                longest = longest.max((f.end_ms - start).max(0) as u64);
            }
            meta.insert("last_segment_id", id.to_le_bytes().as_slice())?;
            meta.insert("longest_segment_ms", longest.to_le_bytes().as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn remove_segment(&self, camera: &str, start_ms: i64) -> Result<Option<SegmentRow>> {
        let tx = self.db.begin_write()?;
        let removed;
        {
            let mut segs = tx.open_table(SEGMENTS)?;
            removed = segs.remove((camera, start_ms))?.map(|r| r.value());
            if let Some(row) = &removed {
                tx.open_table(SEGMENT_IDS)?.remove(row.id)?;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Segments of `camera` that overlap `[start_ms, end_ms)`, oldest first. One range scan: it
    /// starts early enough to catch a segment that began before `start_ms` (no closed segment is
    /// longer than the longest one ever closed, which `meta` remembers; an open one is younger than
    /// [`OPEN_SEGMENT_LOOKBACK_MS`]). Open rows are returned whole: their end is known only to
    /// the writer, which the caller asks.
    pub fn segments(&self, camera: &str, start_ms: i64, end_ms: i64) -> Result<Vec<Segment>> {
        let tx = self.db.begin_read()?;
        let longest = meta_u64(&tx.open_table(META)?, "longest_segment_ms")? as i64;
        let segs = tx.open_table(SEGMENTS)?;
        let from = start_ms.saturating_sub(longest.max(OPEN_SEGMENT_LOOKBACK_MS));
        let mut out = Vec::new();
        for item in segs.range((camera, from)..(camera, end_ms))? {
            let (k, v) = item?;
            let row = v.value();
            if row.end_ms > start_ms || row.state == SegmentState::Open {
                out.push(Segment {
                    camera: camera.to_string(),
                    start_ms: k.value().1,
                    row,
                });
            }
        }
        Ok(out)
    }

    pub fn segment_by_id(&self, id: u64) -> Result<Option<Segment>> {
        let tx = self.db.begin_read()?;
        let ids = tx.open_table(SEGMENT_IDS)?;
        let Some(key) = ids.get(id)? else {
            return Ok(None);
        };
        let (camera, start) = key.value();
        let segs = tx.open_table(SEGMENTS)?;
        Ok(segs.get((camera, start))?.map(|r| Segment {
            camera: camera.to_string(),
            start_ms: start,
            row: r.value(),
        }))
    }

    /// Every segment row, for recovery at start and for the byte total.
    pub fn all_segments(&self) -> Result<Vec<Segment>> {
        let tx = self.db.begin_read()?;
        let segs = tx.open_table(SEGMENTS)?;
        let mut out = Vec::with_capacity(segs.len()? as usize);
        for item in segs.iter()? {
            let (k, v) = item?;
            let (camera, start) = k.value();
            out.push(Segment {
                camera: camera.to_string(),
                start_ms: start,
                row: v.value(),
            });
        }
        Ok(out)
    }

    /// The oldest closed or recovered segment of `camera`, if any.
    pub fn oldest_segment(&self, camera: &str) -> Result<Option<Segment>> {
        let tx = self.db.begin_read()?;
        let segs = tx.open_table(SEGMENTS)?;
        for item in segs.range((camera, i64::MIN)..=(camera, i64::MAX))? {
            let (k, v) = item?;
            let row = v.value();
            if row.state != SegmentState::Open {
                let (cam, start) = k.value();
                return Ok(Some(Segment {
                    camera: cam.to_string(),
                    start_ms: start,
                    row,
                }));
            }
        }
        Ok(None)
    }

    /// Camera ids that have segment rows, including cameras deleted with their recordings kept.
    /// One short range read per camera, skipping over each camera's rows.
    pub fn cameras_with_segments(&self) -> Result<Vec<String>> {
        use std::ops::Bound;
        let tx = self.db.begin_read()?;
        let segs = tx.open_table(SEGMENTS)?;
        let mut out: Vec<String> = Vec::new();
        loop {
            let lower = match out.last() {
                None => Bound::Unbounded,
                Some(c) => Bound::Excluded((c.as_str(), i64::MAX)),
            };
            let next = segs
                .range::<(&str, i64)>((lower, Bound::Unbounded))?
                .next()
                .transpose()?;
            match next {
                Some((k, _)) => out.push(k.value().0.to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// The event tables, opened together in one write transaction.
struct EventTables<'t> {
    meta: redb::Table<'t, &'static str, &'static [u8]>,
    events: redb::Table<'t, u64, &'static [u8]>,
    starts: redb::Table<'t, (&'static str, i64, u64), ()>,
    open: redb::Table<'t, u64, ()>,
    protected: redb::Table<'t, u64, ()>,
}

impl<'t> EventTables<'t> {
    fn new(tx: &'t redb::WriteTransaction) -> Result<Self> {
        Ok(Self {
            meta: tx.open_table(META)?,
            events: tx.open_table(EVENTS)?,
            starts: tx.open_table(EVENT_STARTS)?,
            open: tx.open_table(EVENTS_OPEN)?,
            protected: tx.open_table(EVENTS_PROTECTED)?,
        })
    }

    fn get(&self, id: u64) -> Result<Option<EventRecord>> {
        self.events
            .get(id)?
            .map(|v| decode_event(v.value()))
            .transpose()
    }

    /// Writes `e` and keeps the other tables in step with it (its start never changes).
    fn put(&mut self, e: &EventRecord) -> Result<()> {
        let json = serde_json::to_vec(e).expect("event serializes");
        self.events.insert(e.id, json.as_slice())?;
        self.starts
            .insert((e.camera.as_str(), e.start_ms, e.id), ())?;
        match e.end_ms {
            None => {
                self.open.insert(e.id, ())?;
            }
            Some(end) => {
                self.open.remove(e.id)?;
                let longest = meta_u64(&self.meta, "longest_event_ms")?;
                let len = end.saturating_sub(e.start_ms).max(0) as u64;
                if len > longest {
                    self.meta
                        .insert("longest_event_ms", len.to_le_bytes().as_slice())?;
                }
            }
        }
        if e.protected {
            self.protected.insert(e.id, ())?;
        } else {
            self.protected.remove(e.id)?;
        }
        Ok(())
    }
}

impl Index {
    // ---- events ----

    /// Stores a new event (its `id` is ignored) and returns it with the id it was given.
    pub fn insert_event(&self, e: &EventRecord) -> Result<EventRecord> {
        let tx = self.db.begin_write()?;
        let out;
        {
            let mut t = EventTables::new(&tx)?;
            let id = Self::bump_counter(&mut t.meta, "last_event_id")?;
            out = EventRecord { id, ..e.clone() };
            t.put(&out)?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Changes event `id` with `change` in one transaction; `Ok(None)` when there is no such
    /// event. `change` may not move the start or the camera (they are the row's other key);
    /// it returns whether it changed anything (nothing is written when not).
    pub fn update_event(
        &self,
        id: u64,
        change: impl FnOnce(&mut EventRecord) -> bool,
    ) -> Result<Option<EventRecord>> {
        let tx = self.db.begin_write()?;
        let out;
        {
            let mut t = EventTables::new(&tx)?;
            let Some(mut e) = t.get(id)? else {
                return Ok(None);
            };
            let (camera, start) = (e.camera.clone(), e.start_ms);
            if change(&mut e) {
                e.id = id;
                e.camera = camera;
                e.start_ms = start;
                t.put(&e)?;
            }
            out = e;
        }
        tx.commit()?;
        Ok(Some(out))
    }

    pub fn event(&self, id: u64) -> Result<Option<EventRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(EVENTS)?;
        t.get(id)?.map(|v| decode_event(v.value())).transpose()
    }

    /// Removes event `id` from every event table; returns it if it existed.
    pub fn remove_event(&self, id: u64) -> Result<Option<EventRecord>> {
        let tx = self.db.begin_write()?;
        let removed;
        {
            let mut t = EventTables::new(&tx)?;
            removed = t.get(id)?;
            if let Some(e) = &removed {
                t.events.remove(id)?;
                t.starts.remove((e.camera.as_str(), e.start_ms, id))?;
                t.open.remove(id)?;
                t.protected.remove(id)?;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Events of `camera` that overlap `[start_ms, end_ms)` ([`EventRecord::overlaps`]), in
    /// start order, at most `limit` of them (the earliest). One range scan from the longest
    /// closed event before `start_ms`, and the open events.
    pub fn events(
        &self,
        camera: &str,
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let tx = self.db.begin_read()?;
        let longest = meta_u64(&tx.open_table(META)?, "longest_event_ms")?;
        let events = tx.open_table(EVENTS)?;
        let starts = tx.open_table(EVENT_STARTS)?;
        let from = start_ms.saturating_sub(i64::try_from(longest).unwrap_or(i64::MAX));
        let mut out: Vec<EventRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Open events that began before the scan's window.
        for item in tx.open_table(EVENTS_OPEN)?.iter()? {
            let id = item?.0.value();
            if let Some(v) = events.get(id)? {
                let e = decode_event(v.value())?;
                if e.camera == camera && e.start_ms < from && e.overlaps(start_ms, end_ms) {
                    seen.insert(e.id);
                    out.push(e);
                }
            }
        }
        for item in starts.range((camera, from, 0)..(camera, end_ms, 0))? {
            if out.len() >= limit {
                break;
            }
            let id = item?.0.value().2;
            if seen.contains(&id) {
                continue;
            }
            let Some(v) = events.get(id)? else {
                return Err(StorageError::Corrupt {
                    what: "event",
                    detail: format!("event_starts names missing event {id}"),
                });
            };
            let e = decode_event(v.value())?;
            if e.overlaps(start_ms, end_ms) {
                out.push(e);
            }
        }
        out.sort_by_key(|e| (e.start_ms, e.id));
        out.truncate(limit);
        Ok(out)
    }

    /// Every event still open.
    pub fn open_events(&self) -> Result<Vec<EventRecord>> {
        self.events_in(EVENTS_OPEN)
    }

    /// Every protected event.
    pub fn protected_events(&self) -> Result<Vec<EventRecord>> {
        self.events_in(EVENTS_PROTECTED)
    }

    fn events_in(&self, set: TableDefinition<u64, ()>) -> Result<Vec<EventRecord>> {
        let tx = self.db.begin_read()?;
        let events = tx.open_table(EVENTS)?;
        let mut out = Vec::new();
        for item in tx.open_table(set)?.iter()? {
            let id = item?.0.value();
            if let Some(v) = events.get(id)? {
                out.push(decode_event(v.value())?);
            }
        }
        Ok(out)
    }

    /// Camera ids that have events, in order (one short range read per camera).
    pub fn cameras_with_events(&self) -> Result<Vec<String>> {
        use std::ops::Bound;
        let tx = self.db.begin_read()?;
        let starts = tx.open_table(EVENT_STARTS)?;
        let mut out: Vec<String> = Vec::new();
        loop {
            let lower = match out.last() {
                None => Bound::Unbounded,
                Some(c) => Bound::Excluded((c.as_str(), i64::MAX, u64::MAX)),
            };
            let next = starts
                .range::<(&str, i64, u64)>((lower, Bound::Unbounded))?
                .next()
                .transpose()?;
            match next {
                Some((k, _)) => out.push(k.value().0.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// The newest segment row of `camera` (open or not), if any.
    pub fn newest_segment(&self, camera: &str) -> Result<Option<Segment>> {
        let tx = self.db.begin_read()?;
        let segs = tx.open_table(SEGMENTS)?;
        let last = segs
            .range((camera, i64::MIN)..=(camera, i64::MAX))?
            .next_back()
            .transpose()?;
        Ok(last.map(|(k, v)| Segment {
            camera: camera.to_string(),
            start_ms: k.value().1,
            row: v.value(),
        }))
    }

    /// Closed or recovered segments of `camera` starting after `after_ms` (exclusive), oldest
    /// first, at most `limit`: retention walks a camera's segments in order with it.
    pub fn segments_after(
        &self,
        camera: &str,
        after_ms: i64,
        limit: usize,
    ) -> Result<Vec<Segment>> {
        use std::ops::Bound;
        let tx = self.db.begin_read()?;
        let segs = tx.open_table(SEGMENTS)?;
        let mut out = Vec::new();
        for item in segs.range::<(&str, i64)>((
            Bound::Excluded((camera, after_ms)),
            Bound::Included((camera, i64::MAX)),
        ))? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let row = v.value();
            if row.state != SegmentState::Open {
                out.push(Segment {
                    camera: camera.to_string(),
                    start_ms: k.value().1,
                    row,
                });
            }
        }
        Ok(out)
    }
}

fn decode_event(bytes: &[u8]) -> Result<EventRecord> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        what: "event",
        detail: e.to_string(),
    })
}

fn decode_camera(bytes: &[u8]) -> Result<CameraRecord> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        what: "camera",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_for(camera: &str, start: i64, run: u64) -> NewSegment<'_> {
        NewSegment {
            camera,
            start_ms: start,
            run_id: run,
            codec: Codec::H264,
            width: 640,
            height: 360,
        }
    }

    fn finish(end_ms: i64) -> SegmentFinish {
        SegmentFinish {
            end_ms,
            media_ticks: 0,
            bytes: 100,
            frames: 10,
            key_frames: 1,
            state: SegmentState::Closed,
        }
    }

    #[test]
    fn row_encoding_round_trips() {
        let r = SegmentRow {
            id: 7,
            end_ms: -5,
            media_ticks: u64::MAX - 1,
            bytes: 1 << 40,
            frames: 3,
            key_frames: 1,
            run_id: 9,
            width: 1920,
            height: 1080,
            codec: Codec::H265,
            state: SegmentState::Recovered,
        };
        let b = SegmentRow::as_bytes(&r);
        assert_eq!(SegmentRow::from_bytes(&b), r);
    }

    #[test]
    fn range_query_finds_overlaps_and_node_id_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        let idx = Index::open(&path).unwrap();
        let node = idx.node_id();
        for (cam, start) in [("a", 0), ("a", 60_000), ("a", 120_000), ("b", 30_000)] {
            let (_, s) = idx.begin_segment(&row_for(cam, start, 1)).unwrap();
            idx.finish_segment(cam, s, &finish(s + 60_000)).unwrap();
        }
        let got: Vec<i64> = idx
            .segments("a", 70_000, 130_000)
            .unwrap()
            .iter()
            .map(|s| s.start_ms)
            .collect();
        assert_eq!(got, vec![60_000, 120_000]);
        assert!(idx.segments("a", 180_000, 200_000).unwrap().is_empty());
        assert_eq!(idx.segments("b", 0, 1).unwrap().len(), 0);
        assert_eq!(idx.cameras_with_segments().unwrap(), vec!["a", "b"]);
        assert_eq!(idx.oldest_segment("a").unwrap().unwrap().start_ms, 0);
        let first = idx.segments("a", 0, 1).unwrap().remove(0);
        assert_eq!(
            idx.segment_by_id(first.row.id).unwrap().unwrap().start_ms,
            0
        );
        idx.remove_segment("a", 0).unwrap();
        assert!(idx.segment_by_id(first.row.id).unwrap().is_none());
        drop(idx);
        assert_eq!(Index::open(&path).unwrap().node_id(), node);
    }

    #[test]
    fn start_collision_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("x.redb")).unwrap();
        let (_, a) = idx.begin_segment(&row_for("a", 5, 1)).unwrap();
        let (_, b) = idx.begin_segment(&row_for("a", 5, 2)).unwrap();
        assert_eq!((a, b), (5, 6));
    }

    #[test]
    fn a_version_1_index_gains_the_event_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        {
            // What a build of schema 1 left: its tables, no event tables.
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut meta = tx.open_table(META).unwrap();
                meta.insert("schema_version", 1u32.to_le_bytes().as_slice())
                    .unwrap();
                meta.insert("node_id", uuid::Uuid::nil().as_bytes().as_slice())
                    .unwrap();
                let cam = CameraRecord {
                    id: "a".into(),
                    name: "A".into(),
                    source: "rtsp://x/".into(),
                    username: None,
                    password: None,
                    transport: Transport::Tcp,
                    enabled: true,
                    retention_days: Some(3),
                    event_retention_days: None,
                    pre_roll_s: 0,
                    post_roll_s: 0,
                    created_ms: 0,
                    onvif: None,
                    motion: Default::default(),
                };
                // A schema 1 camera row: without the event fields.
                let mut json = serde_json::to_value(&cam).unwrap();
                for k in ["event_retention_days", "pre_roll_s", "post_roll_s"] {
                    json.as_object_mut().unwrap().remove(k);
                }
                tx.open_table(CAMERAS)
                    .unwrap()
                    .insert("a", serde_json::to_vec(&json).unwrap().as_slice())
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let idx = Index::open(&path).unwrap();
        assert_eq!(idx.node_id(), uuid::Uuid::nil());
        let cam = idx.camera("a").unwrap().unwrap();
        assert_eq!(
            (cam.retention_days, cam.event_retention_days),
            (Some(3), None)
        );
        assert_eq!(
            (cam.pre_roll_s, cam.post_roll_s),
            (DEFAULT_ROLL_S, DEFAULT_ROLL_S)
        );
        let e = idx
            .insert_event(&EventRecord {
                id: 0,
                camera: "a".into(),
                kind: "motion".into(),
                origin: Origin::Eyrie,
                start_ms: 5,
                end_ms: None,
                score: None,
                zone: None,
                protected: false,
                thumbnail: false,
            })
            .unwrap();
        assert_eq!(e.id, 1);
        assert_eq!(idx.open_events().unwrap().len(), 1);
        drop(idx);
        let db = Database::create(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let v = tx
            .open_table(META)
            .unwrap()
            .get("schema_version")
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        assert_eq!(v, SCHEMA_VERSION.to_le_bytes());
    }

    #[test]
    fn event_rows_keep_their_tables_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("x.redb")).unwrap();
        let ev = |cam: &str, start| EventRecord {
            id: 0,
            camera: cam.into(),
            kind: "motion".into(),
            origin: Origin::Camera,
            start_ms: start,
            end_ms: None,
            score: None,
            zone: None,
            protected: false,
            thumbnail: false,
        };
        let a = idx.insert_event(&ev("a", 1_000)).unwrap();
        let b = idx.insert_event(&ev("a", 500_000)).unwrap();
        // A long event found from far after its start once closed (longest_event_ms).
        idx.update_event(a.id, |e| {
            e.end_ms = Some(400_000);
            e.protected = true;
            e.start_ms = 77; // the start is the row's key: not moved
            true
        })
        .unwrap();
        let got = idx.events("a", 300_000, 300_001, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].start_ms, 1_000);
        assert_eq!(idx.open_events().unwrap(), vec![b.clone()]);
        assert_eq!(idx.protected_events().unwrap()[0].id, a.id);
        assert_eq!(idx.cameras_with_events().unwrap(), vec!["a"]);
        // Nothing changed: nothing written.
        assert!(idx.update_event(a.id, |_| false).unwrap().is_some());
        assert!(idx.update_event(99, |_| true).unwrap().is_none());
        idx.remove_event(a.id).unwrap();
        assert!(idx.protected_events().unwrap().is_empty());
        assert!(idx.event(a.id).unwrap().is_none());
        // Ids are never reused.
        assert_eq!(idx.insert_event(&ev("b", 0)).unwrap().id, 3);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.redb");
        drop(Index::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", 99u32.to_le_bytes().as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(
            Index::open(&path),
            Err(StorageError::TooNew { found: 99 })
        ));
    }
}
