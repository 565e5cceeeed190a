-- tag_reads_per_minute (a continuous aggregate from 0002) was never read: the API's bucketed
-- counts need distinct tags per bucket of any width and the last minute's reads, which it
-- could not give. Dropping it also removes its refresh policy job.
DROP MATERIALIZED VIEW IF EXISTS tag_reads_per_minute;
