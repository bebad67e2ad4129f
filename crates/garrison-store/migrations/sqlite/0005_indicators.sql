-- Threat-intel indicators per tenant, one row per (kind, value, source), the feeds they come
-- from with their last import, and a revision bumped by every change (matchers rebuild on a
-- new value).
CREATE TABLE indicators (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    source TEXT NOT NULL,
    confidence INTEGER NOT NULL,
    first_seen_us INTEGER,
    expires_us INTEGER,
    tags TEXT NOT NULL,
    description TEXT,
    times_imported INTEGER NOT NULL DEFAULT 1,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (tenant_id, kind, value, source)
);
CREATE INDEX indicators_value ON indicators (tenant_id, value);
CREATE INDEX indicators_source ON indicators (tenant_id, source, id);
CREATE INDEX indicators_expires ON indicators (tenant_id, expires_us);
CREATE TABLE indicator_feeds (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    last_import_us INTEGER NOT NULL,
    last_imported INTEGER NOT NULL,
    last_errors INTEGER NOT NULL,
    imports INTEGER NOT NULL DEFAULT 1,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE indicator_revisions (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    revision INTEGER NOT NULL
);
