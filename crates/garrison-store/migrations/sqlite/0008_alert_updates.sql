-- The triage fold re-check reads open alerts by their last update.
CREATE INDEX alerts_open_updated ON alerts (updated_us, seq) WHERE status = 'new';
