//! The decision: a background model of the grid (a running average per cell), the cells that
//! differ from it by more than the threshold the sensitivity gives, and start/stop with
//! hysteresis. Pure: pictures and their times in, changes out; no clock, no I/O.
//!
//! - **Lighting.** The picture's overall gain and offset against the background are taken out
//!   before cells are compared (a lamp, a cloud, an auto-exposure step), and a change spread over more than
//!   [`GLOBAL_SHARE`] of the watched cells is a lighting change (or a camera moved), not motion:
//!   the background is taken afresh from that picture.
//! - **Noise.** A picture moves when at least [`MIN_CELLS`] cells changed; a cell's value is the
//!   mean of hundreds of pixels, so sensor noise stays far below any threshold.
//! - **Start.** Motion must go on for the minimum duration (gaps up to [`GAP_MS`] allowed) before
//!   an event starts; it starts at its first moving picture.
//! - **End.** An event ends after [`QUIET_MS`] without a moving picture, at its last moving one.
//! - **Sparse pictures.** An H.264 camera is sampled once per GOP (its key frames: every 1 to
//!   4 s is common). The gap and the quiet time are then stretched to two sampling intervals, so
//!   that one still picture between moving ones neither splits a stretch nor ends an event; the
//!   minimum duration needs no change (two moving pictures that far apart already span it). An
//!   event then starts up to one interval after the motion did, and ends `max(3 s, 2 intervals)`
//!   after its last moving picture.
//! - **Background.** Cells that did not change follow the picture quickly, changed cells very
//!   slowly, so something that stops in view becomes background in about 200 pictures (under a
//!   minute at 4 a second).

use super::{CELLS, Settings};

/// Share of watched cells above which a change is lighting, not motion.
pub const GLOBAL_SHARE: f32 = 0.5;
/// Changed cells needed for a picture to count as moving.
pub const MIN_CELLS: usize = 2;
/// Longest gap between moving pictures within one stretch of motion.
pub const GAP_MS: i64 = 1000;
/// Stillness that ends an event.
pub const QUIET_MS: i64 = 3000;
/// How fast the background follows unchanged and changed cells, per picture.
const FOLLOW_STILL: f32 = 0.1;
const FOLLOW_MOVING: f32 = 0.01;
/// Pictures seen before any decision (the background settles).
const WARM_UP: u32 = 3;
/// Longest sampling interval the gap and quiet time are stretched for.
const MAX_INTERVAL_MS: i64 = 10_000;

/// What a picture changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Motion went on for the minimum duration: an event from `at_ms` (its first moving
    /// picture), `score` the share of watched cells that changed then (0 to 1).
    Started { at_ms: i64, score: f32 },
    /// The event ended at its last moving picture.
    Ended { at_ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Still,
    /// Moving since `since`, not yet for the minimum duration.
    Pending {
        since: i64,
        last: i64,
        score: f32,
    },
    Moving {
        last: i64,
    },
}

pub struct Detector {
    threshold: f32,
    min_duration_ms: i64,
    watched: [bool; CELLS],
    background: Option<Box<[f32; CELLS]>>,
    seen: u32,
    state: State,
    /// When the last picture came, and how long before it the one before did.
    last_t: Option<i64>,
    interval: i64,
}

impl Detector {
    pub fn new(s: &Settings) -> Self {
        Self {
            threshold: threshold(s.sensitivity),
            min_duration_ms: s.min_duration_ms as i64,
            watched: s.watched(),
            background: None,
            seen: 0,
            state: State::Still,
            last_t: None,
            interval: 0,
        }
    }

    /// Whether an event is open.
    pub fn moving(&self) -> bool {
        matches!(self.state, State::Moving { .. })
    }

    /// Whether motion goes on, not yet for the minimum duration.
    pub fn pending(&self) -> bool {
        matches!(self.state, State::Pending { .. })
    }

