//! Sign-in protection: every refusal costs the same and reads the same, and an account that
//! keeps failing is locked for a while, longer each time.
//!
//! The counters are per account (tenant name and user name as typed, whether they exist or
//! not, so a lockout reveals nothing) and live in the process: a restart forgets them, which
//! only gives an attacker one more short burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins (wrong tenant, user or password; locked accounts included).
pub const SIGN_IN_FAILURES: &str = "garrison_sign_in_failures_total";
/// Accounts locked after repeated failures.
pub const SIGN_IN_LOCKOUTS: &str = "garrison_sign_in_lockouts_total";

/// Consecutive failures allowed before the first lockout.
pub const FREE_ATTEMPTS: u32 = 5;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Accounts whose last failure is older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Most accounts tracked at once; beyond it the oldest entries are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// What a failed attempt did to its account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Still under the limit.
    Counted,
    /// This failure locked the account for this long (audit it: once per lockout).
    Locked(Duration),
}

/// The per-account failure counters of one process.
#[derive(Debug, Default)]
pub struct SignInGuard {
    accounts: Mutex<HashMap<String, Failures>>,
}

fn key(tenant: &str, username: &str) -> String {
    format!("{}\u{0}{}", tenant.to_lowercase(), username.to_lowercase())
}

impl SignInGuard {
    /// How long the account stays locked, if it is.
    pub fn locked_for(&self, tenant: &str, username: &str, now: Instant) -> Option<Duration> {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .get(&key(tenant, username))
            .and_then(|f| f.locked_until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Counts a failure; past [`FREE_ATTEMPTS`] it locks the account, longer each time.
    pub fn failed(&self, tenant: &str, username: &str, now: Instant) -> AfterFailure {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() >= MAX_TRACKED {
            accounts.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if accounts.len() >= MAX_TRACKED {
                // Under a flood of made-up names, forget them rather than grow without bound.
                accounts.clear();
            }
        }
        let entry = accounts.entry(key(tenant, username)).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
            entry.locked_until = None;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count < FREE_ATTEMPTS {
            return AfterFailure::Counted;
        }
        let doublings = (entry.count - FREE_ATTEMPTS).min(16);
        let lockout = FIRST_LOCKOUT
            .saturating_mul(1u32 << doublings)
            .min(MAX_LOCKOUT);
        entry.locked_until = Some(now + lockout);
        AfterFailure::Locked(lockout)
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, tenant: &str, username: &str) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.remove(&key(tenant, username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_locks_after_the_free_attempts_longer_each_time_and_unlocks() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        for _ in 1..FREE_ATTEMPTS {
            assert_eq!(guard.failed("default", "ana", t0), AfterFailure::Counted);
        }
        assert_eq!(guard.locked_for("default", "ana", t0), None);
        assert_eq!(
            guard.failed("default", "ana", t0),
            AfterFailure::Locked(FIRST_LOCKOUT)
        );
        assert_eq!(
            guard.locked_for("Default", "ANA", t0),
            Some(FIRST_LOCKOUT),
            "names are matched without case"
        );
        assert_eq!(
            guard.failed("default", "ana", t0),
            AfterFailure::Locked(FIRST_LOCKOUT * 2)
        );
        let later = t0 + FIRST_LOCKOUT * 2 + Duration::from_millis(1);
        assert_eq!(guard.locked_for("default", "ana", later), None);
        // Other accounts are untouched.
        assert_eq!(guard.locked_for("default", "bob", t0), None);
        // Many failures never lock for more than the cap.
        for _ in 0..100 {
            guard.failed("default", "ana", later);
        }
        assert_eq!(guard.locked_for("default", "ana", later), Some(MAX_LOCKOUT));
        guard.succeeded("default", "ana");
        assert_eq!(guard.locked_for("default", "ana", later), None);
    }

    #[test]
    fn failures_are_forgotten_after_an_hour() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        for _ in 1..FREE_ATTEMPTS {
            guard.failed("default", "ana", t0);
        }
        let later = t0 + FORGET_AFTER;
        assert_eq!(guard.failed("default", "ana", later), AfterFailure::Counted);
    }
}
