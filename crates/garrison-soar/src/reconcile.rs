//! Reconciliation of containments: every active lease whose action declares a check action
//! (`firewall.block_ip` → `firewall.check_ip`) is re-checked on its target, periodically and on
//! demand. The result (when, in place or not, what the check saw) is recorded on the lease in
//! the run's state through [`Event::LeaseChecked`]; a target found no longer in place is drift:
//! a line in the run's log, `drift_since` on the lease, a warning and
//! `garrison_containment_drift_total`.
//!
//! Checks are reads: they run outside the run's lock, and two processes checking the same lease
//! only record two results.

use std::time::Duration;

/// The one metric of reconciliation: leases found no longer in place. Listed in the README.
pub const CONTAINMENT_DRIFT: &str = "garrison_containment_drift_total";

use garrison_model::TenantId;
use garrison_playbook::{ActionFailure, ActionRequest, Event, LeaseStatus, RunState};
use jiff::Timestamp;
use tokio::sync::watch;

use crate::service::{Soar, SoarError};

/// Longest wait for one check's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

impl Soar {
    /// Re-checks the active leases of a run whose actions declare a check (only `lease`, a
    /// lease id `RUN/STEP`, when given) and records each result; returns the run's state after.
    /// Asking for one lease that is not active or has no check is refused.
    pub async fn reconcile_run(
        &self,
        tenant: TenantId,
        run_id: &str,
        lease: Option<&str>,
    ) -> Result<RunState, SoarError> {
        let (mut state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        if state.dry_run {
            // Its leases are simulated: nothing on any target to check.
            return match lease {
                Some(id) => Err(SoarError::Refused(format!(
                    "lease {id:?} belongs to a dry run: nothing was done to check"
                ))),
                None => Ok(state),
            };
        }
        if let Some(id) = lease {
            let l = state
                .lease(id)
                .ok_or_else(|| SoarError::Refused(format!("run has no lease {id:?}")))?;
            if l.status != LeaseStatus::Active {
                return Err(SoarError::Refused(format!(
                    "lease {id:?} is {:?}: only an active lease is checked",
                    l.status
                )));
            }
            if l.check_action.is_none() {
                return Err(SoarError::Refused(format!(
                    "`{}` declares no check action, so lease {id:?} cannot be re-checked",
                    l.action
                )));
            }
        }
        let due: Vec<_> = state
            .leases
            .iter()
            .filter(|l| {
                l.status == LeaseStatus::Active
                    && l.check_action.is_some()
                    && lease.is_none_or(|id| l.id == id)
            })
            .cloned()
            .collect();
        for l in due {
            let Some(check) = l.check_action.clone() else {
                continue;
            };
            let was_drifting = l.drift_since.is_some();
            let now = Timestamp::now();
            let call = self.executor().execute(ActionRequest {
                run_id: run_id.to_owned(),
                step: l.step.clone(),
                item: l.item,
                attempt: 1,
                idempotency_key: format!("{}/check/{}", l.id, now.as_millisecond()),
                action: check.clone(),
                input: l.input.clone(),
            });
            let result = match tokio::time::timeout(CHECK_TIMEOUT, call).await {
                Ok(outcome) => outcome.result,
                Err(_) => Err(ActionFailure::retryable(format!(
                    "{check}: no answer within {}s",
                    CHECK_TIMEOUT.as_secs()
                ))),
            };
            state = self
                .deliver(
                    tenant,
                    run_id,
                    Event::LeaseChecked {
                        lease: l.id.clone(),
                        result,
                    },
                )
                .await?;
            let after = state.lease(&l.id);
            if !was_drifting && after.is_some_and(|a| a.drift_since.is_some()) {
                metrics::counter!(CONTAINMENT_DRIFT).increment(1);
                let detail = after
                    .and_then(|a| a.last_check.as_ref())
                    .map(|c| c.detail.clone())
                    .unwrap_or_default();
                tracing::warn!(run = run_id, lease = %l.id, action = %l.action, target = %l.target, %detail, "containment drift: the action no longer holds on its target");
            }
        }
        Ok(state)
    }

    /// Re-checks every active lease of every tenant that declares a check (what the background
    /// loop does every `reconcile_interval`).
    pub async fn reconcile_all(&self) {
        self.for_each_active_run(|soar, tenant, run_id| async move {
            let checkable = match soar.load(tenant, &run_id).await {
                Ok(Some((state, _))) => {
                    !state.dry_run
                        && state
                            .leases
                            .iter()
                            .any(|l| l.status == LeaseStatus::Active && l.check_action.is_some())
                }
                Ok(None) => false,
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "cannot load a run to reconcile");
                    false
                }
            };
            if checkable {
                if let Err(e) = soar.reconcile_run(tenant, &run_id, None).await {
                    tracing::warn!(run = %run_id, error = %e, "reconciling a run's leases failed");
                }
            }
        })
        .await;
    }

    pub(crate) async fn reconcile_loop(&self, mut shutdown: watch::Receiver<bool>) {
        let every = self
            .config()
            .reconcile_interval
            .max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            self.reconcile_all().await;
        }
    }
}