    /// Takes the next picture of the grid (row by row) at `t_ms`.
    pub fn feed(&mut self, grid: &[u8; CELLS], t_ms: i64) -> Option<Change> {
        if let Some(d) = self.last_t.map(|l| t_ms.saturating_sub(l)) {
            if d > 0 {
                self.interval = d.min(MAX_INTERVAL_MS);
            }
        }
        self.last_t = Some(t_ms);
        let (gap, quiet) = (
            GAP_MS.max(2 * self.interval),
            QUIET_MS.max(2 * self.interval),
        );
        let moving = self.compare(grid);
        self.seen = self.seen.saturating_add(1);
        if self.seen <= WARM_UP {
            return None;
        }
        match (self.state, moving) {
            (State::Still, Some(score)) => {
                self.state = State::Pending {
                    since: t_ms,
                    last: t_ms,
                    score,
                };
                self.start_if_long_enough(t_ms)
            }
            (State::Pending { since, score, .. }, Some(_)) => {
                self.state = State::Pending {
                    since,
                    last: t_ms,
                    score,
                };
                self.start_if_long_enough(t_ms)
            }
            (State::Pending { last, .. }, None) => {
                if t_ms - last > gap {
                    self.state = State::Still;
                }
                None
            }
            (State::Moving { .. }, Some(_)) => {
                self.state = State::Moving { last: t_ms };
                None
            }
            (State::Moving { last }, None) => {
                if t_ms - last >= quiet {
                    self.state = State::Still;
                    return Some(Change::Ended { at_ms: last });
                }
                None
            }
            (State::Still, None) => None,
        }
    }

    /// Ends an open event (the camera stopped): at its last moving picture.
    pub fn finish(&mut self) -> Option<Change> {
        let State::Moving { last } = self.state else {
            return None;
        };
        self.state = State::Still;
        Some(Change::Ended { at_ms: last })
    }

    fn start_if_long_enough(&mut self, t_ms: i64) -> Option<Change> {
        let State::Pending { since, score, .. } = self.state else {
            return None;
        };
        if t_ms - since < self.min_duration_ms {
            return None;
        }
        self.state = State::Moving { last: t_ms };
        Some(Change::Started {
            at_ms: since,
            score,
        })
    }

    /// Compares a picture with the background and updates it: the share of watched cells that
    /// changed when the picture moves, `None` when it is still (or a lighting change).
    fn compare(&mut self, grid: &[u8; CELLS]) -> Option<f32> {
        let Some(bg) = &mut self.background else {
            self.background = Some(Box::new(grid.map(f32::from)));
            return None;
        };
        // The picture as the background under other light: `gain × background + offset`, fitted
        // by least squares over the watched cells (a lamp adds, exposure multiplies; motion in
        // a few cells hardly moves the fit).
        let (mut n, mut sb, mut sc, mut sbb, mut sbc) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for i in 0..CELLS {
            if self.watched[i] {
                let (b, c) = (bg[i], grid[i] as f32);
                n += 1.0;
                sb += b;
                sc += c;
                sbb += b * b;
                sbc += b * c;
            }
        }
        if n == 0.0 {
            return None;
        }
        let (mb, mc) = (sb / n, sc / n);
        let var = sbb / n - mb * mb;
        let gain = if var > 1.0 {
            ((sbc / n - mb * mc) / var).clamp(0.25, 4.0)
        } else {
            1.0
        };
        let offset = mc - gain * mb;
        let count = n as usize;
        let mut changed = [false; CELLS];
        let mut moved = 0;
        for i in 0..CELLS {
            if self.watched[i] && (grid[i] as f32 - gain * bg[i] - offset).abs() > self.threshold {
                changed[i] = true;
                moved += 1;
            }
        }
        let share = moved as f32 / count as f32;
        if share > GLOBAL_SHARE {
            // Lighting changed, or the camera moved: start the background afresh.
            **bg = grid.map(f32::from);
            return None;
        }
        for i in 0..CELLS {
            let follow = if changed[i] {
                FOLLOW_MOVING
            } else {
                FOLLOW_STILL
            };
            bg[i] += follow * (grid[i] as f32 - bg[i]);
        }
        (moved >= MIN_CELLS).then_some(share)
    }
}

