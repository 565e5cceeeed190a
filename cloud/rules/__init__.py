"""The cloud's side of the rules engine: facts from ingested messages, rule sets per site,
maintenance windows. The engine itself (pure, shared with the edge) is decisions/rules.py; it
runs on ingested batches in the alerting stage (cloud/alerting)."""
