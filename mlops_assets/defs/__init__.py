"""Thin Dagster wiring: each asset calls pure logic and attaches rich metadata."""
