-- JT/T 808 terminals are provisioned by an administrator for one site (issue 11): a terminal
-- no longer creates its own row by registering. Rows made by self-registration before this
-- migration belong to no site and are refused until provisioned.
ALTER TABLE jt808_terminals
    ADD COLUMN site_id text REFERENCES sites (id),
    ADD COLUMN terminal_id text,             -- the ID its registration must carry (NULL: the
                                             -- code was given to the terminal out of band)
    ADD COLUMN auth_code text,
    ADD COLUMN lot_id text REFERENCES lots (id),
    ADD COLUMN report_interval_s real NOT NULL DEFAULT 600 CHECK (report_interval_s > 0),
    ADD COLUMN provisioned_at timestamptz,
    ADD COLUMN provisioned_by text;

-- A terminal ID is bound to one SIM number only.
CREATE UNIQUE INDEX jt808_terminals_terminal_id ON jt808_terminals (terminal_id)
    WHERE terminal_id IS NOT NULL;
