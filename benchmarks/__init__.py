"""Benchmarks: `python -m benchmarks <name>`. Each prints a table, then one JSON line."""
