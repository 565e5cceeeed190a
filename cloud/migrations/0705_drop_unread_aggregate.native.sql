-- Nothing to drop on the native path (0700's TimescaleDB variant drops an unread aggregate);
-- recorded so both paths share one version list.
SELECT 1;
