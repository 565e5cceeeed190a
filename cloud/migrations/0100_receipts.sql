-- IoT electronic warehouse receipts and their evidence ledger (issue 6).

-- What a receipt needs to say about the pledged goods (PRC Civil Code art. 909, GB/T 30332),
-- added to the foundation's lots rather than duplicated.
ALTER TABLE lots
    ADD COLUMN quality text NOT NULL DEFAULT '',
    ADD COLUMN packaging text NOT NULL DEFAULT '',
    ADD COLUMN quantity numeric(20, 3) CHECK (quantity >= 0),
    ADD COLUMN unit text NOT NULL DEFAULT '',
    ADD COLUMN marks text NOT NULL DEFAULT '',
    ADD COLUMN unit_value numeric(20, 2) CHECK (unit_value >= 0),
    ADD COLUMN currency text NOT NULL DEFAULT 'CNY',
    ADD COLUMN fence text,                          -- geofence id the goods must stay inside
    ADD COLUMN tag_pattern text,                    -- GS1 pattern, when tags are not listed
    ADD COLUMN expected_labels jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN temperature_c_min real,
    ADD COLUMN temperature_c_max real,
    ADD COLUMN humidity_pct_min real,
    ADD COLUMN humidity_pct_max real,
    ADD COLUMN authorised_vehicles jsonb NOT NULL DEFAULT '[]';

-- The evidence ledger: append-only, hashed as an RFC 9162 Merkle tree.
-- Appends serialise on this single row; its size is the next leaf index.
CREATE TABLE ledger_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0)
);
INSERT INTO ledger_state DEFAULT VALUES;

CREATE TABLE ledger_entries (
    idx bigint PRIMARY KEY CHECK (idx >= 0),
    entry text NOT NULL,                 -- canonical JSON, exactly the bytes that were hashed
    kind text NOT NULL,
    receipt_number text,
    lot_id text,
    recorded_at timestamptz NOT NULL
);
CREATE INDEX ledger_entries_receipt ON ledger_entries (receipt_number, idx);
CREATE INDEX ledger_entries_lot ON ledger_entries (lot_id, idx);

-- Every complete subtree (2^level leaves at index idx), written once when its last leaf lands.
CREATE TABLE ledger_nodes (
    level smallint NOT NULL CHECK (level >= 0 AND level < 63),
    idx bigint NOT NULL CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

CREATE TABLE tree_heads (
    size bigint PRIMARY KEY CHECK (size >= 0),
    root bytea NOT NULL CHECK (length(root) = 32),
    timestamp_ms bigint NOT NULL,
    log_id text NOT NULL,
    signature bytea NOT NULL CHECK (length(signature) = 64)
);

-- Append-only is enforced by the database, not only by the code that writes it. (A superuser
-- can still disable this; that is what the signed tree heads and consistency proofs catch.)
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the evidence ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_nodes
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER tree_heads_append_only BEFORE UPDATE OR DELETE ON tree_heads
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_nodes_no_truncate BEFORE TRUNCATE ON ledger_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Physical verifications of a lot (the evidence a receipt is issued on).
CREATE TABLE lot_verifications (
    id bigserial PRIMARY KEY,
    lot_id text NOT NULL REFERENCES lots (id),
    verified_at timestamptz NOT NULL,
    declared_pieces integer NOT NULL,
    counted integer NOT NULL,
    tolerance integer NOT NULL,
    outside_fence integer NOT NULL,
    open_theft_alerts jsonb NOT NULL,
    missing jsonb NOT NULL,              -- what stands in the way of issuing; [] when none
    tag_set_sha256 text NOT NULL,
    ledger_idx bigint NOT NULL REFERENCES ledger_entries (idx)
);
CREATE INDEX lot_verifications_lot ON lot_verifications (lot_id, verified_at DESC);

CREATE TABLE receipts (
    number text PRIMARY KEY,
    lot_id text NOT NULL REFERENCES lots (id),
    parent_number text REFERENCES receipts (number),
    status text NOT NULL
        CHECK (status IN ('issued', 'pledged', 'partly_released', 'released', 'cancelled', 'split')),
    holder text NOT NULL,
    pledgee text REFERENCES financiers (id),
    quantity numeric(20, 3) NOT NULL CHECK (quantity >= 0),
    unit text NOT NULL,
    pieces integer NOT NULL CHECK (pieces >= 0),
    tags text[] NOT NULL,                -- the tags the receipt stands for now
    version integer NOT NULL DEFAULT 1,
    document text NOT NULL,              -- canonical JSON of the current receipt, as signed
    signature bytea NOT NULL CHECK (length(signature) = 64),
    issued_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CHECK ((status IN ('pledged', 'partly_released')) = (pledgee IS NOT NULL)
           OR status IN ('released', 'cancelled'))
);
CREATE INDEX receipts_lot ON receipts (lot_id);
CREATE INDEX receipts_pledgee ON receipts (pledgee);

-- A receipt is pledged at most once at a time: the partial unique index is the rule; two
-- concurrent pledges race on it and exactly one commits.
CREATE TABLE receipt_pledges (
    id bigserial PRIMARY KEY,
    receipt_number text NOT NULL REFERENCES receipts (number),
    pledgee text NOT NULL REFERENCES financiers (id),
    pledged_at timestamptz NOT NULL,
    ended_at timestamptz
);
CREATE UNIQUE INDEX receipt_pledges_one_active ON receipt_pledges (receipt_number)
    WHERE ended_at IS NULL;

-- The goods behind a receipt: a tag backs at most one live receipt, so the same pallets
-- cannot be put behind two receipts (and financed twice) by issuing again or splitting wrong.
CREATE TABLE receipt_tags (
    receipt_number text NOT NULL REFERENCES receipts (number),
    epc text NOT NULL,
    live boolean NOT NULL DEFAULT true,
    PRIMARY KEY (receipt_number, epc)
);
CREATE UNIQUE INDEX receipt_tags_one_live ON receipt_tags (epc) WHERE live;

-- Releases waiting for (or given) the pledgee's approval.
CREATE TABLE release_requests (
    id bigserial PRIMARY KEY,
    receipt_number text NOT NULL REFERENCES receipts (number),
    quantity numeric(20, 3) NOT NULL CHECK (quantity >= 0),
    pieces integer NOT NULL CHECK (pieces >= 0),
    tags text[] NOT NULL DEFAULT '{}',
    vehicle text,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_by text,
    decided_at timestamptz
);
CREATE INDEX release_requests_receipt ON release_requests (receipt_number, state);
