-- Time series as TimescaleDB hypertables (docker-compose), with compression and retention.
-- Same columns as the native variant. (A continuous aggregate tag_reads_per_minute once
-- created here was never read: 0700 drops it where it exists.)
-- pw_ensure_partitions exists here too (a no-op) so callers need not know which path ran.
CREATE FUNCTION pw_ensure_partitions(parent text, first_day date, last_day date)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;

CREATE TABLE tag_observations (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    reader text NOT NULL,
    epc text NOT NULL,
    antenna integer NOT NULL,
    rssi_cdbm integer,
    seq bigint NOT NULL
);
SELECT create_hypertable('tag_observations', by_range('observed_at', INTERVAL '1 day'));
ALTER TABLE tag_observations SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'gateway_id, epc',
    timescaledb.compress_orderby = 'observed_at'
);
SELECT add_compression_policy('tag_observations', INTERVAL '2 days');
SELECT add_retention_policy('tag_observations', INTERVAL '90 days');

CREATE TABLE presence_changes (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    lot_id text NOT NULL,
    epc text NOT NULL,
    state text NOT NULL,
    previous text,
    last_seen_at timestamptz,
    seq bigint NOT NULL
);
SELECT create_hypertable('presence_changes', by_range('observed_at', INTERVAL '7 days'));
CREATE INDEX presence_changes_lot ON presence_changes (lot_id, observed_at);

CREATE TABLE lot_counts (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    lot_id text NOT NULL,
    expected integer NOT NULL,
    present integer NOT NULL,
    missing integer NOT NULL,
    unknown integer NOT NULL
);
SELECT create_hypertable('lot_counts', by_range('observed_at', INTERVAL '7 days'));
CREATE INDEX lot_counts_lot ON lot_counts (lot_id, observed_at);
ALTER TABLE lot_counts SET (timescaledb.compress, timescaledb.compress_segmentby = 'lot_id');
SELECT add_compression_policy('lot_counts', INTERVAL '7 days');

CREATE TABLE raw_events (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL,
    body jsonb NOT NULL
);
SELECT create_hypertable('raw_events', by_range('observed_at', INTERVAL '7 days'));
CREATE INDEX raw_events_gateway ON raw_events (gateway_id, seq);

CREATE TABLE telemetry (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    kind text NOT NULL,
    body jsonb NOT NULL
);
SELECT create_hypertable('telemetry', by_range('observed_at', INTERVAL '7 days'));
CREATE INDEX telemetry_gateway ON telemetry (gateway_id, kind, observed_at);
SELECT add_retention_policy('telemetry', INTERVAL '90 days');
