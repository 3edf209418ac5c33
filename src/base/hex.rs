//! Hex text for bytes: ids, key hashes, fingerprints, MACs and digests are written as lower-case
//! hex everywhere Eyrie shows or stores them.
//!
//! Invariants: [`hex`] writes only `0-9a-f`; [`unhex`] reads exactly 64 hex digits (either case)
//! and turns anything else into `None`, never a panic, whatever text it is given.

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// 32 bytes from exactly 64 hex digits; anything else (a sign, other characters, multi-byte
/// text) is `None`, never a panic.
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Whether `s` is 64 hex digits (either case): a SHA-256 digest or a 256-bit key as text.
pub fn is_hex64(s: &str) -> bool {
    unhex(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = crate::base::secret::sha256(b"x");
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
        // A sign, or multi-byte text of the right length, is not hex (and never panics).
        assert_eq!(unhex(&format!("+f{}", "0".repeat(62))), None);
        assert_eq!(unhex(&format!("a\u{e9}{}", "0".repeat(61))), None);
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert!(is_hex64(&"A".repeat(64)));
        assert!(!is_hex64(&"a".repeat(63)));
    }
}
