//! The service's own view of its faults: which component is degraded, since when and why.
//!
//! Workers (the log writer's users, the indexer, the detector, triage, the disk watch) mark
//! themselves degraded when a storage fault stops them and recovered when their next pass
//! succeeds; `/readyz` and a metric report the list. A fault is a state the service leaves by
//! itself when the condition clears, not a crash.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;

/// A degraded component: why, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Degraded {
    pub component: &'static str,
    pub reason: String,
    pub since: Timestamp,
}

/// Shared by every worker of one service; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Health {
    degraded: Arc<Mutex<BTreeMap<&'static str, Degraded>>>,
}

impl Health {
    fn map(&self) -> MutexGuard<'_, BTreeMap<&'static str, Degraded>> {
        // A panic elsewhere while holding this lock leaves a map that is still valid.
        self.degraded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `component` degraded. True when it was not already: the caller logs the change
    /// once instead of on every failed retry.
    pub fn degrade(&self, component: &'static str, reason: impl std::fmt::Display) -> bool {
        let mut map = self.map();
        let reason = reason.to_string();
        match map.get_mut(component) {
            Some(entry) => {
                entry.reason = reason;
                false
            }
            None => {
                map.insert(
                    component,
                    Degraded {
                        component,
                        reason,
                        since: Timestamp::now(),
                    },
                );
                true
            }
        }
    }

    /// Marks `component` healthy. Returns how long it was degraded, if it was.
    pub fn recover(&self, component: &'static str) -> Option<Degraded> {
        self.map().remove(component)
    }

    /// Records one pass of a worker that retries: its first failure is logged as an error and
    /// degrades `component`, later ones only at debug level; the first success after them
    /// logs the recovery.
    pub fn pass<E: std::fmt::Display>(&self, component: &'static str, result: Result<(), E>) {
        match result {
            Ok(()) => {
                if let Some(fault) = self.recover(component) {
                    tracing::info!(component, since = %fault.since, "recovered");
                }
            }
            Err(error) => {
                if self.degrade(component, &error) {
                    tracing::error!(component, %error, "failing; retrying until it succeeds");
                } else {
                    tracing::debug!(component, %error, "still failing");
                }
            }
        }
    }

    /// Why `component` is degraded, if it is.
    pub fn reason(&self, component: &'static str) -> Option<String> {
        self.map().get(component).map(|d| d.reason.clone())
    }

    pub fn is_degraded(&self, component: &'static str) -> bool {
        self.map().contains_key(component)
    }

    /// Every degraded component, by name.
    pub fn degraded(&self) -> Vec<Degraded> {
        self.map().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_reported_once_until_it_recovers() {
        let health = Health::default();
        assert!(health.degrade("indexer", "disk full"));
        assert!(!health.degrade("indexer", "disk still full"));
        assert_eq!(health.degraded()[0].reason, "disk still full");
        assert!(health.is_degraded("indexer"));
        assert!(health.recover("indexer").is_some());
        assert!(health.recover("indexer").is_none());
        assert!(health.degraded().is_empty());
    }
}
