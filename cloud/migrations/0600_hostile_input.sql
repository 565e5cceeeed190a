-- Issue 11 (hostile input), ingest side.

-- Dead letters keep at most a capped prefix of the bytes (a 20 MB message was stored whole);
-- the full length and SHA-256 still identify exactly what was sent.
ALTER TABLE dead_letters ADD COLUMN raw_length bigint, ADD COLUMN raw_sha256 bytea;
UPDATE dead_letters SET raw_length = length(raw), raw_sha256 = sha256(raw);
ALTER TABLE dead_letters ALTER COLUMN raw_length SET NOT NULL,
                         ALTER COLUMN raw_sha256 SET NOT NULL;

-- One active alert per (site, type, subject): a gateway of another site could otherwise
-- downgrade or resolve this site's alert by naming the same subject.
DROP INDEX alerts_one_active;
CREATE UNIQUE INDEX alerts_one_active ON alerts (coalesce(site_id, ''), alert_type, subject)
    WHERE state <> 'resolved';

-- Revocation, and every key change, reach every ingest process at once (LISTEN pw_gateways)
-- instead of after its cache's refresh period.
ALTER TABLE gateways ADD COLUMN revoked_at timestamptz;

CREATE FUNCTION pw_gateways_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pw_gateways', coalesce(NEW.id, OLD.id));
    RETURN NULL;
END $$;

CREATE TRIGGER gateways_changed AFTER INSERT OR DELETE OR UPDATE OF public_key, site_id, revoked_at
    ON gateways FOR EACH ROW EXECUTE FUNCTION pw_gateways_changed();
