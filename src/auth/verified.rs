//! Tokens already verified, so that a caller sending the same token on every request pays for
//! its signature and its parsing once: checking an HS256 token was about 50,000 instructions,
//! a third of the HTTP layer's work on a credit decision (docs/benchmarks.md).
//!
//! A token is remembered by the SHA-256 of its text, only once it has passed every check, and
//! only with this set of keys. Of those checks only expiry and not-before depend on the time:
//! they are made again at every use, with the same leeway, and a remembered token that fails
//! them goes through full verification again, which says what is wrong.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::Claims;

/// Tokens remembered at most; when full, the memory starts again from empty (a service has a
/// handful of callers, each with one token at a time).
const CAPACITY: usize = 1024;

#[derive(Default)]
pub(super) struct Verified {
    tokens: Mutex<HashMap<[u8; 32], Claims>>,
}

/// The key a token is remembered by: its text is not kept, nor compared byte by byte.
pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// The claims of a token verified before, if they still hold at `now` (Unix seconds).
    pub(super) fn get(&self, digest: &[u8; 32], now: i64, leeway: u64) -> Option<Claims> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(digest)
            .filter(|claims| in_time(claims, now, leeway))
            .cloned()
    }

    pub(super) fn remember(&self, digest: [u8; 32], claims: &Claims) {
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() >= CAPACITY {
                tokens.clear();
            }
            tokens.insert(digest, claims.clone());
        }
    }
}

/// jsonwebtoken's own time checks: expired when `exp < now - leeway`, not yet valid when
/// `nbf > now + leeway`.
fn in_time(claims: &Claims, now: i64, leeway: u64) -> bool {
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    claims.exp >= now.saturating_sub(leeway)
        && claims
            .nbf
            .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, nbf: Option<i64>) -> Claims {
        Claims {
            nbf,
            ..super::super::tests::claims("erp", "decisions:write", exp)
        }
    }

    #[test]
    fn a_remembered_token_is_given_back_only_while_in_time() {
        let verified = Verified::default();
        let key = digest("a.b.c");
        verified.remember(key, &claims(1_000, Some(500)));
        assert_eq!(
            verified.get(&key, 1_000, 30).map(|c| c.sub),
            Some("erp".into())
        );
        // The leeway either side, exactly as jsonwebtoken applies it.
        assert!(verified.get(&key, 1_030, 30).is_some());
        assert!(verified.get(&key, 1_031, 30).is_none());
        assert!(verified.get(&key, 470, 30).is_some());
        assert!(verified.get(&key, 469, 30).is_none());
        assert!(verified.get(&digest("a.b.d"), 1_000, 30).is_none());
    }

    #[test]
    fn a_full_memory_starts_again() {
        let verified = Verified::default();
        for i in 0..CAPACITY {
            verified.remember(digest(&i.to_string()), &claims(10, None));
        }
        assert!(verified.get(&digest("0"), 0, 0).is_some());
        verified.remember(digest("one more"), &claims(10, None));
        assert!(verified.get(&digest("0"), 0, 0).is_none());
        assert!(verified.get(&digest("one more"), 0, 0).is_some());
    }
}
