"""The cloud's one alerting stage: what an ingest batch means for alerts is decided here.

``stage`` is the entry (ingest calls it once per batch, inside the batch's transaction);
``release_guard`` and ``rules`` are the two deciders it runs besides absorbing the edge's own
alerts. Alert records and their webhook outbox rows are written by cloud.alerts.
"""
