-- The alerting stage looks, per site and batch, for alerts a person resolved lately
-- whose condition still holds (cloud.alert_condition.reopen_standing): keep that look cheap.
CREATE INDEX alerts_resolved_recent ON alerts (site_id, resolved_at DESC) WHERE state = 'resolved';
