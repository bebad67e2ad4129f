//! SOC figures over a period, the same from every door.

use garrison_cases::SocMetrics;
use garrison_model::{SignedDuration, Timestamp};
use garrison_store::IncidentRepo;

use crate::{Actor, App, AppError, Result};

/// The default period: 30 days before `to`.
pub const DEFAULT_PERIOD_DAYS: i64 = 30;

impl App {
    /// Alerts per day, alerts → incidents reduction, MTTA/MTTR per stage, % within SLA,
    /// false-positive rate per rule, for `[from, to)` (default: the 30 days before now).
    pub async fn soc_metrics(
        &self,
        actor: &Actor,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<SocMetrics> {
        let now = Timestamp::now();
        let to = to.unwrap_or(now);
        let from = match from {
            Some(from) => from,
            None => to
                .checked_sub(SignedDuration::from_hours(24 * DEFAULT_PERIOD_DAYS))
                .map_err(AppError::internal)?,
        };
        if from >= to {
            return Err(AppError::invalid("from must be before to"));
        }
        let (alerts, incidents) = self.store().metrics_records(actor.tenant, from, to).await?;
        let policy = self.store().sla_policy(actor.tenant).await?;
        Ok(SocMetrics::compute(
            &alerts, &incidents, &policy, from, to, now,
        ))
    }
}
