"""The cloud's side of the rules engine: rule sets per site and maintenance windows. The engine
itself (pure, shared with the edge) is decisions/rules.py; it runs on ingested batches in the
alerting stage (cloud/alerting), which gets its facts from cloud/ingest/facts.py."""
