//! Sigma placeholders per tenant (`%Admins_Workstations%` in rules with the `expand`
//! modifier): values kept in Garrison, versioned, changed through the API and the CLI. A
//! change recompiles the tenant's rules live, so rules waiting for a value start to run.

use std::collections::HashMap;

use garrison_model::TenantId;
use garrison_store::{PlaceholderRepo, PlaceholderVersion};
use serde_json::json;

use crate::rules::RULE_AUTHORS;
use crate::{Actor, App, AppError, Result};

/// Most values one placeholder may hold (each becomes a pattern of every rule using it).
pub const MAX_PLACEHOLDER_VALUES: usize = 10_000;

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(AppError::invalid(format!(
            "placeholder name {name:?}: letters, digits, `_`, `-` and `.` only (as in %Admins_Workstations%, without the %)"
        )))
    }
}

impl App {
    /// The tenant's placeholder values, by name, as rules are compiled with them.
    pub async fn placeholder_values(
        &self,
        tenant: TenantId,
    ) -> Result<HashMap<String, Vec<String>>> {
        Ok(self
            .store()
            .placeholders(tenant)
            .await?
            .into_iter()
            .filter_map(|p| p.values.map(|v| (p.name, v)))
            .collect())
    }

    pub async fn list_placeholders(&self, actor: &Actor) -> Result<Vec<PlaceholderVersion>> {
        Ok(self.store().placeholders(actor.tenant).await?)
    }

    pub async fn placeholder_history(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<Vec<PlaceholderVersion>> {
        let versions = self
            .store()
            .placeholder_versions(actor.tenant, name)
            .await?;
        if versions.is_empty() {
            return Err(AppError::NotFound(format!("placeholder {name:?}")));
        }
        Ok(versions)
    }

    /// Sets a placeholder's values (a new version; admins and analysts). Rules using it are
    /// recompiled by the detector within seconds.
    pub async fn set_placeholder(
        &self,
        actor: &Actor,
        name: &str,
        values: Vec<String>,
    ) -> Result<PlaceholderVersion> {
        actor.require_any(RULE_AUTHORS)?;
        check_name(name)?;
        let values: Vec<String> = values.into_iter().map(|v| v.trim().to_string()).collect();
        if values.is_empty() {
            return Err(AppError::invalid(format!(
                "placeholder {name:?} needs at least one value (delete it instead)"
            )));
        }
        if let Some(i) = values.iter().position(String::is_empty) {
            return Err(AppError::invalid(format!(
                "value {} of {name:?} is empty",
                i + 1
            )));
        }
        if values.len() > MAX_PLACEHOLDER_VALUES {
            return Err(AppError::invalid(format!(
                "placeholder {name:?}: {} values, at most {MAX_PLACEHOLDER_VALUES}",
                values.len()
            )));
        }
        // Sigma resolves %name% case-insensitively: two names differing only in case would
        // make which values a rule gets a matter of chance.
        if let Some(other) = self
            .store()
            .placeholders(actor.tenant)
            .await?
            .into_iter()
            .find(|p| p.name != name && p.name.eq_ignore_ascii_case(name))
        {
            return Err(AppError::invalid(format!(
                "placeholder {name:?}: {:?} exists (names are case-insensitive in rules); set that one",
                other.name
            )));
        }
        let author = actor.audit_name();
        let stored = self
            .store()
            .set_placeholder(actor.tenant, name, Some(&values), &author)
            .await?;
        self.record(
            actor,
            "placeholder.set",
            name,
            json!({"version": stored.version, "values": values.len()}),
        )
        .await;
        Ok(stored)
    }

    /// Deletes a placeholder (a version without values; its history stays). Rules using it
    /// stop loading until it is set again.
    pub async fn delete_placeholder(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<PlaceholderVersion> {
        actor.require_any(RULE_AUTHORS)?;
        let author = actor.audit_name();
        let stored = self
            .store()
            .set_placeholder(actor.tenant, name, None, &author)
            .await?;
        self.record(
            actor,
            "placeholder.delete",
            name,
            json!({"version": stored.version}),
        )
        .await;
        Ok(stored)
    }
}
