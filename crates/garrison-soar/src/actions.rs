//! The actions the service can run: the `core.*` built-ins and the firewall connector
//! (`firewall.block_ip`, reversible by `firewall.unblock_ip`), which calls a configured HTTP
//! endpoint with the attempt's `Idempotency-Key`.

use async_trait::async_trait;
use garrison_playbook::{
    ActionExecutor, ActionFailure, ActionOutcome, ActionRegistry, ActionRequest, ActionSpec,
    CoreActions, InputType,
};
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
            .example(json!({"status": 200, "body": {"blocked": true}})),
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

    async fn firewall(&self, req: ActionRequest, path: &str) -> ActionOutcome {
        let Some(base) = &self.firewall_url else {
            return ActionOutcome::err(ActionFailure::permanent(format!(
                "{}: no firewall connector is configured (set GARRISON_FIREWALL_URL)",
                req.action
            )));
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
            _ => self.core.execute(request).await,
        }
    }
}
