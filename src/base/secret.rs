//! Secrets: random bytes from the system CSPRNG, the SHA-256 that secrets are stored as, and
//! the constant-time comparison they are checked with.
//!
//! Invariants: every id, key, token and salt Eyrie makes comes from [`random_bytes`] or
//! [`random_hex`] (the system CSPRNG; a failure to read it is fatal, never a weaker fallback).
//! A secret with full entropy (keys, session ids, pairing secrets) is stored only as its
//! [`sha256`], which is enough since it cannot be guessed; passwords, which can, use argon2 in
//! [`crate::accounts`]. Secrets are compared with [`same`], whose time does not depend on where
//! the two differ.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use super::hex::hex;

/// `N` random bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    SystemRandom::new().fill(&mut b).expect("system random");
    b
}

/// `bytes` random bytes from the system CSPRNG, as hex (ids, secrets, tokens).
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    SystemRandom::new().fill(&mut b).expect("system random");
    hex(&b)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_differ_and_have_their_length() {
        assert_eq!(random_hex(16).len(), 32);
        assert_ne!(random_hex(16), random_hex(16));
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }

    #[test]
    fn sha256_and_same() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
