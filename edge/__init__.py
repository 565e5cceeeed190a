"""The gateway agent: device adapters in, signed messages out through a durable outbox."""

__version__ = "0.1.0"
