//! Passwords: the argon2id hash a password is stored as, and the rules a new password follows.
//!
//! Invariants: a password is stored only as an argon2id PHC string with a fresh random salt
//! (never in any answer or log); a PHC string that does not parse verifies nothing. argon2 with
//! the default parameters takes 19 MiB and tens of milliseconds per hash, so callers run it off
//! the async threads and a few at a time ([`super::users`]).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::base::secret::random_bytes;

/// How many characters a password has.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// A new password breaks the rules ([`PASSWORD_CHARS`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a password has {} to {} characters",
    PASSWORD_CHARS.start(),
    PASSWORD_CHARS.end()
)]
pub struct PasswordRules;

/// An argon2id PHC string for `password` with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = random_bytes();
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// Whether `password` is the one hashed in the PHC string `phc`.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Whether `password` may be set: [`PASSWORD_CHARS`] characters.
pub fn check_password_rules(password: &str) -> Result<(), PasswordRules> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(PasswordRules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_stored_as_argon2id_hashes() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert_ne!(h, hash_password("correct horse"), "salted");
    }
}
