-- A lot's incident that folds a door, plate or weight alert in sends its "resolved" only if
-- its "opened" went out (cloud.alerts._fold_standing): one index lookup per folded alert,
-- inside ingest's transaction, whatever the size of the outbox.
CREATE INDEX webhook_messages_opened ON webhook_messages (alert_id) WHERE event_type = 'alert.opened';
