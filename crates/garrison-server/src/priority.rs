//! CPU priority between acknowledging and indexing.
//!
//! The ack waits only for the durable log append; indexing into SQLite follows. On a small
//! machine both compete for the same cores, and without a say in it the indexer (FTS, B-trees)
//! takes a whole core while senders wait. SQLite's work runs on sqlx's worker threads
//! (`sqlx-sqlite-worker-N`): giving them a lower priority lets acks win the CPU during bursts;
//! the index catches up in quieter moments, its lag is exported, and the backlog bound turns a
//! sustained overload into 503s instead of unbounded lag.

/// Niceness given to the store's worker threads (0 is normal, 19 the lowest).
pub const STORE_THREAD_NICENESS: i32 = 10;

/// Lowers the priority of the SQLite worker threads that exist now; call again later for
/// threads of new connections. Returns how many threads were changed.
#[cfg(target_os = "linux")]
pub fn deprioritize_store_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut changed = 0;
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<libc::id_t>().ok())
        else {
            continue;
        };
        let is_store_worker = std::fs::read_to_string(task.path().join("comm"))
            .map(|comm| comm.starts_with("sqlx-sqlite-wor"))
            .unwrap_or(false);
        if !is_store_worker {
            continue;
        }
        // SAFETY: plain syscalls on a thread id of this process; no memory is shared.
        let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        if current < STORE_THREAD_NICENESS {
            // SAFETY: as above.
            let result =
                unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, STORE_THREAD_NICENESS) };
            if result == 0 {
                changed += 1;
            }
        }
    }
    changed
}

#[cfg(not(target_os = "linux"))]
pub fn deprioritize_store_threads() -> usize {
    0
}
