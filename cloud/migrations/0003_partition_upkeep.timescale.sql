-- TimescaleDB creates chunks itself; the upkeep call is a no-op here.
CREATE FUNCTION pw_ensure_all_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE sql AS $$ SELECT 0 $$;
