"""The cloud: ingest (MQTT -> PostgreSQL), the API and the live map, and the workers."""
