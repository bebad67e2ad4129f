//! Playbooks and runs (SOAR): validate, save, version, diff, export, import and sync
//! playbooks; start runs by hand or by webhook; inspect, approve (also through a single-use
//! link), cancel, rerun and replay runs; list, extend, revoke and re-check containments.
//!
//! Reading needs any role; changing needs `admin` or `responder` (webhook secrets: `admin`).
//! The webhook and the approval link carry their own credential (a secret), checked here, and
//! act in the tenant that credential belongs to.

use garrison_api::playbooks::{
    ApprovalLinkView, ApproveBody, ContainmentView, DiffParams, ExportParams, ExtendBody,
    ImportBody, LinkBody, LinkView, PlaybookBody, PlaybookDetail, PlaybookProblem,
    PlaybookVersionView, PlaybookView, ReplayBody, ReplayStep, ReplayView, RunDetail,
    RunListParams, RunRef, RunSummary, StartRunBody, SyncBody, SyncFileResult, SyncReport,
    ValidationReport,
};
use garrison_model::{PageLimit, Role, TenantId, Timestamp};
use garrison_playbook::{Event, LeaseRecord, LeaseStatus, RunState};
use garrison_soar::{CancelOutcome, Soar, SoarError, StartRun};
use garrison_store::{
    PlaybookRepo, PlaybookSummary, PlaybookVersion, RunFilter, TenantRepo, UserRepo,
};
use serde_json::{json, Value};

use crate::{Actor, ActorKind, App, AppError, Result};

/// Roles that change playbooks and act on runs (viewers and analysts only read).
pub const PLAYBOOK_WRITERS: &[Role] = &[Role::Admin, Role::Responder];

/// One answer for every refused webhook call: callers cannot probe which tenants, playbooks
/// or secrets exist.
const WEBHOOK_REFUSED: &str = "unknown webhook or wrong secret (send X-Garrison-Webhook-Secret)";
/// The link is the credential: an unknown, used or expired one is refused like a bad token.
const LINK_GONE: &str = "the approval link is unknown, used or expired";

impl From<SoarError> for AppError {
    fn from(error: SoarError) -> Self {
        match error {
            SoarError::Store(e) => e.into(),
            SoarError::UnknownPlaybook { name, version } => AppError::NotFound(format!(
                "playbook {name:?}{}",
                version.map(|v| format!(" version {v}")).unwrap_or_default()
            )),
            SoarError::UnknownRun(id) => AppError::NotFound(format!("run {id:?}")),
            SoarError::Invalid(errors) => {
                let n = errors.len();
                let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
                AppError::InvalidWithErrors {
                    message: format!("the playbook has {n} error(s); first: {first}"),
                    errors: errors.iter().map(validation_error_json).collect(),
                }
            }
            SoarError::Inputs(e) => AppError::Invalid(e.to_string()),
            SoarError::Refused(reason) => AppError::Invalid(reason),
            SoarError::Contention(_) => AppError::Conflict(error.to_string()),
            SoarError::Runs(e) => AppError::internal(e),
        }
    }
}

fn validation_error_json(e: &garrison_playbook::ValidationError) -> Value {
    json!({"path": e.path, "line": e.line, "column": e.column, "message": e.message, "text": e.to_string()})
}

