-- Per source and minute: events stored, records dropped as duplicates, events flagged unparsed,
-- and the newest receive time. Written with the events (same transaction), read by source
-- health and the silent-source check; kept 8 days.
CREATE TABLE source_stats (
    tenant_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    minute_us BIGINT NOT NULL,
    events BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    unparsed BIGINT NOT NULL DEFAULT 0,
    last_received_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, source, minute_us)
);
