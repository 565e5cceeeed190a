-- Integrity (issue 17, docs/integrity.md): what the receipt claims about a lot beyond its
-- pieces, the figures of sources that have no table of their own yet, each lot's running
-- disagreements, and shipments with their verdicts. Native SQL only.

-- The receipt's claim a lot is reconciled against (pieces stay on lots), and its tolerance.
CREATE TABLE lot_integrity (
    lot_id text PRIMARY KEY REFERENCES lots (id) ON DELETE CASCADE,
    unit_weight_kg double precision NOT NULL CHECK (unit_weight_kg >= 0),
    tare_kg double precision NOT NULL DEFAULT 0 CHECK (tare_kg >= 0),
    pallets integer CHECK (pallets >= 0),
    tags integer CHECK (tags >= 0),
    declared_at timestamptz NOT NULL,
    tolerance jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Latest figure per source for sources without a table of their own (pallet labels' GS1
-- quantities, a stack camera's pallet count); RFID and the load cell are read from lot_counts
-- and sensor_readings.
CREATE TABLE lot_figures (
    lot_id text NOT NULL REFERENCES lots (id) ON DELETE CASCADE,
    source text NOT NULL CHECK (source IN ('labels', 'camera', 'rfid', 'load_cell')),
    value double precision NOT NULL,
    observed_at timestamptz NOT NULL,
    PRIMARY KEY (lot_id, source)
);

-- When each family (count, weight) of a lot started to disagree; gone when it agrees again.
CREATE TABLE lot_disagreements (
    lot_id text NOT NULL REFERENCES lots (id) ON DELETE CASCADE,
    family text NOT NULL CHECK (family IN ('count', 'weight')),
    since timestamptz NOT NULL,
    PRIMARY KEY (lot_id, family)
);

CREATE TABLE shipments (
    id text PRIMARY KEY,
    site_id text NOT NULL REFERENCES sites (id),
    lot_id text REFERENCES lots (id),
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    counterparty text NOT NULL,
    origin jsonb NOT NULL,               -- {name, lat, lon, radius_m, site}
    destination jsonb NOT NULL,
    plate text NOT NULL,
    tracker text,
    epcs text[] NOT NULL DEFAULT '{}',
    window_start timestamptz NOT NULL,
    window_end timestamptz NOT NULL CHECK (window_end >= window_start),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    verdict text CHECK (verdict IN ('corroborated', 'partly', 'contradicted', 'no_evidence')),
    verdict_at timestamptz,
    evidence jsonb NOT NULL DEFAULT '[]'::jsonb,
    ledger_index bigint
);
CREATE INDEX shipments_site ON shipments (site_id, window_start);
CREATE INDEX shipments_lot ON shipments (lot_id);
-- Shipments whose verdict may still change are judged again by the periodic task.
CREATE INDEX shipments_open ON shipments (window_end) WHERE verdict IS DISTINCT FROM 'contradicted';

-- Every verdict change, as appended to the evidence ledger.
CREATE TABLE shipment_verdicts (
    shipment_id text NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    verdict text NOT NULL,
    judged_at timestamptz NOT NULL,
    evidence jsonb NOT NULL,
    ledger_index bigint NOT NULL,
    PRIMARY KEY (shipment_id, judged_at)
);
