"""Decisions shared by the gateway and the cloud: pure functions and small classes fed with values.

Nothing here does I/O or reads a clock; ``edge`` and ``cloud`` both import from here, never from
each other. See docs/architecture.md for what lives where.
"""
