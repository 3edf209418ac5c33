//! Per-address rate limits, the one mechanism behind every "too many tries" answer: wrong
//! passwords (every login), wrong federation keys, pairing requests and wrong pairing secrets.
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
fn counted_as(ip: IpAddr) -> IpAddr {
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
            return false;
        }
        e.1 += 1;
        true
    }

    /// Gives back an attempt that succeeded (a right password, a valid key).
    pub fn refund(&self, from: IpAddr) {
        if let Some(e) = self.seen.lock().unwrap().get_mut(&counted_as(from)) {
            e.1 = e.1.saturating_sub(1);
        }
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
