"""Signed webhooks to financiers (Standard Webhooks 1.0) from a transactional outbox."""
