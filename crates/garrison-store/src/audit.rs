//! The audit log: every human and machine action, per tenant, append-only and hash-chained.
//!
//! Entry `n` stores `prev_hash` (entry `n-1`'s hash, 64 zeros for the first) and `hash`, the
//! SHA-256 of its canonical form: the JSON array `[tenant, seq, time_us, actor, action, target,
//! details, prev_hash]` with `details` as its stored text. Editing, deleting or reordering any
//! entry breaks the chain at that entry; [`AuditRepo::verify_audit`] names the first one.
//! Cutting entries off the end leaves a valid, shorter chain: the application layer anchors
//! each tenant's head ([`SqlStore::audit_head`]) outside the database in signed checkpoints,
//! and verification compares the chain with the last one.

use async_trait::async_trait;
use garrison_model::{from_micros, to_micros, TenantId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, SqlStore, StoreError};

/// The `prev_hash` of a tenant's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An action to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Who: `user:NAME`, `token:PREFIX`, `cli:NAME`, `system:detector`, ...
    pub actor: String,
    /// What: `auth.login`, `rule.import`, `rule.enable`, `token.create`, ...
    pub action: String,
    /// On what: a rule id, a token prefix, a user name ...
    pub target: String,
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub tenant_id: TenantId,
    pub seq: i64,
    pub time: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The details exactly as stored (JSON text): what the hash covers.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A page of the audit log, oldest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Entries after this sequence number.
    pub after: Option<i64>,
    pub action: Option<String>,
    pub limit: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// The result of checking a tenant's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// Entries checked.
    pub entries: u64,
    /// The first entry that does not verify, and why; `None` when the whole chain holds.
    pub first_bad: Option<AuditBreak>,
    /// The newest signed checkpoint the chain was compared with (its sequence number and
    /// time), when the application layer has one.
    pub checkpoint: Option<(i64, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditBreak {
    pub seq: i64,
    pub reason: String,
}

/// The hash of an entry from its canonical fields.
#[allow(clippy::too_many_arguments)]
pub fn audit_hash(
    tenant: TenantId,
    seq: i64,
    time_us: i64,
    actor: &str,
    action: &str,
    target: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    let canonical =
        serde_json::json!([tenant.0, seq, time_us, actor, action, target, details, prev_hash])
            .to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends an entry at the end of the tenant's chain.
    async fn append_audit(&self, tenant: TenantId, entry: NewAuditEntry) -> Result<AuditEntry>;
    async fn list_audit(&self, tenant: TenantId, query: &AuditQuery) -> Result<AuditPage>;
    /// Walks the tenant's whole chain; names the first entry that breaks it.
    async fn verify_audit(&self, tenant: TenantId) -> Result<AuditVerification>;
}

const AUDIT_COLUMNS: &str =
    "tenant_id, seq, time_us, actor, action, target, details, prev_hash, hash";

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        tenant_id: TenantId(row.try_get("tenant_id")?),
        seq: row.try_get("seq")?,
        time: from_micros(row.try_get("time_us")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        details: row.try_get("details")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Attempts before giving up when other writers keep appending at the same moment.
const APPEND_ATTEMPTS: usize = 50;

/// Appends `entry` to the tenant's chain inside `tx`, so it commits (or not) with the rest of
/// the transaction: a machine action and the state that records it are one write.
pub(crate) async fn append_audit_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
    entry: &NewAuditEntry,
) -> Result<AuditEntry> {
    let clip = |s: &str, max: usize| -> String {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    let actor = clip(&entry.actor, 256);
    let action = clip(&entry.action, 128);
    let target = clip(&entry.target, 1024);
    let details = entry.details.to_string();
    if details.len() > 64 * 1024 {
        return Err(StoreError::Invalid {
            what: "audit details".into(),
            reason: "exceed 64 KiB".into(),
        });
    }
    // Entries are never changed, so the last one read is a stable base: the primary key
    // (tenant, seq) lets only one writer extend it. On SQLite the write transaction already
    // excludes other writers; on PostgreSQL a loser reads the new head again and retries.
    for _ in 0..APPEND_ATTEMPTS {
        let last = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.0)
        .fetch_optional(&mut **tx)
        .await?;
        let (prev_seq, prev_hash) = match last {
            Some(row) => (
                row.try_get::<i64, _>("seq")?,
                row.try_get::<String, _>("hash")?,
            ),
            None => (0, GENESIS_HASH.to_string()),
        };
        let seq = prev_seq + 1;
        let time_us = to_micros(Timestamp::now());
        let hash = audit_hash(
            tenant, seq, time_us, &actor, &action, &target, &details, &prev_hash,
        );
        let inserted = sqlx::query(
            "INSERT INTO audit_log (tenant_id, seq, time_us, actor, action, target, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, seq) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(seq)
        .bind(time_us)
        .bind(&actor)
        .bind(&action)
        .bind(&target)
        .bind(&details)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
        if inserted.rows_affected() == 1 {
            return Ok(AuditEntry {
                tenant_id: tenant,
                seq,
                time: from_micros(time_us),
                actor,
                action,
                target,
                details,
                prev_hash,
                hash,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    Err(StoreError::Conflict {
        what: "audit entry (too many concurrent appends)".into(),
    })
}

#[async_trait]
impl AuditRepo for SqlStore {
    async fn append_audit(&self, tenant: TenantId, entry: NewAuditEntry) -> Result<AuditEntry> {
        let mut tx = self.begin_write().await?;
        let appended = append_audit_in(&mut tx, tenant, &entry).await?;
        tx.commit().await?;
        Ok(appended)
    }

    async fn list_audit(&self, tenant: TenantId, query: &AuditQuery) -> Result<AuditPage> {
        let limit = query.limit.clamp(1, 1000);
        let mut sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE tenant_id = $1 AND seq > $2");
        if query.action.is_some() {
            sql.push_str(" AND action = $4");
        }
        sql.push_str(" ORDER BY seq LIMIT $3");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.0)
            .bind(query.after.unwrap_or(0))
            .bind(limit as i64 + 1);
        if let Some(action) = &query.action {
            q = q.bind(action.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let has_more = rows.len() > limit;
        let entries: Vec<AuditEntry> = rows
            .iter()
            .take(limit)
            .map(entry_from_row)
            .collect::<Result<_>>()?;
        let next_after = if has_more {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next_after,
        })
    }

    async fn verify_audit(&self, tenant: TenantId) -> Result<AuditVerification> {
        self.verify_audit_against(tenant, &std::collections::BTreeMap::new())
            .await
    }
}

/// What an anchor outside the database says entry `seq` was: its hash, and when that was
/// seen (for the message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedEntry {
    pub hash: String,
    pub seen: String,
}

impl SqlStore {
    /// [`AuditRepo::verify_audit`], and also every entry named in `expected` (signed
    /// checkpoints) must still be there with that hash: a chain cut short, or cut and grown
    /// again under the same numbers, fails at the first entry a checkpoint contradicts.
    pub async fn verify_audit_against(
        &self,
        tenant: TenantId,
        expected: &std::collections::BTreeMap<i64, Vec<ExpectedEntry>>,
    ) -> Result<AuditVerification> {
        let mut checked = 0u64;
        let mut expected_seq = 1i64;
        let mut prev_hash = GENESIS_HASH.to_string();
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE tenant_id = $1 AND seq >= $2 ORDER BY seq LIMIT 5000"
            )))
            .bind(tenant.0)
            .bind(expected_seq)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                // Entries a checkpoint saw beyond the end: deleted.
                let first_bad = expected.range(expected_seq..).next().map(|(seq, seen)| {
                    let when = seen.first().map(|e| e.seen.as_str()).unwrap_or("?");
                    AuditBreak {
                        seq: *seq,
                        reason: format!(
                            "entries were deleted: the checkpoint of {when} saw entry {seq}, the log now ends at {}",
                            if expected_seq > 1 {
                                format!("entry {}", expected_seq - 1)
                            } else {
                                "no entry at all".to_string()
                            }
                        ),
                    }
                });
                return Ok(AuditVerification {
                    entries: checked,
                    first_bad,
                    checkpoint: None,
                });
            }
            for row in &rows {
                let entry = entry_from_row(row)?;
                let broken = |reason: String| {
                    Ok(AuditVerification {
                        entries: checked,
                        first_bad: Some(AuditBreak {
                            seq: entry.seq,
                            reason,
                        }),
                        checkpoint: None,
                    })
                };
                if entry.seq != expected_seq {
                    return Ok(AuditVerification {
                        entries: checked,
                        first_bad: Some(AuditBreak {
                            seq: expected_seq,
                            reason: format!(
                                "entry {expected_seq} is missing (the next one is {})",
                                entry.seq
                            ),
                        }),
                        checkpoint: None,
                    });
                }
                if entry.prev_hash != prev_hash {
                    return broken(format!(
                        "prev_hash {} does not match the hash of entry {} ({prev_hash})",
                        entry.prev_hash,
                        entry.seq - 1
                    ));
                }
                let hash = audit_hash(
                    tenant,
                    entry.seq,
                    to_micros(entry.time),
                    &entry.actor,
                    &entry.action,
                    &entry.target,
                    &entry.details,
                    &entry.prev_hash,
                );
                if hash != entry.hash {
                    return broken(format!(
                        "content does not match its hash (stored {}, computed {hash}): the entry was changed",
                        entry.hash
                    ));
                }
                if let Some(seen) = expected.get(&entry.seq) {
                    if let Some(other) = seen.iter().find(|e| e.hash != entry.hash) {
                        return broken(format!(
                            "entry {} is not the one the checkpoint of {} saw (hash {}, checkpoint {}): entries were deleted and written again",
                            entry.seq, other.seen, entry.hash, other.hash
                        ));
                    }
                }
                checked += 1;
                expected_seq += 1;
                prev_hash = entry.hash;
            }
        }
    }
}

