//! Playbook texts: validating them, saving versions, and the cache of validated versions.

use std::sync::Arc;

use garrison_model::TenantId;
use garrison_playbook::Playbook;
use garrison_store::{PlaybookRepo, PlaybookVersion};

use super::{Soar, SoarError, SyncStatus};

impl Soar {
    /// Validates a playbook text (YAML or JSON) against the registry.
    pub fn validate(&self, source: &str) -> Result<Playbook, SoarError> {
        let (playbook, errors) = garrison_playbook::validate(source, &self.inner.registry);
        match playbook {
            Some(p) if errors.is_empty() => Ok(p),
            _ => Err(SoarError::Invalid(errors)),
        }
    }

    /// Validates and saves a new version (the same text as the latest version saves nothing).
    pub async fn save_playbook(
        &self,
        tenant: TenantId,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<PlaybookVersion, SoarError> {
        let playbook = self.validate(source)?;
        let definition = serde_json::to_string(&playbook)
            .map_err(|e| SoarError::Refused(format!("cannot encode the playbook: {e}")))?;
        Ok(self
            .inner
            .repo
            .save_playbook_version(tenant, &playbook.name, &definition, source, created_by)
            .await?)
    }

    /// Saves a playbook text like [`Soar::save_playbook`] and says whether it made a new
    /// playbook, a new version, or nothing (the text is the latest version's).
    pub async fn sync_playbook(
        &self,
        tenant: TenantId,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<(PlaybookVersion, SyncStatus), SoarError> {
        let playbook = self.validate(source)?;
        let before = self
            .inner
            .repo
            .playbook_summary(tenant, &playbook.name)
            .await?
            .map(|s| s.latest_version);
        let saved = self.save_playbook(tenant, source, created_by).await?;
        let status = match before {
            None => SyncStatus::Created,
            Some(v) if v == saved.version => SyncStatus::Unchanged,
            Some(_) => SyncStatus::Updated,
        };
        Ok((saved, status))
    }

    /// A playbook version (latest when `None`), validated once and cached.
    pub async fn playbook(
        &self,
        tenant: TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<(Arc<Playbook>, u32), SoarError> {
        if let Some(v) = version {
            let cached = self
                .inner
                .catalog
                .lock()
                .ok()
                .and_then(|c| c.get(&(tenant, name.to_owned(), v)).cloned());
            if let Some(p) = cached {
                return Ok((p, v));
            }
        }
        let row = self
            .inner
            .repo
            .playbook_version(tenant, name, version.map(i64::from))
            .await?
            .ok_or_else(|| SoarError::UnknownPlaybook {
                name: name.to_owned(),
                version: version.map(i64::from),
            })?;
        let v = u32::try_from(row.version)
            .map_err(|_| SoarError::Refused(format!("version {} out of range", row.version)))?;
        if let Some(p) = self
            .inner
            .catalog
            .lock()
            .ok()
            .and_then(|c| c.get(&(tenant, name.to_owned(), v)).cloned())
        {
            return Ok((p, v));
        }
        let playbook = Arc::new(self.validate(&row.source)?);
        if let Ok(mut c) = self.inner.catalog.lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert((tenant, name.to_owned(), v), playbook.clone());
        }
        Ok((playbook, v))
    }
}
