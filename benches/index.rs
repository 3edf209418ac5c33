//! Index benchmark: 1,000,000 segment rows across 16 cameras (60 s segments, about 43 days per
//! camera), then "one camera, one day" queries (1440 rows each) at random, on Eyrie's redb
//! index and, as the named baseline, on SQLite with the same schema, in the same run.
//!
//! Run: `cargo bench --bench index` (add `-- --rows 100000` for a quick look).
//! Results and how to read them: docs/benchmarks.md.

use std::time::{Duration, Instant};

use eyrie::storage::{Index, NewSegment, SegmentFinish, SegmentState};
use eyrie::video::Codec;

const CAMERAS: usize = 16;
const SEG_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const QUERIES: usize = 2000;
const BATCH: usize = 10_000;
const T0: i64 = 1_700_000_000_000;

fn camera(i: usize) -> String {
    format!("camera-{i:02}")
}

/// A small deterministic generator (xorshift), so both stores get the same queries.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (at(0.5), at(0.99), v.last().unwrap().as_secs_f64() * 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_camera = rows / CAMERAS;
    let days = (per_camera as i64 * SEG_MS / DAY_MS).max(1);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "index benchmark: {rows} rows, {CAMERAS} cameras, {per_camera} rows ({days} days) per camera"
    );

    // ---- redb (Eyrie's index, through its own API) ----
    let index = Index::open(&dir.path().join("bench.redb")).unwrap();
    let cams: Vec<String> = (0..CAMERAS).map(camera).collect();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..per_camera {
        for cam in &cams {
            let start = T0 + i as i64 * SEG_MS;
            batch.push((
                NewSegment {
                    camera: cam,
                    start_ms: start,
                    run_id: 1,
                    codec: Codec::H264,
                    width: 1920,
                    height: 1080,
                },
                SegmentFinish {
                    end_ms: start + SEG_MS,
                    media_ticks: 60 * 90_000,
                    bytes: 4_000_000,
                    frames: 900,
                    key_frames: 30,
                    state: SegmentState::Closed,
                },
            ));
            if batch.len() == BATCH {
                index.insert_finished(&batch).unwrap();
                batch.clear();
            }
        }
    }
    index.insert_finished(&batch).unwrap();
    let redb_insert = started.elapsed();

    // ---- SQLite, same schema and query ----
    let mut db = rusqlite::Connection::open(dir.path().join("bench.sqlite")).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE segments (camera TEXT NOT NULL, start_ms INTEGER NOT NULL,
           id INTEGER NOT NULL, end_ms INTEGER NOT NULL, media_ticks INTEGER NOT NULL,
           bytes INTEGER NOT NULL, frames INTEGER NOT NULL, key_frames INTEGER NOT NULL,
           run_id INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
           codec INTEGER NOT NULL, state INTEGER NOT NULL,
           PRIMARY KEY (camera, start_ms)) WITHOUT ROWID;",
    )
    .unwrap();
    let started = Instant::now();
    let mut id = 0i64;
    for chunk_start in (0..per_camera).step_by(BATCH / CAMERAS) {
        let tx = db.transaction().unwrap();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO segments VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
                )
                .unwrap();
            for i in chunk_start..(chunk_start + BATCH / CAMERAS).min(per_camera) {
                for cam in &cams {
                    id += 1;
                    let start = T0 + i as i64 * SEG_MS;
                    ins.execute(rusqlite::params![
                        cam,
                        start,
                        id,
                        start + SEG_MS,
                        60 * 90_000,
                        4_000_000,
                        900,
                        30,
                        1,
                        1920,
                        1080,
                        1,
                        1
                    ])
                    .unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let sqlite_insert = started.elapsed();

    // ---- queries: the same random camera-days on both ----
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let queries: Vec<(usize, i64)> = (0..QUERIES)
        .map(|_| {
            let cam = rng.next() as usize % CAMERAS;
            let day = (rng.next() % days as u64) as i64;
            (cam, T0 + day * DAY_MS)
        })
        .collect();
    let mut redb_t = Vec::with_capacity(QUERIES);
    let mut found = 0usize;
    for (cam, t0) in &queries {
        let q = Instant::now();
        let segs = index.segments(&cams[*cam], *t0, t0 + DAY_MS).unwrap();
        redb_t.push(q.elapsed());
        found += segs.len();
    }
    let mut stmt = db
        .prepare(
            "SELECT start_ms, id, end_ms, media_ticks, bytes, frames, key_frames, run_id, width, height,
                    codec, state FROM segments
             WHERE camera = ?1 AND start_ms >= ?2 AND start_ms < ?3 AND end_ms > ?4 ORDER BY start_ms",
        )
        .unwrap();
    let mut sqlite_t = Vec::with_capacity(QUERIES);
    let mut found_sqlite = 0usize;
    for (cam, t0) in &queries {
        let q = Instant::now();
        // The same lower bound as Eyrie's range scan: t0 minus the 15-minute open-segment lookback.
        let rows: Vec<(i64, i64, i64)> = stmt
            .query_map(
                rusqlite::params![cams[*cam], t0 - 15 * 60_000, t0 + DAY_MS, t0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect();
        sqlite_t.push(q.elapsed());
        found_sqlite += rows.len();
    }
    assert_eq!(found, found_sqlite, "both stores answer the same rows");

    let (r50, r99, rmax) = percentiles(redb_t);
    let (s50, s99, smax) = percentiles(sqlite_t);
    println!("rows per query: {:.0}", found as f64 / QUERIES as f64);
    println!(
        "insert      redb {:>9.0} rows/s   sqlite {:>9.0} rows/s   throughput redb/sqlite {:.2}",
        rows as f64 / redb_insert.as_secs_f64(),
        rows as f64 / sqlite_insert.as_secs_f64(),
        sqlite_insert.as_secs_f64() / redb_insert.as_secs_f64()
    );
    println!(
        "query p50   redb {r50:>9.1} us       sqlite {s50:>9.1} us       redb/sqlite {:.2}",
        r50 / s50
    );
    println!(
        "query p99   redb {r99:>9.1} us       sqlite {s99:>9.1} us       redb/sqlite {:.2}",
        r99 / s99
    );
    println!("query max   redb {rmax:>9.1} us       sqlite {smax:>9.1} us");
    println!(
        "target: redb p99 < 1000 us -> {}",
        if r99 < 1000.0 { "met" } else { "MISSED" }
    );
}
