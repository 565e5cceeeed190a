-- The cloud's versioned fences per site (pushed on cmd/geofences), what each gateway runs,
-- the latest position of every tracker (for the map), and JT/T 808 terminals.
CREATE TABLE geofence_sets (
    site_id text NOT NULL,
    version integer NOT NULL CHECK (version >= 0),
    collection jsonb NOT NULL,          -- the GeoJSON FeatureCollection, WGS84
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, version)
);

CREATE TABLE geofence_acks (
    gateway_id text PRIMARY KEY,
    version integer NOT NULL,
    state text NOT NULL CHECK (state IN ('applied', 'refused')),
    fences integer NOT NULL,
    reason text,
    acked_at timestamptz NOT NULL
);

CREATE TABLE tracker_state (
    tracker text PRIMARY KEY,
    gateway_id text NOT NULL,
    source text NOT NULL,
    fix_at timestamptz NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    accuracy_m real,
    battery_pct smallint
);

CREATE TABLE jt808_terminals (
    phone text PRIMARY KEY,
    tracker text NOT NULL,
    plate text,
    manufacturer text,
    model text,
    registered_at timestamptz,
    last_seen_at timestamptz
);
