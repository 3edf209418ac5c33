//! Per-address rate limits, the one mechanism behind every "too many tries" answer: wrong
//! passwords (every login), wrong federation keys, pairing requests and wrong pairing secrets;
//! and [`Budget`], what many addresses together may spend (logins per user and in all).
//!
//! An attempt takes its slot *before* the thing it guards is checked ([`Throttle::attempt`]),
//! so tries sent at once cannot all pass before the first failure counts; a success may give
//! its slot back ([`Throttle::refund`]). IPv6 callers are counted by their /64, since one host
//! holds a whole /64 and could otherwise rotate addresses. Memory is bounded: past
//! [`MAX_TRACKED`] addresses the idle ones and then the oldest are forgotten, never new callers
//! refused for it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at once.
pub const MAX_TRACKED: usize = 4096;

pub struct Throttle {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// What an address is counted as: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by its /64.
/// Every per-address quota keys on this.
pub fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

impl Throttle {
    /// At most `limit` attempts per address in each `window` (counted from its first).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one of `from`'s attempts; false (and nothing counted) when none are left.
    pub fn attempt(&self, from: IpAddr) -> bool {
        self.attempt_at(from, Instant::now())
    }

    pub fn attempt_at(&self, from: IpAddr, now: Instant) -> bool {
        self.take_at(from, now).is_some()
    }

    /// Takes one of `from`'s attempts and says how many it had made before in this window
    /// (failed ones, and ones not yet decided); None (and nothing counted) when none are left.
    pub fn take(&self, from: IpAddr) -> Option<u32> {
        self.take_at(from, Instant::now())
    }

    fn take_at(&self, from: IpAddr, now: Instant) -> Option<u32> {
        let from = counted_as(from);
        let window = self.window;
        let mut seen = self.seen.lock().unwrap();
        if seen.len() >= MAX_TRACKED && !seen.contains_key(&from) {
            seen.retain(|_, (since, _)| now.saturating_duration_since(*since) < window);
            if seen.len() >= MAX_TRACKED {
                if let Some(oldest) = seen.iter().min_by_key(|(_, (s, _))| *s).map(|(ip, _)| *ip) {
                    seen.remove(&oldest);
                }
            }
        }
        let e = seen.entry(from).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= window {
            *e = (now, 0);
        }
        if e.1 >= self.limit {
            return None;
        }
        e.1 += 1;
        Some(e.1 - 1)
    }

    /// Gives back an attempt that succeeded (a right password, a valid key).
    pub fn refund(&self, from: IpAddr) {
        if let Some(e) = self.seen.lock().unwrap().get_mut(&counted_as(from)) {
            e.1 = e.1.saturating_sub(1);
        }
    }
}

/// A budget shared by every address: per key (a user name, or `()` for all), at most `burst`
/// attempts at once, then one more each `every`. What the per-address [`Throttle`] cannot
/// bound (many addresses guessing together), this does. Memory is bounded like the throttle's.
pub struct Budget<K> {
    burst: u32,
    every: Duration,
    /// Key → (when its count was last refilled, attempts left).
    left: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: std::hash::Hash + Eq + Clone> Budget<K> {
    pub fn new(burst: u32, every: Duration) -> Self {
        Self {
            burst,
            every,
            left: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt of `key`'s budget; false (nothing taken) when it is spent.
    pub fn take(&self, key: &K) -> bool {
        self.take_at(key, Instant::now())
    }

    pub fn take_at(&self, key: &K, now: Instant) -> bool {
        let (burst, every) = (self.burst, self.every);
        let full_after = every.saturating_mul(burst);
        let mut left = self.left.lock().unwrap();
        if left.len() >= MAX_TRACKED && !left.contains_key(key) {
            left.retain(|_, (at, _)| now.saturating_duration_since(*at) < full_after);
            if left.len() >= MAX_TRACKED {
                if let Some(oldest) = left
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                {
                    left.remove(&oldest);
                }
            }
        }
        let e = left.entry(key.clone()).or_insert((now, burst));
        let since = now.saturating_duration_since(e.0);
        let earned = since.as_nanos() / every.as_nanos().max(1);
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            e.1 = e.1.saturating_add(earned).min(burst);
            e.0 = if e.1 == burst {
                now
            } else {
                e.0 + every.saturating_mul(earned)
            };
        }
        if e.1 == 0 {
            return false;
        }
        e.1 -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_per_window_and_refunded() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        assert!((0..3).all(|_| t.attempt_at(a, now)));
        assert!(!t.attempt_at(a, now));
        assert!(t.attempt_at(b, now), "others are not held back");
        t.refund(a);
        assert!(t.attempt_at(a, now));
        assert!(!t.attempt_at(a, now));
        assert!(
            t.attempt_at(a, now + Duration::from_secs(61)),
            "a new window"
        );
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        assert!(t.attempt_at("fd00:1:2:3::1".parse().unwrap(), now));
        assert!(t.attempt_at("fd00:1:2:3::2".parse().unwrap(), now));
        assert!(!t.attempt_at("fd00:1:2:3:ffff::9".parse().unwrap(), now));
        assert!(t.attempt_at("fd00:1:2:4::1".parse().unwrap(), now));
        assert!(t.attempt_at("::ffff:10.0.0.1".parse().unwrap(), now));
        assert!(t.attempt_at("10.0.0.1".parse().unwrap(), now));
        assert!(!t.attempt_at("10.0.0.1".parse().unwrap(), now));
    }

    #[test]
    fn budgets_allow_a_burst_then_one_per_interval() {
        let b = Budget::new(3, Duration::from_secs(2));
        let now = Instant::now();
        assert!((0..3).all(|_| b.take_at(&"admin", now)));
        assert!(!b.take_at(&"admin", now));
        assert!(b.take_at(&"other", now), "per key");
        assert!(!b.take_at(&"admin", now + Duration::from_secs(1)));
        assert!(b.take_at(&"admin", now + Duration::from_secs(2)));
        assert!(!b.take_at(&"admin", now + Duration::from_secs(3)));
        assert!(b.take_at(&"admin", now + Duration::from_secs(4)));
        // Refilled, never beyond the burst.
        let later = now + Duration::from_secs(3600);
        assert!((0..3).all(|_| b.take_at(&"admin", later)));
        assert!(!b.take_at(&"admin", later));
    }

    #[test]
    fn take_says_how_many_came_before() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert_eq!(t.take_at(a, now), Some(0));
        assert_eq!(t.take_at(a, now), Some(1));
        t.refund(a);
        assert_eq!(t.take_at(a, now), Some(1));
        assert_eq!(t.take_at(a, now), Some(2));
        assert_eq!(t.take_at(a, now), None);
    }

    #[test]
    fn memory_is_bounded_and_new_callers_still_get_in() {
        let t = Throttle::new(1, Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(t.attempt_at(ip, now));
        }
        assert!(t.seen.lock().unwrap().len() <= MAX_TRACKED);
    }
}
