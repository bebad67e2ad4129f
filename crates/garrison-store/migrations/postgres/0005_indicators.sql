-- Threat-intel indicators per tenant, one row per (kind, value, source), the feeds they come
-- from with their last import, and a revision bumped by every change (matchers rebuild on a
-- new value).
CREATE TABLE indicators (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    source TEXT NOT NULL,
    confidence BIGINT NOT NULL,
    first_seen_us BIGINT,
    expires_us BIGINT,
    tags TEXT NOT NULL,
    description TEXT,
    times_imported BIGINT NOT NULL DEFAULT 1,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (tenant_id, kind, value, source)
);
CREATE INDEX indicators_value ON indicators (tenant_id, value);
CREATE INDEX indicators_source ON indicators (tenant_id, source, id);
CREATE INDEX indicators_expires ON indicators (tenant_id, expires_us);
CREATE TABLE indicator_feeds (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    last_import_us BIGINT NOT NULL,
    last_imported BIGINT NOT NULL,
    last_errors BIGINT NOT NULL,
    imports BIGINT NOT NULL DEFAULT 1,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE indicator_revisions (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
    revision BIGINT NOT NULL
);
