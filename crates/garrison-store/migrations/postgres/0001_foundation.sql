CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    retention_days BIGINT,
    created_us BIGINT NOT NULL
);
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_us BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);
CREATE TABLE tokens (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    roles TEXT NOT NULL,
    source TEXT,
    user_id BIGINT,
    created_us BIGINT NOT NULL,
    expires_us BIGINT,
    last_used_us BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_tenant ON tokens (tenant_id);
CREATE TABLE sources (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    product TEXT,
    service TEXT,
    category TEXT,
    field_mapping TEXT NOT NULL DEFAULT '[]',
    created_us BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    id TEXT NOT NULL,
    time_us BIGINT NOT NULL,
    received_us BIGINT NOT NULL,
    source TEXT NOT NULL,
    product TEXT,
    service TEXT,
    category TEXT,
    fields JSONB NOT NULL,
    normalized JSONB NOT NULL,
    raw TEXT,
    tsv TSVECTOR NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX events_time ON events (tenant_id, time_us, seq);
CREATE INDEX events_received ON events (tenant_id, received_us);
CREATE INDEX events_tsv ON events USING GIN (tsv);
CREATE TABLE consumer_positions (
    consumer TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
