-- Rules, suppression (snooze, maintenance), release movements, and the webhook outbox.

-- Why an alert was stored without notifying anyone (a snooze or a maintenance window).
ALTER TABLE alerts ADD COLUMN suppressed_by text;
ALTER TABLE alerts ADD COLUMN rule text;

-- Rules are data: a site's rule set is versioned; the newest version is in force, and a
-- site without one runs the defaults shipped in cloud/rules/defaults.json.
CREATE TABLE rule_sets (
    site_id text NOT NULL REFERENCES sites (id),
    version integer NOT NULL CHECK (version >= 1),
    rules jsonb NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, version)
);

-- Facts the cloud's rules read, kept for the longest window (pruned by the rules writer).
CREATE TABLE rule_facts (
    id bigserial PRIMARY KEY,
    site_id text NOT NULL,
    kind text NOT NULL,
    subject text NOT NULL,
    at timestamptz NOT NULL,
    attrs jsonb NOT NULL DEFAULT '{}',
    fired text[] NOT NULL DEFAULT '{}'      -- rules this fact has triggered (each fires once)
);
CREATE INDEX rule_facts_site_at ON rule_facts (site_id, at);

-- Goods that left during an approved release with an authorised vehicle: no alert, a record.
CREATE TABLE release_movements (
    id bigserial PRIMARY KEY,
    site_id text NOT NULL,
    subject text NOT NULL,
    rule text NOT NULL,
    at timestamptz NOT NULL,
    facts jsonb NOT NULL,
    explanation text NOT NULL
);

-- Snoozes: (type, subject) stays quiet (stored, not notified) until the given time.
CREATE TABLE alert_snoozes (
    alert_type text NOT NULL,
    subject text NOT NULL,
    until timestamptz NOT NULL,
    actor text NOT NULL,
    comment text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_type, subject)
);

CREATE TABLE maintenance_windows (
    id bigserial PRIMARY KEY,
    site_id text NOT NULL REFERENCES sites (id),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    alert_types text[],                 -- NULL: every type
    reason text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX maintenance_windows_site ON maintenance_windows (site_id, ends_at);

-- Webhook endpoints per financier; several live secrets while one is rotated out.
CREATE TABLE webhook_endpoints (
    id text PRIMARY KEY,
    financier_id text NOT NULL REFERENCES financiers (id),
    url text NOT NULL,
    event_types text[] NOT NULL DEFAULT '{}',   -- empty: every type
    lot_ids text[],                              -- NULL: every lot pledged to the financier
    receipt_numbers text[],                      -- NULL: no receipt filter
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason text,
    disabled_at timestamptz,
    failing_since timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_financier ON webhook_endpoints (financier_id);

CREATE TABLE webhook_secrets (
    id bigserial PRIMARY KEY,
    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz                      -- NULL: current
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);

-- The outbox: one message per alert change (seq orders them), one delivery per endpoint.
CREATE TABLE webhook_messages (
    seq bigserial PRIMARY KEY,
    msg_id text NOT NULL UNIQUE,                -- webhook-id, stable across retries and replays
    event_type text NOT NULL,
    alert_id bigint REFERENCES alerts (id),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    endpoint_id text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    message_seq bigint NOT NULL REFERENCES webhook_messages (seq),
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_status integer,
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, state, message_seq);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id bigserial PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    status integer,
    error text,
    duration_ms integer NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, at);
