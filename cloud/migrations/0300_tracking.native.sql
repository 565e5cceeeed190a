-- Tracker positions, geofence events and sensor readings (native daily partitions).
CREATE TABLE tracker_positions (
    fix_at timestamptz NOT NULL,        -- the tracker's GPS time
    gateway_id text NOT NULL,           -- or 'jt808:<server>' for terminals that reach the cloud
    tracker text NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    accuracy_m real,
    battery_pct smallint,
    source text NOT NULL
) PARTITION BY RANGE (fix_at);
CREATE TABLE tracker_positions_default PARTITION OF tracker_positions DEFAULT;
CREATE INDEX tracker_positions_tracker ON tracker_positions (tracker, fix_at);

CREATE TABLE geofence_events (
    fix_at timestamptz NOT NULL,        -- time of the fix that decided it
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
) PARTITION BY RANGE (fix_at);
CREATE TABLE geofence_events_default PARTITION OF geofence_events DEFAULT;
CREATE INDEX geofence_events_tracker ON geofence_events (tracker, fix_at);

CREATE TABLE sensor_readings (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    sensor text NOT NULL,
    quantity text NOT NULL,
    unit text NOT NULL,
    lot_id text,
    value double precision NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE TABLE sensor_readings_default PARTITION OF sensor_readings DEFAULT;
CREATE INDEX sensor_readings_sensor ON sensor_readings (sensor, quantity, observed_at);

SELECT pw_ensure_partitions(t, current_date - 7, current_date + 7)
FROM unnest(ARRAY['tracker_positions', 'geofence_events', 'sensor_readings']) AS t;
