-- Daily partitions ahead for every range-partitioned table, so tables added by later
-- migrations are kept without ingest having to know their names.
CREATE FUNCTION pw_ensure_all_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    parent text;
    made integer := 0;
BEGIN
    FOR parent IN
        SELECT c.relname FROM pg_partitioned_table p
        JOIN pg_class c ON c.oid = p.partrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND p.partstrat = 'r'
    LOOP
        made := made + pw_ensure_partitions(parent, first_day, last_day);
    END LOOP;
    RETURN made;
END $$;
