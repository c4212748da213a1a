"""Aggregation of per-example tables into summary tables (pandas) and figures (matplotlib)."""
