//! Secrets in, hashes out. Tokens are 256-bit random strings, so one SHA-256 is enough to make
//! a stolen table useless and keeps per-request checks cheap; passwords are low-entropy and get
//! argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

use crate::{StoreError, TokenKind};

/// A token's secret, shown to its owner once. `Debug` does not reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A new random token: `gar_<kind>_<43 chars of base62-ish entropy>`. The kind in clear text
/// helps secret scanners and humans tell an ingest token from an admin token.
pub fn generate_token(kind: TokenKind) -> TokenSecret {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 43];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // 62 symbols from a byte has a slight bias; 43 symbols still carry > 250 bits.
    let body: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    TokenSecret(format!("gar_{}_{body}", kind.as_str()))
}

pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Hashing(e.to_string()))
}

/// A real argon2id hash of a random password, made once: checking a password against it costs
/// exactly what a real check costs (a hard-coded string that did not parse would cost nothing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        hash_password(&hex::encode(secret)).unwrap_or_default()
    })
}

/// The cost of one password check, for a sign-in whose tenant or user does not exist, so its
/// refusal takes as long as a wrong password's. Always false.
pub fn burn_password_check(password: &str) -> bool {
    std::hint::black_box(verify_password(password, dummy_hash()));
    false
}

pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_check_is_a_real_hash_and_never_passes() {
        assert!(PasswordHash::new(dummy_hash()).is_ok(), "{}", dummy_hash());
        assert!(!burn_password_check("anything"));
    }

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let a = generate_token(TokenKind::Api);
        let b = generate_token(TokenKind::Api);
        assert_ne!(a, b);
        assert!(a.expose().starts_with("gar_api_"));
        assert_eq!(hash_token(a.expose()), hash_token(a.expose()));
        assert_ne!(hash_token(a.expose()), hash_token(b.expose()));
        assert!(!format!("{a:?}").contains(&a.expose()[8..]));
    }

    #[test]
    fn passwords_verify_only_when_right() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
