//! The actions the service can run: the `core.*` built-ins and the firewall connector
//! (`firewall.block_ip`, reversible by `firewall.unblock_ip` and re-checked by
//! `firewall.check_ip`), which calls a configured HTTP endpoint with the step's
//! `Idempotency-Key` (the same for every attempt; `X-Garrison-Attempt` says which).

use async_trait::async_trait;
use garrison_playbook::{
    ActionExecutor, ActionFailure, ActionOutcome, ActionRegistry, ActionRequest, ActionSpec,
    InputType,
};

use crate::CoreActions;
use serde_json::{json, Value as Json};

/// The declarations validation checks playbooks against.
pub fn registry() -> ActionRegistry {
    let mut r = ActionRegistry::with_core();
    r.register(
        ActionSpec::new("firewall.block_ip")
            .describe("Blocks an IP address on the firewall (POST {firewall_url}/block); undone by firewall.unblock_ip")
            .param("ip", InputType::Ip, true)
            .param("comment", InputType::String, false)
            .undo("firewall.unblock_ip")
            .check("firewall.check_ip")
            .example(json!({"status": 200, "body": {"blocked": true}})),
    );
    r.register(
        ActionSpec::new("firewall.check_ip")
            .describe("Is the IP blocked? (GET {firewall_url}/check?ip=IP answering {\"blocked\": bool}; 404 means not blocked); output {in_place, detail}")
            .param("ip", InputType::Ip, true)
            .param("comment", InputType::String, false)
            .example(json!({"in_place": true, "detail": "blocked"})),
    );
    r.register(
        ActionSpec::new("firewall.unblock_ip")
            .describe("Removes a block (POST {firewall_url}/unblock)")
            .param("ip", InputType::Ip, true)
            .param("comment", InputType::String, false)
            .example(json!({"status": 200, "body": {"unblocked": true}})),
    );
    r
}

/// True for actions that do no I/O and are safe to run again after a crash (their step may be
/// executed in memory and saved together with the next step).
pub fn is_pure(action: &str) -> bool {
    matches!(action, "core.set" | "core.log" | "core.transform")
}

/// The service's executor.
pub struct SoarActions {
    core: CoreActions,
    firewall_url: Option<String>,
}

impl SoarActions {
    /// `firewall_url`: the base URL of the firewall connector (none: its actions fail).
    pub fn new(firewall_url: Option<String>) -> Self {
        SoarActions {
            core: CoreActions::new(),
            firewall_url: firewall_url.map(|u| u.trim_end_matches('/').to_owned()),
        }
    }

    fn base(&self, action: &str) -> Result<&str, ActionOutcome> {
        self.firewall_url.as_deref().ok_or_else(|| {
            ActionOutcome::err(ActionFailure::permanent(format!(
                "{action}: no firewall connector is configured (set GARRISON_FIREWALL_URL)"
            )))
        })
    }

    /// `GET {base}/check?ip=IP`: `{"blocked": bool}` with 200, or 404 (not blocked).
    async fn firewall_check(&self, req: ActionRequest) -> ActionOutcome {
        let base = match self.base(&req.action) {
            Ok(b) => b.to_owned(),
            Err(outcome) => return outcome,
        };
        let action = req.action.clone();
        let ip = req.input.get("ip").cloned().unwrap_or(Json::Null);
        let http = ActionRequest {
            action: "core.http".into(),
            input: json!({
                "url": format!("{base}/check"),
                "method": "GET",
                "query": {"ip": ip},
                "timeout": "10s",
                "ok_status": [200, 404],
            }),
            ..req
        };
        let mut outcome = self.core.execute(http).await;
        outcome.result = match outcome.result {
            Ok(out) => {
                let status = out.get("status").and_then(Json::as_u64).unwrap_or(0);
                let body = out.get("body").cloned().unwrap_or(Json::Null);
                let blocked = if status == 404 {
                    Some(false)
                } else {
                    body.get("blocked").and_then(Json::as_bool)
                };
                match blocked {
                    Some(b) => Ok(json!({
                        "in_place": b,
                        "detail": format!(
                            "the firewall answered {status}: {} is {}blocked",
                            ip.as_str().unwrap_or("?"),
                            if b { "" } else { "not " }
                        ),
                    })),
                    None => Err(ActionFailure::permanent(format!(
                        "{action}: the firewall's answer has no boolean `blocked`: {body}"
                    ))),
                }
            }
            Err(mut f) => {
                f.message = f.message.replacen("core.http", &action, 1);
                Err(f)
            }
        };
        outcome
    }

    async fn firewall(&self, req: ActionRequest, path: &str) -> ActionOutcome {
        let base = match self.base(&req.action) {
            Ok(b) => b.to_owned(),
            Err(outcome) => return outcome,
        };
        let body = json!({
            "ip": req.input.get("ip").cloned().unwrap_or(Json::Null),
            "comment": req.input.get("comment").cloned().unwrap_or(Json::Null),
            "run_id": req.run_id,
            "step": req.step,
        });
        let action = req.action.clone();
        let http = ActionRequest {
            action: "core.http".into(),
            input: json!({"url": format!("{base}/{path}"), "method": "POST", "json": body, "timeout": "10s"}),
            ..req
        };
        let mut outcome = self.core.execute(http).await;
        if let Err(f) = &mut outcome.result {
            f.message = f.message.replacen("core.http", &action, 1);
        }
        outcome
    }
}

#[async_trait]
impl ActionExecutor for SoarActions {
    async fn execute(&self, request: ActionRequest) -> ActionOutcome {
        match request.action.as_str() {
            "firewall.block_ip" => self.firewall(request, "block").await,
            "firewall.unblock_ip" => self.firewall(request, "unblock").await,
            "firewall.check_ip" => self.firewall_check(request).await,
            _ => self.core.execute(request).await,
        }
    }
}
