-- A snooze quiets one site's alert, not every site's alert of the same type and subject (two
-- sites can both have a reader "dock-1" or a plate at their gate). '' stands for alerts without
-- a site, so the key stays a plain primary key.
ALTER TABLE alert_snoozes ADD COLUMN site_id text NOT NULL DEFAULT '';
ALTER TABLE alert_snoozes DROP CONSTRAINT alert_snoozes_pkey;
ALTER TABLE alert_snoozes ADD PRIMARY KEY (site_id, alert_type, subject);
