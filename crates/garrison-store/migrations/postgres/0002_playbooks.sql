-- Playbooks (SOAR): immutable versions, runs as stored state machines, timers as rows,
-- large outputs by hash, hashed webhook secrets, single-use approval links (hashed).
CREATE TABLE playbook_versions (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    source TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    created_by TEXT,
    PRIMARY KEY (tenant_id, name, version)
);
CREATE TABLE playbooks (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    latest_version BIGINT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE playbook_runs (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    run_id TEXT NOT NULL,
    playbook TEXT NOT NULL,
    version BIGINT NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    rev BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);
CREATE INDEX playbook_runs_active ON playbook_runs (active) WHERE active = 1;
CREATE INDEX playbook_runs_created ON playbook_runs (tenant_id, created_us);
CREATE TABLE playbook_timers (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    timer_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    due_us BIGINT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (tenant_id, timer_id)
);
CREATE INDEX playbook_timers_due ON playbook_timers (due_us);
CREATE TABLE playbook_blobs (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    hash TEXT NOT NULL,
    data TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hash)
);
CREATE TABLE playbook_secrets (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE playbook_approval_links (
    link_hash TEXT PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    expires_us BIGINT NOT NULL,
    used_us BIGINT
);
