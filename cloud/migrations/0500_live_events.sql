-- The live map's feed: every change a supervisor's page shows, in one append-only table,
-- filled by triggers (so ingest, the rules engine and the API need no code for it) and read
-- by the API from a resumable cursor.
--
-- Cursor order is (tx, id), not id alone: ids are taken at insert time but transactions commit
-- in another order, so a reader that went by id could step over a row that commits later.
-- Readers only take rows whose transaction is older than every transaction still running
-- (tx < pg_snapshot_xmin(pg_current_snapshot())); any row that is not visible yet then belongs
-- to a newer transaction and sorts after everything already delivered.
CREATE TABLE live_events (
    id bigserial PRIMARY KEY,
    tx bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL,         -- alert, gateway, tracker, lot_count, presence, vehicle, crossing
    site_id text,
    lot_id text,
    financier_id text,          -- the lot's pledgee when the event is about a lot
    payload jsonb NOT NULL
);
CREATE INDEX live_events_cursor ON live_events (tx, id);
CREATE INDEX live_events_at ON live_events (at);

-- The newest cursor removed by retention: a browser resuming from before it must reload.
CREATE TABLE live_feed_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tx bigint NOT NULL DEFAULT 0,
    id bigint NOT NULL DEFAULT 0
);
INSERT INTO live_feed_horizon DEFAULT VALUES;

-- One wake-up per statement; NOTIFY folds repeats inside a transaction, so a batch of a
-- thousand positions costs one notification delivered at commit.
CREATE FUNCTION live_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pw_live', '');
    RETURN NULL;
END $$;
CREATE TRIGGER live_events_wake AFTER INSERT ON live_events
    FOR EACH STATEMENT EXECUTE FUNCTION live_events_notify();

CREATE FUNCTION live_site_of_gateway(gateway text) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT site_id FROM gateways WHERE id = gateway
$$;

CREATE FUNCTION live_from_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, lot_id, financier_id, payload)
    VALUES ('alert', NEW.site_id, NEW.lot_id,
            (SELECT financier_id FROM lots WHERE id = NEW.lot_id),
            to_jsonb(NEW) - 'evidence');
    RETURN NULL;
END $$;
CREATE TRIGGER alerts_live AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION live_from_alert();

CREATE FUNCTION live_from_gateway() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, payload)
    VALUES ('gateway', NEW.site_id, jsonb_build_object(
        'id', NEW.id, 'site_id', NEW.site_id, 'online', NEW.online,
        'status_changed_at', NEW.status_changed_at, 'last_seen_at', NEW.last_seen_at));
    RETURN NULL;
END $$;
-- Only the online flag: last_seen_at moves with every message and would flood the feed.
CREATE TRIGGER gateways_live AFTER UPDATE OF online ON gateways
    FOR EACH ROW WHEN (OLD.online IS DISTINCT FROM NEW.online)
    EXECUTE FUNCTION live_from_gateway();

CREATE FUNCTION live_from_tracker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, payload)
    VALUES ('tracker', live_site_of_gateway(NEW.gateway_id), jsonb_build_object(
        'tracker', NEW.tracker, 'lon', NEW.lon, 'lat', NEW.lat, 'fix_at', NEW.fix_at,
        'accuracy_m', NEW.accuracy_m, 'battery_pct', NEW.battery_pct, 'source', NEW.source,
        'gateway_id', NEW.gateway_id));
    RETURN NULL;
END $$;
CREATE TRIGGER tracker_state_live AFTER INSERT OR UPDATE ON tracker_state
    FOR EACH ROW EXECUTE FUNCTION live_from_tracker();

CREATE FUNCTION live_from_lot_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, lot_id, financier_id, payload)
    SELECT 'lot_count', l.site_id, l.id, l.financier_id, jsonb_build_object(
        'lot_id', NEW.lot_id, 'observed_at', NEW.observed_at, 'expected', NEW.expected,
        'present', NEW.present, 'missing', NEW.missing, 'unknown', NEW.unknown)
    FROM lots l WHERE l.id = NEW.lot_id;
    RETURN NULL;
END $$;
CREATE TRIGGER lot_counts_live AFTER INSERT ON lot_counts
    FOR EACH ROW EXECUTE FUNCTION live_from_lot_count();

CREATE FUNCTION live_from_presence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, lot_id, financier_id, payload)
    SELECT 'presence', l.site_id, l.id, l.financier_id, jsonb_build_object(
        'lot_id', NEW.lot_id, 'epc', NEW.epc, 'state', NEW.state, 'previous', NEW.previous,
        'observed_at', NEW.observed_at)
    FROM lots l WHERE l.id = NEW.lot_id;
    RETURN NULL;
END $$;
CREATE TRIGGER presence_changes_live AFTER INSERT ON presence_changes
    FOR EACH ROW EXECUTE FUNCTION live_from_presence();

CREATE FUNCTION live_from_plate_read() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, payload)
    VALUES ('vehicle', live_site_of_gateway(NEW.gateway_id), jsonb_build_object(
        'gateway_id', NEW.gateway_id, 'seq', NEW.seq, 'at', NEW.observed_at,
        'camera', NEW.body -> 'camera', 'plate', NEW.body -> 'plate',
        'direction', NEW.body -> 'direction', 'confidence_pct', NEW.body -> 'confidence_pct',
        'evidence', coalesce(NEW.body -> 'evidence', '[]'::jsonb)));
    RETURN NULL;
END $$;
CREATE TRIGGER raw_events_plate_live AFTER INSERT ON raw_events
    FOR EACH ROW WHEN (NEW.type = 'plate_read') EXECUTE FUNCTION live_from_plate_read();

CREATE FUNCTION live_from_crossing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, payload)
    VALUES ('crossing', live_site_of_gateway(NEW.gateway_id), jsonb_build_object(
        'kind', NEW.kind, 'tracker', NEW.tracker, 'fence_id', NEW.fence_id,
        'fence_kind', NEW.fence_kind, 'lots', to_jsonb(NEW.lots), 'lon', NEW.lon,
        'lat', NEW.lat, 'fix_at', NEW.fix_at, 'accuracy_m', NEW.accuracy_m));
    RETURN NULL;
END $$;
CREATE TRIGGER geofence_events_live AFTER INSERT ON geofence_events
    FOR EACH ROW EXECUTE FUNCTION live_from_crossing();
