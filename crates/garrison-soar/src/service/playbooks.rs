//! Playbook texts: validating them, saving versions, and the cache of validated versions.

use std::sync::Arc;

use garrison_model::TenantId;
use garrison_playbook::{InputDef, Playbook, StepKind, ValidationError};
use garrison_store::{PlaybookRepo, PlaybookVersion};

use super::{Soar, SoarError, SyncStatus};

/// Playbooks saved together (an import or a sync), by name, with their declared inputs: a
/// child reference may name one of them as well as a saved playbook.
pub type Batch = std::collections::HashMap<String, Vec<InputDef>>;

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
    /// The child playbooks it calls must be saved already (see [`Soar::check_children`]).
    pub async fn save_playbook(
        &self,
        tenant: TenantId,
        source: &str,
        created_by: Option<&str>,
    ) -> Result<PlaybookVersion, SoarError> {
        self.save_playbook_with(tenant, source, created_by, &Batch::new())
            .await
    }

    /// [`Soar::save_playbook`] for one of several playbooks saved together: a child reference
    /// may also name one of `batch`.
    pub async fn save_playbook_with(
        &self,
        tenant: TenantId,
        source: &str,
        created_by: Option<&str>,
        batch: &Batch,
    ) -> Result<PlaybookVersion, SoarError> {
        let playbook = self.validate(source)?;
        self.check_children(tenant, &playbook, batch).await?;
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
        batch: &Batch,
    ) -> Result<(PlaybookVersion, SyncStatus), SoarError> {
        let playbook = self.validate(source)?;
        let before = self
            .inner
            .repo
            .playbook_summary(tenant, &playbook.name)
            .await?
            .map(|s| s.latest_version);
        let saved = self
            .save_playbook_with(tenant, source, created_by, batch)
            .await?;
        let status = match before {
            None => SyncStatus::Created,
            Some(v) if v == saved.version => SyncStatus::Unchanged,
            Some(_) => SyncStatus::Updated,
        };
        Ok((saved, status))
    }

    /// Every child playbook `playbook` calls exists (saved in the tenant, at the pinned version
    /// when pinned, or in `batch`) and declares the inputs given to it, with its required ones
    /// given: a missing child is refused when the parent is saved, not found when a run
    /// reaches the step. A playbook may call itself.
    pub async fn check_children(
        &self,
        tenant: TenantId,
        playbook: &Playbook,
        batch: &Batch,
    ) -> Result<(), SoarError> {
        let mut errors = Vec::new();
        let error = |path: String, message: String| ValidationError {
            path,
            line: None,
            column: None,
            message,
        };
        for step in &playbook.steps {
            let StepKind::SubPlaybook {
                playbook: child,
                version,
                with,
            } = &step.kind
            else {
                continue;
            };
            let inputs: Vec<InputDef> = if child == &playbook.name {
                playbook.inputs.clone()
            } else if let (Some(inputs), None) = (batch.get(child), version) {
                inputs.clone()
            } else {
                match self.playbook(tenant, child, *version).await {
                    Ok((pb, _)) => pb.inputs.clone(),
                    Err(SoarError::UnknownPlaybook { .. }) => {
                        let pinned = version.map(|v| format!(" version {v}")).unwrap_or_default();
                        errors.push(error(
                            format!("steps.{}.playbook", step.id),
                            format!("no playbook `{child}`{pinned} in this tenant: save it first, or import it together with this one"),
                        ));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            // A `with` that is one template is checked when the run renders it.
            let Some(given) = with.as_object() else {
                continue;
            };
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            for key in given.keys() {
                if !names.contains(&key.as_str()) {
                    errors.push(error(
                        format!("steps.{}.with.{key}", step.id),
                        format!(
                            "`{child}` has no input `{key}` (its inputs: {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    ));
                }
            }
            for input in &inputs {
                if input.required && !given.contains_key(&input.name) {
                    errors.push(error(
                        format!("steps.{}.with", step.id),
                        format!("`{child}` needs its input `{}`", input.name),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SoarError::Invalid(errors))
        }
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
