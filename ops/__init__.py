"""Operational plumbing shared by every process: structured logs, retry backoff."""
