-- Tracker positions, geofence events and sensor readings as TimescaleDB hypertables.
CREATE TABLE tracker_positions (
    fix_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    tracker text NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    accuracy_m real,
    battery_pct smallint,
    source text NOT NULL
);
SELECT create_hypertable('tracker_positions', by_range('fix_at', INTERVAL '1 day'));
CREATE INDEX tracker_positions_tracker ON tracker_positions (tracker, fix_at);
ALTER TABLE tracker_positions SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'tracker',
    timescaledb.compress_orderby = 'fix_at'
);
SELECT add_compression_policy('tracker_positions', INTERVAL '2 days');
SELECT add_retention_policy('tracker_positions', INTERVAL '365 days');

CREATE TABLE geofence_events (
    fix_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    seq bigint,
    kind text NOT NULL CHECK (kind IN ('geofence_enter', 'geofence_exit', 'geofence_dwell')),
    tracker text NOT NULL,
    fence_id text NOT NULL,
    fence_kind text NOT NULL,
    lots text[] NOT NULL DEFAULT '{}',
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    accuracy_m real,
    run_started_at timestamptz NOT NULL,
    run_fixes integer NOT NULL,
    fences_version integer NOT NULL
);
SELECT create_hypertable('geofence_events', by_range('fix_at', INTERVAL '7 days'));
CREATE INDEX geofence_events_tracker ON geofence_events (tracker, fix_at);

CREATE TABLE sensor_readings (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    sensor text NOT NULL,
    quantity text NOT NULL,
    unit text NOT NULL,
    lot_id text,
    value double precision NOT NULL
);
SELECT create_hypertable('sensor_readings', by_range('observed_at', INTERVAL '1 day'));
CREATE INDEX sensor_readings_sensor ON sensor_readings (sensor, quantity, observed_at);
ALTER TABLE sensor_readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'sensor, quantity',
    timescaledb.compress_orderby = 'observed_at'
);
SELECT add_compression_policy('sensor_readings', INTERVAL '2 days');
SELECT add_retention_policy('sensor_readings', INTERVAL '365 days');
