//! What people do to runs: cancel them, and decide approvals (directly or by single-use link).

use std::time::Duration;

use garrison_model::TenantId;
use garrison_playbook::{Event, RunState, StepStatus, TimerKind};
use garrison_store::{ApprovalLink, PlaybookRepo};
use jiff::Timestamp;

use super::{secret_hash, CancelOutcome, Soar, SoarError};

/// How long a cancellation waits for a busy run before it is stored as a request instead.
const CANCEL_WAIT: Duration = Duration::from_millis(250);

impl Soar {
    pub(super) fn take_cancel(&self, tenant: TenantId, run_id: &str) -> Option<String> {
        self.inner
            .cancels
            .lock()
            .ok()
            .and_then(|mut c| c.remove(&(tenant, run_id.to_owned())))
    }

    /// Cancels a run. When the run is free (or frees up within a moment) the cancellation is
    /// applied now; when it is busy with an action call, the request is stored (a timer row
    /// due at once, so another process or a restart applies it too) and applied as soon as the
    /// call returns, before anything else is sent: the caller does not wait for the call.
    pub async fn cancel(
        &self,
        tenant: TenantId,
        run_id: &str,
        by: &str,
    ) -> Result<CancelOutcome, SoarError> {
        let lock = self.lock(tenant, run_id);
        if let Ok(guard) = tokio::time::timeout(CANCEL_WAIT, lock.lock()).await {
            let state = self
                .run_event_locked(
                    guard,
                    tenant,
                    run_id,
                    Some(Event::Cancel { by: by.to_owned() }),
                    None,
                )
                .await?;
            return Ok(CancelOutcome::Done(state));
        }
        let (state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        if state.status.is_terminal() {
            return Ok(CancelOutcome::Done(state));
        }
        let timer = garrison_playbook::Timer {
            id: garrison_playbook::cancel_timer_id(run_id),
            run_id: run_id.to_owned(),
            due: Timestamp::now(),
            kind: TimerKind::Cancel { by: by.to_owned() },
        };
        self.inner
            .repo
            .put_timer(&crate::store::timer_record(tenant, &timer)?)
            .await?;
        if let Ok(mut c) = self.inner.cancels.lock() {
            c.insert((tenant, run_id.to_owned()), by.to_owned());
        }
        tracing::info!(
            run = run_id,
            by,
            "cancellation stored: the run is busy with an action call"
        );
        Ok(CancelOutcome::Requested(state))
    }

    /// Decides a waiting approval (the caller checked who may, see
    /// [`may_approve`](super::may_approve)).
    pub async fn decide(
        &self,
        tenant: TenantId,
        run_id: &str,
        step: &str,
        choice: &str,
        by: &str,
    ) -> Result<RunState, SoarError> {
        let (state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        let st = state
            .step(step)
            .ok_or_else(|| SoarError::Refused(format!("run has no step {step:?}")))?;
        let Some(approval) = &st.approval else {
            return Err(SoarError::Refused(format!(
                "step {step:?} is not an approval"
            )));
        };
        if st.status != StepStatus::Waiting {
            return Err(SoarError::Refused(format!(
                "step {step:?} is not waiting for a decision (it is {:?})",
                st.status
            )));
        }
        if !approval.choices.iter().any(|c| c == choice) {
            return Err(SoarError::Refused(format!(
                "choice {choice:?} is not one of {:?}",
                approval.choices
            )));
        }
        self.deliver(
            tenant,
            run_id,
            Event::ApprovalDecided {
                step: step.to_owned(),
                choice: choice.to_owned(),
                by: by.to_owned(),
            },
        )
        .await
    }

    /// Creates a single-use approval link for a waiting approval; returns its secret (shown
    /// once; only its hash is stored).
    pub async fn create_approval_link(
        &self,
        tenant: TenantId,
        run_id: &str,
        step: &str,
        valid_for: Duration,
        issued_to: Option<&str>,
    ) -> Result<(String, Timestamp), SoarError> {
        let (state, _) = self
            .load(tenant, run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(run_id.to_owned()))?;
        let waiting = state
            .step(step)
            .is_some_and(|s| s.approval.is_some() && s.status == StepStatus::Waiting);
        if !waiting {
            return Err(SoarError::Refused(format!(
                "step {step:?} is not waiting for a decision"
            )));
        }
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("gal_{}", hex::encode(bytes));
        let expires = Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(valid_for.as_secs()).unwrap_or(86_400),
            ))
            .map_err(|e| SoarError::Refused(e.to_string()))?;
        self.inner
            .repo
            .create_approval_link(&ApprovalLink {
                link_hash: secret_hash(&secret),
                tenant_id: tenant,
                run_id: run_id.to_owned(),
                step: step.to_owned(),
                expires,
                issued_to: issued_to.map(str::to_owned),
            })
            .await?;
        Ok((secret, expires))
    }

    /// The approval a link is for (without using it).
    pub async fn approval_link(&self, secret: &str) -> Result<Option<ApprovalLink>, SoarError> {
        Ok(self
            .inner
            .repo
            .approval_link(&secret_hash(secret), Timestamp::now())
            .await?)
    }

    /// Decides through a link: works once.
    pub async fn decide_by_link(&self, secret: &str, choice: &str) -> Result<RunState, SoarError> {
        let hash = secret_hash(secret);
        let link = self
            .inner
            .repo
            .approval_link(&hash, Timestamp::now())
            .await?
            .ok_or_else(|| SoarError::Refused("the link is unknown, used or expired".into()))?;
        // Check the choice before spending the link.
        let (state, _) = self
            .load(link.tenant_id, &link.run_id)
            .await?
            .ok_or_else(|| SoarError::UnknownRun(link.run_id.clone()))?;
        let valid = state
            .step(&link.step)
            .and_then(|s| s.approval.as_ref())
            .is_some_and(|a| a.choices.iter().any(|c| c == choice));
        if !valid {
            return Err(SoarError::Refused(format!(
                "choice {choice:?} is not offered"
            )));
        }
        if !self
            .inner
            .repo
            .use_approval_link(&hash, Timestamp::now())
            .await?
        {
            return Err(SoarError::Refused(
                "the link is unknown, used or expired".into(),
            ));
        }
        // The person it was issued to decides; a link of an open approval is named by its hash.
        let by = link
            .issued_to
            .clone()
            .unwrap_or_else(|| format!("approval link {}", &hash[..12.min(hash.len())]));
        self.decide(link.tenant_id, &link.run_id, &link.step, choice, &by)
            .await
    }
}
