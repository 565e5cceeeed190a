"""Ingest: MQTT messages from gateways -> verified, validated, stored once, acknowledged."""
