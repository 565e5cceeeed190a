-- Time series with native range partitioning (daily), used when TimescaleDB is absent.
-- A DEFAULT partition catches rows outside the prepared range, so nothing is ever refused.
CREATE FUNCTION pw_ensure_partitions(parent text, first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
    made integer := 0;
    part text;
BEGIN
    WHILE day <= last_day LOOP
        part := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
        IF to_regclass(part) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    part, parent, day::timestamptz, (day + 1)::timestamptz);
                made := made + 1;
            EXCEPTION WHEN check_violation THEN
                -- Rows for that day already sit in the default partition; leave them there.
                RAISE NOTICE 'partition % skipped: default partition holds its rows', part;
            END;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN made;
END $$;

CREATE TABLE tag_observations (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    reader text NOT NULL,
    epc text NOT NULL,
    antenna integer NOT NULL,
    rssi_cdbm integer,
    seq bigint NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE TABLE tag_observations_default PARTITION OF tag_observations DEFAULT;
CREATE INDEX tag_observations_time ON tag_observations USING brin (observed_at);

CREATE TABLE presence_changes (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    lot_id text NOT NULL,
    epc text NOT NULL,
    state text NOT NULL,
    previous text,
    last_seen_at timestamptz,
    seq bigint NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE TABLE presence_changes_default PARTITION OF presence_changes DEFAULT;
CREATE INDEX presence_changes_lot ON presence_changes (lot_id, observed_at);

CREATE TABLE lot_counts (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    lot_id text NOT NULL,
    expected integer NOT NULL,
    present integer NOT NULL,
    missing integer NOT NULL,
    unknown integer NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE TABLE lot_counts_default PARTITION OF lot_counts DEFAULT;
CREATE INDEX lot_counts_lot ON lot_counts (lot_id, observed_at);

-- Every event and status message as received (the raw record behind derived tables).
CREATE TABLE raw_events (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL,
    body jsonb NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE TABLE raw_events_default PARTITION OF raw_events DEFAULT;
CREATE INDEX raw_events_gateway ON raw_events (gateway_id, seq);

-- Other telemetry (agent health, ...) as JSON.
CREATE TABLE telemetry (
    observed_at timestamptz NOT NULL,
    gateway_id text NOT NULL,
    kind text NOT NULL,
    body jsonb NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;
CREATE INDEX telemetry_gateway ON telemetry (gateway_id, kind, observed_at);

SELECT pw_ensure_partitions(t, current_date - 7, current_date + 7)
FROM unnest(ARRAY['tag_observations', 'presence_changes', 'lot_counts', 'raw_events',
                  'telemetry']) AS t;
