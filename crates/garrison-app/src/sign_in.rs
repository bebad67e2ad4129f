//! Sign-in protection: every refusal costs the same and reads the same, and an account that
//! keeps failing is locked for a while, longer each time.
//!
//! The counters are per account (tenant name and user name as typed, whether they exist or
//! not, so a lockout reveals nothing) and per client address (one address guessing many
//! accounts, or one account from many tries), and live in the process: a restart forgets
//! them, which only gives an attacker one more short burst. A success clears its account's
//! count but not its address's: one known password must not reset a password spray.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins (wrong tenant, user or password; locked accounts included).
pub const SIGN_IN_FAILURES: &str = "garrison_sign_in_failures_total";
/// Accounts locked after repeated failures.
pub const SIGN_IN_LOCKOUTS: &str = "garrison_sign_in_lockouts_total";

/// Consecutive failures allowed before the first lockout.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failures from one client address (over every account) before it is locked: higher than
/// an account's, as one office behind a NAT shares an address.
pub const ADDRESS_FREE_ATTEMPTS: u32 = 30;
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
#[derive(Debug)]
pub struct SignInGuard {
    accounts: Mutex<HashMap<String, Failures>>,
    /// The first lockout (`sign_in_lockout`); each further failure doubles it.
    first_lockout: Duration,
}

impl Default for SignInGuard {
    fn default() -> Self {
        SignInGuard::new(FIRST_LOCKOUT)
    }
}

fn key(tenant: &str, username: &str) -> String {
    format!("{}\u{0}{}", tenant.to_lowercase(), username.to_lowercase())
}

fn address_key(address: std::net::IpAddr) -> String {
    format!("\u{1}{address}")
}

impl SignInGuard {
    pub fn new(first_lockout: Duration) -> SignInGuard {
        SignInGuard {
            accounts: Mutex::new(HashMap::new()),
            first_lockout: first_lockout.max(Duration::from_millis(1)),
        }
    }

    /// How long the account stays locked, if it is.
    pub fn locked_for(&self, tenant: &str, username: &str, now: Instant) -> Option<Duration> {
        self.locked_key(&key(tenant, username), now)
    }

    /// How long the client address stays locked, if it is.
    pub fn address_locked_for(&self, address: std::net::IpAddr, now: Instant) -> Option<Duration> {
        self.locked_key(&address_key(address), now)
    }

    fn locked_key(&self, key: &str, now: Instant) -> Option<Duration> {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .get(key)
            .and_then(|f| f.locked_until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Counts a failure; past [`FREE_ATTEMPTS`] it locks the account, longer each time.
    pub fn failed(&self, tenant: &str, username: &str, now: Instant) -> AfterFailure {
        self.failed_key(key(tenant, username), FREE_ATTEMPTS, now)
    }

    /// Counts a failure from `address`; past [`ADDRESS_FREE_ATTEMPTS`] it locks the address.
    pub fn failed_from(&self, address: std::net::IpAddr, now: Instant) -> AfterFailure {
        self.failed_key(address_key(address), ADDRESS_FREE_ATTEMPTS, now)
    }

    fn failed_key(&self, key: String, free: u32, now: Instant) -> AfterFailure {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() >= MAX_TRACKED {
            accounts.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if accounts.len() >= MAX_TRACKED {
                // Under a flood of made-up names, forget them rather than grow without bound.
                accounts.clear();
            }
        }
        let entry = accounts.entry(key).or_insert(Failures {
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
        if entry.count < free {
            return AfterFailure::Counted;
        }
        let doublings = (entry.count - free).min(16);
        let lockout = self
            .first_lockout
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
    fn an_address_locks_after_its_own_limit_and_a_success_does_not_clear_it() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        let attacker: std::net::IpAddr = [203, 0, 113, 9].into();
        for i in 1..ADDRESS_FREE_ATTEMPTS {
            assert_eq!(
                guard.failed_from(attacker, t0),
                AfterFailure::Counted,
                "{i}"
            );
        }
        guard.succeeded("default", "ana");
        assert_eq!(
            guard.failed_from(attacker, t0),
            AfterFailure::Locked(FIRST_LOCKOUT)
        );
        assert_eq!(guard.address_locked_for(attacker, t0), Some(FIRST_LOCKOUT));
        let other: std::net::IpAddr = [198, 51, 100, 1].into();
        assert_eq!(guard.address_locked_for(other, t0), None);
        assert_eq!(guard.locked_for("default", "ana", t0), None);
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