fn containment_view(run: &RunState, l: &LeaseRecord) -> ContainmentView {
    ContainmentView {
        lease_id: l.id.clone(),
        run_id: run.run_id.clone(),
        playbook: run.playbook.clone(),
        step: l.step.clone(),
        action: l.action.clone(),
        undo_action: l.undo_action.clone(),
        target: l.target.clone(),
        status: serde_json::to_value(l.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        acquired_at: l.acquired_at.to_string(),
        expires_at: l.expires_at.to_string(),
        check_action: l.check_action.clone(),
        last_checked: l.last_check.as_ref().map(|c| c.at.to_string()),
        in_place: l.last_check.as_ref().and_then(|c| c.in_place),
        check_detail: l.last_check.as_ref().map(|c| c.detail.clone()),
        drift: l.drift_since.is_some(),
        drift_since: l.drift_since.map(|t| t.to_string()),
    }
}

/// Passes when the run holds the lease.
fn lease_of(run: &RunState, lease: &str) -> Result<()> {
    if run.lease(lease).is_none() {
        return Err(AppError::NotFound(format!("lease {lease:?}")));
    }
    Ok(())
}

/// A unified diff (every line, `-`, `+` or ` `) by longest common subsequence.
pub fn line_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut out = format!("--- {a_name}\n+++ {b_name}\n");
    if n.saturating_mul(m) > 4_000_000 {
        a.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
        b.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        return out;
    }
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

impl App {
    /// The playbook service; absent where no server runs (a bare data directory).
    fn soar(&self) -> Result<&Soar> {
        self.soar
            .as_ref()
            .ok_or_else(|| AppError::Internal("the playbook service is not running".into()))
    }

    /// How runs, approvals and versions name the actor: the user's name when the actor speaks
    /// for a user, else `token:NAME` (the token's given name, not its prefix).
    async fn run_actor(&self, actor: &Actor) -> String {
        if let Some(id) = actor.user_id() {
            if let Ok(users) = self.store().list_users(actor.tenant).await {
                if let Some(u) = users.into_iter().find(|u| u.id == id) {
                    return u.username;
                }
            }
        }
        match &actor.kind {
            ActorKind::Token { name, .. } => format!("token:{name}"),
            // A session token is named after its user.
            ActorKind::User { name, .. } => format!("token:session of {name}"),
            _ => actor.audit_name(),
        }
    }

    async fn playbook_summary(&self, tenant: TenantId, name: &str) -> Result<PlaybookSummary> {
        self.store()
            .playbook_summary(tenant, name)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("playbook {name:?}")))
    }

    async fn playbook_version_row(
        &self,
        tenant: TenantId,
        name: &str,
        version: Option<i64>,
    ) -> Result<PlaybookVersion> {
        self.store()
            .playbook_version(tenant, name, version)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "playbook {name:?}{}",
                    version.map(|v| format!(" version {v}")).unwrap_or_default()
                ))
            })
    }

    async fn load_run(&self, tenant: TenantId, id: &str) -> Result<(RunState, i64)> {
        self.soar()?
            .load(tenant, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("run {id:?}")))
    }

    // ------------------------------------------------------------ playbooks

    /// Checks a playbook's text without saving it (any role).
    pub async fn validate_playbook(
        &self,
        _actor: &Actor,
        body: PlaybookBody,
    ) -> Result<ValidationReport> {
        let text = body.text().map_err(AppError::Invalid)?;
        let (playbook, errors) = garrison_playbook::validate(&text, self.soar()?.registry());
        Ok(ValidationReport {
            valid: errors.is_empty() && playbook.is_some(),
            name: playbook.map(|p| p.name),
            errors: errors.iter().map(PlaybookProblem::from).collect(),
        })
    }

    /// Saves a playbook's text as its next version.
    pub async fn create_playbook(
        &self,
        actor: &Actor,
        body: PlaybookBody,
    ) -> Result<PlaybookVersionView> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let text = body.text().map_err(AppError::Invalid)?;
        let by = self.run_actor(actor).await;
        let version = self
            .soar()?
            .save_playbook(actor.tenant, &text, Some(&by))
            .await?;
        let view: PlaybookVersionView = version.into();
        self.record(
            actor,
            "playbook.save",
            &view.name,
            json!({"version": view.version, "source_sha256": view.source_sha256}),
        )
        .await;
        Ok(view)
    }

    pub async fn list_playbooks(&self, actor: &Actor) -> Result<Vec<PlaybookView>> {
        let list = self.store().list_playbooks(actor.tenant).await?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    /// The playbook, its latest version and the form its inputs ask for.
    pub async fn get_playbook(&self, actor: &Actor, name: &str) -> Result<PlaybookDetail> {
        let s = self.playbook_summary(actor.tenant, name).await?;
        let latest = self
            .playbook_version_row(actor.tenant, name, Some(s.latest_version))
            .await?;
        let (pb, _) = self
            .soar()?
            .playbook(actor.tenant, name, u32::try_from(s.latest_version).ok())
            .await?;
        Ok(PlaybookDetail {
            playbook: s.into(),
            latest: latest.into(),
            input_form: pb.input_form(),
        })
    }

    /// Turns a playbook's triggers on or off.
    pub async fn set_playbook_enabled(
        &self,
        actor: &Actor,
        name: &str,
        enabled: bool,
    ) -> Result<PlaybookView> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let s = self
            .store()
            .set_playbook_enabled(actor.tenant, name, enabled)
            .await?;
        let action = if enabled {
            "playbook.enable"
        } else {
            "playbook.disable"
        };
        self.record(actor, action, name, json!({})).await;
        Ok(s.into())
    }

    pub async fn list_playbook_versions(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<Vec<PlaybookVersionView>> {
        self.playbook_summary(actor.tenant, name).await?;
        let versions = self.store().playbook_versions(actor.tenant, name).await?;
        Ok(versions.into_iter().map(Into::into).collect())
    }

    pub async fn get_playbook_version(
        &self,
        actor: &Actor,
        name: &str,
        version: i64,
    ) -> Result<PlaybookVersionView> {
        Ok(self
            .playbook_version_row(actor.tenant, name, Some(version))
            .await?
            .into())
    }

    /// A unified line diff of two versions' texts.
    pub async fn diff_playbook_versions(
        &self,
        actor: &Actor,
        name: &str,
        params: DiffParams,
    ) -> Result<String> {
        let a = self
            .playbook_version_row(actor.tenant, name, Some(params.from))
            .await?;
        let b = self
            .playbook_version_row(actor.tenant, name, params.to)
            .await?;
        Ok(line_diff(
            &a.source,
            &b.source,
            &format!("{name} v{}", a.version),
            &format!("{name} v{}", b.version),
        ))
    }

    /// A version's text as written.
    pub async fn export_playbook(
        &self,
        actor: &Actor,
        name: &str,
        params: ExportParams,
    ) -> Result<String> {
        let v = self
            .playbook_version_row(actor.tenant, name, params.version)
            .await?;
        Ok(v.source)
    }

    /// Saves every text, or none when any does not validate (a folder is synced whole).
    pub async fn import_playbooks(
        &self,
        actor: &Actor,
        body: ImportBody,
    ) -> Result<Vec<PlaybookVersionView>> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let soar = self.soar()?;
        let mut errors = Vec::new();
        let mut bad_files = Vec::new();
        // Children may be among the sources: each is checked against the saved playbooks and
        // the others imported with it, before anything is saved (all or nothing).
        let validated: Vec<_> = body.sources.iter().map(|s| soar.validate(s)).collect();
        let batch: garrison_soar::Batch = validated
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.inputs.clone()))
            .collect();
        for (i, result) in validated.into_iter().enumerate() {
            let checked = match result {
                Ok(p) => soar.check_children(actor.tenant, &p, &batch).await,
                Err(e) => Err(e),
            };
            let list = match checked {
                Ok(()) => continue,
                Err(SoarError::Invalid(list)) => list,
                Err(e) => return Err(e.into()),
            };
            // Each error names its file (or its place in `sources`), as `validate` does.
            let name = body
                .paths
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("sources[{i}]"));
            for e in list {
                let mut v = validation_error_json(&e);
                if let Some(o) = v.as_object_mut() {
                    o.insert("source".into(), json!(i));
                    o.insert("file".into(), json!(name));
                    o.insert("text".into(), json!(format!("{name}:{e}")));
                }
                errors.push(v);
            }
            bad_files.push(name);
        }
        if !errors.is_empty() {
            return Err(AppError::InvalidWithErrors {
                message: format!(
                    "{} error(s) in {}; nothing was imported",
                    errors.len(),
                    bad_files.join(", ")
                ),
                errors,
            });
        }
        let by = self.run_actor(actor).await;
        let mut saved: Vec<PlaybookVersionView> = Vec::new();
        for source in &body.sources {
            saved.push(
                soar.save_playbook_with(actor.tenant, source, Some(&by), &batch)
                    .await?
                    .into(),
            );
        }
        let versions: Vec<Value> = saved
            .iter()
            .map(|v| json!({"name": v.name, "version": v.version}))
            .collect();
        self.record(
            actor,
            "playbook.import",
            "playbooks",
            json!({"versions": versions}),
        )
        .await;
        Ok(saved)
    }

    /// Stores a webhook secret's hash (admins); the secret itself is never kept or logged.
    pub async fn put_playbook_secret(&self, actor: &Actor, name: &str, secret: &str) -> Result<()> {
        actor.require_admin()?;
        if secret.len() < 16 {
            return Err(AppError::invalid(
                "a webhook secret needs at least 16 characters",
            ));
        }
        self.store()
            .put_secret_hash(actor.tenant, name, &garrison_soar::secret_hash(secret))
            .await?;
        self.record(actor, "playbook.secret.put", name, json!({}))
            .await;
        Ok(())
    }

    /// Brings the stored playbooks in line with a folder: per file created, updated, unchanged
    /// or an error with its places; the good files are saved even when others fail.
    pub async fn sync_playbooks(&self, actor: &Actor, body: SyncBody) -> Result<SyncReport> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let soar = self.soar()?;
        let by = self.run_actor(actor).await;
        let mut report = SyncReport {
            files: Vec::new(),
            created: 0,
            updated: 0,
            unchanged: 0,
            failed: 0,
        };
        // Which file defined each name first: a second file with the same name is an error.
        let mut names: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        // Children may be among the files: the ones that validate are known to each other.
        let batch: garrison_soar::Batch = body
            .files
            .iter()
            .filter_map(|f| soar.validate(&f.source).ok())
            .map(|p| (p.name, p.inputs))
            .collect();
        for file in body.files {
            let mut result = SyncFileResult {
                path: file.path.clone(),
                status: "error".into(),
                name: None,
                version: None,
                errors: Vec::new(),
            };
            let name = match soar.validate(&file.source) {
                Ok(p) => Some(p.name),
                Err(SoarError::Invalid(list)) => {
                    result.errors = list.iter().map(PlaybookProblem::from).collect();
                    None
                }
                Err(e) => {
                    result.errors = vec![PlaybookProblem::unplaced(e.to_string())];
                    None
                }
            };
            if let Some(name) = name {
                result.name = Some(name.clone());
                if let Some(first) = names.get(&name) {
                    let message = format!("playbook {name:?} is also defined in {first}");
                    result.errors = vec![PlaybookProblem {
                        path: Some("name".into()),
                        line: None,
                        column: None,
                        text: format!("name: {message}"),
                        message,
                    }];
                } else {
                    names.insert(name, file.path.clone());
                    match soar
                        .sync_playbook(actor.tenant, &file.source, Some(&by), &batch)
                        .await
                    {
                        Ok((version, status)) => {
                            result.version = Some(version.version);
                            result.status = serde_json::to_value(status)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default();
                        }
                        Err(SoarError::Invalid(list)) => {
                            result.errors = list.iter().map(PlaybookProblem::from).collect();
                        }
                        Err(SoarError::Store(e)) => return Err(e.into()),
                        Err(e) => {
                            result.errors = vec![PlaybookProblem::unplaced(e.to_string())];
                        }
                    }
                }
            }
            match result.status.as_str() {
                "created" => report.created += 1,
                "updated" => report.updated += 1,
                "unchanged" => report.unchanged += 1,
                _ => report.failed += 1,
            }
            report.files.push(result);
        }
        let changed: Vec<Value> = report
            .files
            .iter()
            .filter(|f| f.status == "created" || f.status == "updated")
            .map(|f| json!({"name": f.name, "version": f.version, "status": f.status}))
            .collect();
        self.record(
            actor,
            "playbook.sync",
            "playbooks",
            json!({"changed": changed, "failed": report.failed}),
        )
        .await;
        Ok(report)
    }

    // ------------------------------------------------------------ runs

    /// Starts a run by hand; it has already finished when it had only built-in steps.
    pub async fn start_run(
        &self,
        actor: &Actor,
        playbook: String,
        body: StartRunBody,
    ) -> Result<RunState> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let by = self.run_actor(actor).await;
        let run = self
            .soar()?
            .start_run(
                actor.tenant,
                StartRun {
                    playbook,
                    version: body.version,
                    inputs: body.inputs.unwrap_or_else(|| json!({})),
                    trigger: json!({"kind": "manual", "by": by}),
                    dry_run: body.dry_run,
                    ..Default::default()
                },
            )
            .await?;
        self.record(
            actor,
            "run.start",
            &run.run_id,
            json!({"playbook": run.playbook, "version": run.version, "dry_run": run.dry_run}),
        )
        .await;
        Ok(run)
    }

    pub async fn list_runs(&self, actor: &Actor, params: RunListParams) -> Result<Vec<RunSummary>> {
        let filter = RunFilter {
            playbook: params.playbook,
            status: params.status,
            active: params.active,
            before: params.before.map(|t| t.0),
            limit: PageLimit::or(params.limit, 100),
        };
        let runs = self.store().list_runs(actor.tenant, &filter, false).await?;
        Ok(runs
            .into_iter()
            .map(|r| RunSummary {
                run_id: r.run_id,
                playbook: r.playbook,
                version: r.version,
                status: r.status,
                active: r.active,
                created: r.created.to_string(),
                updated: r.updated.to_string(),
            })
            .collect())
    }

    /// The run with its revision.
    pub async fn get_run(&self, actor: &Actor, id: &str) -> Result<RunDetail> {
        let (run, rev) = self.load_run(actor.tenant, id).await?;
        Ok(RunDetail { run, rev })
    }

    /// Decides a pending approval; only its approvers may, when it names them.
    pub async fn approve_run(
        &self,
        actor: &Actor,
        id: &str,
        body: ApproveBody,
    ) -> Result<RunState> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let (run, _) = self.load_run(actor.tenant, id).await?;
        let by = self.run_actor(actor).await;
        // An admin outside the approvers may decide: an override, said in the audit line.
        let mut overridden = false;
        if let Some(approval) = run.step(&body.step).and_then(|s| s.approval.as_ref()) {
            let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
            if !garrison_soar::may_approve(&approval.approvers, &by, &roles) {
                return Err(AppError::forbidden(
                    "you are not among this approval's approvers",
                ));
            }
            let without_admin: Vec<&str> =
                roles.iter().copied().filter(|r| *r != "admin").collect();
            overridden = !garrison_soar::may_approve(&approval.approvers, &by, &without_admin);
        }
        let run = self
            .soar()?
            .decide(actor.tenant, id, &body.step, &body.choice, &by)
            .await?;
        let detail = if overridden {
            json!({"step": body.step, "choice": body.choice, "override": "admin outside the approvers"})
        } else {
            json!({"step": body.step, "choice": body.choice})
        };
        self.record(actor, "run.approve", id, detail).await;
        Ok(run)
    }

    /// Cancels a run now, or (while an action call is out) once the call returns.
    pub async fn cancel_run(&self, actor: &Actor, id: &str) -> Result<CancelOutcome> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        self.load_run(actor.tenant, id).await?;
        let by = self.run_actor(actor).await;
        let outcome = self.soar()?.cancel(actor.tenant, id, &by).await?;
        let requested = matches!(outcome, CancelOutcome::Requested(_));
        self.record(actor, "run.cancel", id, json!({"deferred": requested}))
            .await;
        Ok(outcome)
    }

    /// Runs a failed run again from its failed steps.
    pub async fn rerun_run(&self, actor: &Actor, id: &str) -> Result<RunState> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let (before, _) = self.load_run(actor.tenant, id).await?;
        if before.status != garrison_playbook::RunStatus::Failed {
            return Err(AppError::invalid("only a failed run can be rerun"));
        }
        let run = self.soar()?.deliver(actor.tenant, id, Event::Rerun).await?;
        self.record(actor, "run.rerun", id, json!({})).await;
        Ok(run)
    }

    /// The run's path with another version (simulated: nothing is sent or stored), beside
    /// its own path.
    pub async fn replay_run(
        &self,
        actor: &Actor,
        id: &str,
        body: ReplayBody,
    ) -> Result<ReplayView> {
        self.load_run(actor.tenant, id).await?;
        let replay = self
            .soar()?
            .replay(
                actor.tenant,
                id,
                body.version,
                body.recorded_outputs.unwrap_or(true),
            )
            .await?;
        let path = garrison_soar::path_taken(&replay.state);
        let original_path = garrison_soar::path_taken(&replay.original);
        let added: Vec<String> = path
            .iter()
            .filter(|s| !original_path.contains(s))
            .cloned()
            .collect();
        let removed: Vec<String> = original_path
            .iter()
            .filter(|s| !path.contains(s))
            .cloned()
            .collect();
        let steps: Vec<ReplayStep> = replay
            .state
            .steps
            .iter()
            .map(|s| ReplayStep {
                id: s.id.clone(),
                status: s.status,
                recorded: replay.recorded_steps.contains(&s.id),
                input: s.input.clone(),
                output: s.output.clone(),
                error: s.error.clone(),
            })
            .collect();
        Ok(ReplayView {
            run_id: id.to_string(),
            playbook: replay.original.playbook,
            original_version: replay.original.version,
            version: replay.state.version,
            status: replay.state.status,
            error: replay.state.error,
            path,
            original_path,
            added_to_path: added,
            removed_from_path: removed,
            steps,
            ignored_inputs: replay.ignored_inputs,
            recorded_steps: replay.recorded_steps,
        })
    }

    // ------------------------------------------------------------ approval links

    /// A single-use link that decides one approval without a token; valid 1 minute to 30 days
    /// (a day when not said). When the approval names its approvers, the link is issued to one
    /// of them (`approver`) and the decision made through it is recorded as theirs: a link never
    /// lets someone outside the list decide.
    pub async fn create_approval_link(
        &self,
        actor: &Actor,
        id: &str,
        body: LinkBody,
    ) -> Result<LinkView> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let (run, _) = self.load_run(actor.tenant, id).await?;
        let approvers = run
            .step(&body.step)
            .and_then(|s| s.approval.as_ref())
            .map(|a| a.approvers.clone())
            .unwrap_or_default();
        let limited = !approvers.users.is_empty() || !approvers.roles.is_empty();
        let approver = match (&body.approver, limited) {
            (None, false) => None,
            (None, true) => {
                return Err(AppError::invalid(format!(
                "name the approver the link is for (`approver`): this approval is limited to {}",
                approvers_text(&approvers)
            )))
            }
            (Some(name), _) => {
                let user = self
                    .store()
                    .list_users(actor.tenant)
                    .await?
                    .into_iter()
                    .find(|u| &u.username == name && !u.disabled)
                    .ok_or_else(|| {
                        AppError::invalid(format!("approver: no active user named {name:?}"))
                    })?;
                let roles: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
                if !garrison_soar::may_approve(&approvers, &user.username, &roles) {
                    return Err(AppError::forbidden(format!(
                        "{name} is not among this approval's approvers ({})",
                        approvers_text(&approvers)
                    )));
                }
                Some(user.username)
            }
        };
        let valid = std::time::Duration::from_secs(
            body.valid_for_seconds
                .unwrap_or(86_400)
                .clamp(60, 30 * 86_400),
        );
        let (secret, expires) = self
            .soar()?
            .create_approval_link(actor.tenant, id, &body.step, valid, approver.as_deref())
            .await?;
        self.record(
            actor,
            "run.approval_link.create",
            id,
            json!({"step": body.step, "expires": expires.to_string(), "approver": approver}),
        )
        .await;
        Ok(LinkView {
            path: format!("/api/v1/approval-links/{secret}"),
            expires: expires.to_string(),
            approver,
        })
    }

    /// The approval a link decides (the link is the credential).
    pub async fn show_approval_link(&self, secret: &str) -> Result<ApprovalLinkView> {
        let gone = || AppError::Unauthenticated(LINK_GONE.into());
        let link = self.soar()?.approval_link(secret).await?.ok_or_else(gone)?;
        let (run, _) = self.load_run(link.tenant_id, &link.run_id).await?;
        let approval = run
            .step(&link.step)
            .and_then(|s| s.approval.clone())
            .ok_or_else(gone)?;
        Ok(ApprovalLinkView {
            run_id: link.run_id,
            playbook: run.playbook,
            step: link.step,
            message: approval.message,
            choices: approval.choices,
            expires: link.expires.to_string(),
        })
    }

    /// Decides through a link, which then no longer works. `body` is `{"choice": "..."}`; it
    /// is read only once the link is known good, so without the link nothing is said.
    pub async fn decide_by_approval_link(&self, secret: &str, body: &[u8]) -> Result<RunRef> {
        let soar = self.soar()?;
        if soar.approval_link(secret).await?.is_none() {
            return Err(AppError::Unauthenticated(LINK_GONE.into()));
        }
        let body: garrison_api::playbooks::ChoiceBody = serde_json::from_slice(body)
            .map_err(|e| AppError::invalid(format!("expected {{\"choice\": \"...\"}}: {e}")))?;
        let link = soar.approval_link(secret).await?;
        let run = match soar.decide_by_link(secret, &body.choice).await {
            Err(SoarError::Refused(reason)) if reason.contains("unknown, used or expired") => {
                return Err(AppError::Unauthenticated(LINK_GONE.into()))
            }
            other => other?,
        };
        if let Some(link) = link {
            // The person the link was issued to decided; the audit line names them.
            let who = link
                .issued_to
                .as_deref()
                .map(|p| format!("approval-link:{p}"))
                .unwrap_or_else(|| "approval-link".to_string());
            self.record_named(
                link.tenant_id,
                &who,
                "run.approve",
                &run.run_id,
                json!({"step": link.step, "choice": body.choice, "via": "approval link", "approver": link.issued_to}),
            )
            .await;
        }
        Ok(RunRef::from(run))
    }

    // ------------------------------------------------------------ webhooks

    /// Starts the latest version of `playbook` in the tenant named `tenant`, when `secret` is
    /// one of the playbook's webhook secrets. `body` is any JSON (or nothing); its keys fill the
    /// declared inputs they name (or the trigger's `inputs` mapping reads it). A `delivery` id
    /// names the run (per tenant and playbook), so a redelivered request answers the run the
    /// first one started instead of starting a second. Every refusal before the secret is checked reads the
    /// same, and the body is read only after.
    pub async fn start_run_by_webhook(
        &self,
        tenant: &str,
        playbook: String,
        secret: Option<&str>,
        delivery: Option<&str>,
        body: &[u8],
    ) -> Result<RunRef> {
        let refused = || AppError::Unauthenticated(WEBHOOK_REFUSED.into());
        let soar = self.soar()?;
        let presented = secret.ok_or_else(refused)?;
        let tenant = self
            .store()
            .tenant_by_name(tenant)
            .await?
            .ok_or_else(refused)?;
        let (pb, version) = match soar.playbook(tenant.id, &playbook, None).await {
            Ok(p) => p,
            Err(SoarError::UnknownPlaybook { .. }) => return Err(refused()),
            Err(e) => return Err(e.into()),
        };
        let secret_names: Vec<(usize, &str)> = pb
            .triggers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                garrison_playbook::Trigger::Webhook { secret, .. } => Some((i, secret.as_str())),
                _ => None,
            })
            .collect();
        let presented_hash = garrison_soar::secret_hash(presented);
        let mut matched = None;
        for (i, name) in secret_names {
            if let Some(stored) = self.store().secret_hash(tenant.id, name).await? {
                if garrison_soar::constant_time_eq(&stored, &presented_hash) {
                    matched.get_or_insert(i);
                }
            }
        }
        let Some(trigger_index) = matched else {
            return Err(refused());
        };
        let body: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| AppError::invalid(format!("the body is not JSON: {e}")))?
        };
        // The body's keys are the inputs (`{"inputs": {...}}` is read too), unless the trigger
        // maps them (see `garrison_playbook::payload`).
        let payload = json!({"kind": "webhook", "body": body});
        let trigger = pb.triggers.get(trigger_index).ok_or_else(refused)?;
        let inputs = pb.trigger_inputs(trigger, &payload).map_err(|problems| {
            AppError::invalid(format!("the webhook's inputs: {}", problems.join("; ")))
        })?;
        let run_id = delivery.map(|d| {
            let key = format!("{}\u{0}{playbook}\u{0}{d}", tenant.id.0);
            format!("whk-{}", &garrison_soar::secret_hash(&key)[..26])
        });
        let run = soar
            .start_run(
                tenant.id,
                StartRun {
                    playbook,
                    version: Some(version),
                    inputs,
                    trigger: payload,
                    run_id,
                    ..Default::default()
                },
            )
            .await?;
        self.record_named(
            tenant.id,
            &format!("webhook:{}", run.playbook),
            "run.start",
            &run.run_id,
            json!({"playbook": run.playbook, "version": run.version, "trigger": "webhook"}),
        )
        .await;
        Ok(RunRef::from(run))
    }

    // ------------------------------------------------------------ containments

    /// Every lease held on a target now (simulated runs hold none), with its last check.
    pub async fn list_containments(&self, actor: &Actor) -> Result<Vec<ContainmentView>> {
        let soar = self.soar()?;
        let filter = RunFilter {
            active: Some(true),
            limit: 10_000,
            ..Default::default()
        };
        let runs = self.store().list_runs(actor.tenant, &filter, false).await?;
        let mut out = Vec::new();
        for r in runs {
            let Some((run, _)) = soar.load(actor.tenant, &r.run_id).await? else {
                continue;
            };
            if run.dry_run {
                continue;
            }
            for l in &run.leases {
                if matches!(
                    l.status,
                    LeaseStatus::Active | LeaseStatus::Releasing | LeaseStatus::UndoFailed
                ) {
                    out.push(containment_view(&run, l));
                }
            }
        }
        Ok(out)
    }

    /// Moves a lease's end: to `until`, or `for` a duration from now.
    pub async fn extend_lease(
        &self,
        actor: &Actor,
        id: &str,
        step: &str,
        body: ExtendBody,
    ) -> Result<RunState> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let (run, _) = self.load_run(actor.tenant, id).await?;
        let lease = format!("{id}/{step}");
        lease_of(&run, &lease)?;
        let until = match (&body.until, &body.r#for) {
            (Some(u), None) => u
                .parse::<Timestamp>()
                .map_err(|e| AppError::invalid(format!("until: {e}")))?,
            (None, Some(f)) => {
                let d: garrison_playbook::Duration = f
                    .parse()
                    .map_err(|e: String| AppError::invalid(format!("for: {e}")))?;
                Timestamp::now()
                    .checked_add(d.to_signed())
                    .map_err(|e| AppError::invalid(format!("for: {e}")))?
            }
            _ => return Err(AppError::invalid("send one of `until` or `for`")),
        };
        let by = self.run_actor(actor).await;
        let run = self
            .soar()?
            .deliver(
                actor.tenant,
                id,
                Event::ExtendLease {
                    lease: lease.clone(),
                    until,
                    by,
                },
            )
            .await?;
        self.record(
            actor,
            "lease.extend",
            &lease,
            json!({"until": until.to_string()}),
        )
        .await;
        Ok(run)
    }

    /// Ends a lease now; its undo runs.
    pub async fn revoke_lease(&self, actor: &Actor, id: &str, step: &str) -> Result<RunState> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let (run, _) = self.load_run(actor.tenant, id).await?;
        let lease = format!("{id}/{step}");
        lease_of(&run, &lease)?;
        let by = self.run_actor(actor).await;
        let run = self
            .soar()?
            .deliver(
                actor.tenant,
                id,
                Event::RevokeLease {
                    lease: lease.clone(),
                    by,
                },
            )
            .await?;
        self.record(actor, "lease.revoke", &lease, json!({})).await;
        Ok(run)
    }

    /// Re-checks a lease's target now (is the containment still in place?).
    pub async fn reconcile_lease(
        &self,
        actor: &Actor,
        id: &str,
        step: &str,
    ) -> Result<ContainmentView> {
        actor.require_any(PLAYBOOK_WRITERS)?;
        let (run, _) = self.load_run(actor.tenant, id).await?;
        let lease = format!("{id}/{step}");
        lease_of(&run, &lease)?;
        let run = self
            .soar()?
            .reconcile_run(actor.tenant, id, Some(&lease))
            .await?;
        let l = run
            .lease(&lease)
            .ok_or_else(|| AppError::NotFound(format!("lease {lease:?}")))?;
        Ok(containment_view(&run, l))
    }
}

/// `users a, b; roles responder` for messages.
fn approvers_text(approvers: &garrison_playbook::Approvers) -> String {
    let mut parts = Vec::new();
    if !approvers.users.is_empty() {
        parts.push(format!("users {}", approvers.users.join(", ")));
    }
    if !approvers.roles.is_empty() {
        parts.push(format!("roles {}", approvers.roles.join(", ")));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\n", "v1", "v2");
        assert_eq!(d, "--- v1\n+++ v2\n a\n-b\n+x\n c\n");
    }
}