/// The difference in grey levels (0 to 255) a cell must show at `sensitivity` (1 to 100): 36 at
/// 1, 6 at 100.
pub fn threshold(sensitivity: u8) -> f32 {
    let s = sensitivity.clamp(1, 100) as f32;
    6.0 + (100.0 - s) * 30.0 / 99.0
}

#[cfg(test)]
mod tests {
    use super::super::{GRID_H, GRID_W};
    use super::*;

    fn settings(min_duration_ms: u32) -> Settings {
        Settings {
            enabled: true,
            sensitivity: 50,
            min_duration_ms,
            ignore: Vec::new(),
        }
    }

    /// A textured static scene, a `level` offset, optional box at cell (x, y) of 3x3 cells.
    fn picture(level: i32, gain: f32, noise: u32, boxed: Option<(usize, usize)>) -> [u8; CELLS] {
        let mut g = [0u8; CELLS];
        let mut seed = noise.wrapping_mul(2_654_435_761).max(1);
        for (i, v) in g.iter_mut().enumerate() {
            let (x, y) = (i % GRID_W, i / GRID_W);
            let base = 40.0 + ((x * 7 + y * 13) % 50) as f32 * 2.0;
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let jitter = if noise > 0 { (seed % 5) as i32 - 2 } else { 0 };
            let mut val = (base * gain) as i32 + level + jitter;
            if let Some((bx, by)) = boxed {
                if (bx..bx + 3).contains(&x) && (by..by + 3).contains(&y) {
                    val = 240;
                }
            }
            *v = val.clamp(0, 255) as u8;
        }
        g
    }

