-- Detection: Sigma rules per tenant (with every version kept), alerts folded by fingerprint
-- and window, the events folded into each alert (so a replay never counts one twice), and the
-- hash-chained audit log.
CREATE TABLE rules (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    rule_id TEXT NOT NULL,
    title TEXT NOT NULL,
    level TEXT,
    yaml TEXT NOT NULL,
    origin TEXT NOT NULL,
    version INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, rule_id)
);
CREATE TABLE rule_versions (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    rule_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    level TEXT,
    yaml TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, version)
);
-- Bumped in the same transaction as every rule change: the detector rebuilds on a new value.
CREATE TABLE rule_revisions (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    revision INTEGER NOT NULL
);
CREATE TABLE alerts (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    alert_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    title TEXT NOT NULL,
    level TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    entity TEXT NOT NULL,
    window_start_us INTEGER NOT NULL,
    count INTEGER NOT NULL,
    first_seen_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    matched TEXT NOT NULL,
    incident_id TEXT,
    status TEXT NOT NULL DEFAULT 'new',
    last_position INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (tenant_id, alert_id)
);
CREATE INDEX alerts_rule ON alerts (tenant_id, rule_id);
CREATE INDEX alerts_last_seen ON alerts (tenant_id, last_seen_us);
CREATE TABLE alert_events (
    tenant_id INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, event_id)
);
CREATE TABLE audit_log (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    seq INTEGER NOT NULL,
    time_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
