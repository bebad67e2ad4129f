CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    retention_days INTEGER,
    created_us INTEGER NOT NULL
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    UNIQUE (tenant_id, username)
);
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    roles TEXT NOT NULL,
    source TEXT,
    user_id INTEGER,
    created_us INTEGER NOT NULL,
    expires_us INTEGER,
    last_used_us INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    product TEXT,
    service TEXT,
    category TEXT,
    field_mapping TEXT NOT NULL DEFAULT '[]',
    created_us INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    id TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    source TEXT NOT NULL,
    product TEXT,
    service TEXT,
    category TEXT,
    fields TEXT NOT NULL,
    normalized TEXT NOT NULL,
    raw TEXT,
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_time ON events (tenant_id, time_us, seq);
CREATE INDEX events_received ON events (tenant_id, received_us);
-- Contentless: the text lives in `events`; the index only maps words to rows (seq).
-- detail=none keeps no positions: searches are AND of words (as PostgreSQL's plainto_tsquery),
-- and indexing is faster and the index smaller.
CREATE VIRTUAL TABLE events_fts USING fts5 (text, content = '', contentless_delete = 1, detail = none);
CREATE TABLE consumer_positions (
    consumer TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