    /// Feeds pictures every 250 ms from `t0`; the changes with their times.
    fn run(d: &mut Detector, t0: i64, pics: &[[u8; CELLS]]) -> Vec<Change> {
        let mut out = Vec::new();
        for (i, p) in pics.iter().enumerate() {
            if let Some(c) = d.feed(p, t0 + i as i64 * 250) {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn a_moving_box_starts_and_ends_one_event() {
        let mut d = Detector::new(&settings(1000));
        let mut pics = vec![picture(0, 1.0, 1, None); 8]; // 0 .. 1750
        for i in 0..12 {
            pics.push(picture(0, 1.0, 2 + i, Some((2 + i as usize * 2, 5)))); // 2000 .. 4750
        }
        pics.extend(vec![picture(0, 1.0, 3, None); 20]); // 5000 ..
        let changes = run(&mut d, 0, &pics);
        assert_eq!(changes.len(), 2, "{changes:?}");
        let Change::Started { at_ms, score } = changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(at_ms, 2000);
        assert!(score > 0.0 && score < 0.1, "{score}");
        assert_eq!(changes[1], Change::Ended { at_ms: 4750 });
        assert!(!d.moving());
    }

    #[test]
    fn short_motion_is_below_the_minimum_duration() {
        let mut d = Detector::new(&settings(2000));
        let mut pics = vec![picture(0, 1.0, 1, None); 8];
        for i in 0..4 {
            pics.push(picture(0, 1.0, 1, Some((4 + i * 3, 4)))); // one second
        }
        pics.extend(vec![picture(0, 1.0, 1, None); 20]);
        assert_eq!(run(&mut d, 0, &pics), []);
    }

    #[test]
    fn lighting_and_noise_are_not_motion() {
        let mut d = Detector::new(&settings(0));
        let mut pics = Vec::new();
        for i in 0..40 {
            pics.push(picture(0, 1.0, i + 1, None)); // noise only
        }
        for i in 0..20 {
            pics.push(picture(60, 1.0, i + 1, None)); // lights on, suddenly
        }
        for i in 0..30 {
            // Dusk: the gain falls slowly to a half.
            pics.push(picture(60, 1.0 - i as f32 / 60.0, i + 1, None));
        }
        for i in 0..20 {
            pics.push(picture(0, 1.6, i + 1, None)); // auto exposure steps up
        }
        assert_eq!(run(&mut d, 0, &pics), []);
    }

    #[test]
    fn ignored_cells_never_move() {
        let mut s = settings(0);
        // Ignore the left half.
        s.ignore = (0..GRID_H)
            .map(|_| "x".repeat(GRID_W / 2) + &".".repeat(GRID_W / 2))
            .collect();
        let mut d = Detector::new(&s);
        let mut pics = vec![picture(0, 1.0, 1, None); 8];
        for i in 0..10 {
            pics.push(picture(0, 1.0, 1, Some((i % 12, 6))));
        }
        pics.extend(vec![picture(0, 1.0, 1, None); 20]);
        assert_eq!(run(&mut d, 0, &pics), []);
        // The same box in the watched half is seen.
        let mut d = Detector::new(&s);
        let mut pics = vec![picture(0, 1.0, 1, None); 8];
        for i in 0..10 {
            pics.push(picture(0, 1.0, 1, Some((18 + i % 10, 6))));
        }
        assert!(matches!(
            run(&mut d, 0, &pics).first(),
            Some(Change::Started { .. })
        ));
    }

    #[test]
    fn an_object_that_stops_becomes_background_and_finish_closes() {
        let mut d = Detector::new(&settings(0));
        let mut pics = vec![picture(0, 1.0, 1, None); 8];
        // A box arrives and stays for a long while.
        pics.extend(vec![picture(0, 1.0, 1, Some((10, 8))); 600]);
        let changes = run(&mut d, 0, &pics);
        assert!(
            matches!(
                changes.as_slice(),
                [Change::Started { .. }, Change::Ended { .. }]
            ),
            "{changes:?}"
        );
        // Motion again, then the camera stops while it goes on.
        let pics = vec![
            picture(0, 1.0, 1, Some((20, 2))),
            picture(0, 1.0, 1, Some((22, 2))),
        ];
        let changes = run(&mut d, 1_000_000, &pics);
        assert!(matches!(changes.as_slice(), [Change::Started { .. }]));
        assert_eq!(d.finish(), Some(Change::Ended { at_ms: 1_000_250 }));
        assert_eq!(d.finish(), None);
    }

    /// One picture every 2 s (an H.264 camera's key frames): one still picture amid motion
    /// neither splits nor ends the event, which ends two intervals after its last motion.
    #[test]
    fn sparse_key_frames_make_one_event() {
        let mut d = Detector::new(&settings(1000));
        let mut pics = vec![picture(0, 1.0, 1, None); 4]; // 0 .. 6000
        for i in 0..6 {
            // 8000 .. 18000, the third one still.
            let boxed = (i != 2).then_some((2 + i * 4, 5));
            pics.push(picture(0, 1.0, 1, boxed));
        }
        pics.extend(vec![picture(0, 1.0, 1, None); 6]); // 20000 ..
        let mut changes = Vec::new();
        for (i, p) in pics.iter().enumerate() {
            if let Some(c) = d.feed(p, i as i64 * 2000) {
                changes.push((i as i64 * 2000, c));
            }
        }
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            matches!(changes[0], (10_000, Change::Started { at_ms: 8000, .. })),
            "{changes:?}"
        );
        assert_eq!(changes[1], (22_000, Change::Ended { at_ms: 18_000 }));
    }

    #[test]
    fn thresholds_follow_sensitivity() {
        assert_eq!(threshold(100), 6.0);
        assert_eq!(threshold(1), 36.0);
        assert!(threshold(80) < threshold(20));
    }
}
