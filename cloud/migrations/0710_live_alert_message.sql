-- Live alert events now carry the alert's catalogue message (evidence.message: id and
-- parameters, decisions/alert_text.py) so the map renders the explanation in the reader's
-- language; the rest of the evidence still stays out of the feed (it can be large).
CREATE OR REPLACE FUNCTION live_from_alert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO live_events (kind, site_id, lot_id, financier_id, payload)
    VALUES ('alert', NEW.site_id, NEW.lot_id,
            (SELECT financier_id FROM lots WHERE id = NEW.lot_id),
            (to_jsonb(NEW) - 'evidence') || jsonb_build_object('evidence', jsonb_strip_nulls(
                jsonb_build_object('message', NEW.evidence -> 'message'))));
    RETURN NULL;
END $$;
