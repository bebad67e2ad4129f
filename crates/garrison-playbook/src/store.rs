//! Where runs and timers live: a trait the SQL store implements later, and an in-memory
//! implementation for tests and single-process use.

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::Mutex;

use crate::engine::{RunState, Timer};

/// A run store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else saved the run since it was loaded (optimistic concurrency).
    #[error(
        "run `{run_id}` changed since it was loaded (expected version {expected}, found {found})"
    )]
    Conflict {
        /// Run.
        run_id: String,
        /// Version the writer loaded.
        expected: u64,
        /// Version in the store.
        found: u64,
    },
    /// The run does not exist.
    #[error("run `{0}` not found")]
    NotFound(String),
    /// The run already exists.
    #[error("run `{0}` already exists")]
    Exists(String),
    /// Anything else (database, serialization).
    #[error("run store: {0}")]
    Backend(String),
}

/// One atomic write: the new state and the timer rows to add and remove, together.
#[derive(Debug, Default)]
pub struct Commit<'a> {
    /// Timers to store (an existing id is replaced).
    pub add_timers: &'a [Timer],
    /// Timer ids to remove.
    pub remove_timers: &'a [String],
}

/// Persistence of run states (with an optimistic version) and timer rows.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores a new run at version 1, with its first timers.
    async fn create(&self, state: &RunState, timers: &[Timer]) -> Result<u64, StoreError>;
    /// Loads a run and its version.
    async fn load(&self, run_id: &str) -> Result<Option<(RunState, u64)>, StoreError>;
    /// Saves a run if its version is still `expected`, applying the timer changes in the same
    /// transaction; returns the new version.
    async fn save(
        &self,
        state: &RunState,
        expected: u64,
        commit: Commit<'_>,
    ) -> Result<u64, StoreError>;
    /// Timers due at `now`, earliest first, at most `limit`.
    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError>;
    /// Runs that are not finished, or that still hold leases.
    async fn active_runs(&self) -> Result<Vec<String>, StoreError>;
}

#[derive(Default)]
struct Inner {
    runs: HashMap<String, (String, u64, bool)>,
    timers: HashMap<String, Timer>,
}

/// An in-memory [`RunStore`]. States are kept serialized (JSON), as a database would, so a test
/// that builds a new runner over the same store proves that everything needed is in the state.
#[derive(Default)]
pub struct MemoryRunStore {
    inner: Mutex<Inner>,
}

impl MemoryRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every timer row (for tests).
    pub async fn timers(&self) -> Vec<Timer> {
        let mut t: Vec<Timer> = self.inner.lock().await.timers.values().cloned().collect();
        t.sort_by(|a, b| a.due.cmp(&b.due).then(a.id.cmp(&b.id)));
        t
    }

    /// Bytes of stored state (for memory figures).
    pub async fn stored_bytes(&self) -> usize {
        self.inner
            .lock()
            .await
            .runs
            .values()
            .map(|(s, _, _)| s.len())
            .sum()
    }
}

fn encode(state: &RunState) -> Result<String, StoreError> {
    serde_json::to_string(state).map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl RunStore for MemoryRunStore {
    async fn create(&self, state: &RunState, timers: &[Timer]) -> Result<u64, StoreError> {
        let text = encode(state)?;
        let mut g = self.inner.lock().await;
        if g.runs.contains_key(&state.run_id) {
            return Err(StoreError::Exists(state.run_id.clone()));
        }
        g.runs
            .insert(state.run_id.clone(), (text, 1, !state.is_quiescent()));
        for t in timers {
            g.timers.insert(t.id.clone(), t.clone());
        }
        Ok(1)
    }

    async fn load(&self, run_id: &str) -> Result<Option<(RunState, u64)>, StoreError> {
        let g = self.inner.lock().await;
        match g.runs.get(run_id) {
            None => Ok(None),
            Some((text, version, _)) => {
                let state: RunState =
                    serde_json::from_str(text).map_err(|e| StoreError::Backend(e.to_string()))?;
                Ok(Some((state, *version)))
            }
        }
    }

    async fn save(
        &self,
        state: &RunState,
        expected: u64,
        commit: Commit<'_>,
    ) -> Result<u64, StoreError> {
        let text = encode(state)?;
        let mut g = self.inner.lock().await;
        let Some(entry) = g.runs.get_mut(&state.run_id) else {
            return Err(StoreError::NotFound(state.run_id.clone()));
        };
        if entry.1 != expected {
            return Err(StoreError::Conflict {
                run_id: state.run_id.clone(),
                expected,
                found: entry.1,
            });
        }
        *entry = (text, expected + 1, !state.is_quiescent());
        for id in commit.remove_timers {
            g.timers.remove(id);
        }
        for t in commit.add_timers {
            g.timers.insert(t.id.clone(), t.clone());
        }
        Ok(expected + 1)
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<Timer>, StoreError> {
        let g = self.inner.lock().await;
        let mut due: Vec<Timer> = g
            .timers
            .values()
            .filter(|t| t.due <= now)
            .cloned()
            .collect();
        due.sort_by(|a, b| a.due.cmp(&b.due).then(a.id.cmp(&b.id)));
        due.truncate(limit);
        Ok(due)
    }

    async fn active_runs(&self) -> Result<Vec<String>, StoreError> {
        let g = self.inner.lock().await;
        let mut ids: Vec<String> = g
            .runs
            .iter()
            .filter(|(_, v)| v.2)
            .map(|(k, _)| k.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }
}