impl SqlStore {
    /// The newest entry's sequence number and hash, if the tenant has any.
    pub async fn audit_head(&self, tenant: TenantId) -> Result<Option<(i64, String)>> {
        let row = sqlx::query(
            "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.try_get("seq")?, row.try_get("hash")?)))
            .transpose()
    }

    /// The stored hash of entry `seq`, if it exists.
    pub async fn audit_hash_at(&self, tenant: TenantId, seq: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = $2")
            .bind(tenant.0)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok(row.try_get("hash")?)).transpose()
    }

    /// Deletes the entries after `seq` behind the chain's back, as an attacker with database
    /// access would. For tests of truncation detection; not exposed by the API.
    #[doc(hidden)]
    pub async fn truncate_audit_for_tests(&self, tenant: TenantId, after: i64) -> Result<()> {
        sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq > $2")
            .bind(tenant.0)
            .bind(after)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Changes an entry's actor behind the chain's back, as an attacker with database access
    /// would. For tests of [`AuditRepo::verify_audit`]; not exposed by the API.
    #[doc(hidden)]
    pub async fn tamper_audit_for_tests(
        &self,
        tenant: TenantId,
        seq: i64,
        actor: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE audit_log SET actor = $1 WHERE tenant_id = $2 AND seq = $3")
            .bind(actor)
            .bind(tenant.0)
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
