-- Per source and minute: events stored, records dropped as duplicates, events flagged unparsed,
-- and the newest receive time. Written with the events (same transaction), read by source
-- health and the silent-source check; kept 8 days.
CREATE TABLE source_stats (
    tenant_id INTEGER NOT NULL,
    source TEXT NOT NULL,
    minute_us INTEGER NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    unparsed INTEGER NOT NULL DEFAULT 0,
    last_received_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, source, minute_us)
);
