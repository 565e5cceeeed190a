-- Relational core: who operates what, which gateways may speak, what is pledged.
CREATE TABLE operators (
    id text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE financiers (
    id text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE sites (
    id text PRIMARY KEY,
    operator_id text NOT NULL REFERENCES operators (id),
    name text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateways (
    id text PRIMARY KEY,
    site_id text NOT NULL REFERENCES sites (id),
    public_key text NOT NULL,           -- base64 of the raw 32-byte Ed25519 key
    mqtt_username text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,           -- receive time of its latest accepted message
    last_seq bigint,
    online boolean NOT NULL DEFAULT false,
    status_changed_at timestamptz
);

CREATE TABLE api_keys (
    id text PRIMARY KEY,                -- public part, shown in logs and lists
    secret_hash bytea NOT NULL,         -- SHA-256 of the secret part
    role text NOT NULL CHECK (role IN ('admin', 'supervisor', 'financier', 'gateway')),
    operator_id text REFERENCES operators (id),
    financier_id text REFERENCES financiers (id),
    gateway_id text REFERENCES gateways (id),
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (role <> 'financier' OR financier_id IS NOT NULL),
    CHECK (role <> 'supervisor' OR operator_id IS NOT NULL),
    CHECK (role <> 'gateway' OR gateway_id IS NOT NULL)
);

CREATE TABLE lots (
    id text PRIMARY KEY,
    site_id text NOT NULL REFERENCES sites (id),
    name text NOT NULL,
    depositor text NOT NULL DEFAULT '',
    goods_kind text NOT NULL DEFAULT '',
    pieces integer NOT NULL DEFAULT 0 CHECK (pieces >= 0),
    zone text,
    financier_id text REFERENCES financiers (id),   -- the pledgee; NULL while not pledged
    absence_window_s real NOT NULL DEFAULT 30 CHECK (absence_window_s > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lots_financier ON lots (financier_id);
CREATE INDEX lots_site ON lots (site_id);

CREATE TABLE lot_tags (
    epc text PRIMARY KEY,               -- a tag belongs to one lot at a time
    lot_id text NOT NULL REFERENCES lots (id) ON DELETE CASCADE
);
CREATE INDEX lot_tags_lot ON lot_tags (lot_id);

-- Current state per tag, kept by ingest from reads and presence changes.
CREATE TABLE tag_state (
    epc text PRIMARY KEY,
    gateway_id text NOT NULL,
    reader text,
    antenna integer,
    rssi_cdbm integer,
    last_seen_at timestamptz,
    presence text CHECK (presence IN ('present', 'missing', 'unknown')),
    presence_changed_at timestamptz
);

-- Every accepted envelope, once: (gateway, seq) absorbs redelivery and replay; gaps show.
CREATE TABLE envelopes (
    gateway_id text NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL,
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, seq)
);

-- What ingest could not accept, with the reason and the exact bytes.
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic text NOT NULL,
    gateway_id text,
    reason text NOT NULL,
    raw bytea NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);

-- One active alert per (type, subject); repeats update count and last_seen_at.
CREATE TABLE alerts (
    id bigserial PRIMARY KEY,
    alert_type text NOT NULL,
    subject text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    site_id text REFERENCES sites (id),
    lot_id text REFERENCES lots (id),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    explanation text NOT NULL,
    evidence jsonb NOT NULL DEFAULT '{}',
    count integer NOT NULL DEFAULT 1,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at timestamptz,
    resolved_by text,
    source_gateway text,
    source_seq bigint
);
CREATE UNIQUE INDEX alerts_one_active ON alerts (alert_type, subject) WHERE state <> 'resolved';
CREATE INDEX alerts_lot ON alerts (lot_id);
CREATE INDEX alerts_state ON alerts (state, last_seen_at DESC);

CREATE TABLE alert_history (
    id bigserial PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (id),
    at timestamptz NOT NULL DEFAULT now(),
    action text NOT NULL,   -- opened, repeated, acknowledged, resolved, cleared
    actor text NOT NULL,    -- api key id, or gateway:<id>
    comment text NOT NULL DEFAULT '',
    evidence jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, at);
