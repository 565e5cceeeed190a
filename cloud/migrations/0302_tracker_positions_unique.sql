-- One row per fix: a device that sends a fix again (retransmission, re-upload) adds nothing.
-- (Replaces the plain index; the partition key fix_at is part of it, as both native
-- partitioning and hypertables require.)
CREATE UNIQUE INDEX tracker_positions_fix ON tracker_positions (tracker, fix_at);
DROP INDEX tracker_positions_tracker;
