-- Incidents (triage and cases): versioned workflows per tenant, incidents with their alerts,
-- observables, append-only timeline, tasks and templates, attachment metadata, suppressions
-- (with hit counts), grouping rules and the incident each group went to, assets, SLA policy.
CREATE TABLE incident_workflows (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
CREATE TABLE incidents (
    seq BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    incident_id TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT,
    incident_type TEXT,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    assignee TEXT,
    team TEXT,
    tlp TEXT NOT NULL,
    pap TEXT NOT NULL,
    tags TEXT NOT NULL,
    classification TEXT,
    fields TEXT NOT NULL,
    approvals TEXT NOT NULL,
    score BIGINT NOT NULL,
    workflow_version BIGINT NOT NULL,
    merged_into TEXT,
    rev BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    acknowledged_us BIGINT,
    analysed_us BIGINT,
    closed_us BIGINT,
    updated_us BIGINT NOT NULL,
    UNIQUE (tenant_id, incident_id)
);
CREATE INDEX incidents_state ON incidents (tenant_id, state);
CREATE INDEX incidents_score ON incidents (tenant_id, score, seq);
CREATE INDEX incidents_created ON incidents (tenant_id, created_us);
-- An alert belongs to at most one incident.
CREATE TABLE incident_alerts (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    alert_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    added_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX incident_alerts_incident ON incident_alerts (tenant_id, incident_id);
CREATE TABLE incident_observables (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    incident_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    field TEXT NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, kind, value)
);
CREATE INDEX incident_observables_value ON incident_observables (tenant_id, kind, value);
CREATE TABLE incident_timeline (
    seq BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    incident_id TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (tenant_id, incident_id, seq);
CREATE TABLE incident_tasks (
    seq BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    incident_id TEXT NOT NULL,
    title TEXT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    done_by TEXT,
    done_us BIGINT,
    created_us BIGINT NOT NULL
);
CREATE INDEX incident_tasks_incident ON incident_tasks (tenant_id, incident_id, seq);
CREATE TABLE incident_task_templates (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    incident_type TEXT NOT NULL,
    tasks TEXT NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, incident_type)
);
CREATE TABLE incident_attachments (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    incident_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT,
    uploaded_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, incident_id, sha256)
);
CREATE TABLE suppressions (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    suppression_id TEXT NOT NULL,
    rule_id TEXT,
    fields TEXT NOT NULL,
    reason TEXT NOT NULL,
    author TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT,
    hits BIGINT NOT NULL DEFAULT 0,
    last_hit_us BIGINT,
    PRIMARY KEY (tenant_id, suppression_id)
);
CREATE TABLE grouping_rules (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
-- Which incident a group (rule, key, window) went to: the first claim wins, so concurrent
-- workers agree.
CREATE TABLE incident_groups (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    rule TEXT NOT NULL,
    group_key TEXT NOT NULL,
    window_start_us BIGINT NOT NULL,
    incident_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, rule, group_key, window_start_us)
);
CREATE TABLE assets (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    ip TEXT,
    criticality TEXT NOT NULL,
    owner TEXT,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE INDEX assets_ip ON assets (tenant_id, ip);
CREATE TABLE sla_policies (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
    policy TEXT NOT NULL,
    updated_us BIGINT NOT NULL
)
