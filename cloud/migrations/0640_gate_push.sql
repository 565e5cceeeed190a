-- The gateways hold the site's gate list and released lots (cloud/gate_push.py): every write
-- that changes either names its site on pw_gate, so the push follows within moments.
CREATE FUNCTION pw_gate_lot_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pw_gate', coalesce(NEW.site_id, OLD.site_id));
    RETURN NULL;
END $$;

CREATE TRIGGER lots_gate_changed AFTER INSERT OR DELETE OR UPDATE OF authorised_vehicles, site_id
    ON lots FOR EACH ROW EXECUTE FUNCTION pw_gate_lot_changed();

CREATE FUNCTION pw_gate_release_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pw_gate', l.site_id)
    FROM receipts r JOIN lots l ON l.id = r.lot_id WHERE r.number = NEW.receipt_number;
    RETURN NULL;
END $$;

CREATE TRIGGER release_requests_gate_changed AFTER INSERT OR UPDATE OF state, vehicle
    ON release_requests FOR EACH ROW EXECUTE FUNCTION pw_gate_release_changed();

-- A new gateway gets its site's pair at once.
CREATE FUNCTION pw_gate_gateway_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('pw_gate', NEW.site_id);
    RETURN NULL;
END $$;

CREATE TRIGGER gateways_gate_added AFTER INSERT OR UPDATE OF site_id
    ON gateways FOR EACH ROW EXECUTE FUNCTION pw_gate_gateway_added();
